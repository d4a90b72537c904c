"""How many annotated spines an optical system can separate at all: a recall ceiling.

Two heads closer than the point-spread function's width image as one blob, and no detector
can tell from the picture that there are two. On our phantoms with a two-photon PSF (3.2 µm
FWHM along z) and 1.5-4 spines per µm, heads above and below the shaft often lie within
one PSF of each other, so a benchmark's recall is bounded well below 1 whatever the method.
:func:`resolvable_heads` picks the largest set of heads no two of which lie within one FWHM
ellipsoid of each other, ``(dz / FWHMz)² + (dy² + dx²) / FWHMxy² < 1`` (a Sparrow-like
criterion: at one FWHM two equal Gaussians no longer show a dip between them). Its size over
the number of heads is the recall a perfect detector could reach.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.sparse import coo_matrix
from scipy.spatial import cKDTree

from ..errors import InputError
from .points import as_points

#: Clusters of heads up to this size are solved exactly (every subset); larger ones greedily
#: (fewest clashes first), which gives a set at most slightly smaller than the largest.
EXACT_CLUSTER_SIZE = 16


def resolvable_heads(points_um, fwhm_um) -> np.ndarray:
    """Mask of a largest set of ``points_um`` ((N, 3) z, y, x in µm) no two of which lie
    within one PSF FWHM ellipsoid of each other; ``fwhm_um`` is (z, xy) or (z, y, x).

    >>> heads = [[0, 0, 0], [1.0, 0.1, 0], [0, 2, 0]]       # the first two share one z PSF
    >>> resolvable_heads(heads, (3.2, 0.45)).tolist()
    [True, False, True]
    """
    pts = as_points(points_um, what="head positions")
    fwhm = np.asarray(fwhm_um, dtype=float).ravel()
    if fwhm.size == 2:
        fwhm = np.array([fwhm[0], fwhm[1], fwhm[1]])
    if fwhm.size != 3 or not np.all(np.isfinite(fwhm)) or np.any(fwhm <= 0):
        raise InputError(f"The PSF width must be (z, xy) or (z, y, x) in µm, all positive; got {fwhm_um!r}.")
    n = len(pts)
    keep = np.ones(n, bool)
    if n < 2:
        return keep
    pairs = cKDTree(pts / fwhm).query_pairs(1.0 - 1e-9, output_type="ndarray")
    if len(pairs) == 0:
        return keep
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, cluster = connected_components(graph, directed=False)
    clashes = [set() for _ in range(n)]
    for i, j in pairs:
        clashes[i].add(int(j))
        clashes[j].add(int(i))
    for c in np.unique(cluster[np.unique(pairs)]):
        members = np.flatnonzero(cluster == c)
        chosen = (_largest_exact(members, clashes) if len(members) <= EXACT_CLUSTER_SIZE
                  else _largest_greedy(members, clashes))
        keep[members] = False
        keep[list(chosen)] = True
    return keep


def _largest_exact(members, clashes) -> set[int]:
    best: set[int] = set()

    def grow(rest: list[int], chosen: set[int]) -> None:
        nonlocal best
        if len(chosen) + len(rest) <= len(best):
            return
        if not rest:
            best = set(chosen)
            return
        first, tail = rest[0], rest[1:]
        grow([j for j in tail if j not in clashes[first]], chosen | {first})
        grow(tail, chosen)

    grow([int(m) for m in members], set())
    return best


def _largest_greedy(members, clashes) -> set[int]:
    alive = {int(m) for m in members}
    chosen: set[int] = set()
    while alive:
        i = min(alive, key=lambda k: (len(clashes[k] & alive), k))
        chosen.add(i)
        alive -= clashes[i] | {i}
    return chosen
