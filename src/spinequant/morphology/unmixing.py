"""Blur-corrected compartment concentrations: linear unmixing of ROI means with PSF footprints.

A channel is modelled as ``sum_j c_j * blur(mask_j) + b``: one unknown dye concentration
``c_j`` per spine and per dendrite label (the dendrite's voxels that are not spine), and a
constant background ``b`` (given, or fitted from a shell of unlabelled voxels around the
labels). The mean of the channel over ROI ``r`` is then ``sum_j A[r, j] c_j + b`` with
``A[r, j]`` the mean of ``blur(mask_j)`` over ROI ``r``: with as many ROIs as unknowns (each
spine, each dendrite, the shell) the concentrations follow from a small linear system, solved
by non-negative least squares. Each spine's footprint is blurred only in its own bounding box
(padded by the PSF's reach), so a spine couples only to its neighbours and its dendrite.
The PSF is a Gaussian given by its full width at half maximum in µm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import InputError

#: Gaussian reach in standard deviations (beyond it the PSF is taken as zero).
TRUNCATE = 4.0
#: FWHM of a Gaussian in standard deviations.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def psf_sigma_px(psf_fwhm_um, spacing) -> tuple[float, ...]:
    """The PSF's standard deviation per axis in pixels from its FWHM in µm.

    ``psf_fwhm_um`` is ``(z, xy)`` for a 3D image (``spacing`` (z, y, x)) and ``(xy,)`` for a
    2D one (``spacing`` (y, x)).

    >>> psf_sigma_px((3.2, 0.5), (0.5, 0.1, 0.1))
    (2.71783, 2.123305, 2.123305)
    """
    fwhm = tuple(float(v) for v in np.atleast_1d(psf_fwhm_um))
    spacing = tuple(float(s) for s in spacing)
    want = {3: "two values (Z XY)", 2: "one value (XY)"}
    if len(spacing) not in want or len(fwhm) != len(spacing) - 1:
        raise InputError(f"The PSF FWHM {list(fwhm)} does not fit a {len(spacing)}D image: give "
                         f"{want.get(len(spacing), 'a 2D or 3D image')} in µm.")
    if not all(math.isfinite(v) and v > 0 for v in fwhm):
        raise InputError(f"The PSF FWHM must be positive numbers in µm, not {list(fwhm)}.")
    per_axis = ((fwhm[0],) if len(spacing) == 3 else ()) + (fwhm[-1],) * 2
    return tuple(round(f / FWHM_PER_SIGMA / s, 6) for f, s in zip(per_axis, spacing))


def roi_index(spine_labels, dendrite_labels, *, spacing, shell_um: float | None):
    """One image of ROI numbers: spines 1..N (in order of ``spine_ids``), dendrites N+1..N+M
    (their voxels that are not spine), then the shell (unlabelled voxels within ``shell_um`` of
    any label; none when ``shell_um`` is None). Returns (index image, spine ids, dendrite ids)."""
    spine_labels, dendrite_labels = np.asarray(spine_labels), np.asarray(dendrite_labels)
    spine_ids = np.unique(spine_labels[spine_labels > 0])
    dendrite = (dendrite_labels > 0) & (spine_labels == 0)
    dendrite_ids = np.unique(dendrite_labels[dendrite])
    index = np.zeros(spine_labels.shape, np.int64)
    lookup = np.zeros(int(spine_labels.max(initial=0)) + 1, np.int64)
    lookup[spine_ids] = np.arange(1, len(spine_ids) + 1)
    index[spine_labels > 0] = lookup[spine_labels[spine_labels > 0]]
    lookup = np.zeros(int(dendrite_labels.max(initial=0)) + 1, np.int64)
    lookup[dendrite_ids] = np.arange(1, len(dendrite_ids) + 1) + len(spine_ids)
    index[dendrite] = lookup[dendrite_labels[dendrite]]
    if shell_um is not None:
        distance = ndi.distance_transform_edt(index == 0, sampling=spacing)
        shell = (index == 0) & (distance <= shell_um)
        if not shell.any():
            raise InputError("There is no unlabelled voxel near the labels to estimate the background "
                             "from; give the background (ratio background) instead.")
        index[shell] = len(spine_ids) + len(dendrite_ids) + 1
    return index, spine_ids, dendrite_ids


def footprint_matrix(masks, index: np.ndarray, n_rois: int, sigma_px) -> np.ndarray:
    """(n_rois, len(masks)): the mean of each blurred mask (:func:`blurred_footprints`) over
    each ROI of ``index``."""
    sizes = np.bincount(index.ravel(), minlength=n_rois + 1)[1:].astype(float)
    columns = [np.bincount(index[grown].ravel(), weights=blurred.ravel(), minlength=n_rois + 1)[1:n_rois + 1]
               for grown, blurred in blurred_footprints(masks, index.shape, sigma_px)]
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.stack(columns, axis=1) / sizes[:, None] if columns else np.zeros((n_rois, 0))
    return np.nan_to_num(matrix)


def _label_masks(labels, ids, *, exclude=None):
    boxes = ndi.find_objects(labels)
    for i in ids:
        box = boxes[int(i) - 1]
        mask = labels[box] == i
        if exclude is not None:
            mask &= ~exclude[box]
        yield box, mask


def solve_nonnegative(matrix: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Non-negative least squares ``argmin ||matrix x - means||, x >= 0``."""
    from scipy.optimize import lsq_linear, nnls

    if matrix.shape[1] <= 2000:
        return nnls(matrix, means, maxiter=50 * matrix.shape[1] + 100)[0]
    from scipy import sparse

    return lsq_linear(sparse.csr_matrix(matrix), means, bounds=(0, np.inf), lsmr_tol="auto", tol=1e-12).x


