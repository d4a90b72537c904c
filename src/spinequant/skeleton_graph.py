"""Skeleton voxels as a graph in µm: neighbour edges, a spanning tree, side-branch pruning.

Both centreline finders use it: the classical segmentation (shaft vs spines) and the
dendrite measurements (:mod:`spinequant.morphology.skeleton`). It depends on numpy and scipy
only, so any subpackage may import it.

A graph is a ``scipy.sparse`` matrix over the skeleton voxels, numbered in
``np.argwhere(mask)`` order, whose entries are edge lengths in µm. A tree is symmetric (each
edge stored both ways), so a node's neighbours are one row of it.

>>> import numpy as np
>>> line = np.zeros((1, 1, 5), dtype=bool)
>>> line[0, 0, :] = True
>>> coords, tree = skeleton_tree(line, spacing=(1.0, 1.0, 0.5))
>>> float(tree_length(tree))
2.0
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

__all__ = ["neighbour_offsets", "voxel_graph", "points_graph", "spanning_tree", "skeleton_tree", "tree_length",
           "prune_side_branches", "keep_long_components"]


def neighbour_offsets(ndim: int) -> np.ndarray:
    """The neighbour offsets that, with their negatives, make up the full neighbourhood
    (13 of the 26 in 3D, 4 of the 8 in 2D); each points to a later voxel in raster order."""
    return np.array([o for o in itertools.product((-1, 0, 1), repeat=ndim) if o > (0,) * ndim],
                    dtype=np.int64)


def voxel_graph(mask: np.ndarray, spacing) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Voxels of ``mask`` joined to their 26 neighbours (8 in 2D), edges weighted in µm.

    Returns ``(coords, graph)``: ``coords`` (N, ndim) voxel indices in raster order, and an
    (N, N) matrix holding each edge once, from the earlier voxel to the later one.
    """
    coords = np.argwhere(np.asarray(mask, dtype=bool))
    return coords, points_graph(coords, spacing)


def points_graph(coords: np.ndarray, spacing) -> sparse.csr_matrix:
    """The graph of :func:`voxel_graph` over voxel indices given as a list ((N, ndim) ints in
    raster order, no repeats), so a skeleton kept as coordinates needs no dense array."""
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, len(np.atleast_1d(spacing)))
    spacing = np.asarray(spacing, dtype=float)
    n = len(coords)
    # Neighbours found by their raster number in a frame one voxel wider than the points,
    # so a neighbour's number is never that of a point across the frame's edge.
    low = coords.min(axis=0) - 1 if n else np.zeros(coords.shape[1], np.int64)
    frame = (coords.max(axis=0) + 2 - low) if n else np.ones(coords.shape[1], np.int64)
    key = np.ravel_multi_index(tuple((coords - low).T), frame)
    rows, cols, lengths = [], [], []
    for offset in neighbour_offsets(coords.shape[1]):
        wanted = np.ravel_multi_index(tuple((coords + offset - low).T), frame)
        at = np.minimum(np.searchsorted(key, wanted), max(n - 1, 0))
        linked = np.flatnonzero(key[at] == wanted) if n else np.zeros(0, np.int64)
        rows.append(linked)
        cols.append(at[linked])
        lengths.append(np.full(len(linked), float(np.linalg.norm(offset * spacing))))
    return sparse.coo_matrix((np.concatenate(lengths), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, n)).tocsr()


def spanning_tree(graph: sparse.spmatrix) -> sparse.csr_matrix:
    """Minimum spanning tree (forest) of ``graph``, stored both ways.

    Skeletons of real masks have loops (around small tunnels, and the voxel staircase at
    junctions); a loop has no free end, so a side branch on it could never be pruned. The
    spanning tree opens every loop at its longest edge.
    """
    tree = csgraph.minimum_spanning_tree(graph)
    return (tree + tree.T).tocsr()


