"""Turn an SWC centreline into a dendrite mask: spheres drawn along each segment.

DeepD3 made its dendrite masks this way from NeuTube traces (interpolated spheres between
the traced points); the mask sets the band within which semantic scores count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..validate import check_spacing


def swc_to_mask(nodes: pd.DataFrame, *, shape, spacing) -> np.ndarray:
    """Voxels (z, y, x) within the interpolated radius of any SWC segment.

    Coordinates and radii in ``nodes`` are µm (columns of :mod:`spinequant.io.swc`). The
    voxel nearest to each point along a segment is always included, so a trace with radius
    0 still marks a line of voxels. Parts outside ``shape`` are clipped.
    """
    sp = np.asarray(check_spacing(spacing))
    shape = tuple(int(s) for s in shape)
    mask = np.zeros(shape, dtype=bool)
    if len(nodes) == 0:
        return mask
    xyz = {int(r.id): (np.array([r.z, r.y, r.x], float), max(float(r.radius), 0.0))
           for r in nodes.itertuples(index=False)}
    step = float(sp.min()) / 2
    for r in nodes.itertuples(index=False):
        a, ra = xyz[int(r.id)]
        b, rb = xyz.get(int(r.parent), (a, ra))
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        for t in np.linspace(0.0, 1.0, n + 1):
            _sphere(mask, a + t * (b - a), ra + t * (rb - ra), sp)
    return mask


def _sphere(mask, centre_um, radius_um, sp) -> None:
    nearest = np.round(centre_um / sp).astype(int)
    if np.all((nearest >= 0) & (nearest < mask.shape)):
        mask[tuple(nearest)] = True
    lo = np.maximum(np.floor((centre_um - radius_um) / sp).astype(int), 0)
    hi = np.minimum(np.ceil((centre_um + radius_um) / sp).astype(int) + 1, mask.shape)
    if np.any(hi <= lo):
        return
    grids = np.ogrid[tuple(slice(l, h) for l, h in zip(lo, hi))]
    d2 = sum(((g * s) - c) ** 2 for g, s, c in zip(grids, sp, centre_um))
    mask[tuple(slice(l, h) for l, h in zip(lo, hi))] |= d2 <= radius_um ** 2
