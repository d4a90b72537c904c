"""TIFF stacks and 2D TIFF images: ImageJ, OME-TIFF and plain TIFF, with voxel size.

Any compression tifffile supports is read (LZW, JPEG, zstd ... are decoded by imagecodecs).

A file's structure is checked before its pixels are read: tifffile reads many damaged
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
import struct
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from .._atomic import atomic_path
from ..errors import IncompleteDataWarning, InputError
from ..stack import Stack
from ..validate import check_fits_in_memory, format_bytes
from .axes import RGB_NAMES, grey_from_rgb, spatial_spacing, to_canonical
from .units import scaled, tidy, unit_to_um

#: What to do about a damaged file, said at the end of most messages.
_REEXPORT = "Copy the file again, or re-export the stack from the acquisition software or Fiji."
#: How to read an incomplete file anyway.
_ALLOW = ("To analyse the planes that are there, run the command again with --allow-incomplete "
          "(in Python: allow_incomplete=True); the missing planes are then read as zeros.")
#: An incomplete file holding less than this fraction of its declared planes is refused even
#: with allow_incomplete: its metadata are wrong, or there is too little left to analyse.
_MIN_PRESENT_FRACTION = 0.1
# tifffile's log messages that mean data or structure are missing (it logs them and reads on).
_DAMAGE_SIGNS = re.compile(
    r"missing|corrupt|circular|truncat|failed to reshape|expected \d+ frames|invalid (page )?offset"
    r"|invalid value offset|metadata invalid", re.IGNORECASE)
# Tags whose loss changes the pixels or the voxel size read: size, layout, compression, strips
# and tiles, resolution, and ImageDescription/ImageJ tags (ImageJ and OME metadata). Others
# (Software, DateTime ...) may be lost without harm.
_ESSENTIAL_TAGS = frozenset({256, 257, 258, 259, 262, 270, 273, 277, 278, 279, 282, 283, 284, 296,
                             317, 322, 323, 324, 325, 338, 339, 50838, 50839})


def open_tiff(path: str | os.PathLike, *, allow_incomplete: bool = False) -> Stack:
    """Read a TIFF into a :class:`Stack`; ``spacing`` entries the file lacks are ``nan``.

    A truncated file, or one whose metadata declare planes it does not hold, raises
    :class:`InputError` unless ``allow_incomplete``; then the missing planes are zeros and
    :class:`IncompleteDataWarning` is issued (the Stack's ``metadata["incomplete"]`` says the same).
    """
    path = Path(path)
    with _tifffile_reports() as reports:
        try:
            return _open_tiff(path, reports, allow_incomplete)
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


def _open_tiff(path: Path, reports: list[str], allow_incomplete: bool) -> Stack:
    size = path.stat().st_size
    _check_header_length(path, size)
    with _tifffile(path) as tf:
        incomplete = _inspect(tf, path, size, reports)
        if incomplete is None:
            return _to_stack(tf, path)
    message = incomplete.message(path)
    if not allow_incomplete:
        raise InputError(f"{message} {_ALLOW}")
    warnings.warn(f"{message} It is read anyway (--allow-incomplete): the missing planes are zeros, "
                  f"and results for them mean nothing.", IncompleteDataWarning, stacklevel=4)
    needed = incomplete.needed_bytes
    with (_ZeroPadded(path, needed) if needed > size else open(path, "rb")) as fh, _tifffile(path, fh) as tf:
        result = _to_stack(tf, path, fill=True)
    result.metadata["incomplete"] = message
    result.metadata["notes"].append(f"INCOMPLETE FILE read with --allow-incomplete: {message}")
    return result


def _check_header_length(path: Path, size: int) -> None:
    if size == 0 or (size < 8 and path.read_bytes()[:2] in (b"I", b"M", b"II", b"MM")):
        raise InputError(
            f"'{path}' is only {size} bytes long, shorter than the header of any TIFF file: it is "
            f"truncated (a copy or download that stopped at once) or empty. {_REEXPORT}"
        )


def _tifffile(path: Path, source=None) -> tifffile.TiffFile:
    """Open ``path`` (or ``source``, a file object standing for it) with tifffile."""
    try:
        return tifffile.TiffFile(path if source is None else source)
    except tifffile.TiffFileError as exc:
        raise InputError(
            f"'{path}' is not a readable TIFF image ({exc}). Check that the file is a TIFF and "
            f"was copied completely; other formats need their own extension (.zarr, .czi, .lif, .nd2)."
        ) from None


# --- checks before reading -------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """Planes the file's metadata declare, planes it holds completely, and the file length
    that all declared planes need."""

    declared: int
    present: int
    needed_bytes: int
    plane: str            # "178 x 308 uint16", for messages
    plane_bytes: int


@dataclass(frozen=True)
class _Incomplete:
    """What is missing from a file that can still be read with ``allow_incomplete``."""

    layout: _Layout
    problem: str          # what is wrong, as a clause: "the file is 500 bytes long, but ..."
    truncated: bool       # the file ends too early (rather than declaring too much)
    state: str = "is incomplete or damaged"

    @property
    def needed_bytes(self) -> int:
        return self.layout.needed_bytes

    def message(self, path: Path) -> str:
        lay = self.layout
        head = "is truncated" if self.truncated else self.state
        if lay.present < lay.declared:
            head += f" ({lay.present:,} of {_count(lay.declared, 'plane')} of {lay.plane} are present)"
        advice = ("The copy or the acquisition was probably interrupted; copy the file again or "
                  "re-export it." if self.truncated else _REEXPORT)
        return f"'{path}' {head}: {self.problem}. {advice}"


def _inspect(tf: tifffile.TiffFile, path: Path, size: int, reports: list[str]) -> _Incomplete | None:
    """Raise :class:`InputError` for a damaged file; describe a truncated or incomplete one."""
    chain = _chain_problem(tf, size)
    if not tf.series:
        raise InputError(
            f"'{path}' starts like a TIFF file but holds no readable image: it is damaged or "
            f"incomplete. Copy the file again or re-export it from the acquisition software or Fiji."
        )
    series = tf.series[0]
    if series.keyframe.size == 0:
        raise InputError(
            f"'{path}' is damaged: its first image has no pixels ({_plane(series.keyframe)}), so a "
            f"required entry of its image directory is missing or corrupt. {_REEXPORT}"
        )
    pages = _series_pages(series)
    full_pages = _check_pages_agree(tf, series, path)
    _check_data_ranges(series.keyframe, pages, path)
    _check_data_apart_from_metadata(tf, full_pages, pages, path)
    if tf.is_ome:
        _check_ome_plane(tf.ome_metadata, series.keyframe, path)
    layout = _layout(tf, series, pages, size)
    found = _what_is_missing(layout, size, chain, _undescribed_planes(tf, series),
                             list(dict.fromkeys(m for m in reports if _is_damage(m))))
    if found is not None:
        _check_enough_present(layout, path, size)
    return found


def _what_is_missing(layout: _Layout, size: int, chain: tuple[str, bool] | None, extra: int,
                     damage: list[str]) -> _Incomplete | None:
    """The first of the signs that data are missing, most telling first; ``None`` for none."""
    if layout.needed_bytes > size:
        return _Incomplete(layout, f"the file is {size:,} bytes long, but its image data should run to "
                                   f"byte {layout.needed_bytes:,}", truncated=True)
    if layout.present < layout.declared:
        problem = f"its metadata declare {_count(layout.declared, 'plane')}, but the file holds {layout.present:,}"
        if chain:  # the planes' directories are missing too: where the file stops says why
            return _Incomplete(layout, f"{problem}; {chain[0]}", truncated=chain[1])
        return _Incomplete(layout, problem, truncated=False)
    if chain:
        return _Incomplete(layout, chain[0], truncated=chain[1])
    if extra:
        return _Incomplete(layout, f"its metadata describe {_count(layout.declared, 'plane')}, but the "
                                   f"file holds {_count(extra, 'more image')} of the same size",
                           truncated=False, state="is inconsistent")
    if damage:
        return _Incomplete(layout, f"its structure is damaged, so part of its image data or metadata may "
                                   f"be missing (tifffile reported: {'; '.join(damage[:3])})", truncated=False)
    return None


def _is_damage(report: str) -> bool:
    """Whether a tifffile log message means that image data or essential metadata are lost."""
    lost_tag = re.search(r"TiffTag (\d+) @\d+> invalid value offset", report)
    if lost_tag:
        return int(lost_tag.group(1)) in _ESSENTIAL_TAGS
    return bool(_DAMAGE_SIGNS.search(report))


def _chain_problem(tf: tifffile.TiffFile, size: int) -> tuple[str, bool] | None:
    """What is wrong with the end of the file's chain of image directories (IFDs), if anything,
    and whether it means the file is truncated.

    Each IFD ends with the offset of the next, 0 after the last; tifffile stops quietly at an
    offset past the end of the file, a loop or an unreadable IFD, which all mean lost images.
    """
    if tf.is_ndpi:  # NDPI stores 64-bit offsets in a 32-bit layout; tifffile handles them
        return None
    n = len(tf.pages)
    position = tf.pages.next_page_offset
    if position is None:
        return None
    fmt = tf.tiff
    fh = tf.filehandle
    fh.seek(position)
    raw = fh.read(fmt.offsetsize)
    if len(raw) < fmt.offsetsize:
        return f"the file ends inside the directory of image {n:,}", True
    nxt = struct.unpack(fmt.offsetformat, raw)[0]
    if nxt == 0:
        return None
    if nxt >= size:
        return (f"after image {n:,} the file points to a further image at byte {nxt:,}, but it ends "
                f"at byte {size:,}"), True
    return (f"after image {n:,} its chain of image directories is corrupt (it points to byte {nxt:,}, "
            f"which holds no valid image directory, or loops back to an earlier image)"), False


def _undescribed_planes(tf: tifffile.TiffFile, series) -> int:
    """How many images of the first series' plane size no series of the file includes.

    Metadata that declare fewer planes than the file holds (an OME SizeZ or an ImageJ
    ``images`` count too small) make tifffile read the first planes only, without a word.
    """
    if len(tf.pages) <= sum(len(s) for s in tf.series):
        return 0
    used = {_page_index(s, i) for s in tf.series for i in range(len(s))}
    others = [i for i in range(len(tf.pages)) if i not in used]
    if not others:
        return 0
    page = tf.pages.get(others[0], aspage=True)
    key = series.keyframe
    return len(others) if page.shape == key.shape and page.dtype == key.dtype else 0


def _series_pages(series) -> list:
    """The pages (or frames) of ``series`` in plane order; ``None`` where one is missing."""
    pages = []
    for i in range(len(series)):
        try:
            pages.append(series[i])
        except IndexError:  # a series declared longer than the file's chain of pages
            pages.append(None)
    return pages


def _check_pages_agree(tf: tifffile.TiffFile, series, path: Path) -> list:
    """Refuse a series whose second or last page disagrees with the first; return the three.

    tifffile reads every plane with the first page's size and type, so a corrupt size in the
    first page would silently re-slice the whole stack.
    """
    key = series.keyframe
    indices = {_page_index(series, i) for i in (1, len(series) - 1)} - {None, _page_index(series, 0)}
    pages = [key]
    for index in sorted(indices):
        page = tf.pages.get(index, aspage=True)
        if page.shape != key.shape or page.dtype != key.dtype:
            raise InputError(
                f"'{path}' is damaged: its image directories disagree on the plane size (image 1 "
                f"is {_plane(key)}, image {index + 1} is {_plane(page)}), so its pixels cannot be "
                f"read reliably. {_REEXPORT}"
            )
        pages.append(page)
    return pages


def _page_index(series, i: int) -> int | None:
    if not 0 <= i < len(series):
        return None
    try:
        page = series[i]
    except IndexError:
        return None
    index = getattr(page, "index", None)
    return index if isinstance(index, int) else None


def _data_spans(pages: list) -> list[tuple[int, int]]:
    """(offset, byte count) of every strip or tile of ``pages`` that holds data."""
    return [(o, n) for p in pages if p is not None for o, n in zip(p.dataoffsets, p.databytecounts) if n]


def _check_data_ranges(key, pages: list, path: Path) -> None:
    """Refuse strips or tiles that cannot hold the pixels they claim (uncompressed data)."""
    spans = _data_spans(pages)
    if any(n < 0 for _, n in spans):
        raise InputError(
            f"'{path}' is damaged: the size of one of its strips of pixels is negative, so its byte "
            f"counts are corrupt. {_REEXPORT}"
        )
    if any(o < 8 for o, _ in spans):
        raise InputError(
            f"'{path}' is damaged: its image data are said to start inside the file header, so the "
            f"strip offsets are corrupt. {_REEXPORT}"
        )
    if int(key.compression) != 1 or key.bitspersample != key.dtype.itemsize * 8:
        return  # compressed or bit-packed: sizes cannot be checked without decoding
    for i, p in enumerate(pages):
        if p is not None and sum(p.databytecounts) < key.nbytes:
            raise InputError(
                f"'{path}' is damaged: plane {i + 1} should hold {key.nbytes:,} bytes of "
                f"uncompressed pixels ({_plane(key)}), but its strips hold {sum(p.databytecounts):,} "
                f"(the strip offsets or byte counts are corrupt). {_REEXPORT}"
            )
    ordered = sorted(spans)
    for (o1, n1), (o2, _) in zip(ordered, ordered[1:]):
        if o2 < o1 + n1:
            raise InputError(
                f"'{path}' is damaged: two of its strips of pixels overlap (bytes {o1:,}-{o1 + n1:,} "
                f"and from {o2:,}), so the strip offsets or byte counts are corrupt. {_REEXPORT}"
            )


def _check_data_apart_from_metadata(tf: tifffile.TiffFile, full_pages: list, pages: list, path: Path) -> None:
    # A corrupt strip offset often points into the file's own directories and tag values:
    # tifffile would read them as pixels.
    fmt = tf.tiff
    meta = []
    for page in full_pages:
        tags = list(page.tags)
        end = max((t.offset for t in tags), default=page.offset) + fmt.tagsize + fmt.offsetsize
        meta.append((page.offset, end - page.offset))
        meta.extend((t.valueoffset, t.valuebytecount) for t in tags)
    if _overlap(_data_spans(pages), meta):
        raise InputError(
            f"'{path}' is damaged: its image data are said to lie where the file keeps its own "
            f"directories and metadata, so the strip offsets or byte counts are corrupt. {_REEXPORT}"
        )


def _overlap(spans_a: list, spans_b: list) -> bool:
    """Whether a byte range (offset, length) of ``spans_a`` overlaps one of ``spans_b``."""
    reach = [-1, -1]  # furthest end so far in each list
    for start, end, which in sorted([(o, o + n, 0) for o, n in spans_a] + [(o, o + n, 1) for o, n in spans_b]):
        if start < reach[1 - which]:
            return True
        reach[which] = max(reach[which], end)
    return False


def _check_ome_plane(xml: str | None, key, path: Path) -> None:
    pixels = _ome_pixels(xml, path)
    if pixels is None:
        return
    declared = tuple(_number(pixels.get(f"Size{a}")) for a in "YX")
    actual = (key.imagelength, key.imagewidth)
    if not np.isnan(declared).any() and declared != actual:
        raise InputError(
            f"'{path}' is inconsistent: its OME metadata describe planes of {declared[1]:g} x "
            f"{declared[0]:g} pixels (X x Y), but its images are {actual[1]} x {actual[0]}. {_REEXPORT}"
        )


def _layout(tf: tifffile.TiffFile, series, pages: list, size: int) -> _Layout:
    key = series.keyframe
    plane_bytes = key.nbytes
    declared = series.size // max(key.size, 1)
    if tf.is_imagej and series.kind != "imagej":
        # tifffile drops ImageJ metadata that declare more data than the file holds
        declared = max(declared, _imagej_planes(tf.imagej_metadata))
    start = series.dataoffset
    if start is not None and int(key.compression) == 1:  # one contiguous block of planes
        present = min(declared, max(0, (size - start) // plane_bytes)) if plane_bytes else declared
        needed = start + declared * plane_bytes
    else:
        ends = [_data_end(p) for p in pages]
        present = sum(e is not None and e <= size for e in ends)
        needed = max((e for e in ends if e is not None), default=0)
    return _Layout(declared, present, needed, _plane(key), plane_bytes)


def _imagej_planes(meta: dict | None) -> int:
    try:
        return int((meta or {}).get("images", 1))
    except (TypeError, ValueError):
        return 1


def _data_end(page) -> int | None:
    if page is None:
        return None
    return max((o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n), default=0)


def _check_enough_present(layout: _Layout, path: Path, size: int) -> None:
    if layout.present >= layout.declared * _MIN_PRESENT_FRACTION and layout.present > 0:
        return
    raise InputError(
        f"'{path}' declares {_count(layout.declared, 'plane')} of {layout.plane} "
        f"({format_bytes(layout.declared * layout.plane_bytes)} of pixels), but holds only "
        f"{layout.present:,} of them (the file is {format_bytes(size)}): either it was cut short very "
        f"early or its metadata are wrong. That is too little to analyse, even with "
        f"--allow-incomplete. {_REEXPORT}"
    )


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _plane(page) -> str:
    shape = " x ".join(str(n) for n in page.shape)
    return f"{shape} {page.dtype}"


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

def _to_stack(tf: tifffile.TiffFile, path: Path, *, fill: bool = False) -> Stack:
    if not tf.series:
        raise InputError(
            f"'{path}' starts like a TIFF file but holds no readable image: it is damaged or "
            f"incomplete. Copy the file again or re-export it from the acquisition software or Fiji."
        )
    series = tf.series[0]
    check_fits_in_memory(series.nbytes, where=f"'{path}'",
                         what=f"{_count(len(series), 'plane')} of {_plane(series.keyframe)}")
    compressed = int(series.keyframe.compression) != 1
    data = _decode_planes(series) if fill and compressed else _decode(series, path)
    if data.shape != tuple(series.shape):
        if not fill:
            raise InputError(
                f"'{path}' is inconsistent: its metadata declare an image of shape {series.shape} "
                f"({series.axes}), but its data have the shape {data.shape}. {_REEXPORT} {_ALLOW}"
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
    for i, page in enumerate(_series_pages(series)[:len(out)]):
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
    z = _number(ij.get("spacing"))
    z_um = tidy(z * factor) if factor is not None and np.isfinite(z) else float("nan")
    return (z_um, *yx)


def _plain_spacing(tf: tifffile.TiffFile) -> tuple[float, float, float]:
    page = tf.pages.first
    unit = page.tags.get("ResolutionUnit")
    factor = {2: 25400.0, 3: 1e4}.get(_number(unit.value) if unit is not None else 1)
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


def _number(value) -> float:
    """``value`` as a float; ``nan`` for a missing or damaged entry (then the size is unknown)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _ome_pixels(xml: str | None, path: Path):
    """The ``Pixels`` element of the first image in OME-XML metadata, or ``None``."""
    try:
        root = ET.fromstring(xml or "")
    except ET.ParseError as exc:
        raise InputError(f"'{path}' is damaged: its OME metadata are not valid XML ({exc}). {_REEXPORT}") from None
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return root.find(f".//{ns}Image/{ns}Pixels")


def _ome_spacing(xml: str, path: Path):
    pixels = _ome_pixels(xml, path)
    if pixels is None:
        return (float("nan"),) * 3, (), "OME-TIFF"
    spacing = []
    for axis in "ZYX":
        value = _number(pixels.get(f"PhysicalSize{axis}"))
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
    data = _imagej_dtype(np.asarray(data))
    spacing = tuple(float(s) for s in spacing)
    if axes is None:
        axes = "YX" if data.ndim == 2 else "ZYX"
    if len(spacing) not in (2, 3):
        raise InputError(f"write_tiff needs the spacing (z, y, x) or, for a 2D image, (y, x); got {spacing}.")
    y, x = spacing[-2:]
    metadata = {"unit": "um", "axes": axes}
    if len(spacing) == 3:
        metadata["spacing"] = spacing[0]
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            imagej=True,
            resolution=(1.0 / x, 1.0 / y),
            metadata=metadata,
            compression="zlib",
        )
    return Path(path)


def _imagej_dtype(data: np.ndarray) -> np.ndarray:
    if data.dtype == bool:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    if data.dtype in (np.uint8, np.uint16):
        return data
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if lo >= 0 and hi < 256:
        return data.astype(np.uint8)
    if lo >= 0 and hi < 65536:
        return data.astype(np.uint16)
    if max(abs(lo), abs(hi)) > 2**24:
        raise InputError(f"Values up to {hi} cannot be stored exactly in an ImageJ TIFF (limit 2**24).")
    return data.astype(np.float32)