def skeleton_tree(mask: np.ndarray, spacing) -> tuple[np.ndarray, sparse.csr_matrix]:
    """``(coords, tree)``: the spanning tree of the voxel graph of ``mask``."""
    coords, graph = voxel_graph(mask, spacing)
    return coords, spanning_tree(graph)


def tree_length(tree: sparse.spmatrix) -> float:
    """Total edge length (µm) of a tree stored both ways."""
    return 0.5 * float(tree.sum())


def prune_side_branches(tree: sparse.spmatrix, max_length_um, *, inclusive: bool = True,
                        protected: np.ndarray | None = None, max_rounds: int = 4) -> np.ndarray:
    """Nodes that remain after cutting short side branches; a boolean mask over the nodes.

    A side branch runs from a free end to the first junction (a node with three or more
    neighbours); it is cut, junction excluded, when its length is at most the limit at that
    junction (below it, with ``inclusive=False``). Ends are handled in node order and each
    cut lowers its junction's degree at once, so a later branch may run on through a
    junction that has become a plain path node. Rounds repeat until nothing is cut.

    Parameters
    ----------
    tree : (N, N) sparse matrix, symmetric, edge lengths in µm (see :func:`spanning_tree`)
    max_length_um : float, or (N,) array of limits indexed by the junction node
    inclusive : cut branches of exactly the limit too
    protected : (N,) bool array, optional; branches starting at these ends are never cut
    max_rounds : at most this many passes over the ends
    """
    tree = sparse.csr_matrix(tree)
    n = tree.shape[0]
    limit = np.broadcast_to(np.asarray(max_length_um, dtype=float), (n,))
    longest = float(limit.max()) if n else 0.0
    neighbours = np.split(tree.indices, tree.indptr[1:-1])
    lengths = np.split(tree.data, tree.indptr[1:-1])
    alive = np.ones(n, dtype=bool)
    degree = np.diff(tree.indptr).astype(np.int64)
    candidates = degree == 1
    if protected is not None:
        candidates &= ~np.asarray(protected, dtype=bool)
    for _ in range(max_rounds):
        cut = False
        for end in np.flatnonzero(candidates & alive):
            path, length, junction = _walk_to_junction(end, neighbours, lengths, alive, degree, longest)
            if junction < 0:
                continue
            if length <= limit[junction] if inclusive else length < limit[junction]:
                alive[path] = False
                degree[junction] -= 1
                cut = True
        if not cut:
            break
    return alive


def _walk_to_junction(end, neighbours, lengths, alive, degree, give_up_um):
    """Walk from a free end along path nodes: (the nodes before the junction, length to the
    junction, the junction), with junction -1 where the walk ends elsewhere or goes beyond
    ``give_up_um``."""
    path, length = [end], 0.0
    prev, cur = -1, end
    while True:
        step = [k for k, m in enumerate(neighbours[cur]) if alive[m] and m != prev]
        if not step:
            return path, length, -1
        length += float(lengths[cur][step[0]])
        prev, cur = cur, int(neighbours[cur][step[0]])
        if degree[cur] != 2:
            return path, length, (cur if degree[cur] >= 3 else -1)
        if length > give_up_um:
            return path, length, -1
        path.append(cur)


def keep_long_components(tree: sparse.spmatrix, keep: np.ndarray, min_length_um: float) -> np.ndarray:
    """``keep`` restricted to the connected pieces (of the kept nodes) whose edges add up to
    at least ``min_length_um``."""
    keep = np.asarray(keep, dtype=bool)
    if not keep.any():
        return keep.copy()
    sub = sparse.csr_matrix(tree)[keep][:, keep]
    _, piece = csgraph.connected_components(sub, directed=False)
    upper = sparse.triu(sub).tocoo()
    length = np.bincount(piece[upper.row], weights=upper.data, minlength=int(piece.max()) + 1)
    out = np.zeros_like(keep)
    out[np.flatnonzero(keep)] = length[piece] >= min_length_um
    return out
