"""Resample a stack to a model's training voxel size and its outputs back to the input grid.

DeepD3 showed that a model works across microscopes when the input is brought to the
resolution it learnt (plus mixed-resolution training). Linear interpolation (separable, in
numpy) is used both ways; the way back is to the exact input shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
    (align-corners=False, i.e. voxel centres stay where they are in physical space).

    Separable, in numpy (float32), one axis after the other and plane by plane where z keeps
    its size, so no more than the input and the output are held; the same interpolation as
    PyTorch's ``interpolate(mode="(bi|tri)linear", align_corners=False)``, without importing
    it (about 180 MB)."""
    shape = tuple(int(s) for s in shape)
    volume = np.asarray(volume)
    if tuple(volume.shape[-3:]) == shape:
        return volume
    lead = volume.shape[:-3]
    flat = volume.reshape(-1, *volume.shape[-3:])
    out = np.empty((flat.shape[0], *shape), np.float32)
    if flat.shape[-3] == shape[0]:
        for c in range(flat.shape[0]):
            for z in range(shape[0]):
                plane = flat[c, z].astype(np.float32)
                out[c, z] = _linear(_linear(plane, 1, shape[2]), 0, shape[1])   # x then y, as torch
    else:
        for c in range(flat.shape[0]):
            part = flat[c].astype(np.float32)
            for axis in (2, 1, 0):
                part = _linear(part, axis, shape[axis])
            out[c] = part
    return out.reshape(*lead, *shape)


def _sources(n_in: int, n_out: int, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For output pixels ``j`` of an axis resampled from ``n_in`` to ``n_out``: the two input
    pixels each reads and the weight of the second. In float32 as PyTorch computes them (its
    scale and source positions), so that the two agree to rounding."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.maximum(scale * (np.asarray(j, np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.floor(src).astype(np.int64)
    return i0, np.minimum(i0 + 1, n_in - 1), src - i0.astype(np.float32)


def _linear(a: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """``a`` linearly resampled along ``axis`` to ``n_out`` samples (align-corners=False)."""
    n_in = a.shape[axis]
    if n_in == n_out:
        return a
    i0, i1, lam = _sources(n_in, n_out, np.arange(n_out))
    shape = [1] * a.ndim
    shape[axis] = -1
    out = np.take(a, i0, axis=axis)
    out *= (1 - lam).reshape(shape)
    far = np.take(a, i1, axis=axis)
    far *= lam.reshape(shape)
    out += far
    return out


def to_model_grid(image: np.ndarray, spacing: Sequence[float], target: Sequence[float | None]) -> np.ndarray:
    """``image`` resampled to the voxel size ``target`` (µm, z y x; ``None`` keeps an axis)."""
    return resize(image, model_shape(image.shape, spacing, target))


def to_input_grid(maps: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Maps on the model grid (..., z, y, x) resampled back to the input ``shape``."""
    return resize(maps, shape)


# -- a window of a larger volume, on the whole volume's model grid (block-wise runs) --------

def window_span(n_in: int, n_out: int, start: int, stop: int) -> tuple[int, int]:
    """The pixels ``[j0, j1)`` of an axis resampled from ``n_in`` to ``n_out`` pixels whose
    linear interpolation (align-corners=False) reads only input pixels in ``[start, stop)``;
    at the volume's border the span reaches the border."""
    if n_in == n_out:
        return start, stop
    scale = n_in / n_out
    j0 = 0 if start == 0 else int(np.ceil((start + 0.5) / scale - 0.5))
    j1 = n_out if stop == n_in else int(np.floor((stop - 1 + 0.5) / scale - 0.5)) + 1
    return max(0, min(j0, n_out)), max(0, min(j1, n_out))


def resize_window(volume: np.ndarray, full_in: Sequence[int], full_out: Sequence[int],
                  origin: Sequence[int], span: Sequence[tuple[int, int]]) -> np.ndarray:
    """Linear resampling (as :func:`resize`) of a window of a volume, on the grid of the whole.

    ``volume``'s last axes are a window at ``origin`` of a volume of shape ``full_in``; the
    result holds the pixels ``span`` (one ``(j0, j1)`` per axis) of that whole volume resampled
    to ``full_out``. Where a pixel's neighbours lie outside the window, the window's edge is
    read instead (such pixels differ from the whole volume's). Axes whose size does not change
    are only cut.
    """
    out = np.asarray(volume, dtype=np.float32)
    lead = out.ndim - len(full_in)
    for k, (n_in, n_out, o, (j0, j1)) in enumerate(zip(full_in, full_out, origin, span)):
        axis = lead + k
        if n_in == n_out:
            out = np.take(out, np.arange(j0 - o, j1 - o), axis=axis)
            continue
        i0, i1, lam = _sources(n_in, n_out, np.arange(j0, j1))
        length = out.shape[axis]
        i0, i1 = np.clip(i0 - o, 0, length - 1), np.clip(i1 - o, 0, length - 1)
        shape = [1] * out.ndim
        shape[axis] = -1
        out = (np.take(out, i0, axis=axis) * (1 - lam).reshape(shape)
               + np.take(out, i1, axis=axis) * lam.reshape(shape))
    return np.ascontiguousarray(out, dtype=np.float32)
