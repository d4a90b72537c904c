"""Block-wise maps: each block segmented with its halo, only its core written to Zarr.

The numbers a method chooses from the whole image (a network's normalisation percentiles,
the classical thresholds and z elongation) are chosen once for the whole volume
(:func:`volume_levels`) and passed to every block, so that blocks are segmented alike. The
maps are stored as float16 (resolution 0.0005 near 1, half the bytes of float32) in one Zarr
array each, chunked like the block cores, so every block writes only its own chunks. A
marker file per block, written after its maps, lets a re-run skip finished blocks.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import zarr

from .._half import as_dtype
from ..errors import InputError
from ..segment import CLASSICAL, segment_maps
# a volume's percentiles come from an evenly strided sample of this many voxels at most, as
# percentile_range takes them in memory
from ..segment.neural.normalise import MAX_SAMPLE
from .blocks import Block

MAPS = ("dendrite", "spine", "heads")
#: On stacks whose head map joins a 3D partner's, the partner's map alone is stored beside
#: the others (:attr:`~spinequant.segment.SegmentMaps.partner_heads`).
PARTNER = "partner"
MAP_DTYPE = np.float16


def map_compressor():
    """Blosc zstd level 1 with bit shuffling: on float16 maps of the benchmark volume 2.9x
    faster to write and 4x faster to read than Zarr's default (zstd level 0), and smaller (0.66
    of the raw bytes against 0.78; docs/scale.md, "Network tiles run once")."""
    from numcodecs import Blosc

    return Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)

def keep_support(maps: dict, support: dict | None) -> None:
    """Set the float16 ``maps`` (name -> array, changed in place) to 0 where the spine objects
    never read them (``support``: :func:`~spinequant.instances.pipeline.map_support`; None
    keeps all). Most of a volume is background whose maps hold small noisy values (on the
    benchmark volume 99.5 % of the dendrite map lies below 1/255): stored as 0 they compress
    to almost nothing, so the maps written and read back are a fraction of the bytes, and the
    objects are the same (docs/scale.md, "Maps stored where they are read")."""
    if not support:
        return

    def below(array, level):     # float16 in [0, 1]: its bit patterns sort as its values
        return array.view(np.uint16) < np.float16(level).view(np.uint16)

    if maps.get("dendrite") is not None:
        maps["dendrite"][below(maps["dendrite"], support["dendrite"])] = 0
    both = support.get("spine_or_head")
    if both is not None and maps.get("heads") is not None:
        outside = below(maps["spine"], both[0])
        outside &= below(maps["heads"], both[1])
        maps["spine"][outside] = 0
        maps["heads"][outside] = 0
        if maps.get(PARTNER) is not None:
            maps[PARTNER][outside] = 0



def read_window(volume, block: Block) -> np.ndarray:
    """The window of ``block`` from a numpy, Zarr or Dask volume, as a numpy array."""
    return read_region(volume, (slice(None), *block.window))


def read_region(volume, region) -> np.ndarray:
    """``volume[region]`` as a numpy array, read in this process (also when a Dask cluster is
    the default scheduler: the file is open here, its handle is not sent to workers)."""
    part = volume[region]
    return np.asarray(part.compute(scheduler="synchronous") if hasattr(part, "compute") else part)


def strided_sample(volume, max_n: int = MAX_SAMPLE) -> np.ndarray:
    """Every k-th voxel of the flattened volume (k = ceil(size / max_n)): the sample that the
    in-memory percentiles use (the same voxels, in another order). Read tile by tile
    (:func:`read_tiles`)."""
    nz, ny, nx = volume.shape
    k = max(1, -(-nz * ny * nx // max_n))
    return np.concatenate([strided_voxels(tile, volume.shape, rows, cols, k)
                           for (rows, cols), tile in read_tiles(volume)])


def strided_voxels(tile: np.ndarray, shape, rows: slice, cols: slice, k: int, *, with_index: bool = False):
    """The voxels of ``tile`` (all planes of ``rows`` x ``cols`` of a volume of ``shape``)
    whose index in the flattened volume is a multiple of ``k``: a tile's share of
    :func:`strided_sample` (copies, not views of the tile); with ``with_index`` also their
    (z, y, x) in the volume (int32)."""
    nz, ny, nx = (int(n) for n in shape)
    width = cols.stop - cols.start
    r = np.arange(rows.start, rows.stop, dtype=np.int64)
    parts, index = [], []
    for z in range(nz):
        first = ((z * ny + r) * nx + cols.start) % k           # flat index of each row's first column, mod k
        offset = (k - first) % k                               # the row's first column taken
        count = np.maximum(0, -(-(width - offset) // k))
        row = np.repeat(np.arange(len(r)), count)
        step = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        col = np.repeat(offset, count) + step * k
        parts.append(tile[z][row, col])
        if with_index:
            index.append(np.stack([np.full(len(row), z), r[row], cols.start + col]).astype(np.int32))
    if not with_index:
        return np.concatenate(parts)
    return np.concatenate(parts), tuple(np.concatenate(index, axis=1))


#: Voxels of a tile read at once with all planes (:func:`tiles`): 2^26, 1024 x 1024 px of a
#: 48-plane volume. Before, whole bands of 256 rows were read, whose size grows with the
#: volume's width: on the 14,848-px-wide benchmark volume the main process peaked at 3.7 GB
#: streaming the confidence's statistics (docs/scale.md, "The 21 GB run, finished").
TILE_VOXELS = 2 ** 26

#: The y/x chunk of the results and of most OME-Zarr writers; tiles are multiples of it.
TILE_ALIGN = 256


def stored_chunk_px(chunk_px: int) -> int:
    """The y/x edge of the chunks the work folder's maps and labels are stored in for blocks
    of ``chunk_px``: the largest multiple of :data:`~spinequant.scale.config.ALIGN_PX` up to
    :data:`TILE_ALIGN` that divides the block, so each block's core fills whole chunks (the
    workers write their blocks at once) while a block's halo decodes a ring of small chunks
    (one chunk per block made every 1024-px block with its halo decode nine: 7x the voxels
    read; measured in docs/scale.md, "Small chunks in the work folder")."""
    from .config import ALIGN_PX

    return max(d for d in range(ALIGN_PX, min(TILE_ALIGN, chunk_px) + 1, ALIGN_PX) if chunk_px % d == 0)


def tiles(shape, max_voxels: int | None = None):
    """``(rows, cols)`` slices of the y/x tiles (row by row) that cover a (Z, Y, X) volume of
    ``shape``, all planes each: square, a multiple of :data:`TILE_ALIGN` px with at most about
    ``max_voxels`` voxels (default :data:`TILE_VOXELS`), and never under it."""
    nz, ny, nx = (int(n) for n in shape)
    edge = tile_edge(shape, max_voxels)
    for y in range(0, ny, edge):
        for x in range(0, nx, edge):
            yield slice(y, min(y + edge, ny)), slice(x, min(x + edge, nx))


def tile_edge(shape, max_voxels: int | None = None) -> int:
    """The y/x edge (px) of the :func:`tiles` of a volume of ``shape``."""
    max_voxels = TILE_VOXELS if max_voxels is None else max_voxels
    return max(TILE_ALIGN, int(np.sqrt(max_voxels / max(int(shape[0]), 1))) // TILE_ALIGN * TILE_ALIGN)


def read_tiles(volume, max_voxels: int | None = None):
    """``((rows, cols), volume[:, rows, cols])`` for the :func:`tiles` of a volume (numpy)."""
    for rows, cols in tiles(volume.shape, max_voxels):
        yield (rows, cols), read_region(volume, (slice(None), rows, cols))


def volume_levels(volume, spacing, blocks: list[Block], *, method: str, classical_config=None):
    """The whole volume's levels for :func:`~spinequant.segment.segment_maps` (``levels=``) and,
    for a network whose card looks for them, its cell bodies
    (:class:`~spinequant.segment.neural.bodies.CellBodies` or None)."""
    if method != CLASSICAL:
        from ..segment.neural.card import read_card

        return network_levels(volume, spacing, read_card(method).normalisation)
    return classical_volume_levels(volume, spacing, blocks, config=classical_config), None


def network_levels(volume, spacing, normalisation):
    """:func:`~spinequant.segment.neural.bodies.levels_and_bodies` of a whole volume read tile
    by tile: the same sample and the same bins, so the same levels and cell bodies."""
    from ..segment.neural.bodies import (CellBodies, bin_edge, body_cores, coarse_maxima,
                                         levels_outside_bodies, looks_for_bodies)
    from ..segment.neural.normalise import as_config, levels_of

    config = as_config(normalisation)
    if not looks_for_bodies(volume.shape, spacing, config):
        return levels_of(strided_sample(volume), config), None
    nz, ny, nx = volume.shape
    k = max(1, -(-nz * ny * nx // MAX_SAMPLE))
    b = bin_edge(spacing)
    coarse = None
    values, index = [], []
    for (rows, cols), tile in read_tiles(volume):
        v, i = strided_voxels(tile, volume.shape, rows, cols, k, with_index=True)
        values.append(v)
        index.append(i)
        part = coarse_maxima(tile, spacing, edge=b)[0]
        if coarse is None:
            coarse = np.empty((nz, -(-ny // b), -(-nx // b)), part.dtype)
        coarse[:, rows.start // b:rows.start // b + part.shape[1], cols.start // b:cols.start // b + part.shape[2]] = part
    values = np.concatenate(values)
    levels = levels_of(values, config)
    coarse_spacing = (float(spacing[0]), float(spacing[1]) * b, float(spacing[2]) * b)
    if body_cores(coarse, coarse_spacing, levels, config.body_radius_um) is None:
        return levels, None
    z, y, x = (np.concatenate(c) for c in zip(*index))
    levels, cores = levels_outside_bodies(values, (z, y // b, x // b), coarse, coarse_spacing, config)
    return levels, CellBodies.from_cores(cores, coarse_spacing, config.body_radius_um, b)


def classical_volume_levels(volume, spacing, blocks: list[Block], *, config=None):
    """Classical thresholds and z elongations of a whole volume, block by block.

    Thresholds come from the voxels of every core that :func:`noise_level` and
    :func:`auto_threshold` would sample from the whole flattened volume (every k-th), so they
    equal the in-memory ones; the elongations from chord counts summed over the cores (two
    passes: the candidate's, then the trimmed foreground's, which depends on the first).
    """
    from ..segment.classical import (ClassicalConfig, chord_counts, classical_candidate,
                                     classical_foreground, classical_signal, classical_thresholds,
                                     elongation_from_counts)
    from ..segment.classical.preprocess import NOISE_SAMPLE, THRESHOLD_SAMPLE

    config = config or ClassicalConfig()
    nz, ny, nx = volume.shape
    size = nz * ny * nx
    strides = [size // n if size > n else 1 for n in (NOISE_SAMPLE, THRESHOLD_SAMPLE)]

    def cores(step):
        for block in blocks:
            signal = classical_signal(read_window(volume, block), spacing=spacing, config=config)
            yield step(signal, block)

    def sample(signal, block):
        core = signal[(slice(None), *block.core_in_window)]
        z, y, x = np.ogrid[:nz, block.core[0], block.core[1]]
        flat = (z * ny + y) * nx + x
        return [core[flat % k == 0] for k in strides]

    noise_part, threshold_part = zip(*cores(sample))
    levels = classical_thresholds(np.concatenate(noise_part), config,
                                  threshold_values=np.concatenate(threshold_part))
    auto = config.z_elongation == "auto"
    if not auto:
        e = float(config.z_elongation)
        return replace(levels, candidate_z_elongation=e, z_elongation=e)

    def candidate_counts(signal, block):
        return chord_counts(classical_candidate(signal, levels), (slice(None), *block.core_in_window))

    first = elongation_from_counts(sum(cores(candidate_counts)), spacing, nz)
    levels = replace(levels, candidate_z_elongation=first, z_elongation=first)

    def foreground_counts(signal, block):
        fg = classical_foreground(signal, classical_candidate(signal, levels), spacing=spacing,
                                  levels=levels, config=config)
        return chord_counts(fg, (slice(None), *block.core_in_window))

    return replace(levels, z_elongation=elongation_from_counts(sum(cores(foreground_counts)), spacing, nz))


def open_maps(path, shape, *, chunk_px: int, heads: bool, fingerprint: dict, partner: bool = False):
    """The Zarr group of block maps at ``path``: reopened when it was made for the same run
    (``fingerprint``: shape, method, levels, blocks, and the maps held: the head map with
    ``heads``, the 3D partner's head map with ``partner``), else made anew (finished blocks of
    an other run are not reused)."""
    path = Path(path)
    names = MAPS[:3 if heads else 2] + ((PARTNER,) if heads and partner else ())
    fingerprint = {**fingerprint, "maps": list(names)}
    if path.exists():
        group = zarr.open_group(str(path), mode="r+")
        if dict(group.attrs).get("fingerprint") == fingerprint:
            return group
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    for name in names:
        edge = stored_chunk_px(chunk_px)
        group.create_array(name, shape=shape, dtype=MAP_DTYPE, chunks=(shape[0], edge, edge),
                           fill_value=0, config={"write_empty_chunks": True}, compressors=map_compressor())
    group.attrs["fingerprint"] = fingerprint
    (path / "done").mkdir(exist_ok=True)
    return group


def map_fingerprint(shape, spacing, method: str, levels, chunk_px: int, halo: int, engine: str,
                    orientations: int = 1) -> dict:
    """What decides the block maps: a re-run reuses finished blocks only when all agree."""
    levels = asdict(levels) if hasattr(levels, "__dataclass_fields__") else [float(v) for v in levels]
    return {"shape": list(shape), "spacing_um": [float(s) for s in spacing], "method": method, "engine": engine,
            "levels": levels, "chunk_px": int(chunk_px), "halo_px": int(halo), "orientations": int(orientations),
            "weights": model_weights(method)}


def model_weights(method: str) -> list[str]:
    """The sha256 of the network's weights and of its 3D partners' (none for the classical
    method): maps made with other weights are not reused."""
    if method == CLASSICAL:
        return []
    from ..segment.neural.card import read_card
    from ..segment.neural.stack_heads import stack_heads_models

    card = read_card(method)
    return [card.sha256] + [read_card(name).sha256 for name in stack_heads_models(card)]


def block_done(group, block: Block) -> bool:
    return (Path(group.store.root) / "done" / block.name).exists()


def write_block_maps(volume, spacing, block: Block, group, *, method: str, levels, classical_config=None,
                     engine: str = "auto", support: dict | None = None, orientations: int = 1) -> dict:
    """Segment ``block``'s window, write its core into ``group`` (0 outside ``support``, see
    :func:`keep_support`) and mark the block done.

    Returns the method's diagnostics for the block.
    """
    window = read_window(volume, block)
    # A network runs the whole volume's tiles (those inside the window), not its own.
    grid = None if method == CLASSICAL else ((block.window[0].start, block.window[1].start), volume.shape[1:])
    maps = segment_maps(window, spacing=spacing, method=method, classical_config=classical_config,
                        engine=engine, levels=levels, grid=grid, orientations=orientations)
    core = (slice(None), *block.core_in_window)
    out = (slice(None), *block.core)
    cores = {name: as_dtype(data[core], MAP_DTYPE)
             for name, data in (("dendrite", maps.dendrite), ("spine", maps.spine), ("heads", maps.heads),
                                (PARTNER, maps.partner_heads))
             if data is not None}
    for name in cores:
        if name not in group:
            raise InputError(f"The block maps in '{group.store.root}' have no '{name}' map.")
    keep_support(cores, support)
    for name, data in cores.items():
        group[name][out] = data
    (Path(group.store.root) / "done" / block.name).touch()
    return maps.diagnostics


def read_maps(group, block: Block) -> dict:
    """The maps of ``block``'s window, read back from ``group`` in their stored type (float16).

    Not converted to float32: the spine objects compare the maps with their thresholds in the
    maps' own type, and in memory the network's maps are float16, so a value that is the
    float16 of a threshold (0.1 -> 0.09998) passes it there; as float32 it did not, and a
    chunked run of 48 x 3072 x 3072 lost one spine of 2,567 (docs/scale.md, session 22)."""
    region = (slice(None), *block.window)
    return {name: np.asarray(group[name][region]) for name in (*MAPS, PARTNER) if name in group}
