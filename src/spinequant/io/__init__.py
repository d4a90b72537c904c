"""Read and write microscopy stacks and 2D images with their physical voxel size in µm.

A volume has the spacing (z, y, x), a 2D image (y, x): no z size is made up for a plane.

>>> from spinequant.io import read_stack
>>> stack = read_stack("cell.ome.tif", channel=0)          # doctest: +SKIP
>>> stack.data.shape, stack.spacing                          # doctest: +SKIP
((23, 178, 308), (0.5, 0.094, 0.094))
>>> read_stack("cell.png", voxel_size=(0.09, 0.09)).spacing   # doctest: +SKIP
(0.09, 0.09)
>>> read_stack("cell.ome.tif", channel=0, project="max").axes  # doctest: +SKIP
'YX'
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InputError, SpinequantError, VoxelSizeError
from ..stack import Stack
from ..validate import check_image_values, check_spacing, voxel_hint
from .omezarr import is_zarr, open_zarr, write_ome_zarr
from .raster import RASTER_FORMATS, open_raster
from .tiff import open_tiff, write_tiff

__all__ = ["open_stack", "read_stack", "project", "write_tiff", "write_ome_zarr", "SUPPORTED_FORMATS",
           "PROJECTIONS"]

#: Projections along z that turn a stack into one 2D image (``--project``).
PROJECTIONS = ("max", "mean")

SUPPORTED_FORMATS = {
    ".tif": "TIFF / ImageJ hyperstack / OME-TIFF",
    ".tiff": "TIFF / ImageJ hyperstack / OME-TIFF",
    ".btf": "BigTIFF",
    ".zarr": "OME-Zarr or plain Zarr array",
    ".czi": "Zeiss CZI (pip install 'spinequant[czi]')",
    ".lif": "Leica LIF (pip install 'spinequant[lif]')",
    ".nd2": "Nikon ND2 (pip install 'spinequant[nd2]')",
    ".png": "PNG (2D; give the pixel size)",
    ".jpg": "JPEG (2D; give the pixel size)",
    ".jpeg": "JPEG (2D; give the pixel size)",
}


def open_stack(path: str | os.PathLike, *, voxel_size=None, require_spacing: bool = True,
               image: int | str | None = None, allow_incomplete: bool = False,
               lazy: bool | str = False) -> Stack:
    """Open a stack with all its axes (a subset of ``TCZYX``) and its voxel size.

    Parameters
    ----------
    path : str or Path
        TIFF / OME-TIFF / ImageJ TIFF, OME-Zarr or Zarr folder, CZI, LIF, ND2, PNG or JPEG file.
    voxel_size : sequence of floats, optional
        (z, y, x) in µm for a stack, (y, x) for a 2D image; overrides what the file says.
    require_spacing : bool
        Raise :class:`~spinequant.errors.VoxelSizeError` when the voxel size is neither in the
        file nor given. ``False`` leaves unknown entries as ``nan`` (used by ``info``).
    image : int or str, optional
        For CZI/LIF/ND2 files holding several images (scenes, series, stage positions):
        which one to read, by index or (LIF) name.
    allow_incomplete : bool
        Read a truncated file, or one whose metadata declare more data than it holds, with
        the missing planes (or chunks, or image rows) as zeros and an
        :class:`~spinequant.errors.IncompleteDataWarning`; by default such a file raises
        :class:`~spinequant.errors.InputError` saying what is missing.

    lazy : bool or "stream"
        TIFF files: leave the data on disk as a Dask array (a memory map, or tifffile's Zarr
        view of compressed pages), read region by region; for chunked analysis. ``"stream"``:
        never a memory map (for one pass over the stack, e.g. a projection).

    A 2D image (one plane) has axes without Z and ``spacing`` (y, x). Zarr data stay lazy
    (dask); other formats are read into memory (TIFF too, unless ``lazy``).
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
    try:
        stack = _open(path, suffix, image, allow_incomplete, lazy)
    except SpinequantError:
        raise
    except OSError as exc:  # the file system, not the file's content: unreadable, vanished, I/O error
        raise InputError(
            f"'{path}' cannot be read: {exc.strerror or exc}. Check that the file is readable by you "
            f"(permissions) and that its disk or network share is still available."
        ) from None
    return _resolve_spacing(stack, voxel_size, require_spacing)


def _open(path: Path, suffix: str, image, allow_incomplete: bool, lazy: bool = False) -> Stack:
    if is_zarr(path):
        return open_zarr(path, allow_incomplete=allow_incomplete)
    if suffix in (".tif", ".tiff", ".btf", ".tf8", ".stk", ".lsm"):
        return open_tiff(path, allow_incomplete=allow_incomplete, lazy=lazy)
    if suffix in (".czi", ".lif", ".nd2"):
        from .vendor import open_vendor

        return open_vendor(path, image=image)
    if suffix in RASTER_FORMATS and path.is_file():
        return open_raster(path, allow_incomplete=allow_incomplete)
    if path.is_dir():
        raise InputError(
            f"'{path}' is a folder, not an image. Give one stack file, or for a folder of stacks use "
            f"'spinequant analyze FOLDER'."
        )
    return _sniff(path, allow_incomplete)


