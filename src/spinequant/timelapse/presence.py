"""Is a spine there where the detector found none? The spine map, looked up across sessions.

A detector misses some spines in every session, so a spine found in one session and not in
the next is no proof of a loss. Its head is looked up (through the registration) in the
other session's spine probability map: the map's largest value within ``radius_um`` there.
At or above ``absent_below`` (:class:`~.tracking.TrackConfig`) the network still sees a spine
there that did not become an object, and the loss (or gain) is not counted. Only for sessions
whose maps are known (analysed by ``spinequant track`` itself, or given in memory).
"""

from __future__ import annotations

import numpy as np


def ball_max(volume: np.ndarray, points_um, spacing, *, radius_um: float = 0.5) -> np.ndarray:
    """Largest value of ``volume`` within ``radius_um`` of each point (n, 3) µm (at least the
    nearest voxel); NaN for a point outside the volume."""
    volume = np.asarray(volume)
    spacing = np.asarray(spacing, float)
    pts = np.asarray(points_um, float).reshape(-1, 3)
    reach = np.floor(radius_um / spacing).astype(int)
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[np.linalg.norm(offsets * spacing, axis=1) <= radius_um + 1e-9]
    shape = np.asarray(volume.shape)
    out = np.full(len(pts), np.nan)
    for k, p in enumerate(pts):
        if not np.all(np.isfinite(p)):
            continue
        centre = np.rint(p / spacing).astype(int)
        if np.any(centre < 0) or np.any(centre >= shape):
            continue
        idx = centre + offsets
        idx = idx[np.all((idx >= 0) & (idx < shape), axis=1)]
        out[k] = float(volume[tuple(idx.T)].max())
    return out
