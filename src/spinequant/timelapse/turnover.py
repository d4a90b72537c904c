"""Turnover and survival from spine tracks, and each track's place along its dendrite.

Per interval between consecutive sessions (columns :data:`SUMMARY_COLUMNS`): spines stable,
gained, lost (and those that entered or left the view, which count as neither), the length of
dendrite both sessions saw (the earlier session's centrelines inside both volumes, µm),
gains, losses and their sum per µm of that dendrite per day, the turnover ratio
``(gained + lost) / (n_from + n_to)`` (n: spines of either session in the common view; the
usual TOR, e.g. Holtmaat et al. 2005, Neuron 45:279), and the survival fraction: of the
first session's spines whose place stayed in view, the share still present.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .tracking import SessionSpines, as_3d, inside_volume

#: Statuses of a spine that is there in a session (found, seen in the spine map, or found again).
PRESENT = ("stable", "reappeared", "missed", "undetected", "first_detected")

SUMMARY_COLUMNS = ["interval", "day_from", "day_to", "days", "n_from", "n_to", "stable", "gained", "lost",
                   "entered_view", "left_view", "dendrite_length_um", "gained_per_um_per_day",
                   "lost_per_um_per_day", "turnover_per_um_per_day", "turnover_ratio", "survival_from_first"]


def swc_points(centrelines: pd.DataFrame) -> np.ndarray:
    """(n, 3) node positions (z, y, x) µm of an SWC table."""
    return centrelines[["z", "y", "x"]].to_numpy(float)


def swc_edges(centrelines: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Node indices (child, parent) of every edge of an SWC table."""
    index = {int(v): k for k, v in enumerate(centrelines["id"])}
    child, parent = [], []
    for k, p in enumerate(centrelines["parent"].to_numpy(int)):
        if p in index:
            child.append(k)
            parent.append(index[p])
    return np.asarray(child, int), np.asarray(parent, int)


def common_length_um(session_from: SessionSpines, session_to: SessionSpines, transform_from, transform_to, *,
                     margin_um: float) -> float:
    """Length (µm) of ``session_from``'s centrelines that lies in view in both sessions."""
    c = session_from.centrelines
    if c is None or not len(c):
        return float("nan")
    own = swc_points(c)
    ref = transform_from.apply(own)
    ok = inside_volume(own, session_from.box_um, margin_um) & inside_volume(
        transform_to.inverse(ref), session_to.box_um, margin_um)
    child, parent = swc_edges(c)
    both = ok[child] & ok[parent]
    return float(np.linalg.norm(ref[child[both]] - ref[parent[both]], axis=1).sum())


def summarise(tracks: pd.DataFrame, sessions: list[SessionSpines], transforms: list, days, *,
              margin_um: float = 1.0) -> pd.DataFrame:
    """One row per interval (see the module docstring) from :func:`~.tracking.track_spines`'s table."""
    rows = []
    sessions = [as_3d(s) for s in sessions]
    initial = set(tracks.loc[tracks["session"] == 0, "track_id"])
    for k in range(1, len(sessions)):
        now = tracks[tracks["session"] == k]
        counts = now["status"].value_counts()
        stable, gained, lost = (int(counts.get(s, 0)) for s in ("stable", "gained", "lost"))
        dt = float(days[k] - days[k - 1])
        length = common_length_um(sessions[k - 1], sessions[k], transforms[k - 1], transforms[k], margin_um=margin_um)
        per = length * dt if length > 0 and dt > 0 else float("nan")
        left = set(tracks.loc[(tracks["session"] <= k) & (tracks["status"] == "left_view"), "track_id"])
        eligible = initial - left
        # a spine missed in one session and seen again in the next was there all along
        present = set(now.loc[now["status"].isin(PRESENT), "track_id"]) & eligible
        missed = int(counts.get("missed", 0)) + int(counts.get("undetected", 0))
        back = int(counts.get("reappeared", 0)) + int(counts.get("first_detected", 0))
        n_from, n_to = stable + lost + missed, stable + gained + back
        rows.append((f"{k - 1}-{k}", float(days[k - 1]), float(days[k]), dt, n_from, n_to, stable, gained, lost,
                     int(counts.get("entered_view", 0)), int(counts.get("left_view", 0)), length,
                     gained / per, lost / per, (gained + lost) / per,
                     (gained + lost) / (n_from + n_to) if n_from + n_to else float("nan"),
                     len(present) / len(eligible) if eligible else float("nan")))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def tree_arc_lengths(centrelines: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per SWC node: the index of its tree (0, 1, ...) and its path length (µm) from the root."""
    n = len(centrelines)
    child, parent = swc_edges(centrelines)
    parent_of = np.full(n, -1)
    parent_of[child] = parent
    pts = swc_points(centrelines)
    arc = np.full(n, np.nan)
    tree = np.full(n, -1)
    roots = np.flatnonzero(parent_of < 0)
    root_tree = {int(r): t for t, r in enumerate(roots)}

    def resolve(k):
        chain = []
        while np.isnan(arc[k]) and parent_of[k] >= 0:
            chain.append(k)
            k = parent_of[k]
        if np.isnan(arc[k]):   # a root
            arc[k], tree[k] = 0.0, root_tree[int(k)]
        for j in reversed(chain):
            p = parent_of[j]
            arc[j] = arc[p] + float(np.linalg.norm(pts[j] - pts[p]))
            tree[j] = tree[p]
    for k in range(n):
        resolve(k)
    return tree, arc


def along_dendrite(tracks: pd.DataFrame, centrelines: pd.DataFrame | None, *, max_distance_um: float = 3.0
                   ) -> pd.DataFrame:
    """``tracks`` with ``tree`` (which centreline tree of the first session) and ``along_um``
    (path length from that tree's root to the node nearest the track's first position, µm);
    -1 and NaN for a track farther than ``max_distance_um`` from every centreline."""
    out = tracks.copy()
    out["tree"], out["along_um"] = -1, np.nan
    if centrelines is None or not len(centrelines) or not len(tracks):
        return out
    tree, arc = tree_arc_lengths(centrelines)
    first = tracks.sort_values("session").drop_duplicates("track_id")
    dist, node = cKDTree(swc_points(centrelines)).query(first[["ref_z_um", "ref_y_um", "ref_x_um"]].to_numpy(float))
    near = dist <= max_distance_um
    tree_of = dict(zip(first["track_id"], np.where(near, tree[np.minimum(node, len(tree) - 1)], -1)))
    arc_of = dict(zip(first["track_id"], np.where(near, arc[np.minimum(node, len(arc) - 1)], np.nan)))
    out["tree"] = out["track_id"].map(tree_of).astype(np.int64)
    out["along_um"] = out["track_id"].map(arc_of)
    return out
