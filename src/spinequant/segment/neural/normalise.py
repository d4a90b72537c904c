"""Intensity normalisation that outliers (hot pixels, saturated somata) do not dominate.

The lower and upper percentiles of the whole stack are mapped to -1 and 1 (DeepD3 maps the
minimum and maximum there); values beyond are kept but clipped to a wide range. The settings
are stored in the model card so inference normalises exactly as training did.
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


def percentile_range(image: np.ndarray, config: NormaliseConfig | dict | None = None) -> tuple[float, float]:
    """The (low, high) intensities at the configured percentiles."""
    config = _config(config)
    flat = np.asarray(image).reshape(-1)
    if flat.size > _MAX_SAMPLE:
        flat = flat[:: int(np.ceil(flat.size / _MAX_SAMPLE))]
    lo, hi = np.percentile(flat, [config.lower_percentile, config.upper_percentile])
    if hi <= lo:  # nearly constant image: fall back to the full range
        lo, hi = float(flat.min()), float(flat.max())
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
