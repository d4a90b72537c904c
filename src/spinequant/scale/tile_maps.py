"""A 2D network's block maps with every tile run once (docs/scale.md, "Network tiles run once").

The network's maps depend on where its tiles fall, so a block's maps are made from the whole
volume's tiles (:mod:`spinequant.segment.neural.tile_sums`). Running, for each block, every
tile that covers its core ran the tiles that straddle a core boundary once per block they
touch (1.78x the volume's tiles with 1024-px blocks on a 3072-px plane, 2.25x with 512-px
blocks on 1024 px). Here each tile is run once, in two steps:

1. **Tile sums** (:func:`write_tile_sums`, a task per block): a block runs the tiles whose
   centre lies in its core, on the input pixels they need (its core and about half a tile
   around it), and writes their weighted sums plane by plane, cut into one piece per block
   core they reach (``maps.zarr/tile_sums/<core>/<block>``, float32 Zarr arrays: a task writes
   only its own pieces, so concurrent workers never write the same chunk).
2. **Blend** (:func:`blend_block_maps`, a task per block, after the tile sums of the blocks
   whose pieces it reads): a core's pieces are added in block order (the same result whatever
   the number of workers or the order they finish in), divided by the whole volume's blending
   weights, clipped (resampled back first when the model's voxel size differs), and written as
   the core's float16 maps, with the block's marker; then its pieces are deleted.

Resume: a block's tile sums have a marker (``tile_sums/done/<block>``); a re-run skips the
blocks marked done, and runs the tile sums only of blocks whose pieces an unfinished core
still needs. A task run again (a worker lost) finds its marker and returns.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from .._half import as_dtype, store
from ..errors import InputError
from .blocks import Block
from .execute import task_record
from .maps import MAP_DTYPE, MAPS, PARTNER, block_done, keep_support, read_region

#: Folder of the pieces inside ``maps.zarr``.
TILE_SUMS = "tile_sums"


def uses_tile_sums(method: str) -> bool:
    """Whether ``method``'s block maps are made with each tile run once: 2D networks (a 3D
    network's tiles span planes; the classical method has no tiles)."""
    from ..segment import CLASSICAL

    if method == CLASSICAL:
        return False
    from ..segment.neural import specs
    from ..segment.neural.card import read_card

    return specs.architecture(read_card(method).architecture)["kind"] == "dual_unet2d"


@dataclass(frozen=True)
class TilePlan:
    """Which block runs which of the volume's tiles, and which pieces of sums go where.

    ``tiles``: the volume's :class:`~spinequant.segment.neural.tile_sums.VolumeTiles`;
    ``owned[name]``: the tile indices along y and x that block ``name`` runs;
    ``spans[name]``: the model pixels (y, x) its core's maps are made from;
    ``covers[name]``: the model pixels its tiles cover (None: it runs no tile).
    """

    tiles: object
    blocks: tuple[Block, ...]
    owned: dict
    spans: dict
    covers: dict
    #: ``pieces[dest]``: ``(source, y span, x span)``, the model pixels of ``dest``'s span that
    #: each block's tiles reach, in block order.
    pieces: dict

    def destinations(self, source: str) -> list[str]:
        """The blocks whose maps need pieces from ``source``'s tiles."""
        return [dest for dest, parts in self.pieces.items() if any(p[0] == source for p in parts)]

    @property
    def n_tiles(self) -> int:
        """Tiles run over the whole volume (one plane counts each tile once)."""
        return len(self.tiles.y.starts) * len(self.tiles.x.starts) * self.tiles.model_shape[0]