def read_stack(path: str | os.PathLike, *, channel: int | None = None, time: int | None = None,
               voxel_size=None, image: int | str | None = None, project: str | None = None,
               check_values: bool = True, allow_incomplete: bool = False, lazy: bool = False) -> Stack:
    """Read one channel and time point: a (Z, Y, X) volume, or a (Y, X) image for 2D files.

    ``voxel_size`` is (z, y, x) µm for a stack and (y, x) for a 2D image. ``project``
    (``"max"`` or ``"mean"``) turns a stack into its projection along z, a 2D image (see
    :func:`project`); the z step is then not needed, and ``voxel_size`` may be (y, x).
    ``allow_incomplete`` reads truncated files with their missing planes as zeros and a
    warning (see :func:`open_stack`). ``lazy`` opens a TIFF lazily too (Zarr always is), so
    that a projection is made chunk by chunk and never holds the whole stack (``analyze
    --chunked --project``).

    Raises :class:`~spinequant.errors.InputError` with a message naming the problem for
    missing or damaged files, a missing channel/time choice, NaN/Inf, constant images and
    missing or implausible voxel sizes.
    """
    if project is None:
        stack = open_stack(path, voxel_size=voxel_size, image=image, allow_incomplete=allow_incomplete)
        stack = stack.select(channel=channel, time=time)
    else:
        _check_projection(project)
        plane_size = voxel_size is not None and np.size(voxel_size) == 2
        stack = open_stack(path, voxel_size=None if plane_size else voxel_size, require_spacing=False,
                           image=image, allow_incomplete=allow_incomplete, lazy="stream" if lazy else False)
        if stack.is_2d:
            raise InputError(
                f"'{path}' is already a 2D image (one plane), so there is nothing to project. "
                f"Leave out --project (project=)."
            )
        stack = _project(stack.select(channel=channel, time=time), project)
        stack = _resolve_spacing(stack, voxel_size if plane_size else None, True)
    stack = stack.compute()
    if check_values:
        check_image_values(stack.data, where=f"'{path}'")
    return stack


def project(stack: Stack, how: str = "max") -> Stack:
    """The projection of a stack along z: a 2D :class:`Stack` with ``spacing`` (y, x).

    ``how`` is ``"max"`` (maximum intensity, keeps the dtype) or ``"mean"`` (float32).
    Channel and time axes are kept. ``metadata`` records ``projection``, the number of
    ``projected_planes`` and the z step (``projected_z_um``, ``None`` when unknown).

    >>> import numpy as np
    >>> from spinequant.stack import Stack
    >>> stack = Stack(np.arange(8).reshape(2, 2, 2), spacing=(0.5, 0.1, 0.1))
    >>> flat = project(stack, "max")
    >>> flat.axes, flat.spacing, flat.data.tolist()
    ('YX', (0.1, 0.1), [[4, 5], [6, 7]])
    """
    _check_projection(how)
    if stack.is_2d:
        raise InputError(f"{stack._describe()} is already a 2D image (one plane); there is nothing to project.")
    axis = stack.axes.index("Z")
    if how == "max":
        data = stack.data.max(axis=axis)
    else:
        data = stack.data.mean(axis=axis, dtype=np.float64).astype(np.float32)
    z_um = stack.spacing[0]
    n = stack.size_of("Z")
    metadata = {**stack.metadata, "projection": how, "projected_planes": n,
                "projected_z_um": None if np.isnan(z_um) else z_um,
                "notes": [*stack.metadata.get("notes", []), f"{how} projection along z of {n} planes"]}
    return replace(stack, data=data, axes=stack.axes.replace("Z", ""), spacing=stack.spacing[1:],
                   metadata=metadata)


_project = project  # read_stack's argument ``project`` hides the function's name


def _check_projection(how) -> None:
    if how not in PROJECTIONS:
        raise InputError(f"Unknown projection {how!r}; use one of {', '.join(PROJECTIONS)} (--project max).")


def _sniff(path: Path, allow_incomplete: bool) -> Stack:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:2] in (b"II", b"MM"):
        return open_tiff(path, allow_incomplete=allow_incomplete)
    known = ", ".join(SUPPORTED_FORMATS)
    raise InputError(
        f"'{path}' is not an image format spinequant reads (supported: {known}). Export the stack "
        f"from Fiji or your acquisition software as TIFF or OME-TIFF."
    )


def _resolve_spacing(stack: Stack, voxel_size, require: bool) -> Stack:
    where = f"'{stack.source}'"
    ndim = len(stack.spatial_axes)
    if voxel_size is not None:
        return replace(stack, spacing=check_spacing(voxel_size, where=where, ndim=ndim),
                       spacing_source="override")
    if not require:
        return stack
    missing = [a for a, v in zip(stack.spatial_axes, stack.spacing) if np.isnan(v)]
    if missing:
        fmt = stack.metadata.get("format")
        if fmt in ("PNG", "JPEG"):
            raise VoxelSizeError(
                f"The pixel size of {where} is unknown: {fmt} files do not record it, and none was "
                f"given. spinequant measures in micrometres and will not guess. {voxel_hint(2)}"
            )
        if len(missing) == ndim:
            check_spacing(None, where=where, ndim=ndim)
        known = ", ".join(f"{a} = {v:g} µm" for a, v in zip(stack.spatial_axes, stack.spacing) if not np.isnan(v))
        raise VoxelSizeError(
            f"The file '{stack.source}' records part of the voxel size ({known}) but not "
            f"{'/'.join(missing)}. spinequant will not guess. {voxel_hint(ndim)}"
        )
    check_spacing(stack.spacing, where=where, ndim=ndim)
    return stack
