"""Spines followed over imaging sessions: one-to-one links between consecutive sessions.

Every session's spines are moved into the first session's frame (the registration's
:class:`~spinequant.timelapse.alignment.SessionTransform`), dendrites of consecutive sessions
are put in correspondence (a dendrite pairs with another when a fair share of its voxels lie
near the other's), and the spines of two consecutive sessions are matched one-to-one
(Hungarian assignment, :func:`scipy.optimize.linear_sum_assignment`) by their distance in
that frame, at most ``max_distance_um`` and only along corresponding dendrites. A matched
spine keeps its track id; an unmatched one starts a track (``gained``) or ends one
(``lost``) — unless it lies outside (or within ``edge_margin_um`` of the edge of) the other
session's volume, where it cannot have been seen: then it ``entered_view`` or ``left_view``.
With ``bridge_gaps`` (the default), a spine last seen in session ``s`` and missing from at
most ``max_gap`` sessions after it keeps its track when a spine not linked otherwise appears
at its place (within ``max_distance_um``, on a corresponding dendrite of session ``s``) in a
later session ``k``: its rows in sessions ``s + 1 .. k - 1`` are ``missed`` and in ``k``
``reappeared``, and it counts as neither lost nor gained. A detector that misses a spine for
a session or two would otherwise report a loss and a gain; a spine that really vanished and
came back is reported as missed. The most recent sighting is tried first.

With the sessions' spine probability maps (:mod:`.presence`), a loss or gain must also show
in the map: a spine not found in session ``k`` whose place in ``k``'s map still reaches
``absent_below`` is ``undetected``, not lost; a spine found in ``k`` whose place in ``k - 1``'s
map already did is ``first_detected``, not gained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..config import check_fields
from ..errors import InputError

TRACK_COLUMNS = ["session", "day", "track_id", "spine_id", "dendrite_id", "status", "ref_z_um", "ref_y_um",
                 "ref_x_um", "link_distance_um"]
STATUSES = ("initial", "stable", "gained", "lost", "entered_view", "left_view", "missed", "reappeared",
            "undetected", "first_detected")


@dataclass(frozen=True)
class TrackConfig:
    """Settings of :func:`track_spines` (µm).

    max_distance_um : two spines of consecutive sessions link only this close (in the first
        session's frame, after registration).
    same_dendrite : link only spines on corresponding dendrites (spines on no dendrite,
        ``dendrite_id`` 0, may link to any).
    dendrite_radius_um, dendrite_overlap : dendrites of consecutive sessions correspond when
        at least ``dendrite_overlap`` of either one's voxels lie within ``dendrite_radius_um``
        of the other's.
    edge_margin_um : a spine this close to the edge of the other session's volume (or outside
        it) counts as out of view there, not as gained or lost.
    position : which points of a spine are compared: ``"base_head"`` (the default: the
        root-mean-square of the distances between the bases and between the heads, so that a
        new spine growing where another was lost, but pointing elsewhere, is not taken for
        it), ``"base"`` (on the dendrite; stable when the spine grows) or ``"centroid"``.
    bridge_gaps, max_gap : link a spine missing from up to ``max_gap`` consecutive sessions
        to one at its place in a later session (see the module docstring); ``bridge_gaps=False``
        (or ``max_gap=0``) turns this off. Default 2: on session phantoms with 15 % of the
        spines dropped per session (simulated misses, ``benchmarks/tracking.py --gaps``) it
        joined more sightings than 1 (0.915 against 0.908 of 447) at the same precision
        (0.958), and found gains and losses nearer the truth.
    absent_below : with spine probability maps, a spine counts as lost (not yet gained) only
        where the other session's map stays below this within 0.5 µm of its head; None: no check.
    """

    max_distance_um: float = 0.8
    same_dendrite: bool = True
    dendrite_radius_um: float = 1.5
    dendrite_overlap: float = 0.3
    edge_margin_um: float = 1.0
    position: str = "base_head"
    bridge_gaps: bool = True
    absent_below: float | None = 0.3
    max_gap: int = 2

    def __post_init__(self):
        check_fields(self, ranges={"max_distance_um": (0, None, True, False),
                                   "dendrite_overlap": (0, 1, True, False)},
                     choices={"position": ("base_head", "base", "centroid")})


def as_3d(session: "SessionSpines") -> "SessionSpines":
    """A session of a 2D image (a plane or a projection: spine columns without z, 2D labels)
    as a one-plane stack: z = 0 µm for every point, labels and map of shape (1, Y, X), a
    nominal z voxel of 1 µm. A 3D session is returned as it is."""
    labels = np.asarray(session.dendrite_labels)
    if labels.ndim == 3:
        return session
    if labels.ndim != 2:
        raise InputError(f"A session's labels must be 2D or 3D, not {labels.ndim}D.")
    spines = session.spines.copy()
    for point in ("base", "head", "centroid", "tip"):
        if f"{point}_y_um" in spines.columns and f"{point}_z_um" not in spines.columns:
            spines.insert(spines.columns.get_loc(f"{point}_y_um"), f"{point}_z_um", 0.0)
    centrelines = session.centrelines
    if centrelines is not None:
        centrelines = centrelines.assign(z=0.0)
    prob = None if session.spine_prob is None else np.asarray(session.spine_prob)[None]
    return SessionSpines(spines, labels[None], (1.0, *(float(s) for s in session.spacing)), centrelines, prob)


@dataclass(frozen=True)
class SessionSpines:
    """What tracking needs of one session: its spine table (``id``, ``dendrite_id`` and the
    ``base_*_um`` or ``centroid_*_um`` columns, µm in the session's frame), its dendrite labels
    and voxel size, optionally its centrelines (SWC table, µm) for lengths and its spine
    probability map (to check losses and gains, see :mod:`.presence`)."""

    spines: pd.DataFrame
    dendrite_labels: np.ndarray
    spacing: tuple[float, float, float]
    centrelines: pd.DataFrame | None = None
    spine_prob: np.ndarray | None = None

    @property
    def box_um(self) -> np.ndarray:
        return (np.asarray(self.dendrite_labels.shape) - 1) * np.asarray(self.spacing, float)


def spine_points(spines: pd.DataFrame, position: str = "base") -> np.ndarray:
    """(n, 3) µm positions of the spines' ``position`` points (``"base"``, ``"head"``,
    ``"centroid"``); where one is missing (NaN), the centroid."""
    cols = [f"{position}_{a}_um" for a in "zyx"]
    missing = [c for c in cols if c not in spines.columns]
    if missing:
        raise InputError(f"The spine table has no {', '.join(missing)}: give a spinequant spines.csv (or a "
                         f"phantom's truth_spines.csv).")
    pts = spines[cols].to_numpy(float)
    if position != "centroid" and all(f"centroid_{a}_um" in spines.columns for a in "zyx"):
        bad = ~np.all(np.isfinite(pts), axis=1)
        pts[bad] = spines.loc[bad, [f"centroid_{a}_um" for a in "zyx"]].to_numpy(float)
    return pts


def spine_features(spines: pd.DataFrame, position: str, transform) -> np.ndarray:
    """(n, 3 m) positions of the compared points of each spine (m = 2 for ``"base_head"``) in
    the frame ``transform`` leads to."""
    parts = ("base", "head") if position == "base_head" else (position,)
    return np.hstack([transform.apply(spine_points(spines, part)) for part in parts])


def inside_volume(points_um, box_um, margin_um: float) -> np.ndarray:
    """Whether each point (n, 3) µm lies at least ``margin_um`` inside the box [0, box_um]
    (at most a quarter of the box's size on a thin axis; an axis of one plane, a 2D session's
    z, does not count)."""
    p = np.asarray(points_um, float).reshape(-1, 3)
    box = np.asarray(box_um, float)
    margin = np.minimum(margin_um, box / 4)
    flat = box <= 0
    return np.all(((p >= margin) & (p <= box - margin)) | flat, axis=1)


def dendrite_points(labels: np.ndarray, spacing, *, step_um: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Voxel centres (n, 3) µm of the labelled dendrites, thinned to about one per
    ``step_um`` cube, and their labels."""
    spacing = np.asarray(spacing, float)
    stride = [max(1, int(round(step_um / s))) for s in spacing]
    sub = np.asarray(labels)[::stride[0], ::stride[1], ::stride[2]]
    idx = np.nonzero(sub)
    pts = np.stack(idx, axis=1) * (np.asarray(stride) * spacing)
    return pts.reshape(-1, 3), sub[idx].astype(np.int64)


