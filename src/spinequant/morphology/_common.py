"""Input checks and small geometric helpers shared by the measurement modules."""

from __future__ import annotations

import cc3d
import numpy as np

from ..errors import InputError
from ..validate import check_spacing


def as_label_image(labels, *, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``labels`` as a 3D (Z, Y, X) or 2D (Y, X) numpy integer array, or raise
    :class:`InputError`."""
    arr = np.asarray(labels)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"{name} must be a 3D array (Z, Y, X) or a 2D image (Y, X), but it has {arr.ndim} "
            f"dimensions (shape {arr.shape}). Pass one channel and one time point."
        )
    if shape is not None and arr.shape != tuple(shape):
        raise InputError(
            f"{name} has shape {arr.shape}, but the spine labels have shape {tuple(shape)}; "
            f"both must come from the same stack."
        )
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise InputError(
                f"{name} must hold integer labels (0 = background), but it holds {arr.dtype} "
                f"values with fractions. Threshold a probability map first (spinequant.instances)."
            )
    if arr.size and arr.min() < 0:
        raise InputError(f"{name} contains negative labels; labels must be 0 (background) or positive.")
    return arr


def dendrite_label_image(dendrite, *, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Dendrite ids: a boolean mask is split into 26-connected pieces (8-connected in 2D),
    integer labels are kept."""
    arr = as_label_image(dendrite, name="The dendrite mask", shape=shape)
    if arr.dtype == bool:
        return cc3d.connected_components(arr, connectivity=26).astype(np.int32)
    return arr.astype(np.int32, copy=False)


def checked_spacing(spacing, ndim: int = 3) -> np.ndarray:
    return np.asarray(check_spacing(spacing, where="the labels", ndim=ndim), dtype=float)


def half_extent(direction: np.ndarray, spacing: np.ndarray) -> float:
    """Half the length of a voxel box of size ``spacing`` along the unit vector ``direction``.

    The surface of a rasterised object lies half a voxel beyond the centres of its outermost
    voxels; this is the distance to add at a path end pointing in ``direction``.
    """
    norm = float(np.linalg.norm(direction))
    if norm == 0:
        return 0.5 * float(spacing.min())
    return 0.5 * float(np.abs(direction / norm) @ spacing)


def smooth_polyline(points: np.ndarray, iterations: int) -> np.ndarray:
    """Average each inner point with its neighbours ``iterations`` times (ends stay fixed)."""
    pts = np.array(points, dtype=float)
    for _ in range(iterations if len(pts) > 2 else 0):
        pts[1:-1] = 0.25 * pts[:-2] + 0.5 * pts[1:-1] + 0.25 * pts[2:]
    return pts


def full_footprint(ndim: int) -> np.ndarray:
    """The 3 x 3 (x 3) block: every neighbour, diagonals included."""
    return np.ones((3,) * ndim, dtype=bool)


def ray_exit(mask: np.ndarray, start_um: np.ndarray, direction: np.ndarray, sp: np.ndarray,
             origin=0):
    """Distance (µm) from ``start_um`` along the unit vector ``direction`` to where the ray
    leaves ``mask``, and the last voxel inside.

    The ray is sampled every quarter of the finest voxel size; the exit lies half a step
    beyond the last sample inside (each voxel taken as its box). ``origin``: the voxel of a
    larger image where ``mask`` starts, when ``start_um`` is given in that image's frame (the
    samples then fall on the same voxels as on the whole image, ties included).
    """
    step = 0.25 * float(sp.min())
    shape = np.array(mask.shape)
    first = tuple(np.clip(np.rint(start_um / sp).astype(int) - origin, 0, shape - 1))
    if not direction.any():
        return 0.5 * float(sp.min()), first
    t = np.arange(1, int(np.linalg.norm(shape * sp) / step) + 2) * step
    v = np.rint((start_um + t[:, None] * direction) / sp).astype(int) - origin
    inside = np.all((v >= 0) & (v < shape), axis=1)
    inside[inside] = mask[tuple(v[inside].T)]
    n_in = int(np.argmin(inside)) if not inside.all() else len(t)
    last = tuple(v[n_in - 1]) if n_in > 0 else first
    return max((n_in + 0.5) * step, 0.0), last
