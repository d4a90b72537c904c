"""Per-frame demixing of ROI fluorescence with the PSF-blurred footprints of the ROIs.

A small spine's ROI mean is mostly light from elsewhere: the microscope's blur spreads its
dendrite's and its neighbours' light into it and much of its own light out of it. Each frame
is modelled as ``F_t(x) = sum_j c_j(t) · (G * 1_j)(x) + b(t)`` (``G`` a Gaussian PSF, ``1_j``
spine or dendrite label ``j``, ``b`` a constant background): the unmixing of
:mod:`spinequant.morphology.unmixing` (used there for the blur-corrected RSDR), solved per
frame. The least-squares system depends only on the labels and the PSF, so it is built once
and every frame costs one right-hand side and one triangular solve. ``c_j(t)`` is the
compartment's own fluorescence (dye concentration times brightness): its ΔF/F0 is free of
the neighbours' and the dendrite's signals.
"""

from __future__ import annotations

import numpy as np

from ..morphology.unmixing import build_footprints

#: Frames solved at once (bounds the memory of the right-hand sides of long 3D movies).
CHUNK_FRAMES = 64


def demix_frames(frames, spine_labels, dendrite_labels, spacing, *, psf_fwhm_um,
                 nonnegative: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each ROI's own fluorescence in every frame, with the blur of the others removed.

    Parameters
    ----------
    frames : array (T, Y, X) or (T, Z, Y, X)
        Motion-corrected frames on the labels' pixel grid.
    spine_labels, dendrite_labels : array of int
        ROIs; dendrite pixels that are also spine count as spine.
    spacing : pixel size in µm per spatial axis.
    psf_fwhm_um : (z, xy) for 3D, (xy,) for 2D
        Gaussian PSF FWHM in µm (measured, e.g. on beads).
    nonnegative : bool
        Constrain every compartment's fluorescence to be >= 0 (NNLS per frame). The default,
        plain least squares, is linear in the data, so noise averages out of ΔF/F0 instead of
        being clipped into a bias where a small spine's share is near zero.

    Returns
    -------
    (spine_f, dendrite_f, background)
        (T, max spine id) and (T, max dendrite id) fluorescence per label id 1..n (column
        ``i - 1``; NaN for an id with no pixel), in the frames' units per unit of blurred
        footprint (a compartment's brightness before the blur), and the fitted background
        (T,), the frames' value where there is no dye.
    """
    frames = np.asarray(frames)
    spine_labels = np.asarray(spine_labels)
    dendrite_labels = np.where(spine_labels > 0, 0, np.asarray(dendrite_labels))
    system = build_footprints(spine_labels, dendrite_labels, spacing=spacing, psf_fwhm_um=psf_fwhm_um,
                              fit_background=True, fit="voxels")
    n_frames = len(frames)
    x = np.empty((system.n_unknowns, n_frames))
    for start in range(0, n_frames, CHUNK_FRAMES):
        chunk = np.asarray(frames[start:start + CHUNK_FRAMES], np.float64)
        x[:, start:start + len(chunk)] = system.solve(chunk, nonnegative=nonnegative)
    n_s, n_d = len(system.spine_ids), len(system.dendrite_ids)
    spine_f = np.full((n_frames, int(spine_labels.max(initial=0))), np.nan)
    dendrite_f = np.full((n_frames, int(dendrite_labels.max(initial=0))), np.nan)
    spine_f[:, system.spine_ids - 1] = x[:n_s].T
    dendrite_f[:, system.dendrite_ids - 1] = x[n_s:n_s + n_d].T
    return spine_f, dendrite_f, x[-1].copy()
