"""Geodesic (path-in-mask) distances in µm inside a spine, shared by its measurement and
its head count."""

from __future__ import annotations

import numpy as np
from skimage.graph import MCP_Geometric

#: Cost factor for crossing background between pieces of one spine label.
_GAP_COST = 20.0


def geodesic(mask: np.ndarray, cost: np.ndarray, starts, sp: np.ndarray):
    """Cumulative ``cost`` x path length inside ``mask`` from ``starts`` (and the MCP object
    for tracebacks).

    A label in several pieces (a neck thinner than a z step) is crossed through background
    at ``_GAP_COST`` times the highest cost, so every voxel gets a finite value.
    """
    cost = np.where(mask, cost, np.inf)
    mcp = MCP_Geometric(cost, sampling=tuple(sp), fully_connected=True)
    dist, _ = mcp.find_costs(starts=starts)
    if not np.isfinite(dist[mask]).all():
        cost[~mask] = _GAP_COST * cost[mask].max()
        mcp = MCP_Geometric(cost, sampling=tuple(sp), fully_connected=True)
        dist, _ = mcp.find_costs(starts=starts)
    return mcp, dist
