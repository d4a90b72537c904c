"""Checks on voxel sizes and image content, with errors that say what to do."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import InputError, VoxelSizeError

#: Largest voxel edge we accept; above this the number is almost certainly in the wrong unit.
MAX_VOXEL_UM = 100.0

VOXEL_HINT = (
    "Give the voxel size in micrometres, in the order Z Y X: on the command line with "
    "--voxel-size 0.5 0.094 0.094, in Python with voxel_size=(0.5, 0.094, 0.094)."
)
PIXEL_HINT = (
    "Give the pixel size of a 2D image in micrometres, in the order Y X: in Python with "
    "spacing=(0.094, 0.094)."
)


def check_spacing(spacing: Sequence[float] | None, *, where: str = "the stack",
                  ndim: int = 3) -> tuple[float, ...]:
    """Return ``spacing`` as ``ndim`` floats in µm, or raise :class:`VoxelSizeError`.

    ``ndim=3`` (a stack): (z, y, x); ``ndim=2`` (a single plane or a projection): (y, x).
    """
    hint, axes = (VOXEL_HINT, "ZYX") if ndim == 3 else (PIXEL_HINT, "YX")
    if spacing is None:
        raise VoxelSizeError(
            f"The voxel size of {where} is unknown: the file does not record it and none was "
            f"given. spinequant measures in micrometres and will not guess. {hint}"
        )
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise VoxelSizeError(f"The voxel size {spacing!r} is not {len(axes)} numbers. {hint}") from None
    if len(values) != ndim:
        image = "a 3D stack" if ndim == 3 else "a 2D image"
        raise VoxelSizeError(
            f"The voxel size of {image} needs {'three' if ndim == 3 else 'two'} numbers ({' '.join(axes)}), but {len(values)} "
            f"were given: {values}. {hint}"
        )
    for axis, v in zip(axes, values):
        if not math.isfinite(v) or v <= 0:
            raise VoxelSizeError(
                f"The {axis} voxel size of {where} is {v}, but it must be a positive number of "
                f"micrometres. {hint}"
            )
        if v > MAX_VOXEL_UM:
            raise VoxelSizeError(
                f"The {axis} voxel size of {where} is {v} µm, which is implausible for light "
                f"microscopy (over {MAX_VOXEL_UM:g} µm); it is probably in nanometres or "
                f"another unit. {hint}"
            )
    return values


def check_image_values(data, *, where: str = "the stack") -> tuple[float, float]:
    """Raise :class:`InputError` for NaN/Inf, all-zero or constant images; return (min, max).

    Works on numpy and dask arrays (dask is reduced chunk by chunk).
    """
    if data.size == 0:
        raise InputError(f"{where} is empty (shape {tuple(data.shape)}); check the file or the channel chosen.")
    if np.issubdtype(data.dtype, np.complexfloating):
        raise InputError(f"{where} holds complex numbers; give a real-valued intensity image.")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        if _reduce(~np.isfinite(data), "any"):
            n_nan = int(_reduce(np.isnan(data), "sum"))
            n_bad = int(_reduce(~np.isfinite(data), "sum"))
            raise InputError(
                f"{where} contains {n_nan} NaN and {n_bad - n_nan} infinite values. spinequant "
                f"needs finite intensities: replace them (e.g. with 0 in Fiji via Process > Math "
                f"> Remove NaNs) or crop them away, then try again."
            )
    lo = float(_reduce(data, "min"))
    hi = float(_reduce(data, "max"))
    if lo == hi:
        what = "all zero" if hi == 0 else f"constant (every voxel is {hi:g})"
        raise InputError(
            f"{where} is {what}: there is no signal to analyse. Check that you chose the right "
            f"file, channel and time point, and that the acquisition saved the data."
        )
    return lo, hi


def _reduce(a, how: str):
    out = getattr(a, how)()
    return out.compute() if hasattr(out, "compute") else out
