"""The dendritic shaft, reconstructed from its centreline and a robust local radius.

Along the centreline the inscribed radius is the shaft's radius, except where a protrusion
bulges out (a stubby spine, a neck's base). The median of the radius over a stretch of
centreline ignores those bulges, so the union of balls of that radius around the
centreline is the shaft without its spines; the rest of the foreground is protrusions.
Distances are Euclidean in µm (``edt``), so anisotropic voxels are exact.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy.spatial import cKDTree

from .centreline import centreline


def inside_distance(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance in µm from each foreground voxel to the background (0 outside)."""
    return edt.edt(np.ascontiguousarray(mask, dtype=np.uint8), anisotropy=tuple(float(s) for s in spacing),
                   black_border=False, parallel=0).astype(np.float32)


def outside_distance(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance in µm from each voxel to the nearest voxel of ``mask``."""
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    return edt.edt(np.ascontiguousarray(~mask, dtype=np.uint8), anisotropy=tuple(float(s) for s in spacing),
                   black_border=False, parallel=0).astype(np.float32)


def run_lengths(mask: np.ndarray, points: np.ndarray, axis: int) -> np.ndarray:
    """Length (voxels) of the run of ``mask`` through each point along ``axis``."""
    out = np.empty(len(points), dtype=np.int64)
    for k, p in enumerate(points):
        index = list(p)
        index[axis] = slice(None)
        line = mask[tuple(index)]
        i = p[axis]
        lo = i - (np.flatnonzero(~line[:i][::-1])[:1].tolist() or [i])[0]
        hi = i + (np.flatnonzero(~line[i:])[:1].tolist() or [len(line) - i])[0]
        out[k] = hi - lo
    return out


def shaft_z_stretch(mask: np.ndarray, points: np.ndarray, spacing, *, limits=(0.5, 3.0)) -> float:
    """Median ratio, over centreline points, of the shaft's z extent to its narrower y/x extent
    (1 for a 2D mask)."""
    if len(points) == 0 or mask.ndim == 2 or mask.shape[0] < 3:
        return 1.0
    sample = points[:: max(1, len(points) // 2000)]
    z, y, x = (run_lengths(mask, sample, a) * s for a, s in enumerate(spacing))
    return float(np.clip(np.median(z / np.minimum(y, x)), *limits))


def shaft_mask(foreground: np.ndarray, *, spacing, max_spine_length_um: float, min_length_um: float,
               radius_window_um: float, radius_margin: float, radius_step: float = 1.1):
    """Return (shaft mask, centreline mask, centreline radii in µm) for a foreground mask.

    Parameters
    ----------
    foreground : bool array (Z, Y, X), or (Y, X) for a 2D image
    spacing : voxel size (z, y, x), or (y, x), in µm of the space shapes are compared in
    max_spine_length_um : skeleton side branches up to this long are spines, not dendrite
    min_length_um : centreline pieces shorter than this are not dendrite
    radius_window_um : the shaft radius at a centreline point is the median inscribed radius
        of the centreline within this distance
    radius_margin : balls of ``radius_margin`` times that radius make the shaft
    radius_step : radii are grouped in geometric steps of this ratio (one distance transform
        per group)
    """
    line = centreline(foreground, spacing=spacing, max_spine_length_um=max_spine_length_um,
                      min_length_um=min_length_um)
    points = np.argwhere(line)
    if len(points) == 0:
        return np.zeros_like(foreground), line, np.zeros(0, np.float32)
    # The shaft's own cross-section fixes how much longer it is along z than across; shapes
    # are rebuilt in a space where that cross-section is round.
    stretch = shaft_z_stretch(foreground, points, spacing)
    spacing = (spacing[0] / stretch, *spacing[1:]) if foreground.ndim == 3 else tuple(spacing)
    d_in = inside_distance(foreground, spacing)
    radius_at = d_in[tuple(points.T)]
    phys = points * np.asarray(spacing, dtype=float)
    tree = cKDTree(phys)
    groups = tree.query_ball_point(phys, r=radius_window_um)
    radii = np.array([np.median(radius_at[g]) for g in groups], dtype=np.float32) * radius_margin
    smallest = max(float(min(spacing)), 1e-6)
    level = np.floor(np.log(np.maximum(radii, smallest) / smallest) / np.log(radius_step)).astype(int)
    shaft = np.zeros_like(foreground)
    for lv in np.unique(level):
        members = points[level == lv]
        r = float(radii[level == lv].max())
        seeds = np.zeros_like(foreground)
        seeds[tuple(members.T)] = True
        lo = np.maximum(members.min(0) - np.ceil(r / np.asarray(spacing)).astype(int) - 1, 0)
        hi = np.minimum(members.max(0) + np.ceil(r / np.asarray(spacing)).astype(int) + 2, foreground.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        shaft[box] |= outside_distance(seeds[box], spacing) <= r
    return shaft & foreground, line, radii
