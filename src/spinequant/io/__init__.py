"""Read and write microscopy stacks with their physical voxel size (µm, z y x).

>>> from spinequant.io import read_stack
>>> stack = read_stack("cell.ome.tif", channel=0)          # doctest: +SKIP
>>> stack.data.shape, stack.spacing                          # doctest: +SKIP
((23, 178, 308), (0.5, 0.094, 0.094))
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InputError, VoxelSizeError
from ..stack import Stack
from ..validate import VOXEL_HINT, check_image_values, check_spacing
from .omezarr import is_zarr, open_zarr, write_ome_zarr
from .tiff import open_tiff, write_tiff

__all__ = ["open_stack", "read_stack", "write_tiff", "write_ome_zarr", "SUPPORTED_FORMATS"]

SUPPORTED_FORMATS = {
    ".tif": "TIFF / ImageJ hyperstack / OME-TIFF",
    ".tiff": "TIFF / ImageJ hyperstack / OME-TIFF",
    ".btf": "BigTIFF",
    ".zarr": "OME-Zarr or plain Zarr array",
    ".czi": "Zeiss CZI (pip install 'spinequant[czi]')",
    ".lif": "Leica LIF (pip install 'spinequant[lif]')",
    ".nd2": "Nikon ND2 (pip install 'spinequant[nd2]')",
}


def open_stack(path: str | os.PathLike, *, voxel_size=None, require_spacing: bool = True,
               image: int | str | None = None) -> Stack:
    """Open a stack with all its axes (a subset of ``TCZYX``) and its voxel size.

    Parameters
    ----------
    path : str or Path
        TIFF / OME-TIFF / ImageJ TIFF, OME-Zarr or Zarr folder, CZI, LIF or ND2 file.
    voxel_size : sequence of 3 floats, optional
        (z, y, x) in µm; overrides what the file says.
    require_spacing : bool
        Raise :class:`~spinequant.errors.VoxelSizeError` when the voxel size is neither in the
        file nor given. ``False`` leaves unknown entries as ``nan`` (used by ``info``).
    image : int or str, optional
        For CZI/LIF/ND2 files holding several images (scenes, series, stage positions):
        which one to read, by index or (LIF) name.

    Zarr data stay lazy (dask); other formats are read into memory.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"The file '{path}' does not exist. Check the path (current folder: '{Path.cwd()}')."
        )
    suffix = path.suffix.lower()
    if image not in (None, 0, "0") and suffix not in (".czi", ".lif", ".nd2"):
        raise InputError(
            f"An image choice ({image!r}) only applies to CZI, LIF and ND2 files that hold several "
            f"images; '{path}' holds one stack. Leave out --image."
        )
    if is_zarr(path):
        stack = open_zarr(path)
    elif suffix in (".tif", ".tiff", ".btf", ".tf8", ".stk", ".lsm"):
        stack = open_tiff(path)
    elif suffix in (".czi", ".lif", ".nd2"):
        from .vendor import open_vendor

        stack = open_vendor(path, image=image)
    elif path.is_dir():
        raise InputError(
            f"'{path}' is a folder, not an image. Give one stack file, or for a folder of stacks use "
            f"'spinequant analyze FOLDER'."
        )
    else:
        stack = _sniff(path)
    return _resolve_spacing(stack, voxel_size, require_spacing)


def read_stack(path: str | os.PathLike, *, channel: int | None = None, time: int | None = None,
               voxel_size=None, image: int | str | None = None, check_values: bool = True) -> Stack:
    """Read one channel and time point of a stack as a 3D (Z, Y, X) numpy volume.

    Raises :class:`~spinequant.errors.InputError` with a message naming the problem for
    missing or damaged files, a missing channel/time choice, NaN/Inf, constant images and
    missing or implausible voxel sizes.
    """
    stack = open_stack(path, voxel_size=voxel_size, image=image).select(channel=channel, time=time).compute()
    if check_values:
        check_image_values(stack.data, where=f"'{path}'")
    return stack


def _sniff(path: Path) -> Stack:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] in (b"II", b"MM"):
        return open_tiff(path)
    known = ", ".join(SUPPORTED_FORMATS)
    raise InputError(
        f"'{path}' is not an image format spinequant reads (supported: {known}). Export the stack "
        f"from Fiji or your acquisition software as TIFF or OME-TIFF."
    )


def _resolve_spacing(stack: Stack, voxel_size, require: bool) -> Stack:
    if voxel_size is not None:
        return replace(stack, spacing=check_spacing(voxel_size, where=f"'{stack.source}'"),
                       spacing_source="override")
    z, y, x = stack.spacing
    if np.isnan(z) and not np.isnan(y) and stack.size_of("Z") == 1:
        # A single plane has no z extent; its z step cannot affect any measurement.
        z = max(y, x)
        stack = replace(stack, spacing=(z, y, x),
                        metadata={**stack.metadata, "notes": [*stack.metadata.get("notes", []),
                                                              "single plane: z step not applicable"]})
    if not require:
        return stack
    missing = [a for a, v in zip("ZYX", stack.spacing) if np.isnan(v)]
    if missing:
        if len(missing) == 3:
            check_spacing(None, where=f"'{stack.source}'")
        known = ", ".join(f"{a} = {v:g} µm" for a, v in zip("ZYX", stack.spacing) if not np.isnan(v))
        raise VoxelSizeError(
            f"The file '{stack.source}' records part of the voxel size ({known}) but not "
            f"{'/'.join(missing)}. spinequant will not guess. {VOXEL_HINT}"
        )
    check_spacing(stack.spacing, where=f"'{stack.source}'")
    return stack
