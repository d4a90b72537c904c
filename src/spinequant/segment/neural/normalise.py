"""Intensity normalisation that outliers (hot pixels, cell bodies) do not dominate.

The lower and upper percentiles of the whole stack are mapped to -1 and 1 (DeepD3 maps the
minimum and maximum there); values beyond are kept but clipped to a wide range. The settings
are stored in the model card so inference normalises exactly as training did.

A cell body in the field is a bright region far thicker than any dendrite: on a two-photon
phantom with one (``n_somata=(1, 1)``) it held the upper percentile at 4x the dendrites'
and the shipped network found 15 % of the spines instead of 60 % (docs/real_data.md, "A cell
body in the field"). With ``body_radius_um`` set, voxels of a stack's bright regions whose
core lies that far from their edge, and the halo around them, are left out of the
percentiles (:func:`body_mask`), found on a coarse grid of bin maxima (:func:`coarse_maxima`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Above this many voxels the percentiles are estimated from an evenly strided subsample.
_MAX_SAMPLE = 4_000_000


@dataclass(frozen=True)
class NormaliseConfig:
    """Percentile normalisation: ``lower_percentile`` -> -1, ``upper_percentile`` -> 1."""

    lower_percentile: float = 1.0
    upper_percentile: float = 99.9
    clip: float = 3.0
    #: Bright regions of a stack with a core this far (µm) from their edge are cell bodies and
    #: do not set the percentiles (with a halo of :data:`BODY_HALO_UM`); 0 turns this off
    #: (cell models).
    body_radius_um: float = 0.0


#: Edge (µm, at most) of the y/x bins whose maxima :func:`body_mask` looks at.
BODY_BIN_UM = 0.75
#: Around a cell body, the blur of its light is left out too, to this distance (µm).
BODY_HALO_UM = 2.0
#: Most bins of :func:`coarse_maxima` searched for cell bodies (the distance transforms hold
#: about 8 bytes a bin): 48 x 3072 x 3072 px at 0.094 µm is 28 M bins; the 21 GB benchmark
#: volume (661 M) is not searched (a search block by block is not built yet).
BODY_MAX_BINS = 2 ** 25
#: A cell body's halo lies below the first percentiles: the bodies are looked for again at
#: the new ones, at most this many times.
BODY_ROUNDS = 4


def percentile_range(image: np.ndarray, config: NormaliseConfig | dict | None = None, *,
                     spacing=None) -> tuple[float, float]:
    """The (low, high) intensities at the configured percentiles; with the image's
    ``spacing`` (µm) and a ``body_radius_um``, those of the voxels outside cell bodies."""
    config = _config(config)
    image = np.asarray(image)
    step = max(1, int(np.ceil(image.size / _MAX_SAMPLE)))
    flat = image.reshape(-1)[::step]
    levels = _levels(flat, config)
    if spacing is None or not looks_for_bodies(image.shape, spacing, config):
        return levels
    coarse, coarse_spacing, b = coarse_maxima(image, spacing)
    if body_mask(coarse, coarse_spacing, levels, config.body_radius_um) is None:
        return levels
    index = np.unravel_index(np.arange(flat.size, dtype=np.int64) * step, image.shape)
    cell = (*index[:-2], index[-2] // b, index[-1] // b)
    return levels_outside_bodies(flat, cell, coarse, coarse_spacing, config)


def looks_for_bodies(shape, spacing, config: NormaliseConfig) -> bool:
    """Whether cell bodies are left out of the levels of an image of ``shape``: with a
    ``body_radius_um``, in stacks of two planes or more, at least 4 ``body_radius_um`` wide
    and high, whose :func:`coarse_maxima` have at most :data:`BODY_MAX_BINS` bins. Not in a
    single plane (a 2D image, a projection): there
    crossings of dendrites and thick saturated dendrites are as thick as a cell body (on 23 of
    dendritic2's 408 benchmark images and sizes; docs/real_data.md)."""
    if not (config.body_radius_um > 0 and len(shape) >= 3 and shape[-3] >= 2):
        return False
    if min(n * float(s) for n, s in zip(shape[-2:], spacing[-2:])) < 4 * config.body_radius_um:
        return False             # a field narrower than two bodies: a dendrite may fill it
    b = bin_edge(spacing)
    return int(np.prod(shape[:-2])) * -(-shape[-2] // b) * -(-shape[-1] // b) <= BODY_MAX_BINS


def _levels(values: np.ndarray, config: NormaliseConfig) -> tuple[float, float]:
    lo, hi = np.percentile(values, [config.lower_percentile, config.upper_percentile])
    if hi <= lo:  # nearly constant image: fall back to the full range
        lo, hi = float(values.min()), float(values.max())
    return float(lo), float(max(hi, lo + 1e-6))


def bin_edge(spacing) -> int:
    """The y/x bin of :func:`coarse_maxima` in pixels: the largest power of two at most
    :data:`BODY_BIN_UM` wide (a power of two, so that it divides the 256-px tiles of a
    chunked run and the bins of every tile line up)."""
    b = 1
    while 2 * b * float(spacing[-1]) <= BODY_BIN_UM and b < 256:
        b *= 2
    return b


def coarse_maxima(image: np.ndarray, spacing, *, edge: int | None = None):
    """(maxima of ``edge`` x ``edge`` px bins in y/x, the bins' spacing, ``edge``); planes
    (z) are kept. Bins at the image's far edges are partial. A plane at a time, so no copy
    of the image is made."""
    b = bin_edge(spacing) if edge is None else edge
    image = np.asarray(image)
    ny, nx = image.shape[-2:]
    planes = image.reshape(-1, ny, nx)
    coarse = np.empty((planes.shape[0], -(-ny // b), -(-nx // b)), image.dtype)
    for plane, out in zip(planes, coarse):
        rows = np.maximum.reduceat(plane, np.arange(0, ny, b), axis=0)
        out[...] = np.maximum.reduceat(rows, np.arange(0, nx, b), axis=1)
    coarse = coarse.reshape(*image.shape[:-2], *coarse.shape[-2:])
    coarse_spacing = (*(float(s) for s in spacing[:-2]), float(spacing[-2]) * b, float(spacing[-1]) * b)
    return coarse, coarse_spacing, b


def body_mask(coarse: np.ndarray, coarse_spacing, levels, radius_um: float) -> np.ndarray | None:
    """The bins of cell bodies: bins above the middle of ``levels`` (low, high) whose region
    reaches ``radius_um`` from its edge there, grown by that radius and
    :data:`BODY_HALO_UM`; None when there is none. (Not above ``high`` itself: where a body
    sets it, the voxels above it are its brightest, scattered by the noise.)"""
    # edt, not scipy: scipy's transform holds several int32 and float64 copies of the grid (on
    # the 21 GB benchmark volume's 661 M bins the process passed 24 GB and was killed)
    import edt

    bright = coarse >= 0.5 * (levels[0] + levels[1])
    if not bright.any():
        return None
    core = edt.edt(bright.view(np.uint8), anisotropy=coarse_spacing) >= radius_um
    if not core.any():
        return None
    return edt.edt((~core).view(np.uint8), anisotropy=coarse_spacing) <= radius_um + BODY_HALO_UM


def levels_outside_bodies(values: np.ndarray, cell, coarse: np.ndarray, coarse_spacing,
                          config: NormaliseConfig) -> tuple[float, float]:
    """:func:`percentile_range` of ``values`` (a sample of an image) without those in cell
    bodies: ``cell`` holds each value's bin in ``coarse`` (:func:`coarse_maxima`). The bodies
    are looked for at the percentiles, then again at those left without them, until
    no new one appears (:data:`BODY_ROUNDS` at most); all of an image's bins in bodies
    keep every value out only while some are left."""
    lo, hi = _levels(values, config)
    excluded = np.zeros(coarse.shape, bool)
    for _ in range(BODY_ROUNDS):
        mask = body_mask(coarse, coarse_spacing, (lo, hi), config.body_radius_um)
        if mask is None or not (mask & ~excluded).any():
            break
        excluded |= mask
        keep = ~excluded[cell]
        if not keep.any():
            break
        lo, hi = _levels(values[keep], config)
    return lo, hi


def normalise(image: np.ndarray, config: NormaliseConfig | dict | None = None, *,
              value_range: tuple[float, float] | None = None) -> np.ndarray:
    """float32 image with the percentile range mapped to [-1, 1], clipped to +-``clip``.

    Examples
    --------
    >>> import numpy as np
    >>> x = normalise(np.arange(101.0), NormaliseConfig(0, 100))
    >>> float(x[0]), float(x[50]), float(x[100])
    (-1.0, 0.0, 1.0)
    """
    config = _config(config)
    lo, hi = value_range if value_range is not None else percentile_range(image, config)
    out = np.array(image, dtype=np.float32)          # one copy, then in place
    out -= np.float32(lo)
    out *= np.float32(2.0 / (hi - lo))
    out -= np.float32(1.0)
    np.clip(out, -config.clip, config.clip, out=out)
    return out


def _config(config) -> NormaliseConfig:
    if config is None:
        return NormaliseConfig()
    if isinstance(config, dict):
        return NormaliseConfig(**config)
    return config
