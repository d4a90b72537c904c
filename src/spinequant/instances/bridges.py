"""Dendrite pieces bridged where the image stays bright between them.

A network's shaft map breaks where the shaft is unlike the shafts it learnt: at a bright
varicosity that saturates the detector, or at a dim stretch. Where the gap between two pieces
is short and the image along the straight line between their nearest points stays well above
the background -- at least a fraction of the way from the background (the image's median) up
to the dimmer piece's typical brightness -- the shaft continues there: the line is drawn into
the dendrite and the two pieces become one. A dark gap -- where a dendrite really ends, or two
dendrites only come close -- is left alone. On the real sample stack the network's shaft map
broke at four places where the image between the pieces stays 0.49-0.83 of the way up from
the background, and 1.4-2.0 µm long; gaps between separate dendrites are near the background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.draw import line_nd

from ._objects import Objects, sparse_labels


def bridge_bright_gaps(dendrite_labels: np.ndarray, image: np.ndarray, spacing, *,
                       max_gap_um: float = 2.5, min_fraction: float = 0.4) -> np.ndarray:
    """Join dendrite pieces across gaps of at most ``max_gap_um`` along which the (lightly
    smoothed) image stays at or above ``min_fraction`` of the way from the background (the
    image's median) to the dimmer piece's median intensity. Returns new labels (pieces renumbered 1..
    by their lowest old label, bridges drawn in).

    >>> image = np.full((1, 5, 30), 10.0); image[0, 1:4, :] = 100.0; image[0, 1:4, 12:16] = 250.0
    >>> dend = np.zeros((1, 5, 30), int); dend[0, 1:4, :12] = 1; dend[0, 1:4, 16:] = 2
    >>> out = bridge_bright_gaps(dend, image, (0.5, 0.1, 0.1))
    >>> int(out.max()), int(out[0, 2, 14])
    (1, 1)
    >>> image[0, 1:4, 12:16] = 20.0                          # a dark gap: two dendrites
    >>> int(bridge_bright_gaps(dend, image, (0.5, 0.1, 0.1)).max())
    2
    """
    labels = np.asarray(dendrite_labels)
    n = int(labels.max()) if labels.size else 0
    if n < 2:
        return dendrite_labels
    spacing = np.asarray(spacing, float)
    pieces = Objects.of(labels)
    image = np.asarray(image)
    # The background from every 4th voxel along each axis: a median of the whole stack
    # would cost a second on 10^8 voxels and say the same.
    background = float(np.median(image[tuple(slice(None, None, 4) for _ in range(image.ndim))]))
    surfaces, levels = {}, {}
    for i in pieces.ids:
        box = pieces.boxes[i]
        own = labels[box] == i
        rim = own & ~ndi.binary_erosion(own)
        offset = np.array([s.start for s in box])
        surfaces[i] = (np.argwhere(rim) + offset) * spacing
        levels[i] = float(np.median(image[box][own]))
    trees = {i: cKDTree(points) for i, points in surfaces.items()}
    edges, bridges = [], []
    ids = list(pieces.ids)
    for a_pos, a in enumerate(ids):
        for b in ids[a_pos + 1:]:
            if not _boxes_near(pieces.boxes[a], pieces.boxes[b], max_gap_um / spacing):
                continue
            dist, idx = trees[b].query(surfaces[a], distance_upper_bound=max_gap_um)
            if not np.isfinite(dist).any():
                continue
            k = int(np.argmin(dist))
            start, end = surfaces[a][k] / spacing, surfaces[b][idx[k]] / spacing
            path = np.array(line_nd(start, end, endpoint=True)).T
            level = min(levels[a], levels[b])
            if _smoothed_along(image, path).min() >= background + min_fraction * (level - background):
                edges.append((a, b))
                bridges.append(path)
    if not edges:
        return dendrite_labels
    u, v = np.array(edges).T
    graph = coo_matrix((np.ones(len(u)), (u, v)), shape=(n + 1, n + 1))
    _, component = connected_components(graph, directed=False)
    _, first, group = np.unique(component[1:], return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int32)
    rank[np.argsort(first)] = np.arange(1, len(first) + 1, dtype=np.int32)
    lut = np.concatenate([[0], rank[group]]).astype(np.int32)
    lut[pieces.counts == 0] = 0                      # ids no voxel holds: no box
    out = sparse_labels(labels, pieces.boxes, lut)
    for (a, _), path in zip(edges, bridges):
        lo = np.maximum(path.min(axis=0) - 1, 0)
        hi = np.minimum(path.max(axis=0) + 2, out.shape)
        box = tuple(slice(l, h) for l, h in zip(lo, hi))
        line = np.zeros(tuple(hi - lo), bool)
        line[tuple((path - lo).T)] = True
        view = out[box]
        view[ndi.binary_dilation(line) & (view == 0)] = lut[a]
    return out


def _smoothed_along(image: np.ndarray, path: np.ndarray) -> np.ndarray:
    """The image, smoothed by a Gaussian of one voxel, at the voxels of ``path`` (computed in
    the path's box only)."""
    lo = np.maximum(path.min(axis=0) - 4, 0)
    hi = np.minimum(path.max(axis=0) + 5, image.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    smooth = ndi.gaussian_filter(np.asarray(image[box], np.float32), 1.0, mode="nearest")
    return smooth[tuple((path - lo).T)]


def _boxes_near(box_a, box_b, margin) -> bool:
    return all(sa.start - m <= sb.stop and sb.start - m <= sa.stop
               for sa, sb, m in zip(box_a, box_b, margin))
