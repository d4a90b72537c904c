"""A 2D network's tiles over a whole volume, run a chosen few at a time (block-wise runs).

:func:`~.tiling.sliding_window` blends the tiles of a stack: every voxel is the weighted sum
of the tiles covering it, divided by the summed weights. A block-wise run
(:mod:`spinequant.scale.tile_maps`) splits that sum instead of running every tile that
touches a block: each block runs the whole volume's tiles it is given (those whose centre
lies in its core) once, hands on their weighted sums plane by plane (:func:`run_tile_sums`),
and a block's maps are the sums of all blocks added together and divided by the whole
volume's weights (:func:`blend_sums`, :func:`blending_weights`): the same tiles, the same weights and the same
division as in memory, so the same values to float32 rounding (the sums are added in
another order).

Everything here is on the model grid (the volume resampled to the model's voxel size, as
:func:`~.predict.predict` does; the same pixels as the input where no resampling is needed).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import specs
from .normalise import normalise
from .resample import _sources, model_shape, resize_window
from .tiling import AxisTiles, _Reflected, _span, axis_tiles, window


@dataclass(frozen=True)
class VolumeTiles:
    """A 2D network's tiles over a whole (Z, Y, X) volume of ``shape`` (input pixels), on the
    model grid of ``model_shape``: along y and x (:class:`~.tiling.AxisTiles`); every tile
    is run on every model plane, with ``z_context`` planes on each side."""

    shape: tuple[int, int, int]
    model_shape: tuple[int, int, int]
    y: AxisTiles
    x: AxisTiles
    z_context: int
    n_out: int

    @property
    def resampled(self) -> bool:
        return self.model_shape != self.shape

    def axis(self, k: int) -> AxisTiles:
        return (self.y, self.x)[k - 1]

    def tile_span(self, k: int, i: int) -> tuple[int, int]:
        """Model pixels of axis ``k`` (1: y, 2: x) covered by tile ``i``, clipped to the volume."""
        a = self.axis(k)
        lo = a.starts[i] - a.pad[0]
        return max(lo, 0), min(lo + a.size, a.length)

    def tile_centre(self, k: int, i: int) -> float:
        """Input pixel coordinate (continuous, 0 at the first pixel's edge) of tile ``i``'s centre."""
        a = self.axis(k)
        centre = a.starts[i] - a.pad[0] + a.size / 2
        return centre * self.shape[k] / self.model_shape[k]

    def input_span(self, k: int, lo: int, hi: int) -> tuple[int, int]:
        """Input pixels of axis ``k`` that the model pixels ``[lo, hi)`` are interpolated from."""
        if self.shape[k] == self.model_shape[k]:
            return lo, hi
        i0, i1, _ = _sources(self.shape[k], self.model_shape[k], np.arange(lo, hi))
        return int(i0.min()), int(i1.max()) + 1

    def model_span(self, k: int, lo: int, hi: int) -> tuple[int, int]:
        """Model pixels of axis ``k`` that the input pixels ``[lo, hi)`` are interpolated from
        when the maps are resampled back."""
        if self.shape[k] == self.model_shape[k]:
            return lo, hi
        i0, i1, _ = _sources(self.model_shape[k], self.shape[k], np.arange(lo, hi))
        return int(i0.min()), int(i1.max()) + 1


def volume_tiles(shape, spacing, card) -> VolumeTiles:
    """The tiles :func:`~.predict.predict` lays over a whole volume for a 2D network ``card``."""
    from .predict import target_spacing

    spec = specs.architecture(card.architecture)
    if spec["kind"] != "dual_unet2d":
        raise ValueError(f"Tile sums are for 2D networks; '{card.name}' is a {spec['kind']}.")
    shape = tuple(int(n) for n in shape)
    model = model_shape(shape, spacing, target_spacing(card, spec))
    y, x = (axis_tiles(n, card.tile_size, card.tile_overlap, specs.multiple_of(spec)) for n in model[1:])
    return VolumeTiles(shape, model, y, x, int(spec.get("z_context", 0)), specs.n_outputs(spec))


def tiles_window(tiles: VolumeTiles, ys: list[int], xs: list[int]):
    """For the tiles ``ys`` x ``xs`` (indices along y and x): the model pixels they cover
    (``(y0, y1), (x0, x1)``) and the input pixels those are made from."""
    spans = [(min(tiles.tile_span(k, i)[0] for i in idx), max(tiles.tile_span(k, i)[1] for i in idx))
             for k, idx in ((1, ys), (2, xs))]
    return spans, [tiles.input_span(k, *s) for k, s in zip((1, 2), spans)]


def run_tile_sums(image, tiles: VolumeTiles, ys: list[int], xs: list[int], run, *, value_range,
                  normalisation, sink, batch_size: int = 1) -> int:
    """Run the tiles ``ys`` x ``xs`` of ``tiles`` (indices along y and x) on every plane.

    ``image`` is the input window of :func:`tiles_window` (all planes, the input pixels its
    second value names). ``sink(z, (y0, x0), sums)`` gets, plane by plane of the model grid,
    the float32 weighted sums (n_out, h, w) of those tiles over the model pixels they cover,
    whose first pixel is ``(y0, x0)``. Returns the number of tiles run.
    """
    (fy, fx), (iy, ix) = tiles_window(tiles, ys, xs)
    prepare = None
    if tiles.resampled:
        mz = tiles.model_shape[0]
        x = resize_window(normalise(image, config=normalisation, value_range=value_range), tiles.shape,
                          tiles.model_shape, (0, iy[0], ix[0]), [(0, mz), fy, fx])
    else:
        x = image
        prepare = lambda t: normalise(t, config=normalisation, value_range=value_range)  # noqa: E731
    nz, ny, nx = x.shape
    pads, starts = [], []
    for axis, (lo, hi), idx in ((tiles.y, fy, ys), (tiles.x, fx, xs)):
        pad = (axis.pad[0] if lo == 0 else 0, axis.pad[1] if hi == axis.length else 0)
        pads.append(pad)
        starts.append([axis.starts[i] - axis.pad[0] - lo + pad[0] for i in idx])
    c = tiles.z_context
    padded = _Reflected(x, ((c, c), *pads))
    t_y, t_x = tiles.y.size, tiles.x.size
    w_tile = np.outer(window(t_y), window(t_x)).astype(np.float32)
    sums = np.zeros((tiles.n_out, ny, nx), np.float32)
    positions = list(itertools.product(range(nz), *starts))
    current = None
    for b in range(0, len(positions), batch_size):
        batch = positions[b:b + batch_size]
        cut = np.stack([padded.cut((z, y, x_), (2 * c + 1, t_y, t_x)) for z, y, x_ in batch])
        probs = np.asarray(run(prepare(cut) if prepare else cut.astype(np.float32)), dtype=np.float32)
        for (z, y, x_), p in zip(batch, probs):
            if z != current:
                if current is not None:
                    sink(current, (fy[0], fx[0]), sums)
                    sums[:] = 0.0
                current = z
            (sy, ty), (sx, tx) = _span(y, t_y, pads[0][0], ny), _span(x_, t_x, pads[1][0], nx)
            sums[:, sy, sx] += p[:, ty, tx] * w_tile[ty, tx]
    if current is not None:
        sink(current, (fy[0], fx[0]), sums)
    return len(positions)


def blending_weights(tiles: VolumeTiles, span_y: tuple[int, int], span_x: tuple[int, int]) -> np.ndarray:
    """The whole volume's summed blending weights over model pixels ``span_y`` x ``span_x``
    (float32, as :func:`~.tiling.sliding_window` divides by them)."""
    return np.outer(tiles.y.coverage()[slice(*span_y)], tiles.x.coverage()[slice(*span_x)]).astype(np.float32)


def blend_sums(sums: np.ndarray, weights: np.ndarray, *, clip: bool) -> np.ndarray:
    """``sums`` (..., h, w: summed weighted tiles) divided in place by ``weights``
    (:func:`blending_weights`), clipped to [0, 1] with ``clip``."""
    sums /= weights
    if clip:
        np.clip(sums, 0.0, 1.0, out=sums)
    return sums
