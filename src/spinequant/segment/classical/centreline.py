"""Dendrite centrelines from a foreground mask: skeleton, with spine branches pruned.

The skeleton of a spiny dendrite is the shaft's centreline plus one short side branch per
protrusion. Side branches that end inside the volume and are shorter than the longest
spine are cut; what remains, in components long enough to be dendrite, is the centreline.
"""

from __future__ import annotations

import numpy as np
from skimage.morphology import skeletonize

from ...skeleton_graph import keep_long_components, prune_side_branches, skeleton_tree


def centreline(foreground: np.ndarray, *, spacing, max_spine_length_um: float,
               min_length_um: float, border_um: float = 1.5, max_rounds: int = 4) -> np.ndarray:
    """Boolean centreline voxels of the dendrites in ``foreground`` (spine branches removed).

    Branches that run out of the volume through a y/x face are dendrites leaving the field
    of view and are kept whatever their length (see :func:`leaves_volume`).
    """
    skeleton = skeletonize(foreground) > 0
    if not skeleton.any():
        return skeleton
    sp = np.asarray(spacing, dtype=float)
    coords, tree = skeleton_tree(skeleton, sp)
    ends = np.flatnonzero(np.diff(tree.indptr) == 1)
    leaving = np.zeros(len(coords), dtype=bool)
    leaving[ends] = [leaves_volume(coords[e], foreground, sp, border_um) for e in ends]
    keep = prune_side_branches(tree, max_spine_length_um, protected=leaving, max_rounds=max_rounds)
    keep = keep_long_components(tree, keep, min_length_um)
    out = np.zeros(foreground.shape, dtype=bool)
    out[tuple(coords[keep].T)] = True
    return out


def leaves_volume(end: np.ndarray, foreground: np.ndarray, spacing, border_um: float) -> bool:
    """Whether the dendrite at skeleton end voxel ``end`` runs out of the volume through a
    y/x face.

    The skeleton stops up to a radius short of the face, so the test is that the end lies
    within ``border_um`` of a y/x face and the foreground touches that face near it (a
    spine head close to the edge does not touch it). z faces do not count: stacks are thin
    in z, and spines pointing up or down reach the top or bottom plane as often as
    dendrites leave through them.
    """
    spacing = np.asarray(spacing, dtype=float)
    reach = np.ceil(border_um / spacing).astype(int)
    ndim = foreground.ndim
    for axis in (ndim - 2, ndim - 1):
        for face in (0, foreground.shape[axis] - 1):
            if abs(end[axis] - face) * spacing[axis] > border_um:
                continue
            window = [slice(max(v - r, 0), v + r + 1) for v, r in zip(end, reach)]
            window[axis] = face
            if foreground[tuple(window)].any():
                return True
    return False
