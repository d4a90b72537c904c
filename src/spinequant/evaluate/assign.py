"""One-to-one assignment of candidate pairs (objects or points), Hungarian or greedy.

Candidates are given as sparse pairs (row, column, score), so that thousands of objects
never need a dense thousands x thousands matrix: the Hungarian method runs separately on
each connected group of candidates, which gives the same result as on the whole matrix.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import InputError


def assign_pairs(rows, cols, score, *, method: str = "hungarian", larger_is_better: bool = True) -> np.ndarray:
    """Choose a one-to-one subset of the candidate pairs; returns the chosen pairs' positions.

    ``"hungarian"`` maximises the number of pairs and, among the largest sets, the total
    score (``larger_is_better``) or minimises it (distances); ``"greedy"`` takes the best
    remaining pair first. Every candidate must already be acceptable (above the threshold).
    """
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    score = np.asarray(score, dtype=float)
    if method not in ("hungarian", "greedy"):
        raise InputError(f"Unknown matching method {method!r}; use 'hungarian' or 'greedy'.")
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    if method == "greedy":
        order = np.lexsort((cols, rows, -score if larger_is_better else score))
        used_r, used_c, keep = set(), set(), []
        for k in order:
            if rows[k] not in used_r and cols[k] not in used_c:
                used_r.add(rows[k]), used_c.add(cols[k]), keep.append(k)
        return np.sort(np.array(keep, dtype=np.int64))
    # Each candidate is worth more than any sum of score differences, so the assignment first
    # maximises the number of pairs, then the total score.
    gain = score - score.min() if larger_is_better else score.max() - score
    spread = float(gain.max()) + 1.0
    _, r_index = np.unique(rows, return_inverse=True)
    _, c_index = np.unique(cols, return_inverse=True)
    n_r, n_c = int(r_index.max()) + 1, int(c_index.max()) + 1
    graph = coo_matrix((np.ones(rows.size), (r_index, n_r + c_index)), shape=(n_r + n_c,) * 2)
    _, component = connected_components(graph, directed=False)
    group = component[r_index]
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    sizes = np.diff(np.r_[starts, order.size])
    # A group with a single candidate needs no assignment.
    keep = [order[starts[sizes == 1]]]
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
        sel = order[start:start + size]
        r_u, r_loc = np.unique(r_index[sel], return_inverse=True)
        c_u, c_loc = np.unique(c_index[sel], return_inverse=True)
        bonus = spread * (min(r_u.size, c_u.size) + 1)
        sub = np.zeros((r_u.size, c_u.size))
        where = np.full((r_u.size, c_u.size), -1, dtype=np.int64)
        sub[r_loc, c_loc] = bonus + gain[sel]
        where[r_loc, c_loc] = sel
        a, b = linear_sum_assignment(sub, maximize=True)
        chosen = where[a, b]
        keep.append(chosen[chosen >= 0])
    return np.sort(np.concatenate(keep))


def match_by_score(score, threshold: float, *, method: str = "hungarian",
                   larger_is_better: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one (row, column) pairs of a dense score matrix whose score passes ``threshold``.

    With ``larger_is_better`` a pair needs ``score >= threshold`` and ``score > 0``;
    otherwise ``score <= threshold``. Returned sorted by row.
    """
    score = np.asarray(score, dtype=float)
    ok = (score >= threshold) & (score > 0) if larger_is_better else score <= threshold
    rows, cols = np.nonzero(ok)
    chosen = assign_pairs(rows, cols, score[rows, cols], method=method, larger_is_better=larger_is_better)
    return rows[chosen], cols[chosen]
