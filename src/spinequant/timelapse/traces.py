"""Fluorescence traces of spine and dendrite ROIs, and ΔF/F0.

The steps, each a function:

1. :func:`roi_means` — the mean raw fluorescence inside every ROI in every frame (of frames
   already motion-corrected, see :mod:`spinequant.timelapse.registration`).
2. :func:`subtract_dendrite` — optional removal of the dendrite's signal from each spine:
   ``F_corr = F_spine - r · F_dendrite`` with the spine's own dendrite (as the neuropil
   correction ``F - r · F_neuropil`` of Suite2p and others, here with the parent dendrite
   as the contaminating source). The blur of the microscope spills dendrite light into a
   spine's ROI, and back-propagating action potentials make the dendrite fluoresce with
   every spike; ``r`` is the fraction of the dendrite's fluorescence that reaches the spine
   ROI (typically 0.1–0.7; too large a value drives ``F0`` of a dim spine towards 0, which
   :func:`delta_f_over_f` refuses).
   Or, with the PSF known, :func:`~spinequant.timelapse.demixing.demix_frames` — every
   frame unmixed with the PSF-blurred footprints of all spine and dendrite ROIs (least
   squares, a constant background per frame), which gives each ROI its own fluorescence
   free of its dendrite's and neighbours' blur: what a small spine's ROI mean cannot give.
3. :func:`delta_f_over_f` — ``(F(t) - F0) / F0`` with ``F0`` the mean over a baseline frame
   range (DeepD3 paper: 20 frames without events), or a running percentile over a window of
   frames for long recordings; optional moving-average smoothing (the paper's 9 points).

:func:`extract_traces` chains them (with the motion correction) and returns a long table:
one row per frame per ROI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import InputError
from ..morphology.intensity import roi_means

#: Columns of :func:`extract_traces`' table (one row per frame per ROI).
TRACE_COLUMNS = ["frame", "time_s", "roi", "kind", "roi_id", "dendrite_id", "raw", "corrected", "f0", "dff"]


def parent_dendrites(spine_labels, dendrite_labels) -> np.ndarray:
    """For spines 1..n, the id of the nearest dendrite (0 when there is no dendrite):
    the dendrite label most of the spine's pixels lie closest to."""
    spine_labels, dendrite_labels = np.asarray(spine_labels), np.asarray(dendrite_labels)
    n = int(spine_labels.max(initial=0))
    if not (dendrite_labels > 0).any() or n == 0:
        return np.zeros(n, np.int64)
    _, index = ndi.distance_transform_edt(dendrite_labels == 0, return_indices=True)
    nearest = dendrite_labels[tuple(index)]
    out = np.zeros(n, np.int64)
    inside = spine_labels > 0
    pairs = np.stack([spine_labels[inside], nearest[inside]], axis=1)
    table = pd.DataFrame(pairs, columns=["spine", "dendrite"]).value_counts().reset_index()
    table = table.sort_values(["spine", "count"], ascending=[True, False]).drop_duplicates("spine")
    out[table["spine"].to_numpy() - 1] = table["dendrite"].to_numpy()
    return out


def subtract_dendrite(spine_raw: np.ndarray, dendrite_raw: np.ndarray, parents: np.ndarray,
                      r: float) -> np.ndarray:
    """``F_spine - r · F_parent_dendrite`` per spine (T, n); spines without a dendrite keep F."""
    spine_raw = np.asarray(spine_raw, float)
    if r == 0:
        return spine_raw.copy()
    if r < 0:
        raise InputError(f"The dendrite subtraction factor r must be at least 0 (got {r}).")
    parents = np.asarray(parents)
    has = parents > 0
    out = spine_raw.copy()
    out[:, has] -= r * np.asarray(dendrite_raw, float)[:, parents[has] - 1]
    return out


