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
from .traces import roi_means

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
