"""TIFF stacks and 2D TIFF images: ImageJ, OME-TIFF and plain TIFF, with voxel size.

Any compression tifffile supports is read (LZW, JPEG, zstd ... are decoded by imagecodecs).

A file's structure is checked before its pixels are read (:mod:`.tiff_checks`): tifffile reads many damaged
files without complaint (a truncated stack as its first plane, a missing plane as zeros,
strips at the wrong offsets as garbage), and spinequant must not measure such data. A
damaged file raises :class:`~spinequant.errors.InputError` saying what is wrong; a
truncated one, or one whose metadata declare planes it does not hold, too, unless
``allow_incomplete`` is given (then the missing planes are read as zeros and an
:class:`~spinequant.errors.IncompleteDataWarning` says so).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
import tifffile

from .._atomic import atomic_path
from ..errors import IncompleteDataWarning, InputError
from ..stack import Stack
from ..validate import check_fits_in_memory
from .axes import RGB_NAMES, grey_from_rgb, spatial_spacing, to_canonical
from .tiff_checks import (ALLOW_INCOMPLETE, REEXPORT, check_header_length, count, inspect_structure,
                          number, ome_pixels, plane_description, series_pages)
from .units import scaled, tidy, unit_to_um

def open_tiff(path: str | os.PathLike, *, allow_incomplete: bool = False, lazy: bool | str = False) -> Stack:
    """Read a TIFF into a :class:`Stack`; ``spacing`` entries the file lacks are ``nan``.

    ``lazy``: leave the data on disk as a Dask array (planes are read when a region is asked
    for): a memory map of an uncompressed, contiguous file, else tifffile's Zarr view of its
    pages (always the latter with ``lazy="stream"``, for one pass over the whole stack). The metadata and the structural checks are those of an eager read. (An incomplete
    file read with ``allow_incomplete`` is decoded into memory, its gaps as zeros.)

    A truncated file, or one whose metadata declare planes it does not hold, raises
    :class:`InputError` unless ``allow_incomplete``; then the missing planes are zeros and
    :class:`IncompleteDataWarning` is issued (the Stack's ``metadata["incomplete"]`` says the same).
    """
    path = Path(path)
    with _tifffile_reports() as reports:
        try:
            return _open_tiff(path, reports, allow_incomplete, lazy)
        except (InputError, MemoryError):
            raise
        except Exception as exc:  # tifffile raises many types on damaged files (struct.error, IndexError ...)
            raise InputError(_unreadable(path, exc, reports)) from None


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # "<tifffile.TiffFile 'a.tif'> OME series is missing 4 frames" -> "OME series is missing 4 frames"
        self.messages.append(re.sub(r"^(<[^>]*>\s*)+", "", record.getMessage()))


@contextlib.contextmanager
def _tifffile_reports():
    # tifffile logs each damaged offset it meets and reads on; its messages are collected to
    # decide whether the file is damaged and to explain it once, plainly. Nothing is printed.
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _open_tiff(path: Path, reports: list[str], allow_incomplete: bool, lazy: bool = False) -> Stack:
    size = path.stat().st_size
    check_header_length(path, size)
    with _tifffile(path) as tf:
        incomplete = inspect_structure(tf, path, size, reports)
        if incomplete is None:
            return _to_stack(tf, path, lazy=lazy)
    message = incomplete.message(path)
    if not allow_incomplete:
        raise InputError(f"{message} {ALLOW_INCOMPLETE}")
    warnings.warn(f"{message} It is read anyway (--allow-incomplete): the missing planes are zeros, "
                  f"and results for them mean nothing.", IncompleteDataWarning, stacklevel=4)
    needed = incomplete.needed_bytes
    with (_ZeroPadded(path, needed) if needed > size else open(path, "rb")) as fh, _tifffile(path, fh) as tf:
        result = _to_stack(tf, path, fill=True)
    result.metadata["incomplete"] = message
    result.metadata["notes"].append(f"INCOMPLETE FILE read with --allow-incomplete: {message}")
    return result


def _tifffile(path: Path, source=None) -> tifffile.TiffFile:
    """Open ``path`` (or ``source``, a file object standing for it) with tifffile."""
    try:
        return tifffile.TiffFile(path if source is None else source)
    except tifffile.TiffFileError as exc:
        raise InputError(
            f"'{path}' is not a readable TIFF image ({exc}). Check that the file is a TIFF and "
            f"was copied completely; other formats need their own extension (.zarr, .czi, .lif, .nd2)."
        ) from None


def _unreadable(path: Path, exc: Exception, reports: list[str]) -> str:
    detail = f"{type(exc).__name__}: {exc}"[:160]
    told = f"; tifffile reported: {'; '.join(dict.fromkeys(reports[:3]))}" if reports else ""
    return (f"'{path}' is damaged: its TIFF structure cannot be read ({detail}{told}). Check that "
            f"the file was copied completely; if it was, re-export the stack from the acquisition "
            f"software or Fiji.")


class _ZeroPadded(io.RawIOBase):
    """A read-only view of a file that continues with zero bytes up to ``size``.

    tifffile then reads a truncated file's declared planes, the missing ones as zeros.
    """

    def __init__(self, path: Path, size: int):
        super().__init__()
        self._fh = open(path, "rb")  # closed by close()
        self._size = size
        self._pos = 0
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        self._fh.seek(self._pos)
        got = self._fh.readinto(view[:n]) or 0
        view[got:n] = bytes(n - got)
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


# --- reading ---------------------------------------------------------------------------------

def _to_stack(tf: tifffile.TiffFile, path: Path, *, fill: bool = False, lazy: bool = False) -> Stack:
    if not tf.series:
        raise InputError(
            f"'{path}' starts like a TIFF file but holds no readable image: it is damaged or "
            f"incomplete. Copy the file again or re-export it from the acquisition software or Fiji."
        )
    series = tf.series[0]
    compressed = int(series.keyframe.compression) != 1
    if lazy:
        data = _lazy(series, path, memory_map=lazy != "stream")
    else:
        check_fits_in_memory(series.nbytes, where=f"'{path}'",
                             what=f"{count(len(series), 'plane')} of {plane_description(series.keyframe)}")
        data = _decode_planes(series) if fill and compressed else _decode(series, path)
    if data.shape != tuple(series.shape):
        if not fill:
            raise InputError(
                f"'{path}' is inconsistent: its metadata declare an image of shape {series.shape} "
                f"({series.axes}), but its data have the shape {data.shape}. {REEXPORT} {ALLOW_INCOMPLETE}"
            )
        data = _zero_filled(data, tuple(series.shape))
    axes = series.axes
    if tf.is_ome:
        spacing, channels, fmt = _ome_spacing(tf.ome_metadata, path)
    elif tf.is_imagej:
        spacing, channels, fmt = _imagej_spacing(tf), (), "ImageJ TIFF"
    else:
        spacing, channels, fmt = _plain_spacing(tf), (), "TIFF"
    data, axes, notes = to_canonical(data, axes, source=f"'{path}'")
    rgb = "S" in series.axes and series.shape[series.axes.index("S")] in (3, 4)
    stored_as_rgb = False
    if rgb:
        data, axes, stored_as_rgb = grey_from_rgb(data, axes, notes)
        rgb = not stored_as_rgb
    if rgb:
        channels = RGB_NAMES[:series.shape[series.axes.index("S")]]
        notes.append("RGB colour image: its colours are read as channels")
    if "C" in axes and len(channels) != data.shape[axes.index("C")]:
        channels = ()
    if "C" not in axes:
        channels = ()
    metadata = {"format": fmt, "file_axes": series.axes, "notes": notes, "rgb": rgb}
    if stored_as_rgb:
        metadata["stored_as_rgb"] = True
    return Stack(
        data=data,
        spacing=spatial_spacing(axes, spacing),
        axes=axes,
        channel_names=tuple(channels),
        source=str(path),
        spacing_source="metadata",
        metadata=metadata,
    )


def _lazy(series, path: Path, memory_map: bool = True):
    """The data of ``series`` as a Dask array read from disk on demand (``memory_map=False``:
    never as a memory map, whose pages count as the process's memory once read: for one pass
    over a whole stack, as a projection makes)."""
    import dask.array as da

    if memory_map and series.dataoffset is not None and int(series.keyframe.compression) == 1:
        # uncompressed and contiguous: a memory map, any region read directly
        data = tifffile.memmap(path, series=0, mode="r")
        return da.from_array(data, chunks=(1,) * (data.ndim - 2) + data.shape[-2:], asarray=False)
    import zarr

    return da.from_zarr(zarr.open_array(series.aszarr(), mode="r"))


def _decode(series, path: Path) -> np.ndarray:
    try:
        return series.asarray()
    except MemoryError:
        raise
    except Exception as exc:  # tifffile and the codecs raise many types for damaged data
        if "imagecodecs" in str(exc):
            name = getattr(series.keyframe.compression, "name", None) or "a compression"
            raise InputError(
                f"'{path}' is stored with {name} compression, and decoding it needs the Python "
                f"package 'imagecodecs', which is not installed here; the file itself is probably "
                f"fine. Install it into the Python environment that runs spinequant with "
                f"'pip install imagecodecs' (spinequant depends on it, so reinstalling spinequant "
                f"also installs it), then run the same command again."
            ) from None
        raise InputError(
            f"'{path}' is damaged: its image data cannot be decoded ({exc}). Re-export the "
            f"stack from the acquisition software or Fiji."
        ) from None


def _decode_planes(series) -> np.ndarray:
    """The planes of ``series`` decoded one by one; those missing or cut off are zeros."""
    key = series.keyframe
    out = np.zeros((series.size // max(key.size, 1), *key.shape), dtype=key.dtype)
    for i, page in enumerate(series_pages(series)[:len(out)]):
        if page is None:
            continue
        try:
            out[i] = page.asarray()
        except Exception:  # noqa: BLE001 - a plane the truncation cut off stays zero
            continue
    return out.reshape(series.shape)


def _zero_filled(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``data``'s planes in order, followed by zeros up to ``shape`` (the planes a file lacks)."""
    out = np.zeros(shape, dtype=data.dtype)
    n = min(data.size, out.size)
    out.reshape(-1)[:n] = data.reshape(-1)[:n]
    return out


# --- voxel size ------------------------------------------------------------------------------

def _imagej_spacing(tf: tifffile.TiffFile) -> tuple[float, float, float]:
    ij = tf.imagej_metadata or {}
    factor = unit_to_um(ij.get("unit"))
    yx = _resolution_spacing(tf.pages.first, factor)
    z = number(ij.get("spacing"))
    z_um = tidy(z * factor) if factor is not None and np.isfinite(z) else float("nan")
    return (z_um, *yx)


def _plain_spacing(tf: tifffile.TiffFile) -> tuple[float, float, float]:
    page = tf.pages.first
    unit = page.tags.get("ResolutionUnit")
    factor = {2: 25400.0, 3: 1e4}.get(number(unit.value) if unit is not None else 1)
    return (float("nan"), *_resolution_spacing(page, factor))


def _resolution_spacing(page, factor: float | None) -> tuple[float, float]:
    out = []
    for name in ("YResolution", "XResolution"):
        tag = page.tags.get(name)
        try:
            num, den = (float(v) for v in tag.value)
        except (AttributeError, TypeError, ValueError):  # no tag, or a damaged one: unknown
            num, den = 0.0, 0.0
        out.append(tidy(den / num * factor) if num and factor is not None else float("nan"))
    return tuple(out)


def _ome_spacing(xml: str, path: Path):
    pixels = ome_pixels(xml, path)
    if pixels is None:
        return (float("nan"),) * 3, (), "OME-TIFF"
    spacing = []
    for axis in "ZYX":
        value = number(pixels.get(f"PhysicalSize{axis}"))
        factor = unit_to_um(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        spacing.append(scaled(value, factor) if np.isfinite(value) and factor else float("nan"))
    ns = pixels.tag[:-len("Pixels")]
    channels = tuple(c.get("Name") or f"channel {i}" for i, c in enumerate(pixels.findall(f"{ns}Channel")))
    return tuple(spacing), channels, "OME-TIFF"


def write_tiff(path: str | os.PathLike, data: np.ndarray, spacing, *, axes: str | None = None) -> Path:
    """Write ``data`` as an ImageJ-compatible TIFF whose scale Fiji shows in µm.

    ``spacing`` is (z, y, x) µm for a volume or (y, x) for a 2D image (no z step is
    written then). ``axes`` defaults to ``"ZYX"``, or ``"YX"`` for a 2D array.
    Integer labels are stored as uint8/uint16 when they fit, otherwise as float32 (exact up
    to 2**24 labels), since ImageJ cannot open 32-bit integer TIFFs. Floating-point data is
    stored as float32. The file is written to a temporary name and renamed.
    """
    data = np.asarray(data)
    dtype = _imagej_dtype(data)
    spacing = tuple(float(s) for s in spacing)
    if axes is None:
        axes = "YX" if data.ndim == 2 else "ZYX"
    if len(spacing) not in (2, 3):
        raise InputError(f"write_tiff needs the spacing (z, y, x) or, for a 2D image, (y, x); got {spacing}.")
    y, x = spacing[-2:]
    metadata = {"unit": "um", "axes": axes}
    if len(spacing) == 3:
        metadata["spacing"] = spacing[0]
    # A stack is converted a plane at a time as the pages are written (the same file as
    # converting it whole, without a converted copy of a large label volume).
    pages = data if data.dtype == dtype else (plane.astype(dtype) for plane in data) if data.ndim == 3 \
        else data.astype(dtype)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            pages,
            shape=data.shape,
            dtype=dtype,
            imagej=True,
            resolution=(1.0 / x, 1.0 / y),
            metadata=metadata,
            compression="zlib",
        )
    return Path(path)


def _imagej_dtype(data: np.ndarray) -> np.dtype:
    """The type ``data`` is stored as in an ImageJ TIFF (see :func:`write_tiff`)."""
    if data.dtype == bool:
        return np.dtype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        return np.dtype(np.float32)
    if data.dtype in (np.uint8, np.uint16):
        return data.dtype
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if lo >= 0 and hi < 256:
        return np.dtype(np.uint8)
    if lo >= 0 and hi < 65536:
        return np.dtype(np.uint16)
    if max(abs(lo), abs(hi)) > 2**24:
        raise InputError(f"Values up to {hi} cannot be stored exactly in an ImageJ TIFF (limit 2**24).")
    return np.dtype(np.float32)
