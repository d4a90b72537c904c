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
#: The same for a 2D image, whose pixel size is two numbers (no z size is made up for a plane).
PIXEL_HINT = (
    "Give the pixel size in micrometres, in the order Y X: on the command line with "
    "--voxel-size 0.094 0.094, in Python with voxel_size=(0.094, 0.094)."
)


def voxel_hint(ndim: int = 3) -> str:
    """How to give the voxel size of a volume (``ndim=3``) or the pixel size of a 2D image."""
    return PIXEL_HINT if ndim == 2 else VOXEL_HINT


def check_spacing(spacing: Sequence[float] | None, *, where: str = "the stack",
                  ndim: int | None = 3) -> tuple[float, ...]:
    """Return ``spacing`` as floats in µm, or raise :class:`VoxelSizeError`.

    ``ndim`` is the number of spatial axes: 3 for a volume (z, y, x), 2 for a 2D image
    (y, x), ``None`` to accept either.
    """
    hint = voxel_hint(ndim or 3)
    if spacing is None:
        what = "pixel size" if ndim == 2 else "voxel size"
        raise VoxelSizeError(
            f"The {what} of {where} is unknown: the file does not record it and none was "
            f"given. spinequant measures in micrometres and will not guess. {hint}"
        )
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise VoxelSizeError(f"The voxel size {spacing!r} is not a list of numbers. {hint}") from None
    if ndim is None and len(values) in (2, 3):
        ndim = len(values)
    hint = voxel_hint(ndim or 3)
    if ndim == 2 and len(values) != 2:
        raise VoxelSizeError(
            f"The pixel size of {where} needs two numbers, Y X, because it is a 2D image (one "
            f"plane, which has no z size), but {len(values)} were given: {values}. {hint}"
        )
    if ndim != 2 and len(values) != 3:
        # Only for a file the user named: inside the analysis the stack may already be a projection.
        extra = (" To analyse the stack as one 2D image, project it (--project max, then "
                 "--voxel-size Y X is enough)." if len(values) == 2 and where.startswith("'") else "")
        raise VoxelSizeError(
            f"The voxel size of {where} needs three numbers, Z Y X, because it is a stack with a "
            f"Z axis, but {len(values)} were given: {values}. {hint}{extra}"
        )
    for axis, v in zip("ZYX"[3 - len(values):], values):
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