def delta_f_over_f(raw, *, baseline: tuple[int, int] | None = None, percentile: float | None = None,
                   window_frames: int | None = None, smooth_frames: int = 1,
                   background: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """ΔF/F0 = (F(t) - F0) / F0 per column of ``raw`` (T, n); returns ``(dff, f0)`` (T, n).

    Parameters
    ----------
    raw : array (T, n)
        Fluorescence per frame and ROI.
    baseline : (start, end), optional
        F0 = the mean of frames ``start`` to ``end - 1`` (Python slice); the default when no
        percentile is given: the first 20 frames (or all, when shorter).
    percentile, window_frames : float, int, optional
        Instead: F0(t) = the ``percentile`` of F in a window of ``window_frames`` frames
        centred on t (a running percentile, for long recordings whose baseline drifts).
    smooth_frames : int
        Moving average over this many frames applied to ΔF/F0 (1 = none; the DeepD3 paper
        compares raw and 9-point averaged traces).
    background : float
        Subtracted from F (and so from F0) first: the counts of a pixel without dye
        (detector offset), without which ΔF/F0 comes out too small.

    Examples
    --------
    >>> dff, f0 = delta_f_over_f([[100.0], [100.0], [150.0]], baseline=(0, 2))
    >>> dff[:, 0].tolist(), float(f0[0, 0])
    ([0.0, 0.0, 0.5], 100.0)
    """
    f = np.asarray(raw, float) - float(background)
    if f.ndim == 1:
        f = f[:, None]
    n_frames = len(f)
    if percentile is not None:
        if baseline is not None:
            raise InputError("Give either a baseline frame range or a running percentile for F0, not both.")
        if not 0 <= percentile <= 100:
            raise InputError(f"The F0 percentile must be between 0 and 100 (got {percentile}).")
        window = int(window_frames or n_frames)
        if window < 1:
            raise InputError(f"The F0 window must hold at least one frame (got {window_frames}).")
        f0 = ndi.percentile_filter(f, percentile, size=(min(window, 2 * n_frames), 1), mode="nearest")
    else:
        start, end = baseline if baseline is not None else (0, min(20, n_frames))
        start, end = int(start), int(end)
        if not 0 <= start < end <= n_frames:
            raise InputError(f"The baseline frames {start} to {end} are not a range within the movie's "
                             f"{n_frames} frames (give START END with 0 <= START < END <= {n_frames}).")
        f0 = np.broadcast_to(f[start:end].mean(axis=0), f.shape).copy()
    dark = np.any(f0 <= 0, axis=0)
    if dark.any():
        import warnings

        from ..errors import SpinequantWarning

        warnings.warn(f"F0 is zero or negative for {int(dark.sum())} ROI(s), whose ΔF/F0 is left empty "
                      f"(NaN): the background or the dendrite subtraction (r) removes more than the "
                      f"ROI's own light (lower them), or the demixing leaves the ROI no light of its own "
                      f"(a spine too small or dim for the PSF and noise, or a PSF stated too wide).",
                      SpinequantWarning, stacklevel=2)
        f0 = np.where(dark[None, :], np.nan, f0)
    dff = (f - f0) / f0
    if smooth_frames > 1:
        dff = ndi.uniform_filter1d(dff, int(smooth_frames), axis=0, mode="nearest")
    return dff, f0


def extract_traces(frames, spine_labels, dendrite_labels, spacing, *, frame_rate_hz: float = 1.0,
                   shifts_um=None, register: bool = True, reference=None, baseline=None,
                   percentile: float | None = None, window_s: float | None = None, neuropil_r: float = 0.0,
                   smooth_frames: int = 1, background: float = 0.0,
                   psf_fwhm_um=None) -> tuple[pd.DataFrame, np.ndarray]:
    """Motion-corrected traces and ΔF/F0 of every spine and dendrite ROI.

    Parameters
    ----------
    frames : array (T, Y, X) or (T, Z, Y, X)
        The movie; its frames have the ROIs' shape.
    spine_labels, dendrite_labels : array
        ROIs (instance labels, 0 = none), e.g. ``labels_spines.tif`` and
        ``labels_dendrites.tif`` of a structural run; pixels in both count as spine.
    spacing : sequence of float
        Pixel size (µm) per spatial axis.
    frame_rate_hz : float
        Frames per second: gives ``time_s`` and turns ``window_s`` into frames.
    shifts_um : array (T, ndim), optional
        Known displacements; by default estimated (:func:`~spinequant.timelapse.registration.estimate_shifts`,
        against ``reference`` when given) unless ``register`` is false.
    baseline, percentile, window_s, smooth_frames, background
        See :func:`delta_f_over_f` (the window here in seconds).
    neuropil_r : float
        Dendrite subtraction factor r (see :func:`subtract_dendrite`); 0 for none. Dendrite
        ROIs are never corrected.
    psf_fwhm_um : (z, xy) for 3D, (xy,) for 2D, optional
        The microscope's Gaussian PSF FWHM in µm. When given, every frame is demixed
        (:func:`~spinequant.timelapse.demixing.demix_frames`): ``corrected`` is then each
        ROI's own fluorescence (background fitted per frame, so ``background`` is not
        subtracted again) and ΔF/F0 is computed from it; not with ``neuropil_r``.

    Returns
    -------
    (pandas.DataFrame, ndarray)
        The long table (:data:`TRACE_COLUMNS`: one row per frame per ROI, ``roi`` named
        ``spine_<id>`` / ``dendrite_<id>``) and the shifts used (µm; zeros without
        registration).
    """
    from .registration import correct_frames, estimate_shifts

    frames = np.asarray(frames)
    spine_labels = np.asarray(spine_labels)
    dendrite_labels = np.where(spine_labels > 0, 0, np.asarray(dendrite_labels))
    if frame_rate_hz <= 0:
        raise InputError(f"The frame rate must be positive (got {frame_rate_hz} Hz).")
    if shifts_um is None:
        shifts_um = (estimate_shifts(frames, spacing, reference=reference) if register
                     else np.zeros((len(frames), len(spacing))))
    corrected_frames = correct_frames(frames, shifts_um, spacing) if np.any(shifts_um) else frames
    spine_raw = roi_means(corrected_frames, spine_labels)
    dend_raw = roi_means(corrected_frames, dendrite_labels)
    parents = parent_dendrites(spine_labels, dendrite_labels)
    if psf_fwhm_um is not None:
        if neuropil_r:
            raise InputError("The demixing (a PSF given) separates each spine from its dendrite already: "
                             "the dendrite subtraction factor r applies only without it (set r to 0).")
        from .demixing import demix_frames

        spine_corr, dend_corr, _ = demix_frames(corrected_frames, spine_labels, dendrite_labels, spacing,
                                                psf_fwhm_um=psf_fwhm_um)
        background = 0.0
    else:
        spine_corr = subtract_dendrite(spine_raw, dend_raw, parents, neuropil_r)
        dend_corr = dend_raw
    window = None if window_s is None else max(1, int(round(window_s * frame_rate_hz)))
    options = dict(baseline=None if baseline is None else tuple(baseline), percentile=percentile,
                   window_frames=window, smooth_frames=smooth_frames, background=background)
    present_s = ~np.isnan(spine_raw).all(axis=0)
    present_d = ~np.isnan(dend_raw).all(axis=0)
    blocks = []
    for kind, raw, corr, present, ids, dends in (
            ("spine", spine_raw, spine_corr, present_s, np.arange(1, spine_raw.shape[1] + 1), parents),
            ("dendrite", dend_raw, dend_corr, present_d, np.arange(1, dend_raw.shape[1] + 1),
             np.arange(1, dend_raw.shape[1] + 1))):
        if not present.any():
            continue
        dff, f0 = delta_f_over_f(corr[:, present], **options)
        blocks.append(_long(kind, ids[present], dends[present], raw[:, present], corr[:, present], f0, dff,
                            frame_rate_hz))
    table = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame(columns=TRACE_COLUMNS)
    return table, np.asarray(shifts_um, float)


def _long(kind, ids, dendrites, raw, corrected, f0, dff, frame_rate_hz) -> pd.DataFrame:
    n_frames, n = raw.shape
    frame = np.repeat(np.arange(n_frames), n)
    return pd.DataFrame({
        "frame": frame, "time_s": frame / frame_rate_hz,
        "roi": np.tile([f"{kind}_{i}" for i in ids], n_frames), "kind": kind,
        "roi_id": np.tile(ids, n_frames).astype(np.int64), "dendrite_id": np.tile(dendrites, n_frames).astype(np.int64),
        "raw": raw.ravel(), "corrected": corrected.ravel(), "f0": f0.ravel(), "dff": dff.ravel(),
    })[TRACE_COLUMNS]


def wide(table: pd.DataFrame, value: str = "dff") -> pd.DataFrame:
    """The long table as one column per ROI (``spine_1`` ...), one row per frame."""
    return table.pivot(index="frame", columns="roi", values=value)
