"""Rasterise solids made of round cones into a voxel grid, with supersampled boundaries.

A solid is a union of *primitives*: segments from ``a`` to ``b`` (µm, z y x) whose radius
runs linearly from ``ra`` to ``rb`` (a sphere is a segment with ``a == b``). Only the
bounding box of a solid is visited. Voxels whose centre lies deeper than half a voxel
diagonal inside (or outside) are full (empty) at once; only the thin shell of boundary voxels
is sampled on a finer grid of ``supersample_um`` steps, where a linear ramp of the signed
distance over one fine step gives each sample a fractional coverage. The mean over the
samples of a voxel is its occupancy (fraction of the voxel inside the solid).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class Primitives:
    """Round cones: ``a``, ``b`` (m, 3) µm; ``ra``, ``rb`` (m,) µm; optionally a brightness
    ``va``, ``vb`` (m,) at either end, interpolated along each cone like the radius."""

    a: np.ndarray
    b: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    va: np.ndarray | None = None
    vb: np.ndarray | None = None

    @staticmethod
    def of(segments, values=None) -> "Primitives":
        """From an iterable of ``(a, b, ra, rb)`` and optionally one of ``(va, vb)``."""
        a, b, ra, rb = zip(*segments)
        va, vb = (np.asarray(v, float) for v in zip(*values)) if values is not None else (None, None)
        return Primitives(np.asarray(a, float).reshape(-1, 3), np.asarray(b, float).reshape(-1, 3),
                          np.asarray(ra, float), np.asarray(rb, float), va, vb)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = np.maximum(self.ra, self.rb)[:, None]
        lo = np.minimum(self.a - r, self.b - r).min(axis=0)
        hi = np.maximum(self.a + r, self.b + r).max(axis=0)
        return lo, hi


class Raster(NamedTuple):
    """A solid drawn inside its bounding box ``slices`` of the volume."""

    slices: tuple[slice, slice, slice]
    occupancy: np.ndarray  #: float32 fraction of each voxel inside the solid
    membrane: np.ndarray | None  #: fraction inside a shell below the surface, when asked
    value: np.ndarray | None  #: brightness of the nearest cone, when the primitives carry one


def signed_distance(z, y, x, prims: Primitives, *, with_value: bool = False):
    """Signed distance (µm, negative inside) from points given as broadcastable coordinate
    arrays to the union of ``prims``; with ``with_value`` also the value of the nearest cone."""
    out = value = None
    want = with_value and prims.va is not None
    for k, (a, b, ra, rb) in enumerate(zip(prims.a, prims.b, prims.ra, prims.rb)):
        ab = b - a
        l2 = float(ab @ ab)
        pz, py, px = z - a[0], y - a[1], x - a[2]
        if l2 == 0.0:
            t = 0.0
            d = np.sqrt(pz * pz + py * py + px * px) - ra
        else:
            t = np.clip((pz * ab[0] + py * ab[1] + px * ab[2]) / l2, 0.0, 1.0)
            qz, qy, qx = pz - t * ab[0], py - t * ab[1], px - t * ab[2]
            d = np.sqrt(qz * qz + qy * qy + qx * qx) - (ra + t * (rb - ra))
        v = prims.va[k] + t * (prims.vb[k] - prims.va[k]) if want else None
        if out is None:
            out, value = d, v
        else:
            if want:
                value = np.where(d < out, v, value)
            out = np.minimum(out, d)
    return (out, value) if with_value else out


@functools.lru_cache(maxsize=16)
def _fine_offsets(spacing: tuple[float, float, float], supersample_um: float) -> tuple[np.ndarray, float]:
    return fine_offsets(spacing, supersample_um)


def fine_offsets(spacing, supersample_um: float) -> tuple[np.ndarray, float]:
    """Sample offsets (S, 3) µm inside a voxel and the largest fine step (µm)."""
    per_axis, steps = [], []
    for s in spacing:
        n = int(min(10, max(1, np.ceil(s / supersample_um - 1e-9))))
        per_axis.append(((np.arange(n) + 0.5) / n - 0.5) * s)
        steps.append(s / n)
    grid = np.stack(np.meshgrid(*per_axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid, max(steps)


def rasterise(prims: Primitives, shape, spacing, *, supersample_um: float = 0.06,
              membrane_um: float | None = None) -> Raster | None:
    """Occupancy of a solid inside its bounding box (see :class:`Raster`); None when the box
    lies outside the volume. ``membrane_um`` asks for a shell of that thickness too."""
    spacing = np.asarray(spacing, float)
    lo, hi = prims.bounds()
    i0 = np.maximum(np.floor(lo / spacing).astype(int) - 1, 0)
    i1 = np.minimum(np.ceil(hi / spacing).astype(int) + 2, shape)
    if np.any(i1 <= i0):
        return None
    axes = [np.arange(i0[k], i1[k]) * spacing[k] for k in range(3)]
    d, value = signed_distance(axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :],
                               prims, with_value=True)
    offsets, h = _fine_offsets(tuple(float(v) for v in spacing), float(supersample_um))
    band = 0.5 * float(np.linalg.norm(spacing)) + h
    inner = band + (membrane_um or 0.0)
    occ = (d < -band).astype(np.float32)
    edge = (d >= -inner) & (d <= band)
    mem = np.zeros_like(occ) if membrane_um else None
    if edge.any():
        k = np.nonzero(edge)
        pz, py, px = (axes[j][k[j]][:, None] + offsets[None, :, j] for j in range(3))
        df = signed_distance(pz, py, px, prims)
        ramp = np.clip(0.5 - df / h, 0.0, 1.0)
        occ[edge] = ramp.mean(axis=1)
        if membrane_um:
            mem[edge] = (ramp - np.clip(0.5 - (df + membrane_um) / h, 0.0, 1.0)).mean(axis=1)
    slices = tuple(slice(int(i0[j]), int(i1[j])) for j in range(3))
    if value is not None:
        value = np.broadcast_to(value, occ.shape).astype(np.float32)
    return Raster(slices, occ, mem, value)


def densify(points: np.ndarray, step_um: float) -> np.ndarray:
    """The polyline ``points`` (n, 3) with points at most ``step_um`` apart."""
    if len(points) < 2:
        return points
    d = np.linalg.norm(np.diff(points, axis=0), axis=1)
    n = np.maximum(1, np.ceil(d / step_um).astype(int))
    seg = np.repeat(np.arange(len(d)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n)
    return np.vstack([points[seg] + t[:, None] * (points[seg + 1] - points[seg]), points[-1:]])


def axis_voxels(points_um: np.ndarray, shape, spacing) -> tuple[np.ndarray, ...]:
    """Indices of the voxels along the polyline ``points_um`` (n, 3) that lie inside the
    volume; consecutive voxels touch (26-connected)."""
    spacing = np.asarray(spacing, float)
    idx = np.rint(densify(points_um, 0.5 * float(spacing.min())) / spacing).astype(int)
    ok = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    idx = np.unique(idx[ok], axis=0)
    return tuple(idx.T)


def segment_points(a: np.ndarray, b: np.ndarray, step_um: float) -> np.ndarray:
    """Points from ``a`` to ``b`` at most ``step_um`` apart."""
    n = max(2, int(np.ceil(np.linalg.norm(b - a) / step_um)) + 1)
    t = np.linspace(0, 1, n)[:, None]
    return a + t * (b - a)
