"""Resample a stack to a model's training voxel size and its outputs back to the input grid.

DeepD3 showed that a model works across microscopes when the input is brought to the
resolution it learnt (plus mixed-resolution training). Linear interpolation (torch, multi-
threaded) is used both ways; the way back is to the exact input shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

#: Relative voxel-size differences below this are not worth an interpolation.
TOLERANCE = 0.05


def model_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float | None]) -> tuple[int, ...]:
    """Shape of a ``shape`` stack at voxel size ``spacing`` once resampled to ``target``.

    A ``None`` entry in ``target`` leaves that axis alone, as does a difference under 5 %.
    """
    out = []
    for n, s, t in zip(shape, spacing, target):
        if t is None or abs(s / t - 1.0) < TOLERANCE:
            out.append(int(n))
        else:
            out.append(max(1, int(round(n * s / t))))
    return tuple(out)


def resize(volume: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Linear resampling of a 3D array (or a stack of them, leading channel axis) to ``shape``
    (align-corners=False, i.e. voxel centres stay where they are in physical space)."""
    shape = tuple(int(s) for s in shape)
    if tuple(volume.shape[-3:]) == shape:
        return volume
    t = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
    lead = t.shape[:-3]
    t = t.reshape(1, -1, *t.shape[-3:])
    with torch.inference_mode():
        # Plane-wise bilinear when z does not change: cheaper than trilinear.
        if t.shape[-3] == shape[0]:
            z = t.shape[-3]
            planes = t.permute(0, 2, 1, 3, 4).reshape(z, -1, *t.shape[-2:])
            planes = F.interpolate(planes, size=shape[1:], mode="bilinear", align_corners=False)
            t = planes.reshape(1, z, -1, *shape[1:]).permute(0, 2, 1, 3, 4)
        else:
            t = F.interpolate(t, size=shape, mode="trilinear", align_corners=False)
    return np.ascontiguousarray(t.reshape(*lead, *shape).numpy())


def to_model_grid(image: np.ndarray, spacing: Sequence[float], target: Sequence[float | None]) -> np.ndarray:
    """``image`` resampled to the voxel size ``target`` (µm, z y x; ``None`` keeps an axis)."""
    return resize(image, model_shape(image.shape, spacing, target))


def to_input_grid(maps: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Maps on the model grid (..., z, y, x) resampled back to the input ``shape``."""
    return resize(maps, shape)
