"""Chunk files of a local Zarr array: are they all there, and can they be decoded?

Zarr reads a missing chunk file as the array's fill value without a word, so an incompletely
copied stack (or one whose declared shape was enlarged) would be analysed as if it held
zeros. And a damaged chunk fails deep inside a codec, long after the file was opened. This
module lists the chunk files against the declared shape before any analysis, and wraps the
array so that a chunk that cannot be decoded becomes an :class:`~spinequant.errors.InputError`
naming it.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IncompleteDataWarning, InputError

_NUMBERS = re.compile(r"\d+")
_EXAMPLES = 3


@dataclass(frozen=True)
class ChunkCensus:
    """How the chunk files in a folder compare with the chunks an array's shape implies."""

    expected: int
    present: int
    outside: int  # chunk files beyond the declared shape
    missing_examples: tuple[str, ...]
    #: The shape (voxels) the present chunks fill when they form one block at the origin that
    #: is smaller than the array: the sign of a declared shape larger than the data written.
    filled_block: tuple[int, ...] | None

    @property
    def missing(self) -> int:
        return self.expected - self.present


def storage_unit(array) -> tuple[int, ...]:
    """The shape of what is stored as one file: the shard when sharded, else the chunk."""
    return tuple(getattr(array, "shards", None) or array.chunks)


def stored_keys(folder: Path) -> set[str]:
    """Every file below ``folder``, as a key relative to it with ``/`` separators."""
    keys = set()
    for root, _, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        keys.update((rel / f).as_posix() for f in files)
    return keys