def blurred_footprints(masks, shape, sigma_px, region: np.ndarray | None = None):
    """Each mask of ``masks`` (``(box, mask)`` pairs: a tuple of slices, the boolean mask in
    it) blurred in its box grown by the PSF's reach (clipped to the image, where the Gaussian
    reflects as ``scipy.ndimage`` does by default), kept only inside ``region`` if given: a
    list of (grown box, float array)."""
    sigma = np.asarray(sigma_px, float)
    reach = np.ceil(TRUNCATE * sigma).astype(int) + 1
    out = []
    for box, mask in masks:
        grown = tuple(slice(max(s.start - r, 0), min(s.stop + r, n)) for s, r, n in zip(box, reach, shape))
        local = np.zeros(tuple(g.stop - g.start for g in grown), np.float64)
        local[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))] = mask
        blurred = ndi.gaussian_filter(local, sigma, truncate=TRUNCATE)
        out.append((grown, blurred if region is None else blurred * region[grown]))
    return out


def _overlap(a, b):
    inter = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b))
    if any(s.start >= s.stop for s in inter):
        return None
    return (tuple(slice(s.start - x.start, s.stop - x.start) for s, x in zip(inter, a)),
            tuple(slice(s.start - y.start, s.stop - y.start) for s, y in zip(inter, b)))


def voxel_normal_equations(footprints, region: np.ndarray, fit_background: bool):
    """The Gram matrix of the footprints over ``region`` (plus a constant column when the
    background is fitted): least squares over every voxel of the region, not ROI means."""
    n = len(footprints) + int(fit_background)
    gram = np.zeros((n, n))
    starts = np.array([[s.start for s in box] for box, _ in footprints]).reshape(len(footprints), -1)
    stops = np.array([[s.stop for s in box] for box, _ in footprints]).reshape(len(footprints), -1)
    for i, (box_i, f_i) in enumerate(footprints):
        touching = np.nonzero(np.all((starts < stops[i]) & (stops > starts[i]), axis=1))[0]
        for j in touching[touching >= i]:
            cut_i, cut_j = _overlap(box_i, footprints[j][0])
            gram[i, j] = gram[j, i] = float(np.sum(f_i[cut_i] * footprints[j][1][cut_j]))
        if fit_background:
            gram[i, -1] = gram[-1, i] = float(f_i.sum())
    if fit_background:
        gram[-1, -1] = float(region.sum())
    return gram


