"""Two-channel ratio: the ratiometric spine-to-dendrite ratio (RSDR) of the DeepD3 paper.

Fernholz et al. (DeepD3, Online Methods, eq. 1)::

    RSDR = (Tagged_spine / Structure_spine) / (Tagged_dendrite / Structure_dendrite)

with ``Tagged_spine`` and ``Structure_spine`` the mean raw fluorescence of all voxels in one
spine ROI in the tagged (e.g. a PSD-95 nanobody) and the structural channel, and the
dendrite terms the means over all voxels labelled dendrite in the image. RSDR > 1: the tagged
protein is enriched in the spine over the dendrite. The two channels must be registered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from .intensity import roi_means
from .unmixing import unmix

#: Columns of :func:`rsdr`.
RSDR_COLUMNS = ["id", "structure_mean", "tagged_mean", "rsdr"]


def rsdr(tagged, structure, spine_labels, dendrite_labels, *, background=(0.0, 0.0)) -> pd.DataFrame:
    """The RSDR of every spine ROI: one row per spine id present in ``spine_labels``.

    Parameters
    ----------
    tagged, structure : array
        The two channels (same shape as the labels; 2D or 3D).
    spine_labels, dendrite_labels : array of int
        Spine ROIs (ids 1..n) and dendrite labels (any id > 0 counts; pixels that are also
        spine do not).
    background : (float, float)
        Subtracted from the tagged and the structural channel before the means (the paper
        uses raw values: the default 0 keeps them raw).

    Returns
    -------
    pandas.DataFrame
        :data:`RSDR_COLUMNS`; the dendrite means are in ``.attrs`` (``tagged_dendrite``,
        ``structure_dendrite``).

    Examples
    --------
    >>> import numpy as np
    >>> spines = np.array([[1, 0, 0], [0, 0, 2]]); dend = np.array([[0, 1, 1], [1, 1, 0]])
    >>> structure = np.array([[10., 5, 5], [5, 5, 20]]); tagged = np.array([[20., 5, 5], [5, 5, 10]])
    >>> rsdr(tagged, structure, spines, dend)["rsdr"].tolist()
    [2.0, 0.5]
    """
    tagged = np.asarray(tagged, float) - float(background[0])
    structure = np.asarray(structure, float) - float(background[1])
    spine_labels = np.asarray(spine_labels)
    if not (tagged.shape == structure.shape == spine_labels.shape == np.shape(dendrite_labels)):
        raise InputError(f"The two channels and the labels must have the same shape (tagged {tagged.shape}, "
                         f"structure {structure.shape}, spines {spine_labels.shape}, dendrites "
                         f"{np.shape(dendrite_labels)}).")
    dendrite = (np.asarray(dendrite_labels) > 0) & (spine_labels == 0)
    if not dendrite.any():
        raise InputError("There is no dendrite voxel: the RSDR needs the dendrite's mean in both channels.")
    tagged_d, structure_d = float(tagged[dendrite].mean()), float(structure[dendrite].mean())
    if tagged_d <= 0 or structure_d <= 0:
        raise InputError(f"The dendrite's mean is not positive (tagged {tagged_d:g}, structure {structure_d:g}); "
                         f"the background subtracted is too large.")
    means = roi_means(np.stack([tagged, structure]), spine_labels)
    ids = np.arange(1, means.shape[1] + 1)
    present = ~np.isnan(means[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (means[0] / means[1]) / (tagged_d / structure_d)
    table = pd.DataFrame({"id": ids[present], "structure_mean": means[1][present] + background[1],
                          "tagged_mean": means[0][present] + background[0], "rsdr": ratio[present]})
    table.attrs.update(tagged_dendrite=tagged_d + background[0], structure_dendrite=structure_d + background[1])
    return table[RSDR_COLUMNS]


#: Percentile of each channel over the voxels that are neither spine nor dendrite taken as
#: its background by ``background="auto"`` (a low one: the unlabelled voxels also hold the
#: blur's tails and unlabelled structures; with read noise it lies below the mean offset).
AUTO_BACKGROUND_PERCENTILE = 5.0


def auto_background(tagged, structure, spine_labels, dendrite_labels) -> tuple[float, float]:
    """(tagged, structure) background: the :data:`AUTO_BACKGROUND_PERCENTILE` th percentile of
    each channel over the voxels outside every spine and dendrite label."""
    outside = (np.asarray(spine_labels) == 0) & (np.asarray(dendrite_labels) == 0)
    if not outside.any():
        raise InputError("Every voxel is spine or dendrite: no background to estimate; give the "
                         "background of both channels in ADU.")
    return tuple(float(np.percentile(np.asarray(c)[outside], AUTO_BACKGROUND_PERCENTILE))
                 for c in (tagged, structure))


def rsdr_corrected(tagged, structure, spine_labels, dendrite_labels, *, spacing, psf_fwhm_um,
                   background=None, fit: str = "voxels") -> pd.DataFrame:
    """The RSDR of every spine with the PSF's blur undone: one row per spine id.

    The concentration of the tagged (``t``) and the structural (``s``) dye in each spine and
    dendrite comes from linear unmixing of the ROI means with the PSF-blurred label footprints
    (:func:`spinequant.morphology.unmixing.unmix`); then
    ``RSDR_k = (t_k / s_k) / (t_d / s_d)`` with ``t_d``, ``s_d`` the dendrites' voxel-weighted
    mean concentrations (the paper's pooled dendrite mean).

    Parameters
    ----------
    psf_fwhm_um : (z, xy) for 3D, (xy,) for 2D
        Gaussian PSF FWHM in µm; it must be known (measured), not guessed.
    background : (tagged, structure) in ADU, optional
        Subtracted first; None fits a constant background per channel from the unlabelled
        voxels within 1 µm of the labels.
    fit : "voxels" (least squares over every voxel of the labels and a 1 µm shell) or "rois"
        (one equation per ROI mean); see :func:`~spinequant.morphology.unmixing.unmix`.

    Returns
    -------
    pandas.DataFrame
        ``id, structure_conc, tagged_conc, rsdr_corrected`` (NaN where the fit leaves the
        spine no structural dye); ``.attrs``: the dendrite concentrations and the background
        used.
    """
    tagged, structure = np.asarray(tagged), np.asarray(structure)
    if not (tagged.shape == structure.shape == np.shape(spine_labels) == np.shape(dendrite_labels)):
        raise InputError("The two channels and the labels must have the same shape.")
    parts = unmix([tagged, structure], spine_labels, dendrite_labels, spacing=spacing,
                  psf_fwhm_um=psf_fwhm_um, background=background, fit=fit)
    dendrites = parts["dendrites"]
    if dendrites.empty:
        raise InputError("There is no dendrite voxel: the RSDR needs the dendrite's concentration in both channels.")
    weights = dendrites["voxels"].to_numpy(float)
    tagged_d = float(np.average(dendrites["c0"], weights=weights))
    structure_d = float(np.average(dendrites["c1"], weights=weights))
    if tagged_d <= 0 or structure_d <= 0:
        raise InputError(f"The dendrite's unmixed concentration is not positive (tagged {tagged_d:g}, "
                         f"structure {structure_d:g}); check the background and the PSF.")
    spines = parts["spines"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (spines["c0"] / spines["c1"]) / (tagged_d / structure_d)
    ratio = ratio.where(spines["c1"] > 0)   # no structural dye left in the fit: no ratio
    table = pd.DataFrame({"id": spines.index.to_numpy(), "structure_conc": spines["c1"].to_numpy(),
                          "tagged_conc": spines["c0"].to_numpy(), "rsdr_corrected": ratio.to_numpy()})
    table.attrs.update(tagged_dendrite=tagged_d, structure_dendrite=structure_d,
                       background=parts["background"], psf_sigma_px=parts["psf_sigma_px"])
    return table