def dendrite_pairs(pts_a, ids_a, pts_b, ids_b, *, radius_um: float, min_fraction: float) -> set:
    """Pairs (a, b) of dendrite ids that correspond (points in one frame; see :class:`TrackConfig`)."""
    pairs = set()
    if not len(pts_a) or not len(pts_b):
        return pairs
    for (p, ip, q, iq, flip) in ((pts_a, ids_a, pts_b, ids_b, False), (pts_b, ids_b, pts_a, ids_a, True)):
        dist, nearest = cKDTree(q).query(p, distance_upper_bound=radius_um)
        near = np.isfinite(dist)
        for d in np.unique(ip):
            mine = ip == d
            hits = iq[nearest[mine & near]]
            if not len(hits):
                continue
            other, counts = np.unique(hits, return_counts=True)
            for o, c in zip(other, counts):
                if c >= min_fraction * mine.sum():
                    pairs.add((int(o), int(d)) if flip else (int(d), int(o)))
    return pairs


def link_candidates(pos_a, dend_a, pos_b, dend_b, *, max_distance_um: float, allowed: set | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(distance, ok): the (n_a, n_b) distances between spines ``a`` and ``b`` (positions
    (n, 3 m): m points per spine, compared by the root-mean-square of their distances) and
    whether each pair may link (see :func:`link_spines`)."""
    pos_a, pos_b = np.atleast_2d(np.asarray(pos_a, float)), np.atleast_2d(np.asarray(pos_b, float))
    if not pos_a.size or not pos_b.size:
        shape = (len(pos_a) if pos_a.size else 0, len(pos_b) if pos_b.size else 0)
        return np.zeros(shape), np.zeros(shape, bool)
    m = pos_a.shape[1] // 3
    diff = (pos_a[:, None, :] - pos_b[None, :, :]).reshape(len(pos_a), len(pos_b), m, 3)
    dist = np.sqrt(np.mean(np.sum(diff**2, axis=3), axis=2))
    ok = dist <= max_distance_um
    if allowed is not None:
        da, db = np.asarray(dend_a, int), np.asarray(dend_b, int)
        same = np.array([[x == 0 or y == 0 or (x, y) in allowed for y in db] for x in da]).reshape(ok.shape)
        ok &= same
    return dist, ok


def assign(dist: np.ndarray, ok: np.ndarray) -> list[tuple[int, int, float]]:
    """One-to-one links (i, j, distance) of least total distance among the pairs ``ok``."""
    rows = np.flatnonzero(ok.any(axis=1)) if ok.size else np.zeros(0, int)
    cols = np.flatnonzero(ok.any(axis=0)) if ok.size else np.zeros(0, int)
    if not len(rows) or not len(cols):
        return []
    cost = np.where(ok[np.ix_(rows, cols)], dist[np.ix_(rows, cols)], 1e6)
    r, c = linear_sum_assignment(cost)
    return [(int(rows[i]), int(cols[j]), float(dist[rows[i], cols[j]]))
            for i, j in zip(r, c) if ok[rows[i], cols[j]]]


def link_spines(pos_a, dend_a, pos_b, dend_b, *, max_distance_um: float, allowed: set | None = None
                ) -> list[tuple[int, int, float]]:
    """One-to-one links (i, j, distance µm) between spines ``a`` and ``b`` (positions (n, 3 m)
    in one frame: m points per spine, compared by the root-mean-square of their distances) no
    farther apart than ``max_distance_um``; with ``allowed`` (a set of dendrite id pairs) only
    between spines on corresponding dendrites (id 0 links to any)."""
    return assign(*link_candidates(pos_a, dend_a, pos_b, dend_b, max_distance_um=max_distance_um, allowed=allowed))


def _seen_in_map(sessions, transforms, heads, k: int, other: int, config: TrackConfig) -> np.ndarray:
    """Per spine of session ``k``: whether session ``other``'s spine map shows a spine at its head."""
    from .presence import ball_max

    prob = sessions[other].spine_prob
    if config.absent_below is None or prob is None or not len(heads[k]):
        return np.zeros(len(heads[k]), bool)
    there = transforms[other].inverse(transforms[k].apply(heads[k]))
    return np.nan_to_num(ball_max(prob, there, sessions[other].spacing), nan=0.0) >= config.absent_below


def _bridge(pending, k, new_tracks, distance, features, dend, dpts, same_dendrite, config) -> dict:
    """Link spines of session ``k`` that no spine of ``k - 1`` took to tracks in ``pending``
    (lost after their last session ``s``): one assignment over all of them, each pending
    spine compared from its last session (dendrites corresponding between ``s`` and ``k``).
    Fills ``new_tracks`` and ``distance``; returns {pending entry: index in k}."""
    free = np.flatnonzero(new_tracks == 0)
    if not pending or not len(free):
        return {}
    dist = np.zeros((len(pending), len(free)))
    ok = np.zeros((len(pending), len(free)), bool)
    for last in sorted({p[1] for p in pending}):
        rows = [n for n, p in enumerate(pending) if p[1] == last]
        old = np.array([pending[n][2] for n in rows], int)
        allowed = None if not same_dendrite else dendrite_pairs(
            *dpts[last], *dpts[k], radius_um=config.dendrite_radius_um, min_fraction=config.dendrite_overlap)
        dist[rows], ok[rows] = link_candidates(features[last][old], dend[last][old], features[k][free],
                                               dend[k][free], max_distance_um=config.max_distance_um,
                                               allowed=allowed)
    bridged = {}
    for a, b, d in assign(dist, ok):
        new_tracks[free[b]], distance[free[b]] = pending[a][0], d
        bridged[pending[a]] = int(free[b])
    return bridged


def track_spines(sessions: list[SessionSpines], transforms: list, days, *, config: TrackConfig = TrackConfig()
                 ) -> pd.DataFrame:
    """Tracks of spines over ``sessions`` (columns :data:`TRACK_COLUMNS`; one row per spine
    and session, plus a ``lost`` / ``left_view`` row in the session where a track ends).

    ``transforms[k]`` takes session ``k``'s frame to the first session's (``transforms[0]``
    the identity); ``days`` the day of each session. ``ref_*_um`` are the spine's position in
    the first session's frame (the base; for a lost spine, where it was last seen). 2D
    sessions (planes or projections, with 2D transforms lifted by :func:`as_3d`'s convention)
    are tracked in the plane: ``ref_z_um`` is 0.
    """
    n = len(sessions)
    if len(transforms) != n or len(days) != n:
        raise InputError(f"{n} sessions need {n} transforms and {n} days (got {len(transforms)} and {len(days)}).")
    if n < 2:
        raise InputError("Tracking needs at least two sessions.")
    dims = {np.ndim(s.dendrite_labels) for s in sessions}
    if len(dims) > 1:
        raise InputError("The sessions mix 2D and 3D labels: track 2D images (planes or projections) or 3D "
                         "stacks, not both.")
    sessions = [as_3d(s) for s in sessions]
    features = [spine_features(s.spines, config.position, t) for s, t in zip(sessions, transforms)]
    ref_pos = [f[:, :3] for f in features]
    heads = [spine_points(s.spines, "head") for s in sessions]
    dend = [s.spines["dendrite_id"].to_numpy(int) if "dendrite_id" in s.spines else np.zeros(len(s.spines), int)
            for s in sessions]
    ids = [s.spines["id"].to_numpy(int) for s in sessions]
    dpts = [dendrite_points(s.dendrite_labels, s.spacing) for s in sessions]
    dpts = [(t.apply(p), i) for (p, i), t in zip(dpts, transforms)]
    rows = []
    track_of = np.arange(1, len(ids[0]) + 1)
    for i in range(len(ids[0])):
        rows.append((0, days[0], track_of[i], ids[0][i], dend[0][i], "initial", *ref_pos[0][i], np.nan))
    next_track = len(ids[0]) + 1
    # tracks lost (or undetected) and not yet given up: (track, last session seen, index there, row of the loss)
    pending: list[tuple[int, int, int, int]] = []
    max_gap = config.max_gap if config.bridge_gaps else 0
    for k in range(1, n):
        allowed = None
        if config.same_dendrite:
            allowed = dendrite_pairs(*dpts[k - 1], *dpts[k], radius_um=config.dendrite_radius_um,
                                     min_fraction=config.dendrite_overlap)
        links = link_spines(features[k - 1], dend[k - 1], features[k], dend[k],
                            max_distance_um=config.max_distance_um, allowed=allowed)
        new_tracks = np.zeros(len(ids[k]), int)
        distance = np.full(len(ids[k]), np.nan)
        matched_prev = set()
        for i, j, d in links:
            new_tracks[j], distance[j] = track_of[i], d
            matched_prev.add(i)
        status_of = {}
        pending = [p for p in pending if k - p[1] - 1 <= max_gap]
        bridged = _bridge(pending, k, new_tracks, distance, features, dend, dpts, allowed is not None, config)
        for (track, last, _, row), j in bridged.items():
            status_of[j] = "reappeared"
            rows[row] = rows[row][:5] + ("missed",) + rows[row][6:]
            for gap in range(last + 2, k):
                rows.append((gap, days[gap], *rows[row][2:5], "missed", *rows[row][6:]))
        pending = [p for p in pending if p not in bridged]
        # an unmatched spine of k: gained if session k-1 saw its place
        seen_before = inside_volume(transforms[k - 1].inverse(ref_pos[k]), sessions[k - 1].box_um,
                                    config.edge_margin_um)
        there_before = _seen_in_map(sessions, transforms, heads, k, k - 1, config)
        for j in range(len(ids[k])):
            if new_tracks[j]:
                rows.append((k, days[k], new_tracks[j], ids[k][j], dend[k][j], status_of.get(j, "stable"),
                             *ref_pos[k][j], distance[j]))
            else:
                new_tracks[j] = next_track
                next_track += 1
                status = "entered_view" if not seen_before[j] else \
                    "first_detected" if there_before[j] else "gained"
                rows.append((k, days[k], new_tracks[j], ids[k][j], dend[k][j], status, *ref_pos[k][j], np.nan))
        seen_now = inside_volume(transforms[k].inverse(ref_pos[k - 1]), sessions[k].box_um, config.edge_margin_um)
        there_now = _seen_in_map(sessions, transforms, heads, k - 1, k, config)
        for i in range(len(ids[k - 1])):
            if i not in matched_prev:
                status = "left_view" if not seen_now[i] else "undetected" if there_now[i] else "lost"
                if status != "left_view":
                    pending.append((track_of[i], k - 1, i, len(rows)))
                rows.append((k, days[k], track_of[i], 0, dend[k - 1][i], status, *ref_pos[k - 1][i], np.nan))
        track_of = new_tracks
    table = pd.DataFrame(rows, columns=TRACK_COLUMNS).sort_values("session", kind="stable", ignore_index=True)
    return table.astype({"session": np.int64, "track_id": np.int64, "spine_id": np.int64, "dendrite_id": np.int64})
