"""Dendrite centrelines from a foreground mask: skeleton, with spine branches pruned.

The skeleton of a spiny dendrite is the shaft's centreline plus one short side branch per
protrusion. Side branches that end inside the volume and are shorter than the longest
spine are cut; what remains, in components long enough to be dendrite, is the centreline.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from skimage.morphology import skeletonize

def _offsets(ndim: int) -> np.ndarray:
    """The 26 neighbour offsets in 3D (8 in 2D)."""
    return np.array([o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)], dtype=np.int64)


class SkeletonGraph:
    """Voxels of a 26-connected skeleton as a tree (its minimum spanning tree in µm).

    Skeletons of real masks have loops (around small tunnels, and the voxel staircase at
    junctions); a loop has no free end, so a spine inside one could never be pruned. The
    spanning tree opens every loop at its longest edge.
    """

    def __init__(self, skeleton: np.ndarray, spacing):
        self.shape = skeleton.shape
        self.coords = np.argwhere(skeleton)
        n = len(self.coords)
        index = np.full(tuple(s + 2 for s in skeleton.shape), -1, dtype=np.int64)
        index[tuple((self.coords + 1).T)] = np.arange(n)
        offsets = _offsets(skeleton.ndim)
        neighbours = index[tuple((self.coords[:, None, :] + 1 + offsets[None]).transpose(2, 0, 1))]
        rows, slots = np.nonzero(neighbours >= 0)
        cols = neighbours[rows, slots]
        length = np.sqrt(((offsets[slots] * np.asarray(spacing, dtype=float)) ** 2).sum(1))
        tree = minimum_spanning_tree(coo_matrix((length, (rows, cols)), shape=(n, n)).tocsr())
        tree = (tree + tree.T).tocsr()
        self.neighbours = [tree.indices[tree.indptr[i]:tree.indptr[i + 1]] for i in range(n)]
        self.alive = np.ones(n, dtype=bool)

    def degree(self, i: int) -> int:
        nb = self.neighbours[i]
        return int(self.alive[nb].sum())

    def step_length(self, i: int, j: int, spacing) -> float:
        return float(np.sqrt((((self.coords[i] - self.coords[j]) * spacing) ** 2).sum()))

    def leaves_volume(self, i: int, foreground: np.ndarray, spacing, border_um: float) -> bool:
        """Whether the dendrite at end voxel ``i`` runs out of the volume through a y/x face.

        The skeleton stops up to a radius short of the face, so the test is that the end lies
        within ``border_um`` of a y/x face and the foreground touches that face near it (a
        spine head close to the edge does not touch it). z faces do not count: stacks are thin
        in z, and spines pointing up or down reach the top or bottom plane as often as
        dendrites leave through them.
        """
        c = self.coords[i]
        reach = np.ceil(border_um / np.asarray(spacing, dtype=float)).astype(int)
        ndim = len(self.shape)
        for axis in (ndim - 2, ndim - 1):
            for face in (0, self.shape[axis] - 1):
                if abs(c[axis] - face) * spacing[axis] > border_um:
                    continue
                window = [slice(max(v - r, 0), v + r + 1) for v, r in zip(c, reach)]
                window[axis] = face
                if foreground[tuple(window)].any():
                    return True
        return False


def centreline(foreground: np.ndarray, *, spacing, max_spine_length_um: float,
               min_length_um: float, border_um: float = 1.5, max_rounds: int = 4) -> np.ndarray:
    """Boolean centreline voxels of the dendrites in ``foreground`` (spine branches removed).

    Branches that run out of the volume through a y/x face are dendrites leaving the field
    of view and are kept whatever their length (see :meth:`SkeletonGraph.leaves_volume`).
    """
    skeleton = skeletonize(foreground) > 0
    if not skeleton.any():
        return skeleton
    graph = SkeletonGraph(skeleton, spacing)
    sp = np.asarray(spacing, dtype=float)
    for _ in range(max_rounds):
        if not _prune_side_branches(graph, foreground, sp, max_spine_length_um, border_um):
            break
    keep = graph.alive & _long_components(graph, sp, min_length_um)
    out = np.zeros(foreground.shape, dtype=bool)
    out[tuple(graph.coords[keep].T)] = True
    return out


def _prune_side_branches(graph: SkeletonGraph, foreground, spacing, max_length: float, border_um: float) -> bool:
    ends = [i for i in np.flatnonzero(graph.alive) if graph.degree(i) <= 1]
    removed = False
    for end in ends:
        if not graph.alive[end] or graph.leaves_volume(end, foreground, spacing, border_um):
            continue
        path, length, junction = [end], 0.0, False
        prev, cur = -1, end
        while True:
            nxt = [j for j in graph.neighbours[cur] if graph.alive[j] and j != prev and j not in path[-3:]]
            if graph.degree(cur) >= 3 and cur != end:
                junction = True
                path.pop()  # the junction belongs to the shaft
                break
            if not nxt or length > max_length:
                break
            prev, cur = cur, nxt[0]
            length += graph.step_length(prev, cur, spacing)
            path.append(cur)
        if junction and length <= max_length:
            graph.alive[path] = False
            removed = True
    return removed


def _long_components(graph: SkeletonGraph, spacing, min_length: float) -> np.ndarray:
    n = len(graph.coords)
    component = np.full(n, -1, dtype=np.int64)
    keep = np.zeros(n, dtype=bool)
    for start in np.flatnonzero(graph.alive):
        if component[start] >= 0:
            continue
        stack, members, length = [start], [], 0.0
        component[start] = start
        while stack:
            i = stack.pop()
            members.append(i)
            for j in graph.neighbours[i]:
                if graph.alive[j] and component[j] < 0:
                    component[j] = start
                    length += graph.step_length(i, j, spacing)
                    stack.append(j)
        if length >= min_length:
            keep[members] = True
    return keep
