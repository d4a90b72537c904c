"""Rigid motion correction of a movie by phase cross-correlation, with shifts in µm.

Convention (the same as :mod:`spinequant.synth.movie`): ``shifts_um[t]`` is the displacement
of frame ``t``'s content against the reference, so a structure at ``x`` in the reference is at
``x + shifts_um[t]`` in frame ``t``. Correcting a frame moves it by ``-shifts_um[t]``
(:func:`correct_frames`); moving ROIs drawn on the reference onto frame ``t`` moves them by
``+shifts_um[t]`` (:func:`shift_labels`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError


def _window(shape) -> np.ndarray:
    """A Tukey window (flat middle, cosine edges over an eighth of each axis): the correlation
    treats images as periodic, and structures cut by the frame's edges would otherwise pull
    every shift towards zero."""
    from scipy.signal.windows import tukey

    out = np.ones(shape, np.float32)
    for axis, n in enumerate(shape):
        profile = tukey(n, alpha=0.25).astype(np.float32) if n > 2 else np.ones(n, np.float32)
        out *= profile.reshape([n if a == axis else 1 for a in range(len(shape))])
    return out


def _smoothed(image: np.ndarray, smooth_px: float) -> np.ndarray:
    image = np.asarray(image, np.float32)
    if smooth_px > 0:
        image = ndi.gaussian_filter(image, smooth_px)
    return image - image.mean()


def _shift_to(template: np.ndarray, frame: np.ndarray, window: np.ndarray, upsample_factor: int,
              refinements: int, order: int = 3) -> np.ndarray:
    """The displacement (pixels) of ``frame``'s content against ``template``.

    The window leaves the frame's edges fixed, and a dendrite that runs across the frame
    barely changes along its own axis, so one correlation underestimates a shift along the
    dendrite (by about an eighth on the phantoms). The frame is therefore moved back by the
    estimate and the rest measured again, ``refinements`` times or until the rest is below
    the sub-pixel step. ``order``: spline order of that move.
    """
    from skimage.registration import phase_cross_correlation

    total = np.zeros(frame.ndim)
    reference = template * window
    moved = frame
    for _ in range(1 + max(0, refinements)):
        # plain cross-correlation (no phase normalisation): noisy frames keep their weight in
        # the low frequencies, where the signal is; the result registers moved onto reference
        step, _, _ = phase_cross_correlation(reference, moved * window, upsample_factor=upsample_factor,
                                             normalization=None)
        total -= np.asarray(step, float)
        if np.abs(step).max() < 1.0 / upsample_factor:
            break
        moved = ndi.shift(frame, -total, order=order, mode="nearest")
    return total


def estimate_shifts(frames, spacing, *, reference=None, n_reference_frames: int = 20,
                    upsample_factor: int = 20, smooth_px: float = 1.0, iterations: int = 2,
                    refinements: int = 3) -> np.ndarray:
    """The rigid displacement of every frame against a reference, in µm.

    Parameters
    ----------
    frames : array, (T, Y, X) or (T, Z, Y, X)
        The movie.
    spacing : sequence of float
        Pixel (voxel) size in µm per spatial axis.
    reference : array, optional
        The image to register to (e.g. the structural image the ROIs were drawn on). By
        default a template made from the movie: the mean of the first ``n_reference_frames``
        frames, then (``iterations`` > 1) the mean of all motion-corrected frames, which
        the frames are registered to again; the shifts are then relative to that average.
    upsample_factor : int
        Sub-pixel precision of the phase cross-correlation: 1 / ``upsample_factor`` pixel.
    smooth_px : float
        Gaussian smoothing (pixels) of frames and reference before they are compared, against
        shot noise; 0 for none.
    refinements : int
        How often a frame is moved back by its estimate and the rest measured again (see
        :func:`_shift_to`); 0 for a single correlation.

    Returns
    -------
    ndarray
        (T, ndim) shifts in µm (see the module docstring for the sign).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> base = ndi.gaussian_filter(np.random.default_rng(0).random((128, 128)), 3)
    >>> movie = np.stack([base, ndi.shift(base, (1.5, -0.5), mode="nearest")])
    >>> np.round(estimate_shifts(movie, (0.2, 0.2), reference=base), 2).tolist()
    [[0.0, 0.0], [0.3, -0.1]]
    """
    frames = np.asarray(frames)
    spacing = np.asarray(spacing, float)
    if frames.ndim != len(spacing) + 1:
        raise InputError(f"A movie of {len(spacing)}D frames has {len(spacing) + 1} axes (T first); "
                         f"this one has shape {frames.shape}.")
    window = _window(frames.shape[1:])
    smoothed = [_smoothed(f, smooth_px) for f in frames]
    if reference is not None:
        if np.shape(reference) != frames.shape[1:]:
            raise InputError(f"The reference image has shape {np.shape(reference)}, the frames "
                             f"{frames.shape[1:]}; they must match.")
        template = _smoothed(reference, smooth_px)
    else:
        template = np.mean(smoothed[:max(1, n_reference_frames)], axis=0)
    shifts_px = np.zeros((len(frames), len(spacing)))
    for round_ in range(1 if reference is not None else max(1, iterations)):
        if round_ > 0:
            template = np.mean([ndi.shift(f, -s, order=1, mode="nearest") for f, s in zip(smoothed, shifts_px)],
                               axis=0)
        for t, frame in enumerate(smoothed):
            shifts_px[t] = _shift_to(template, frame, window, upsample_factor, refinements)
    return shifts_px * spacing


def correct_frames(frames, shifts_um, spacing, *, order: int = 3) -> np.ndarray:
    """The frames moved back by their shifts (float32): every frame then lines up with the
    reference of :func:`estimate_shifts` and the ROIs drawn on it. Pixels moved in from
    outside the frame repeat the nearest edge."""
    frames = np.asarray(frames)
    shift_px = np.asarray(shifts_um, float) / np.asarray(spacing, float)
    out = np.empty(frames.shape, np.float32)
    for t in range(len(frames)):
        ndi.shift(frames[t].astype(np.float32), -shift_px[t], output=out[t], order=order, mode="nearest")
    return out


def shift_labels(labels, shift_um, spacing) -> np.ndarray:
    """ROI labels drawn on the reference moved onto a frame displaced by ``shift_um``
    (nearest pixel: labels are not interpolated)."""
    labels = np.asarray(labels)
    shift_px = np.asarray(shift_um, float) / np.asarray(spacing, float)
    return ndi.shift(labels, shift_px, order=0, mode="constant", cval=0, prefilter=False)
