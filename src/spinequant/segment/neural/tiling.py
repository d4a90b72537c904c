"""Sliding-window inference over a stack of any size, without seams.

Tiles overlap and are blended with a smooth (squared-sine, i.e. Hann) window, so each voxel
is a weighted mean of the tiles that cover it and tile edges, where convolutions see padding,
weigh almost nothing. The stack is padded reflectively so that its own border is treated like
the inside. Tiles go through the network in batches; memory grows with the batch, not with
the stack (apart from the output maps themselves).

A 2D network sees one plane per tile, plus ``z_context`` planes on each side as extra
channels; a 3D network sees a block of ``tile_depth`` planes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from ..._blank import blank_volume
from ..._half import as_dtype, store

if TYPE_CHECKING:
    import torch

#: Smallest blending weight: keeps voxels at the padded rim (covered by one tile) defined.
_MIN_WEIGHT = 1e-4


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def window(tile: int) -> np.ndarray:
    """1D blending window: sin^2, zero-free, peak 1 in the middle."""
    i = np.arange(tile, dtype=np.float64)
    return np.maximum(np.sin(np.pi * (i + 0.5) / tile) ** 2, _MIN_WEIGHT)


@dataclass(frozen=True)
class AxisTiles:
    """A whole volume's tiles along an axis of ``length`` pixels (y or x): their ``size``, the
    reflected margin ``pad`` (before, after) and their ``starts`` in padded coordinates (tile
    k covers the volume's pixels ``starts[k] - pad[0]`` to that plus ``size``, clipped)."""

    length: int
    size: int
    pad: tuple[int, int]
    starts: tuple[int, ...]

    def coverage(self) -> np.ndarray:
        """Summed blending weight of the tiles at each pixel of the volume (float64)."""
        total = _coverage(self.length + sum(self.pad), self.size, list(self.starts), window(self.size))
        return total[self.pad[0]:self.pad[0] + self.length]


def axis_tiles(length: int, tile_size: int, overlap: int, multiple: int = 1) -> AxisTiles:
    """The tiles :func:`sliding_window` lays along an axis of ``length`` pixels."""
    margin = overlap // 2
    size = fit_tile(length + 2 * margin, tile_size, overlap, multiple)
    pad = (margin, max(margin, size - length - margin))
    return AxisTiles(length, size, pad, tuple(tile_starts(length + sum(pad), size, min(overlap, size // 2))))


def _coverage(length: int, tile: int, starts: list[int], w: np.ndarray) -> np.ndarray:
    total = np.zeros(length)
    for s in starts:
        total[s:s + tile] += w
    return total


def sliding_window(volume: np.ndarray, run, *, n_out: int = 2, tile_size: int = 256,
                   overlap: int = 32, tile_depth: int = 1, z_context: int = 0,
                   multiple: int = 1, z_multiple: int = 1, batch_size: int = 8,
                   progress=False, grid=None, prepare=None, as_list: bool = False,
                   dtype=np.float32, clip: bool = False, sparse=None, wanted=None):
    """Apply ``run`` tile by tile and blend.

    Parameters
    ----------
    volume : (Z, Y, X) float32
    run : callable
        Takes a float32 array of tiles, (B, C, T, T) for a 2D network (C = 2*z_context + 1) or
        (B, 1, D, T, T) for a 3D one, and returns probabilities (B, n_out, [D,] T, T).
    tile_size, overlap : int
        Largest tile edge and overlap in y and x (pixels on the model grid); the tiles are
        resized (see :func:`fit_tile`) to cover the stack with the least waste.
    tile_depth : int
        1 for 2D networks; the block depth (z) for 3D ones.
    grid : ((oy, ox), (NY, NX)), optional
        ``volume`` is the window at (oy, ox) of a larger volume of NY x NX pixels in y/x (and
        the same z planes), as in a block-wise run (:mod:`spinequant.scale`). The tiles are
        then the whole volume's (their size, their places, including the last one shifted
        back to end at the border, the reflected margin at the volume's border, the blending
        weights), and of them those lying wholly inside the window are run. A voxel all of
        whose whole-volume tiles lie inside the window gets the whole volume's value (to
        float32 rounding); voxels no tile inside covers are 0.

    prepare : callable, optional
        Turns a batch of tiles cut from ``volume`` into the network's float32 input (e.g. the
        intensity normalisation, which is elementwise, so a tile gets the values it would have
        in a normalised copy of the whole volume, without that stack-sized copy). Without it,
        the tiles are converted to float32.

    as_list : bool
        Return the maps as a list of separate (Z, Y, X) arrays, so that one can be freed while
        the others are kept.

    progress : bool or callable
        ``True`` shows a progress bar; a callable is called after each batch of tiles with the
        fraction of the tiles done (it may raise to stop, e.g. :class:`spinequant.errors.Cancelled`).

    dtype : float dtype
        Of the returned maps. The blending sums are float32 whatever it is; a 2D network's
        plane is finished (divided by its weights) and stored as ``dtype``
        as soon as its last tile is in, so a float16 result never has a float32 copy of the
        whole stack beside it (a 3D network's sums are kept for a tile's depth of planes).

    clip : bool
        Clip the maps to [0, 1] (in float32, plane by plane for a 2D network).

    sparse : (k, where), optional
        Map ``k`` is kept only where ``where(planes, z)`` (bool) holds and is 0 elsewhere, in a
        volume resident only there (:func:`~spinequant._blank.blank_volume`); ``planes`` are
        the maps of the finished plane ``z`` (a 2D network: an int, ``planes`` (n_out, Y, X))
        or planes ``z`` (a 3D network: a slice, ``planes`` (n_out, n, Y, X)) in float32,
        before they are stored as ``dtype``.

    wanted : callable, optional
        3D networks: ``wanted((z0, z1), (y0, y1), (x0, x1))`` says whether the tile covering
        those voxels of ``volume`` is run. A voxel all of whose tiles are run gets the value it
        would have with every tile run; the others are less (0 where no tile ran): a caller
        that reads the maps only where it wants tiles gets the same values, sooner.

    Returns
    -------
    (n_out, Z, Y, X) blended probabilities (a list of n_out arrays with ``as_list``).
    """
    volume = np.asarray(volume)
    prepare = prepare or (lambda tiles: tiles.astype(np.float32))
    nz, ny, nx = volume.shape
    is3d = tile_depth > 1
    ov = overlap
    # Margin: the stack's border then lies inside tiles, not at their edges.
    m_yx = ov // 2
    (oy, ox), (full_y, full_x) = grid if grid is not None else ((0, 0), (ny, nx))
    if oy < 0 or ox < 0 or oy + ny > full_y or ox + nx > full_x:
        raise ValueError(f"A {ny} x {nx} window at ({oy}, {ox}) is not inside {full_y} x {full_x}.")
    axis_y, axis_x = (axis_tiles(n, tile_size, ov, multiple) for n in (full_y, full_x))
    t_y, t_x = axis_y.size, axis_x.size
    if is3d:
        ov_z = min(ov * tile_depth // max(tile_size, 1), tile_depth // 2)
        m_z = ov_z // 2
        t_z = fit_tile(nz + 2 * m_z, tile_depth, ov_z, z_multiple)
        pad_z = (m_z, max(m_z, t_z - nz - m_z))
    else:
        t_z, ov_z, m_z, pad_z = 1, 0, 0, (z_context, z_context)
    # The whole volume's margins; a window is padded only where it meets the volume's border.
    full_pad_y, full_pad_x = axis_y.pad, axis_x.pad
    pad_y = (full_pad_y[0] if oy == 0 else 0, full_pad_y[1] if oy + ny == full_y else 0)
    pad_x = (full_pad_x[0] if ox == 0 else 0, full_pad_x[1] if ox + nx == full_x else 0)
    # The reflected margins are read from the volume tile by tile (no padded copy).
    padded = _Reflected(volume, (pad_z, pad_y, pad_x))
    pz, py, px = padded.shape
    # The whole volume's tile starts (padded coordinates), shifted to the window's and kept
    # when the tile lies wholly inside it.
    ys = _local_starts(axis_y.starts, oy + m_yx - pad_y[0], t_y, py)
    xs = _local_starts(axis_x.starts, ox + m_yx - pad_x[0], t_x, px)
    wy, wx = window(t_y), window(t_x)
    if is3d:
        zs, wz = tile_starts(pz, t_z, ov_z), window(t_z)
        cov_z = _coverage(pz, t_z, zs, wz)[m_z:m_z + nz]
    else:
        zs, wz = list(range(nz)), np.ones(1)
    w_tile = (wz[:, None, None] * wy[None, :, None] * wx[None, None, :]).astype(np.float32)
    cov_yx = np.outer(_coverage(py, t_y, ys, wy)[pad_y[0]:pad_y[0] + ny],
                      _coverage(px, t_x, xs, wx)[pad_x[0]:pad_x[0] + nx])
    if grid is not None:
        cov_yx[cov_yx == 0] = 1.0            # voxels of the window no tile inside covers
    cov_yx = cov_yx.astype(np.float32)
    # Accumulate straight into the unpadded output: no stack-sized padded copies. A 2D
    # network's sums are kept for one plane at a time (the tiles come plane by plane).
    out = [blank_volume((nz, ny, nx), dtype) if sparse is not None and k == sparse[0]
           else np.zeros((nz, ny, nx), dtype) for k in range(n_out)]
    plane = (_PlaneSums(out, cov_yx, clip, sparse) if not is3d
             else _BandSums(out, cov_yx, cov_z, clip, t_z, sparse))

    positions = list(itertools.product(zs, ys, xs))
    if wanted is not None and is3d:
        def box(z, y, x):
            spans = (_span(z, t_z, m_z, nz)[0], _span(y, t_y, pad_y[0], ny)[0], _span(x, t_x, pad_x[0], nx)[0])
            return [(s.start, s.stop) for s in spans]

        positions = [p for p in positions if wanted(*box(*p))]
    batches = [positions[i:i + batch_size] for i in range(0, len(positions), batch_size)]
    report = progress if callable(progress) else None
    for done, batch in enumerate(tqdm(batches, disable=report is not None or not progress,
                                      desc="segmenting", unit="batch"), start=1):
        if is3d:
            tiles = np.stack([padded.cut((z, y, x), (t_z, t_y, t_x))[None] for z, y, x in batch])
        else:
            tiles = np.stack([padded.cut((z, y, x), (2 * z_context + 1, t_y, t_x)) for z, y, x in batch])
        probs = np.asarray(run(prepare(tiles)), dtype=np.float32)
        for (z, y, x), p in zip(batch, probs):
            (sy, ty), (sx, tx) = _span(y, t_y, pad_y[0], ny), _span(x, t_x, pad_x[0], nx)
            if is3d:
                oz, tz = _span(z, t_z, m_z, nz)
                plane.add(oz, (sy, sx), p[:, tz, ty, tx] * w_tile[tz, ty, tx])
            else:
                plane.add(z, (sy, sx), p[:, ty, tx] * w_tile[0, ty, tx])
        if report is not None:
            report(done / len(batches))
    plane.finish()
    return out if as_list else np.stack(out)


class _BandSums:
    """A 3D network's blending sums (float32) over the planes of one row of tiles (``depth``
    planes from ``z0``): the tiles come ordered by z, so the planes above a tile's first are
    final when it comes; they are divided by their weights and stored as ``out``'s dtype, and
    the float32 sums never take more than a tile's depth of planes per map. ``sparse``: see
    :func:`sliding_window`."""

    def __init__(self, out: list[np.ndarray], cov_yx: np.ndarray, cov_z: np.ndarray, clip: bool, depth: int,
                 sparse=None):
        self.out, self.cov_yx, self.clip, self.sparse = out, cov_yx, clip, sparse
        self.cov_z = cov_z.astype(np.float32)
        self.sums = np.zeros((len(out), depth) + cov_yx.shape, np.float32)
        self.z0 = 0

    def add(self, oz: slice, where: tuple[slice, slice], weighted: np.ndarray) -> None:
        self._flush(oz.start)
        self.sums[(slice(None), slice(oz.start - self.z0, oz.stop - self.z0)) + where] += weighted

    def _flush(self, upto: int) -> None:
        depth = self.sums.shape[1]
        while self.z0 < upto:
            n = min(upto - self.z0, depth)
            done = self.sums[:, :n]
            done /= self.cov_yx
            done /= self.cov_z[self.z0:self.z0 + n, None, None]
            if self.clip:
                np.clip(done, 0.0, 1.0, out=done)
            planes = slice(self.z0, self.z0 + n)
            k = None if self.sparse is None else self.sparse[0]
            for j, (channel, values) in enumerate(zip(self.out, done)):
                if j != k:
                    store(channel[planes], values)
            if k is not None:     # a boolean assignment touches the kept voxels' pages alone
                kept = self.sparse[1](done, planes)
                self.out[k][planes][kept] = as_dtype(done[k][kept], self.out[k].dtype)
            self.sums[:, :depth - n] = self.sums[:, n:].copy()
            self.sums[:, depth - n:] = 0.0
            self.z0 += n

    def finish(self) -> None:
        self._flush(self.out[0].shape[0])


class _PlaneSums:
    """The blending sums of one plane at a time (float32), written into the maps ``out`` (of
    any float dtype) as weighted means when the tiles move on to another plane (they come
    plane by plane): the float32 sums never take more than a plane per map. With ``sparse``
    ((k, where), see :func:`sliding_window`) map ``k`` is written only where ``where`` holds."""

    def __init__(self, out: list[np.ndarray], coverage: np.ndarray, clip: bool, sparse=None):
        self.out, self.coverage, self.clip, self.sparse = out, coverage, clip, sparse
        self.sums = np.zeros((len(out),) + coverage.shape, np.float32)
        self.z = None

    def add(self, z: int, where: tuple[slice, slice], weighted: np.ndarray) -> None:
        if z != self.z:
            self.finish()
            self.z = z
        self.sums[(slice(None),) + where] += weighted

    def finish(self) -> None:
        if self.z is None:
            return
        self.sums /= self.coverage
        if self.clip:
            np.clip(self.sums, 0.0, 1.0, out=self.sums)
        k = None if self.sparse is None else self.sparse[0]
        for j, (channel, values) in enumerate(zip(self.out, self.sums)):
            if j != k:
                store(channel[self.z], values)    # to float16: round to nearest even, as torch does
        if k is not None:
            # Written (and converted) only where kept: a boolean assignment touches those pages alone.
            kept = self.sparse[1](self.sums, self.z)
            self.out[k][self.z][kept] = as_dtype(self.sums[k][kept], self.out[k].dtype)
        self.sums[:] = 0.0
        self.z = None


class _Reflected:
    """``volume`` padded by ``pads`` ((before, after) per axis) as ``np.pad(mode="symmetric")``
    would pad it, read box by box without making the padded copy."""

    def __init__(self, volume: np.ndarray, pads):
        self.volume, self.before = volume, [p[0] for p in pads]
        self.shape = tuple(n + a + b for n, (a, b) in zip(volume.shape, pads))

    def cut(self, start, size) -> np.ndarray:
        """The box of ``size`` at ``start`` (padded coordinates)."""
        index, plain = [], True
        for s, k, b, n in zip(start, size, self.before, self.volume.shape):
            lo = s - b
            if 0 <= lo and lo + k <= n:
                index.append(slice(lo, lo + k))
            else:
                plain = False
                j = np.arange(lo, lo + k) % (2 * n)      # symmetric: ... 1 0 | 0 1 ... n-1 | n-1 ...
                index.append(np.where(j < n, j, 2 * n - 1 - j))
        if plain:
            return self.volume[tuple(index)]
        return self.volume[np.ix_(*[np.arange(i.start, i.stop) if isinstance(i, slice) else i
                                    for i in index])]


def _local_starts(starts: list[int], shift: int, tile: int, length: int) -> list[int]:
    """``starts`` moved by ``-shift``, of the tiles that then lie wholly in ``[0, length)``."""
    return [s - shift for s in starts if s - shift >= 0 and s - shift + tile <= length]


def _span(start: int, size: int, margin: int, n: int) -> tuple[slice, slice]:
    """Output and tile slices of a tile at padded offset ``start`` (padding ``margin`` before
    an axis of length ``n``)."""
    lo = start - margin
    a, b = max(lo, 0), min(lo + size, n)
    return slice(a, max(a, b)), slice(a - lo, max(a, b) - lo)


def fit_tile(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """Tile size (a multiple of ``multiple``, about ``tile`` at most) that covers ``length``
    with the fewest tiles and the least waste: 1056 px with tile 512, overlap 32 -> two tiles
    of 544 rather than three of 512."""
    tile = max(tile, overlap + multiple)
    n = max(1, -(-(length - overlap) // (tile - overlap)))
    return _round_up(-(-(length - overlap) // n) + overlap, multiple)


def _round_up(n: int, k: int) -> int:
    return int(-(-n // k) * k)


def make_runner(net: torch.nn.Module, to_probabilities, *, device: torch.device,
                channels_last: bool = True, compile: bool = False):
    """A ``run`` callable for :func:`sliding_window`: numpy tiles in, probabilities out."""
    import torch

    from .architectures import fuse_for_inference

    net = fuse_for_inference(net).to(device)
    memory_format = None
    if channels_last:
        is3d = any(isinstance(m, torch.nn.Conv3d) for m in net.modules())
        memory_format = torch.channels_last_3d if is3d else torch.channels_last
        net = net.to(memory_format=memory_format)
    if compile:
        net = torch.compile(net)

    def run(tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(tiles).to(device)
            if memory_format is not None:
                x = x.contiguous(memory_format=memory_format)
            return to_probabilities(net(x)).float().cpu().numpy()

    return run