def _solve_gram(gram: np.ndarray, rhs: np.ndarray, *, nonnegative: bool = True) -> np.ndarray:
    """Least squares from the normal equations (``gram = L L^T``): non-negative (NNLS on the
    Cholesky factor) or, with ``nonnegative=False``, the plain solution; ``rhs`` (n,) or (n, k)."""
    scale = np.sqrt(np.clip(np.diag(gram), 1e-300, None))
    g = gram / scale[:, None] / scale[None, :]
    lower = np.linalg.cholesky(g + 1e-12 * np.eye(len(g)))
    rhs = np.asarray(rhs, float)
    scaled = rhs / (scale if rhs.ndim == 1 else scale[:, None])
    target = np.linalg.solve(lower, scaled)
    if not nonnegative:
        x = np.linalg.solve(lower.T, target)
    elif rhs.ndim == 1:
        x = solve_nonnegative(lower.T, target)
    else:
        x = np.stack([solve_nonnegative(lower.T, column) for column in target.T], axis=1)
    return x / (scale if rhs.ndim == 1 else scale[:, None])


@dataclass(frozen=True)
class Footprints:
    """The PSF-blurred footprint of every spine and dendrite label and the least-squares system
    they make: what the unmixing needs from the labels and the PSF alone, built once
    (:func:`build_footprints`) and solved for any number of images of the same field of view
    (the channels of a stack, or every frame of a movie)."""

    spine_ids: np.ndarray
    dendrite_ids: np.ndarray
    index: np.ndarray
    sigma_px: tuple
    fit: str
    fit_background: bool
    footprints: list | None      # voxel fit: (grown box, blurred mask) per unknown
    gram: np.ndarray | None      # voxel fit: normal equations
    matrix: np.ndarray | None    # ROI fit: mean of each footprint over each ROI
    sizes: np.ndarray            # voxels per ROI of ``index``

    @property
    def n_unknowns(self) -> int:
        return len(self.spine_ids) + len(self.dendrite_ids) + int(self.fit_background)

    def solve(self, images, offsets=None, *, nonnegative: bool = True) -> np.ndarray:
        """(n_unknowns, k) concentrations (spines, dendrites, then the background when fitted)
        of the ``k`` images (an array (k, *shape)), after subtracting ``offsets`` (k,)."""
        images = np.asarray(images)
        offsets = np.zeros(len(images)) if offsets is None else np.asarray(offsets, float)
        if self.fit == "voxels":
            rhs = np.empty((len(self.footprints) + int(self.fit_background), len(images)))
            for j, (box, f) in enumerate(self.footprints):
                rhs[j] = np.tensordot(images[(slice(None), *box)], f, axes=f.ndim) - offsets * f.sum()
            if self.fit_background:
                region = self.index > 0
                rhs[-1] = [float(np.sum(image[region], dtype=np.float64)) for image in images]
                rhs[-1] -= offsets * region.sum()
            return _solve_gram(self.gram, rhs, nonnegative=nonnegative)
        flat = self.index.ravel()
        n_rois = len(self.sizes)
        columns = []
        for image, offset in zip(images, offsets):
            means = np.bincount(flat, weights=(np.asarray(image, float) - offset).ravel(),
                                minlength=n_rois + 1)[1:] / self.sizes
            columns.append(solve_nonnegative(self.matrix, means) if nonnegative
                           else np.linalg.lstsq(self.matrix, means, rcond=None)[0])
        return np.stack(columns, axis=1)


