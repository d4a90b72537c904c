"""Is a TIFF whole? Checks of its structure before its pixels are read.

tifffile reads many damaged files without complaint (a truncated stack as its first plane, a
missing plane as zeros, strips at the wrong offsets as garbage). These checks compare what
the file's metadata declare (ImageJ, OME, the chain of image directories) with what it holds:
a damaged file raises :class:`~spinequant.errors.InputError`; a truncated or incomplete one is
described (:func:`inspect_structure`) so that :mod:`.tiff` can refuse it or, with
``allow_incomplete``, read it with zeros for what is missing.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputError
from ..validate import format_bytes

#: What to do about a damaged file, said at the end of most messages.
REEXPORT = "Copy the file again, or re-export the stack from the acquisition software or Fiji."
#: How to read an incomplete file anyway.
ALLOW_INCOMPLETE = ("To analyse the planes that are there, run the command again with --allow-incomplete "
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


def check_header_length(path: Path, size: int) -> None:
    if size == 0 or (size < 8 and path.read_bytes()[:2] in (b"I", b"M", b"II", b"MM")):
        raise InputError(
            f"'{path}' is only {size} bytes long, shorter than the header of any TIFF file: it is "
            f"truncated (a copy or download that stopped at once) or empty. {REEXPORT}"
        )


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
            head += f" ({lay.present:,} of {count(lay.declared, 'plane')} of {lay.plane} are present)"
        advice = ("The copy or the acquisition was probably interrupted; copy the file again or "
                  "re-export it." if self.truncated else REEXPORT)
        return f"'{path}' {head}: {self.problem}. {advice}"


def inspect_structure(tf: tifffile.TiffFile, path: Path, size: int, reports: list[str]) -> _Incomplete | None:
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
            f"'{path}' is damaged: its first image has no pixels ({plane_description(series.keyframe)}), so a "
            f"required entry of its image directory is missing or corrupt. {REEXPORT}"
        )
    pages = series_pages(series)
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
        problem = f"its metadata declare {count(layout.declared, 'plane')}, but the file holds {layout.present:,}"
        if chain:  # the planes' directories are missing too: where the file stops says why
            return _Incomplete(layout, f"{problem}; {chain[0]}", truncated=chain[1])
        return _Incomplete(layout, problem, truncated=False)
    if chain:
        return _Incomplete(layout, chain[0], truncated=chain[1])
    if extra:
        return _Incomplete(layout, f"its metadata describe {count(layout.declared, 'plane')}, but the "
                                   f"file holds {count(extra, 'more image')} of the same size",
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


def series_pages(series) -> list:
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
                f"is {plane_description(key)}, image {index + 1} is {plane_description(page)}), so its pixels cannot be "
                f"read reliably. {REEXPORT}"
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
            f"counts are corrupt. {REEXPORT}"
        )
    if any(o < 8 for o, _ in spans):
        raise InputError(
            f"'{path}' is damaged: its image data are said to start inside the file header, so the "
            f"strip offsets are corrupt. {REEXPORT}"
        )
    if int(key.compression) != 1 or key.bitspersample != key.dtype.itemsize * 8:
        return  # compressed or bit-packed: sizes cannot be checked without decoding
    for i, p in enumerate(pages):
        if p is not None and sum(p.databytecounts) < key.nbytes:
            raise InputError(
                f"'{path}' is damaged: plane {i + 1} should hold {key.nbytes:,} bytes of "
                f"uncompressed pixels ({plane_description(key)}), but its strips hold {sum(p.databytecounts):,} "
                f"(the strip offsets or byte counts are corrupt). {REEXPORT}"
            )
    ordered = sorted(spans)
    for (o1, n1), (o2, _) in zip(ordered, ordered[1:]):
        if o2 < o1 + n1:
            raise InputError(
                f"'{path}' is damaged: two of its strips of pixels overlap (bytes {o1:,}-{o1 + n1:,} "
                f"and from {o2:,}), so the strip offsets or byte counts are corrupt. {REEXPORT}"
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
            f"directories and metadata, so the strip offsets or byte counts are corrupt. {REEXPORT}"
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
    pixels = ome_pixels(xml, path)
    if pixels is None:
        return
    declared = tuple(number(pixels.get(f"Size{a}")) for a in "YX")
    actual = (key.imagelength, key.imagewidth)
    if not np.isnan(declared).any() and declared != actual:
        raise InputError(
            f"'{path}' is inconsistent: its OME metadata describe planes of {declared[1]:g} x "
            f"{declared[0]:g} pixels (X x Y), but its images are {actual[1]} x {actual[0]}. {REEXPORT}"
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
    return _Layout(declared, present, needed, plane_description(key), plane_bytes)


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
        f"'{path}' declares {count(layout.declared, 'plane')} of {layout.plane} "
        f"({format_bytes(layout.declared * layout.plane_bytes)} of pixels), but holds only "
        f"{layout.present:,} of them (the file is {format_bytes(size)}): either it was cut short very "
        f"early or its metadata are wrong. That is too little to analyse, even with "
        f"--allow-incomplete. {REEXPORT}"
    )


def count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def plane_description(page) -> str:
    shape = " x ".join(str(n) for n in page.shape)
    return f"{shape} {page.dtype}"


def number(value) -> float:
    """``value`` as a float; ``nan`` for a missing or damaged entry (then the size is unknown)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def ome_pixels(xml: str | None, path: Path):
    """The ``Pixels`` element of the first image in OME-XML metadata, or ``None``."""
    try:
        root = ET.fromstring(xml or "")
    except ET.ParseError as exc:
        raise InputError(f"'{path}' is damaged: its OME metadata are not valid XML ({exc}). {REEXPORT}") from None
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return root.find(f".//{ns}Image/{ns}Pixels")