def census(keys, shape, unit, encode) -> ChunkCensus:
    """Compare stored ``keys`` with the chunk grid of ``shape`` split into ``unit`` blocks.

    ``encode`` turns chunk coordinates into a key; a stored key counts as a chunk when it
    is exactly what ``encode`` makes of the numbers in it, so metadata files and strays are
    ignored whatever the key encoding.
    """
    grid = tuple(-(-int(s) // int(u)) for s, u in zip(shape, unit))
    inside, outside = set(), 0
    for key in keys:
        coords = tuple(int(n) for n in _NUMBERS.findall(key))
        if len(coords) != len(grid) or encode(coords) != key:
            continue
        if all(c < g for c, g in zip(coords, grid)):
            inside.add(coords)
        else:
            outside += 1
    expected = math.prod(grid)
    # At most len(inside) + _EXAMPLES steps, however large a (damaged) shape declares the grid.
    absent = (c for c in np.ndindex(*grid) if c not in inside) if len(inside) < expected else iter(())
    examples = tuple(encode(c) for c in itertools.islice(absent, _EXAMPLES))
    block = None
    if inside and len(inside) < expected:
        upper = tuple(max(c[i] for c in inside) + 1 for i in range(len(grid)))
        if math.prod(upper) == len(inside):
            block = tuple(min(n * int(u), int(s)) for n, u, s in zip(upper, unit, shape))
    return ChunkCensus(expected, len(inside), outside, examples, block)


def check_complete(array, folder: Path, *, source: str, prefix: str, meta_file: str,
                   allow_incomplete: bool = False, absent_is_background: bool = False) -> list[str]:
    """Refuse an array with chunk files missing or beyond its shape; return notes for ``info``.

    ``absent_is_background``: the array is a label image, whose writers leave out chunks of
    pure background. With ``allow_incomplete`` missing chunks are read as the fill value
    after a warning.
    """
    shape = tuple(int(s) for s in array.shape)
    found = census(stored_keys(folder), shape, storage_unit(array), array.metadata.encode_chunk_key)
    if found.outside:
        raise InputError(
            f"{source}: {found.outside} chunk file(s) of the array '{folder.name}' lie beyond its declared shape "
            f"{shape}, so part of the image would not be read: the declared shape or chunk size in '{meta_file}' is "
            f"probably wrong. Export the image again from the software that wrote it, or correct that file."
        )
    if not found.missing or absent_is_background:
        return []
    fill = array.fill_value
    examples = ", ".join(f"'{prefix}{k}'" for k in found.missing_examples)
    problem = (f"{source}: {found.missing} of {found.expected} chunk files of the image array are missing "
               f"(for example {examples}). Zarr would read each missing chunk as {fill} everywhere, so the "
               f"analysis would run on data that are not in the file.")
    if found.filled_block:
        problem += (f" The chunks present fill only the first {found.filled_block} voxels of the declared shape "
                    f"{shape}: the declared shape may be wrong (see '{meta_file}').")
    elif found.missing > found.expected / 2:
        problem += f" With so many missing, the declared shape {shape} may be wrong (see '{meta_file}')."
    if not allow_incomplete:
        raise InputError(
            f"{problem} If the folder was copied or downloaded, copy it again. If the software that wrote it "
            f"leaves out chunks that hold only the fill value, read it anyway with --allow-incomplete."
        )
    warnings.warn(f"{problem} Reading it anyway, as asked (--allow-incomplete).", IncompleteDataWarning, stacklevel=3)
    return [f"INCOMPLETE: {found.missing} of {found.expected} chunks missing, read as {fill}"]


def codec_names(array) -> list[str]:
    """The codecs the array's chunks pass through, by short name (``["blosc"]``, ``["zstd"]``)."""
    meta = array.metadata
    if meta.zarr_format == 2:
        stages = [*(meta.filters or ()), *([meta.compressor] if meta.compressor else [])]
    else:
        stages = list(meta.codecs)
    names = [getattr(c, "codec_id", None) or type(c).__name__.removesuffix("Codec").lower() for c in stages]
    return [n for n in names if n != "bytes"]


class CheckedChunks:
    """A Zarr array for :func:`dask.array.from_array` whose failing reads name the chunk.

    Reads go through ``array[key]``; any failure to read or decode becomes an
    :class:`InputError`, so it reaches the user as a message whether the data are computed
    by ``info``, the analysis or a folder run.
    """

    def __init__(self, array, folder: Path, *, source: str, prefix: str, meta_file: str):
        self.array = array
        self.meta_file = meta_file
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.folder, self.source, self.prefix = folder, source, prefix
        self.unit = storage_unit(array)
        self.codecs = codec_names(array)
        # blosc trusts the sizes in its header: a truncated chunk decodes to garbage, silently.
        self.check_blosc_length = bool(self.codecs) and self.codecs[-1] == "blosc" and self.unit == tuple(array.chunks)

    def __getitem__(self, key):
        chunk = self._chunk_key(key)
        try:
            if self.check_blosc_length and chunk:
                _check_blosc_length(self.folder / chunk)
            return np.asarray(self.array[key])
        except MemoryError:
            raise
        except Exception as exc:
            raise self._error(chunk, exc) from None

    def _chunk_key(self, key) -> str | None:
        """The key of the chunk (or shard) that ``key`` reads from; dask's index is within one."""
        if not (isinstance(key, tuple) and len(key) == self.ndim):
            return None
        starts = [(k.start or 0) if isinstance(k, slice) else k for k in key]  # dask fuses indexing into ints
        if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in starts):
            return None
        return self.array.metadata.encode_chunk_key(tuple(int(s) // u for s, u in zip(starts, self.unit)))

    def _error(self, chunk: str | None, exc: Exception) -> InputError:
        what = f"chunk '{self.prefix}{chunk}'" if chunk else "a chunk"
        if isinstance(exc, OSError):
            return InputError(
                f"{self.source}: {what} cannot be read ({exc.strerror or exc}). Check that the folder is "
                f"complete and readable (on a network drive, that the connection is up), then try again."
            )
        codecs = "/".join(self.codecs) or "uncompressed"
        return InputError(
            f"{self.source}: {what} is corrupt ({codecs}: {exc}). The file is damaged (probably by an "
            f"interrupted copy or a disk error), or the array metadata in '{self.meta_file}' (data type, "
            f"chunk size) does not describe it: copy the image again from the original."
        )


def _check_blosc_length(file: Path) -> None:
    try:
        with open(file, "rb") as fh:
            header = fh.read(16)
            size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        return  # an absent chunk is the census's business
    if len(header) < 16:
        raise ValueError(f"{size} bytes, shorter than a blosc header")
    compressed = struct.unpack_from("<I", header, 12)[0]
    if compressed != size:
        raise ValueError(f"the blosc header announces {compressed} bytes but the file has {size}")