def build_footprints(spine_labels, dendrite_labels, *, spacing, psf_fwhm_um, fit_background: bool = True,
                     shell_um: float = 1.0, fit: str = "voxels") -> Footprints:
    """The :class:`Footprints` of the labels with a Gaussian PSF (FWHM in µm, see
    :func:`psf_sigma_px`); ``fit_background`` adds a constant background as one more unknown
    (fitted from the unlabelled voxels within ``shell_um`` of the labels); ``fit`` as in
    :func:`unmix`."""
    spine_labels, dendrite_labels = np.asarray(spine_labels), np.asarray(dendrite_labels)
    if dendrite_labels.shape != spine_labels.shape:
        raise InputError("The spine and dendrite labels must have the same shape.")
    if fit not in ("voxels", "rois"):
        raise InputError(f"fit must be 'voxels' or 'rois', not {fit!r}.")
    sigma = psf_sigma_px(psf_fwhm_um, spacing)
    index, spine_ids, dendrite_ids = roi_index(spine_labels, dendrite_labels, spacing=spacing,
                                               shell_um=shell_um if (fit_background or fit == "voxels") else None)
    n_rois = len(spine_ids) + len(dendrite_ids) + int(fit_background)
    masks = list(_label_masks(spine_labels, spine_ids))
    masks += list(_label_masks(dendrite_labels, dendrite_ids, exclude=spine_labels > 0))
    footprints = gram = matrix = None
    if fit == "voxels":
        region = index > 0
        footprints = blurred_footprints(masks, index.shape, sigma, region)
        gram = voxel_normal_equations(footprints, region, fit_background)
    else:
        matrix = footprint_matrix(masks, index, n_rois, sigma)
        if fit_background:
            matrix = np.hstack([matrix, np.ones((n_rois, 1))])
    sizes = np.bincount(index.ravel(), minlength=int(index.max(initial=0)) + 1)[1:]
    return Footprints(spine_ids=spine_ids, dendrite_ids=dendrite_ids, index=index, sigma_px=sigma, fit=fit,
                      fit_background=fit_background, footprints=footprints, gram=gram, matrix=matrix, sizes=sizes)


def unmix(channels, spine_labels, dendrite_labels, *, spacing, psf_fwhm_um, background=None,
          shell_um: float = 1.0, fit: str = "voxels") -> dict:
    """The blur-corrected concentration of every spine and dendrite in each channel.

    Parameters
    ----------
    channels : sequence of arrays
        Images of the same field of view (same shape as the labels).
    spine_labels, dendrite_labels : array of int
    spacing : voxel size in µm, (z, y, x) or (y, x)
    psf_fwhm_um : (z, xy) for 3D, (xy,) for 2D
        The Gaussian PSF's FWHM in µm (measured on the microscope, e.g. from beads).
    background : sequence of float, optional
        Per channel, subtracted first. None: a constant background per channel is fitted
        from the unlabelled voxels within ``shell_um`` of the labels.
    fit : "voxels" or "rois"
        "rois": one equation per ROI mean (spines, dendrites, the shell), a square system.
        "voxels": least squares over every voxel of the labels and the shell (all of each
        spine's blurred light is used: less noise where the blur spreads a spine thin).

    Returns
    -------
    dict
        ``spines`` (DataFrame, index spine id, a column ``c0, c1, ...`` per channel),
        ``dendrites`` (same per dendrite id, with ``voxels``), ``background`` (per channel:
        the given or the fitted one).
    """
    channels = [np.asarray(c, float) for c in channels]
    spine_labels = np.asarray(spine_labels)
    if any(c.shape != spine_labels.shape for c in channels) or np.shape(dendrite_labels) != spine_labels.shape:
        raise InputError("The channels and the labels must have the same shape.")
    fit_background = background is None
    system = build_footprints(spine_labels, dendrite_labels, spacing=spacing, psf_fwhm_um=psf_fwhm_um,
                              fit_background=fit_background, shell_um=shell_um, fit=fit)
    n_s, n_d = len(system.spine_ids), len(system.dendrite_ids)
    offsets = np.zeros(len(channels)) if fit_background else np.asarray(background, float)[:len(channels)]
    x = system.solve(np.stack(channels) if channels else np.zeros((0, *spine_labels.shape)), offsets)
    spines = pd.DataFrame(index=pd.Index(system.spine_ids, name="id"))
    dendrites = pd.DataFrame({"voxels": system.sizes[n_s:n_s + n_d]}, index=pd.Index(system.dendrite_ids, name="id"))
    for k in range(len(channels)):
        spines[f"c{k}"] = x[:n_s, k]
        dendrites[f"c{k}"] = x[n_s:n_s + n_d, k]
    backgrounds = [float(x[-1, k]) if fit_background else float(offsets[k]) for k in range(len(channels))]
    return {"spines": spines, "dendrites": dendrites, "background": backgrounds,
            "psf_sigma_px": list(system.sigma_px)}
