"""Checks on voxel sizes and image content, with errors that say what to do."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from .errors import InputError, VoxelSizeError

#: Largest voxel edge we accept; above this the number is almost certainly in the wrong unit.
MAX_VOXEL_UM = 100.0
#: Smallest voxel edge we accept: a twentieth of what the best light microscopes resolve
#: (~0.2 µm, ~0.05 µm with super-resolution); below it the number is almost certainly in
#: nanometres recorded as micrometres (0.094 nm for 0.094 µm).
MIN_VOXEL_UM = 0.01
#: Significant digits a voxel size is taken to. Object outlines, head centres and pixel radii
#: are decided on the voxel grid, where distances tie exactly at round sizes (0.3 µm is 2.5
#: pixels of 0.12 µm); which side of a tie wins is then decided by the last bit of the size,
#: so 0.12 typed, 0.119999997 from a float32 and 0.09 * 4 / 3 gave different spines
#: (docs/reliability.md, "One voxel size, one result"). Float32 and TIFF rationals hold
#: about 7 digits; a voxel size is not known to a part in ten million.
SPACING_DIGITS = 7

VOXEL_HINT = (
    "Give the voxel size in micrometres, in the order Z Y X: on the command line with "
    "--voxel-size 0.5 0.094 0.094, in Python with voxel_size=(0.5, 0.094, 0.094)."
)
#: The same for a 2D image, whose pixel size is two numbers (no z size is made up for a plane).
PIXEL_HINT = (
    "Give the pixel size in micrometres, in the order Y X: on the command line with "
    "--voxel-size 0.094 0.094, in Python with voxel_size=(0.094, 0.094)."
)


def tidy_length(value: float) -> float:
    """``value`` to :data:`SPACING_DIGITS` significant digits: 0.119999997 and
    0.11999999999999999 both become 0.12."""
    return float(f"{float(value):.{SPACING_DIGITS}g}")


def voxel_hint(ndim: int = 3) -> str:
    """How to give the voxel size of a volume (``ndim=3``) or the pixel size of a 2D image."""
    return PIXEL_HINT if ndim == 2 else VOXEL_HINT


def check_spacing(spacing: Sequence[float] | None, *, where: str = "the stack",
                  ndim: int | None = 3) -> tuple[float, ...]:
    """Return ``spacing`` as floats in µm (to :data:`SPACING_DIGITS` significant digits,
    see :func:`tidy_length`), or raise :class:`VoxelSizeError`.

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
    axes = "ZYX"[3 - len(values):]
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
        if v < MIN_VOXEL_UM:
            raise VoxelSizeError(
                f"The {axis} voxel size of {where} is {v:g} µm ({v * 1000:g} nm), far below what a "
                f"light microscope resolves (under {MIN_VOXEL_UM:g} µm): the number was probably "
                f"meant in micrometres but recorded or given in nanometres. "
                f"{_unit_fix(values, axes)}"
            )
    return tuple(tidy_length(v) for v in values)


def _unit_fix(values: tuple[float, ...], axes: str) -> str:
    """How to give ``values`` with the too-fine ones read as µm instead of nm."""
    fixed = tuple(v * 1000 if v < MIN_VOXEL_UM else v for v in values)
    if not all(MIN_VOXEL_UM <= v <= MAX_VOXEL_UM for v in fixed):
        return voxel_hint(len(values))
    numbers = " ".join(f"{v:g}" for v in fixed)
    what = "pixel" if len(values) == 2 else "voxel"
    return (f"If the {what} size is {numbers} µm ({' '.join(axes)}), give it in micrometres: "
            f"--voxel-size {numbers} on the command line, voxel_size=({', '.join(f'{v:g}' for v in fixed)}) "
            f"in Python.")


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


def check_fits_in_memory(nbytes: int, *, where: str, what: str) -> None:
    """Raise :class:`InputError` when reading ``nbytes`` would exceed the memory available now.

    ``what`` describes the array (e.g. "23 planes of 178 x 308 uint16"). Without the check a
    file whose metadata declare a huge array is killed by the operating system mid-read,
    with no message.
    """
    available = available_memory()
    if available is None or nbytes <= available:
        return
    raise InputError(
        f"{where} declares {what}, which needs {format_bytes(nbytes)} of memory to read, but only "
        f"{format_bytes(available)} are available on this computer. If the stack really is that "
        f"large, crop it or split it into smaller stacks (Fiji: Image > Duplicate, or Image > "
        f"Stacks > Tools > Make Substack); if it should be smaller, the file's metadata are wrong: "
        f"re-export it from the acquisition software or Fiji."
    )


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human size: ``"12 kB"``, ``"6.9 GB"``."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit in ("bytes", "kB") else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"
