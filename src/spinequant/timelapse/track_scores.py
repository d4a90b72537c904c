"""Tracking scored against session phantoms' truth (:mod:`spinequant.synth.sessions`).

A *link* joins a spine of session ``k - 1`` to one of session ``k``. True links: tracks seen
(with voxels) in both sessions. A found link is correct when both its spines belong to the
same true track (found spines are identified with true ones by ``id_maps``: per session, a
found id -> true track id; identity through the truth table for the true labels, object
matching for detected spines). True gains and losses are those the tracker could see: a spine
gained at ``k`` seen in ``k`` whose base lies inside session ``k - 1``'s view, and a spine lost
at ``k`` seen in ``k - 1`` whose base lies inside session ``k``'s view.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCORE_COLUMNS = ["interval", "true_links", "found_links", "correct_links", "link_recall", "link_precision",
                 "true_gained", "found_gained", "correct_gained", "true_lost", "found_lost", "correct_lost",
                 "recoverable_links", "recoverable_recall"]


def found_links(tracks: pd.DataFrame) -> dict[int, list[tuple[int, int]]]:
    """Per session ``k >= 1``: (spine id in k - 1, spine id in k) of every link of ``tracks``."""
    out = {}
    present = tracks[tracks["spine_id"] > 0]
    for k in sorted(set(tracks["session"]) - {0}):
        prev = dict(zip(present.loc[present["session"] == k - 1, "track_id"],
                        present.loc[present["session"] == k - 1, "spine_id"]))
        now = present[(present["session"] == k) & (present["status"] == "stable")]
        out[k] = [(int(prev[t]), int(s)) for t, s in zip(now["track_id"], now["spine_id"]) if t in prev]
    return out


def truth_id_maps(truth_tracks: pd.DataFrame, n_sessions: int) -> list[dict[int, int]]:
    """Per session: true spine label -> true track id."""
    seen = truth_tracks[truth_tracks["visible"]]
    return [dict(zip(seen.loc[seen["session"] == k, "id"], seen.loc[seen["session"] == k, "track_id"]))
            for k in range(n_sessions)]


def _previous_ids(tracks: pd.DataFrame, k: int) -> dict[int, int]:
    """Track id -> its spine id in session ``k - 1``."""
    prev = tracks[(tracks["session"] == k - 1) & (tracks["spine_id"] > 0)]
    return dict(zip(prev["track_id"].astype(int), prev["spine_id"].astype(int)))


def score_tracks(tracks: pd.DataFrame, truth_tracks: pd.DataFrame, id_maps: list[dict[int, int]]) -> pd.DataFrame:
    """One row per interval (columns :data:`SCORE_COLUMNS`) and a last row ``all`` (sums;
    ratios over the sums). ``recoverable_links``: true links whose spines were both found;
    ``correct_gained`` / ``correct_lost``: found gains (losses) of a spine truly gained (lost)
    in that interval."""
    links = found_links(tracks)
    seen = truth_tracks[truth_tracks["visible"]]
    rows = []
    for k in sorted(links):
        a = set(seen.loc[seen["session"] == k - 1, "track_id"])
        b = set(seen.loc[seen["session"] == k, "track_id"])
        true = a & b
        found_tracks = set(id_maps[k - 1].values()), set(id_maps[k].values())
        recoverable = {t for t in true if t in found_tracks[0] and t in found_tracks[1]}
        correct = sum(1 for i, j in links[k] if id_maps[k - 1].get(i, -1) == id_maps[k].get(j, -2) != -1
                      and id_maps[k - 1].get(i) in true)
        t_now = truth_tracks[truth_tracks["session"] == k]
        true_gained = int(((t_now["event"] == "gained") & t_now["visible"] & t_now["inside_prev"]).sum())
        lost_rows = t_now[(t_now["event"] == "lost") & t_now["inside"]]
        true_lost = int(lost_rows["track_id"].isin(a).sum())
        status = tracks.loc[tracks["session"] == k, "status"].value_counts()
        gained_tracks = set(t_now.loc[t_now["event"] == "gained", "track_id"])
        lost_tracks = set(lost_rows["track_id"])
        found = tracks[tracks["session"] == k]
        correct_gained = sum(1 for i in found.loc[found["status"] == "gained", "spine_id"]
                             if id_maps[k].get(int(i)) in gained_tracks)
        prev_id = _previous_ids(tracks, k)
        correct_lost = sum(1 for t in found.loc[found["status"] == "lost", "track_id"]
                           if id_maps[k - 1].get(prev_id.get(int(t), -1)) in lost_tracks)
        rows.append([f"{k - 1}-{k}", len(true), len(links[k]), correct, np.nan, np.nan, true_gained,
                     int(status.get("gained", 0)), correct_gained, true_lost, int(status.get("lost", 0)),
                     correct_lost, len(recoverable), np.nan])
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    total = table.drop(columns="interval").sum()
    table.loc[len(table)] = ["all", *total.tolist()]
    table["link_recall"] = table["correct_links"] / table["true_links"].replace(0, np.nan)
    table["link_precision"] = table["correct_links"] / table["found_links"].replace(0, np.nan)
    table["recoverable_recall"] = table["correct_links"] / table["recoverable_links"].replace(0, np.nan)
    return table


def registration_errors(transform, spines: pd.DataFrame) -> np.ndarray:
    """Distance (µm) between each true spine base of a session mapped by ``transform`` and its
    true place in the first session's frame (phantom truth columns ``ref_base_*_um``; for 2D
    sessions, :func:`~spinequant.synth.sessions.project_sessions`, in the plane)."""
    def points(prefix):      # a 2D session's (no z column) at z = 0
        return np.column_stack([spines[f"{prefix}_{a}_um"].to_numpy(float) if f"{prefix}_{a}_um" in spines
                                else np.zeros(len(spines)) for a in "zyx"])

    return np.linalg.norm(transform.apply(points("base")) - points("ref_base"), axis=1)


def identity_scores(tracks: pd.DataFrame, id_maps: list[dict[int, int]]) -> dict:
    """Whether tracks keep their identity over every session a spine was found in, gaps included.

    A *sighting pair* is two successive sessions in which one true track was found (not
    necessarily consecutive sessions: a spine missed in between still joins its sightings).
    ``pair_recall``: the true pairs whose two found spines share a track id; ``pair_precision``:
    of the successive sightings of each found track, those of one true track."""
    present = tracks[tracks["spine_id"] > 0].sort_values(["track_id", "session"])
    true_of = [id_maps[int(k)].get(int(s)) for k, s in zip(present["session"], present["spine_id"])]
    present = present.assign(true=true_of)
    found_pairs = correct = 0
    for _, rows in present.groupby("track_id"):
        t = rows["true"].tolist()
        found_pairs += len(t) - 1
        correct += sum(1 for a, b in zip(t[:-1], t[1:]) if a is not None and a == b)
    sightings = pd.DataFrame([(k, t) for k, m in enumerate(id_maps) for t in m.values()], columns=["session", "true"])
    true_pairs = int((sightings.groupby("true").size() - 1).clip(lower=0).sum()) if len(sightings) else 0
    return {"true_pairs": true_pairs, "found_pairs": found_pairs, "correct_pairs": correct,
            "pair_recall": correct / true_pairs if true_pairs else float("nan"),
            "pair_precision": correct / found_pairs if found_pairs else float("nan")}
