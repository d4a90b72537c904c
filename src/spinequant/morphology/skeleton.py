"""Dendrite centrelines: a 3D skeleton turned into a tree in µm.

Each dendrite label is thinned with :func:`skimage.morphology.skeletonize` (Lee et al. 1994,
3D). The skeleton voxels become graph nodes joined to their 26 neighbours with edge lengths
in µm (anisotropic voxels), the graph is reduced to a spanning tree (the voxel staircase makes
small cycles at junctions), side branches shorter than the dendrite is thick are pruned as
surface bumps, node positions are smoothed to remove the grid staircase, and each free end is
extended along its direction to the mask surface so that a cylinder of length L measures L.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import edt
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from ..boxes import grow_box
from ..skeleton_graph import points_graph, prune_side_branches, spanning_tree
from ._common import checked_spacing, dendrite_label_image, ray_exit
from .config import MorphologyConfig, resolve_config


@dataclass
class DendriteSkeleton:
    """Centreline tree of every dendrite, one node per skeleton voxel.

    Attributes
    ----------
    coords_um : (N, 3) float array
        Smoothed node positions (z, y, x) in µm; (N, 2), (y, x), for a 2D image.
    label : (N,) int array
        Dendrite id of each node.
    radius_um : (N,) float array
        Local dendrite radius (largest inscribed sphere) at each node.
    parent : (N,) int array
        Parent node (-1 for the start of a piece); the tree is rooted at each dendrite's start.
    position_um : (N,) float array
        Path length from the dendrite's start (including the end cap before the first node).
    degree : (N,) int array
        Number of tree neighbours; 1 = free end, >= 3 = branch point.
    end_extension_um : (N,) float array
        Length from a free end node to the mask surface along the centreline (0 elsewhere).
    spacing : (3,) float array
    """

    coords_um: np.ndarray
    label: np.ndarray
    radius_um: np.ndarray
    parent: np.ndarray
    position_um: np.ndarray
    degree: np.ndarray
    end_extension_um: np.ndarray
    spacing: np.ndarray
    _trees: dict = field(default_factory=dict, repr=False)

    @property
    def labels(self) -> np.ndarray:
        return np.unique(self.label)

    def edge_lengths(self) -> np.ndarray:
        """Length in µm of the edge from each node to its parent (0 for roots)."""
        has = self.parent >= 0
        out = np.zeros(len(self.parent))
        out[has] = np.linalg.norm(self.coords_um[has] - self.coords_um[self.parent[has]], axis=1)
        return out

    def length_um(self, dendrite_id: int) -> float:
        """Centreline length of one dendrite: tree edges plus the end caps, µm."""
        sel = self.label == dendrite_id
        return float(self.edge_lengths()[sel].sum() + self.end_extension_um[sel].sum())

    def branch_points(self, dendrite_id: int) -> int:
        """Number of branch points; adjacent junction nodes count once."""
        sel = np.nonzero((self.label == dendrite_id) & (self.degree >= 3))[0]
        if len(sel) == 0:
            return 0
        pos = {n: k for k, n in enumerate(sel)}
        rows = [pos[n] for n in sel if self.parent[n] in pos]
        cols = [pos[self.parent[n]] for n in sel if self.parent[n] in pos]
        adj = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sel), len(sel)))
        return int(csgraph.connected_components(adj, directed=False)[0])

    def position_of(self, points_um, dendrite_id: int | None = None) -> np.ndarray:
        """Path position (µm from the dendrite's start) of the centreline point nearest each
        of ``points_um`` ((N, 3) or (3,), z y x in µm); NaN when there is no centreline."""
        pts = np.atleast_2d(np.asarray(points_um, dtype=float))
        nodes = [self.nearest_node(p, dendrite_id) for p in pts]
        return np.array([self.position_um[n] if n >= 0 else np.nan for n in nodes])

    def nearest_node(self, point_um, dendrite_id: int | None = None) -> int:
        """Index of the node nearest ``point_um`` (optionally only among one dendrite's nodes)."""
        key = -1 if dendrite_id is None else int(dendrite_id)
        if key not in self._trees:
            idx = np.arange(len(self.label)) if key == -1 else np.nonzero(self.label == key)[0]
            self._trees[key] = (cKDTree(self.coords_um[idx]) if len(idx) else None, idx)
        tree, idx = self._trees[key]
        if tree is None:
            return -1
        return int(idx[tree.query(np.asarray(point_um, dtype=float))[1]])


def dendrite_skeleton(dendrite_labels, spacing, *, config: MorphologyConfig | dict | None = None,
                      radius_edt: np.ndarray | None = None) -> DendriteSkeleton:
    """Centreline trees of all dendrites in a label image (or boolean mask).

    Parameters
    ----------
    dendrite_labels : (Z, Y, X) or (Y, X) int or bool array
        One id per dendrite (0 = background); a boolean mask is split into connected pieces.
    spacing : sequence of 3 floats (z, y, x), or 2 (y, x) for a 2D image
        Voxel size in µm.
    config : MorphologyConfig or dict, optional
        Uses ``prune_length_um`` and ``smoothing_iterations``.
    radius_edt : array, optional
        Precomputed ``edt.edt(dendrite_labels, anisotropy=spacing)`` to avoid computing it twice.

    Returns
    -------
    DendriteSkeleton
    """
    cfg = resolve_config(config)
    labels = dendrite_label_image(dendrite_labels)
    sp = checked_spacing(spacing, labels.ndim)
    parts = []
    for lab, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = grow_box(box, 1, labels.shape)
        mask = labels[box] == lab
        # The distance transform is needed only inside each dendrite's own box.
        rad = (radius_edt[box] if radius_edt is not None
               else edt.edt(mask.view(np.uint8), anisotropy=tuple(sp)))
        vox = np.argwhere(skeletonize(mask))
        if not len(vox):  # a blob thinner than the thinning kernel keeps its brightest voxel
            vox = np.array([np.unravel_index(np.argmax(np.where(mask, rad, -1)), mask.shape)])
        offset = np.array([s.start for s in box])
        parts.append(tree_part(lab, vox, rad[tuple(vox.T)], WholeMask(mask), offset, sp, cfg))
    return join_parts(parts, sp, labels.ndim)


def join_parts(parts: list[dict], sp, ndim: int) -> DendriteSkeleton:
    """One skeleton from the trees of :func:`tree_part` (node numbers shifted)."""
    if not parts:
        empty = np.zeros((0, ndim))
        z = np.zeros(0)
        return DendriteSkeleton(empty, z.astype(np.int32), z, z.astype(np.int64), z,
                                z.astype(np.int64), z, np.asarray(sp, float))
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    shift = np.cumsum([0] + [len(p["label"]) for p in parts[:-1]])
    cat["parent"] = np.concatenate([np.where(p["parent"] >= 0, p["parent"] + s, -1)
                                    for p, s in zip(parts, shift)])
    return DendriteSkeleton(spacing=np.asarray(sp, float), **cat)


class WholeMask:
    """The mask of one dendrite as :func:`tree_part` reads it, here a whole array in memory.

    :func:`tree_part` needs the mask for two things only, both asked through this object,
    so that a mask too large for memory can answer them tile by tile
    (:class:`spinequant.scale.tiled_skeleton.TiledMask`): how far a ray from a free end runs
    inside it, and how many mask voxels lie nearest each node.
    """

    def __init__(self, mask: np.ndarray):
        self.mask = mask
        self.ndim = mask.ndim

    def exit_um(self, start_vox, direction, sp) -> float:
        """:func:`ray_exit` distance from voxel ``start_vox`` along the unit ``direction``."""
        return ray_exit(self.mask, np.asarray(start_vox) * sp, direction, sp)[0]

    def nearest_counts(self, nodes: cKDTree, sp) -> np.ndarray:
        """Number of mask voxels whose nearest node (µm positions in ``nodes``) is each node."""
        owner = nodes.query(np.argwhere(self.mask) * sp)[1]
        return np.bincount(owner, minlength=nodes.n)


def tree_part(lab, vox, vox_radius, mask, offset, sp, cfg) -> dict:
    """The tree of one dendrite from its skeleton voxels.

    ``vox``: (N, ndim) skeleton voxel indices in raster order (of the dendrite's box);
    ``vox_radius``: the distance transform of the mask at each (µm); ``mask``: a
    :class:`WholeMask` or an object answering the same two questions; ``offset``: the box's
    first voxel in the image. Returns the columns of :class:`DendriteSkeleton` for this tree.
    """
    tree = spanning_tree(points_graph(vox, sp))
    # Side branches shorter than the dendrite is thick at their junction are surface bumps.
    limit = np.maximum(cfg.prune_length_um, 2 * vox_radius)
    keep = prune_side_branches(tree, limit, inclusive=False, max_rounds=3)
    tree = tree[keep][:, keep].tocsr()
    vox, vox_radius = vox[keep], vox_radius[keep]
    degree = np.diff(tree.indptr)
    coords = _smooth_tree(vox * sp, tree, degree, cfg.smoothing_iterations)
    ext = np.zeros(len(vox))
    for e in np.nonzero(degree <= 1)[0]:
        ext[e] = _end_extension(e, tree, coords, vox, mask, sp,
                                baseline_um=max(1.0, 4.0 * float(vox_radius[e])))
    radius = _local_radius(mask, coords, tree, ext, sp)
    roots = _roots(tree, coords, degree)
    # Edge weights from the smoothed positions, so lengths lose the voxel staircase.
    tc = tree.tocoo()
    wts = np.linalg.norm(coords[tc.row] - coords[tc.col], axis=1) + 1e-12
    smooth = sparse.csr_matrix((wts, (tc.row, tc.col)), shape=tree.shape)
    dist, pred, source = csgraph.dijkstra(smooth, directed=False, indices=roots,
                                          return_predecessors=True, min_only=True)
    parent = np.where(pred < 0, -1, pred).astype(np.int64)
    position = dist + ext[source]
    return {
        "coords_um": coords + offset * sp, "label": np.full(len(vox), lab, dtype=np.int32),
        "radius_um": radius, "parent": parent, "position_um": position,
        "degree": degree.astype(np.int64), "end_extension_um": ext,
    }


def _local_radius(mask, coords, tree, ext, sp, passes: int = 10) -> np.ndarray:
    """Radius of the equivalent cylinder around each node: the mask volume nearest the node
    over the centreline length it stands for, both averaged along the tree (in 2D: half the
    width of the equivalent strip, area over twice the length).

    Unlike the distance transform at a skeleton voxel, this is not biased low when the
    skeleton sits half a z step off the true axis.
    """
    n = len(coords)
    volume = mask.nearest_counts(cKDTree(coords), sp) * float(np.prod(sp))
    tc = tree.tocoo()
    length = 0.5 * np.bincount(tc.row, weights=np.linalg.norm(coords[tc.row] - coords[tc.col],
                                                              axis=1), minlength=n) + ext
    if n == 1:
        length = np.maximum(length, 2 * ext)
    spread = (tree > 0).astype(float) + sparse.identity(n, format="csr")
    count = np.asarray(spread.sum(axis=1)).ravel()
    for _ in range(passes):
        volume = spread @ volume / count
        length = spread @ length / count
    if mask.ndim == 2:
        return volume / (2.0 * np.maximum(length, 1e-9))
    return np.sqrt(volume / (np.pi * np.maximum(length, 1e-9)))


def _smooth_tree(coords, tree, degree, iterations) -> np.ndarray:
    pts = coords.astype(float).copy()
    inner = np.nonzero(degree == 2)[0]
    if len(inner) == 0:
        return pts
    nb = tree.indices[tree.indptr[inner][:, None] + np.arange(2)]
    for _ in range(iterations):
        pts[inner] = 0.5 * pts[inner] + 0.25 * (pts[nb[:, 0]] + pts[nb[:, 1]])
    return pts


def _end_extension(end, tree, coords, vox, mask, sp, baseline_um) -> float:
    """Distance from a free end along the centreline direction to where the mask ends."""
    nbrs = tree.indices[tree.indptr[end]:tree.indptr[end + 1]]
    if len(nbrs) == 0:  # a lone node: the blob's own extent in the finest axis
        return float(sp.min())
    # Walk back about a dendrite diameter: the thinning bends the last few voxels of an end.
    prev, cur = end, int(nbrs[0])
    while np.linalg.norm(coords[cur] - coords[end]) < baseline_um:
        nxt = [m for m in tree.indices[tree.indptr[cur]:tree.indptr[cur + 1]] if m != prev]
        if len(nxt) != 1:
            break
        prev, cur = cur, int(nxt[0])
    direction = coords[end] - coords[cur]
    norm = np.linalg.norm(direction)
    if norm == 0:
        return 0.0
    return mask.exit_um(vox[end], direction / norm, sp)


def _roots(tree, coords, degree) -> np.ndarray:
    """Start of each piece: its free end nearest the image's top-left corner (smallest
    x + y, then z); a piece without free ends (a loop) starts at its first node."""
    _, comp = csgraph.connected_components(tree, directed=False)
    roots = []
    for c in np.unique(comp):
        nodes = np.nonzero(comp == c)[0]
        ends = nodes[degree[nodes] <= 1]
        ends = ends if len(ends) else nodes[:1]
        y, x = coords[ends, -2], coords[ends, -1]
        roots.append(ends[np.lexsort((coords[ends, 0], y + x))[0]])
    return np.sort(np.array(roots, dtype=np.int64))
