"""Denoising, background removal and foreground thresholds for fluorescence stacks."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import filters


def sigma_voxels(sigma_um, spacing) -> tuple[float, ...]:
    """A Gaussian sigma in µm per axis (z, y, x, or y, x in 2D) expressed in voxels."""
    return tuple(float(s) / float(d) for s, d in zip(np.broadcast_to(sigma_um, len(spacing)), spacing))


def denoise(image: np.ndarray, *, spacing, sigma_um) -> np.ndarray:
    """Anisotropic Gaussian smoothing with a physical sigma (µm, z y x); returns float32."""
    out = np.asarray(image, dtype=np.float32)
    return ndi.gaussian_filter(out, sigma_voxels(sigma_um, spacing), mode="reflect", truncate=3.0)


def subtract_background(smoothed: np.ndarray, *, spacing, scale_um: float) -> np.ndarray:
    """Remove slowly varying background (haze, uneven illumination).

    The background is a morphological opening with a box of ``scale_um`` (larger than any
    dendrite), computed on a coarse grid and smoothed, so structures narrower than
    ``scale_um`` are kept whole. Returns ``smoothed - background`` (float32, may be < 0).
    """
    step = tuple(max(1, int(scale_um / (4 * s))) for s in spacing)
    coarse = smoothed[tuple(slice(None, None, k) for k in step)]
    size = tuple(max(1, int(round(scale_um / (s * k)))) for s, k in zip(spacing, step))
    size = tuple(min(n, c) for n, c in zip(size, coarse.shape))
    bg = ndi.grey_opening(coarse, size=size, mode="nearest")
    bg = ndi.uniform_filter(bg, size=size, mode="nearest")
    # The background varies slowly: take each voxel's value from its coarse cell (a gather,
    # far cheaper than interpolating 10^8 voxels).
    index = np.ix_(*(np.minimum(np.arange(n) // k, c - 1) for n, k, c in zip(smoothed.shape, step, bg.shape)))
    return smoothed - bg[index].astype(np.float32)


#: Above these many values, :func:`noise_level` and :func:`auto_threshold` use every k-th one
#: (k = size // limit).
NOISE_SAMPLE = 2_000_000
THRESHOLD_SAMPLE = 4_000_000


def noise_level(values: np.ndarray) -> tuple[float, float]:
    """Robust background level and noise (median and scaled MAD of the lower half).

    Dendrites fill a few per cent of a stack, so the median is background; the lower half
    of the histogram is free of signal, which makes its spread an honest noise estimate.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size > NOISE_SAMPLE:
        v = v[:: v.size // NOISE_SAMPLE]
    med = float(np.median(v))
    low = v[v <= med]
    sigma = 1.4826 * float(np.median(med - low)) if low.size else 0.0
    if sigma <= 0:
        sigma = float(np.std(v)) or 1.0
    return med, sigma


def auto_threshold(values: np.ndarray, *, background: float, noise: float, k_noise: float,
                   method: str = "auto") -> tuple[float, str]:
    """Choose the foreground threshold from the histogram.

    ``"auto"`` takes Otsu's threshold (the boundary between the bright dendrite class and the
    dim background with its out-of-focus glow), but never less than
    ``background + k_noise * noise`` (what noise alone can reach); ``"otsu"``, ``"triangle"``,
    ``"li"`` and ``"noise"`` force one rule.
    Returns the threshold and the rule that set it.
    """
    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size > THRESHOLD_SAMPLE:
        v = v[:: v.size // THRESHOLD_SAMPLE]
    noise_thr = background + k_noise * noise
    rules = {
        "otsu": filters.threshold_otsu,
        "triangle": filters.threshold_triangle,
        "li": filters.threshold_li,
    }
    if method == "noise":
        return noise_thr, "noise"
    if method in rules:
        return float(rules[method](v)), method
    otsu = float(filters.threshold_otsu(v))
    return (otsu, "otsu") if otsu > noise_thr else (noise_thr, "noise")