def tile_plan(shape, spacing, method: str, blocks: list[Block]) -> TilePlan:
    """Each tile goes to the block whose core holds its centre (in y and x separately)."""
    from ..segment.neural.card import read_card
    from ..segment.neural.tile_sums import volume_tiles

    tiles = volume_tiles(shape, spacing, read_card(method))
    owners = []
    for k in (1, 2):
        starts = sorted({b.core[k - 1].start for b in blocks})
        n = len(tiles.axis(k).starts)
        centre = [min(max(int(tiles.tile_centre(k, i)), 0), tiles.shape[k] - 1) for i in range(n)]
        owners.append({s: [i for i in range(n) if _row(starts, centre[i]) == s] for s in starts})
    owned, spans, covers = {}, {}, {}
    for b in blocks:
        ys, xs = owners[0][b.core[0].start], owners[1][b.core[1].start]
        owned[b.name] = (ys, xs)
        spans[b.name] = tuple(tiles.model_span(k, c.start, c.stop) for k, c in zip((1, 2), b.core))
        covers[b.name] = None if not ys or not xs else tuple(
            (min(tiles.tile_span(k, i)[0] for i in idx), max(tiles.tile_span(k, i)[1] for i in idx))
            for k, idx in ((1, ys), (2, xs)))
    # a tile reaches half a tile past its owner's core: only blocks that near can share pixels
    chunk = min(b.core[k].stop - b.core[k].start for b in blocks[:1] for k in (0, 1))
    tile_px = max(a.size * n / m for a, n, m in zip((tiles.y, tiles.x), tiles.shape[1:], tiles.model_shape[1:]))
    reach = 2 + int(tile_px // chunk)
    return TilePlan(tiles, tuple(blocks), owned, spans, covers, _pieces(blocks, spans, covers, reach))


def _pieces(blocks, spans, covers, reach: int) -> dict:
    """For each core, the blocks (at most ``reach`` blocks away) whose tiles reach the model
    pixels it is made from, and where."""
    by_index = {b.index: b for b in blocks}
    near = [(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
    out = {}
    for dest in blocks:
        out[dest.name] = []
        for b in (by_index.get((dest.index[0] + dy, dest.index[1] + dx)) for dy, dx in near):
            if b is None or covers[b.name] is None:
                continue
            parts = [(max(c[0], s[0]), min(c[1], s[1])) for c, s in zip(covers[b.name], spans[dest.name])]
            if all(lo < hi for lo, hi in parts):
                out[dest.name].append((b.name, *parts))
    return out


def _row(starts: list[int], pixel: int) -> int:
    """The core start (of ``starts``, sorted) of the core that holds ``pixel``."""
    return max(s for s in starts if s <= pixel)


def tile_sums_done(root, name: str) -> bool:
    return (Path(root) / TILE_SUMS / "done" / name).exists()


def piece_path(root, dest: str, source: str) -> Path:
    return Path(root) / TILE_SUMS / dest / source


def write_tile_sums(volume, plan: TilePlan, block: Block, root, *, method: str, levels, engine: str,
                    skip=frozenset(), orientations: int = 1) -> dict:
    """Run ``block``'s tiles and write their sums' pieces (not those for the cores in ``skip``,
    whose maps are done). Returns ``{"tiles": tiles run, "write_s": seconds spent writing
    the pieces}`` (0 tiles when already done)."""
    from ..segment.neural._malloc import while_predicting
    from ..segment.neural.orientations import oriented
    from ..segment.neural.predict import default_batch, tile_runner
    from ..segment.neural.tile_sums import run_tile_sums, tiles_window

    if tile_sums_done(root, block.name):
        return {"tiles": 0, "write_s": 0.0}
    ys, xs = plan.owned[block.name]
    n = 0
    if ys and xs:
        tiles = plan.tiles
        shape = (tiles.model_shape[0], tiles.n_out)
        targets = []
        for dest in plan.destinations(block.name):
            if dest in skip:
                continue
            _, py, px = next(p for p in plan.pieces[dest] if p[0] == block.name)
            size = (py[1] - py[0], px[1] - px[0])
            # uncompressed: written once, read once, deleted; zstd took 5x longer to write
            array = zarr.open_array(str(piece_path(root, dest, block.name)), mode="w", zarr_format=2,
                                    shape=shape + size, chunks=(1, tiles.n_out) + size, dtype=np.float32,
                                    compressor=None)
            targets.append((array, py, px))
        _, (iy, ix) = tiles_window(tiles, ys, xs)
        image = read_region(volume, (slice(None), slice(*iy), slice(*ix)))

        writing = []

        def write(z, origin, sums):
            t = time.perf_counter()
            for array, py, px in targets:
                array[z] = sums[:, py[0] - origin[0]:py[1] - origin[0], px[0] - origin[1]:px[1] - origin[1]]
            writing.append(time.perf_counter() - t)

        # a plane's pieces are written in a thread while the network runs the next plane
        # (one plane in flight: a copy of its sums)
        pending = []

        def sink(z, origin, sums):
            if pending:
                pending.pop().result()
            pending.append(writer.submit(write, z, origin, sums.copy()))

        run, card = tile_runner(engine, method)
        run = oriented(run, orientations)
        with while_predicting(), ThreadPoolExecutor(1) as writer:
            n = run_tile_sums(image, tiles, ys, xs, run, value_range=levels, normalisation=card.normalisation,
                              sink=sink, batch_size=default_batch(engine))
            for job in pending:
                job.result()
    done = Path(root) / TILE_SUMS / "done"
    done.mkdir(parents=True, exist_ok=True)
    (done / block.name).touch()
    return {"tiles": n, "write_s": round(sum(writing), 3) if n else 0.0}


def blend_block_maps(plan: TilePlan, block: Block, group, support: dict | None = None, partner=None) -> None:
    """Add up the pieces of ``block``'s core, divide, write its float16 maps (0 outside
    ``support``, see :func:`~spinequant.scale.maps.keep_support`) and its marker, then delete
    its pieces. With a ``partner`` (:class:`~.stack_heads.Partner`) its head map joins the
    2D network's (:func:`~.stack_heads.joined_core_heads`). Nothing to do when the block is
    marked done."""
    from ..segment.neural.resample import resize_window
    from ..segment.neural.tile_sums import blend_sums, blending_weights

    if block_done(group, block):
        return
    root = Path(group.store.root)
    tiles = plan.tiles
    sy, sx = plan.spans[block.name]
    pieces = [(zarr.open_array(str(piece_path(root, block.name, src)), mode="r"), py, px)
              for src, py, px in plan.pieces[block.name]]
    names = MAPS[:tiles.n_out]
    for name in names:
        if name not in group:
            raise InputError(f"The block maps in '{root}' have no '{name}' map.")
    mz, h, w = tiles.model_shape[0], sy[1] - sy[0], sx[1] - sx[0]
    weights = blending_weights(tiles, sy, sx)
    sums = np.zeros((tiles.n_out, mz, h, w) if tiles.resampled else (tiles.n_out, h, w), np.float32)
    maps = [np.empty((mz, h, w), MAP_DTYPE) for _ in names] if not tiles.resampled else None
    for z in range(mz):
        plane = sums[:, z] if tiles.resampled else sums
        if not tiles.resampled:
            plane[:] = 0.0
        for array, py, px in pieces:
            plane[:, py[0] - sy[0]:py[1] - sy[0], px[0] - sx[0]:px[1] - sx[0]] += array[z]
        if not tiles.resampled:
            blend_sums(plane, weights, clip=True)
            for m, values in zip(maps, plane):
                store(m[z], values)
    if tiles.resampled:
        blend_sums(sums, weights, clip=False)
        core = [(0, tiles.shape[0])] + [(c.start, c.stop) for c in block.core]
        maps = []
        for k in range(tiles.n_out):
            m = resize_window(sums[k], tiles.model_shape, tiles.shape, (0, sy[0], sx[0]), core)
            maps.append(as_dtype(np.clip(m, 0.0, 1.0, out=m), MAP_DTYPE))
        del sums
    out = (slice(None), *block.core)
    maps = dict(zip(names, maps))
    if partner is not None and "heads" in maps:
        from .stack_heads import joined_core_heads

        if PARTNER not in group:
            raise InputError(f"The block maps in '{root}' have no '{PARTNER}' map.")
        maps["heads"], maps[PARTNER] = joined_core_heads(partner, block, maps["heads"], maps["spine"],
                                                         (support or {}).get("spine_or_head"))
    keep_support(maps, support)
    for name, m in maps.items():
        group[name][out] = m
    (root / "done" / block.name).touch()
    shutil.rmtree(root / TILE_SUMS / block.name, ignore_errors=True)


def run_tile_maps(runner, volume, spacing, plan: TilePlan, group, *, method: str, levels, engine: str,
                  progress=None, support: dict | None = None, orientations: int = 1) -> dict:
    """The maps of every block not done yet, each tile run once (on ``runner``, a
    :class:`~spinequant.scale.execute.BlockRunner`), stored 0 outside ``support``; the head
    map joined by the 3D partner the model's card names, if any (:mod:`.stack_heads`).
    Returns the blocks' task records (``tiles``: with each block's tiles run) and the blocks
    resumed."""
    from .stack_heads import partner_of

    root = str(group.store.root)
    done = frozenset(b.name for b in plan.blocks if block_done(group, b))
    dests = [b for b in plan.blocks if b.name not in done]
    sources = [b for b in plan.blocks if not tile_sums_done(root, b.name)
               and any(d not in done for d in plan.destinations(b.name))]
    index = {b.name: i for i, b in enumerate(sources)}
    needs = [[index[p[0]] for p in plan.pieces[d.name] if p[0] in index] for d in dests]
    first = [(volume, plan, b, root, method, levels, engine, done, orientations) for b in sources]
    partner = partner_of(volume, spacing, method, levels, engine, orientations)
    second = [(plan, b, root, support, partner) for b in dests]
    sums, blends = runner.map_two(_tile_sums_job, first, _blend_job, second, needs=needs,
                                  names=([b.name for b in sources], [b.name for b in dests]),
                                  stage="maps", progress=progress)
    return {"tile_sums": sums, "blend": blends, "resumed": len(done)}


def _tile_sums_job(job) -> dict:
    """One block's tiles (a task)."""
    volume, plan, block, root, method, levels, engine, done, orientations = job
    t = time.perf_counter()
    return {**write_tile_sums(volume, plan, block, root, method=method, levels=levels, engine=engine,
                              skip=done, orientations=orientations), **task_record(t)}


def _blend_job(job) -> dict:
    """One block's maps from its pieces (a task)."""
    plan, block, root, support, partner = job
    t = time.perf_counter()
    blend_block_maps(plan, block, zarr.open_group(root, mode="r+"), support, partner)
    return task_record(t)
