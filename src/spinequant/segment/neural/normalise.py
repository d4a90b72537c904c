"""Intensity normalisation that outliers (hot pixels, cell bodies) do not dominate.

The lower and upper percentiles of the whole stack are mapped to -1 and 1 (DeepD3 maps the
minimum and maximum there); values beyond are kept but clipped to a wide range. The settings
are stored in the model card so inference normalises exactly as training did.

The cell bodies of a stack (``body_radius_um``) are left out of the percentiles by
:mod:`spinequant.segment.neural.bodies`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Above this many voxels the percentiles are estimated from an evenly strided subsample.
MAX_SAMPLE = 4_000_000


@dataclass(frozen=True)
class NormaliseConfig:
    """Percentile normalisation: ``lower_percentile`` -> -1, ``upper_percentile`` -> 1."""

    lower_percentile: float = 1.0
    upper_percentile: float = 99.9
    clip: float = 3.0
    #: Bright regions of a stack with a core this far (µm) from their edge are cell bodies:
    #: they do not set the percentiles and no spine is called on them
    #: (:mod:`~spinequant.segment.neural.bodies`); 0 turns this off (cell models).
    body_radius_um: float = 0.0


def percentile_range(image: np.ndarray, config: NormaliseConfig | dict | None = None) -> tuple[float, float]:
    """The (low, high) intensities of ``image`` at the configured percentiles, from an evenly
    strided sample of at most 4 M voxels. The levels of a stack without its cell bodies:
    :func:`spinequant.segment.neural.bodies.levels_and_bodies`."""
    config = as_config(config)
    image = np.asarray(image)
    step = max(1, int(np.ceil(image.size / MAX_SAMPLE)))
    return levels_of(image.reshape(-1)[::step], config)


def levels_of(values: np.ndarray, config: NormaliseConfig) -> tuple[float, float]:
    """The (low, high) percentiles of ``values``; a nearly constant set gives its full range."""
    lo, hi = np.percentile(values, [config.lower_percentile, config.upper_percentile])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return float(lo), float(max(hi, lo + 1e-6))


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
    config = as_config(config)
    lo, hi = value_range if value_range is not None else percentile_range(image, config)
    out = np.array(image, dtype=np.float32)          # one copy, then in place
    out -= np.float32(lo)
    out *= np.float32(2.0 / (hi - lo))
    out -= np.float32(1.0)
    np.clip(out, -config.clip, config.clip, out=out)
    return out


def as_config(config) -> NormaliseConfig:
    """``config`` as a :class:`NormaliseConfig` (None: the default; a dict: a model card's)."""
    if config is None:
        return NormaliseConfig()
    if isinstance(config, dict):
        return NormaliseConfig(**config)
    return config
