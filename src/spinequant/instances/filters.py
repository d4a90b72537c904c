"""Rules that keep or drop objects: size, z extent, distance to the dendrite, noise (eq. 12).

Each public function takes and returns label volumes; the pipeline calls the ``*_objects``
variants, which pass voxel counts and bounding boxes along instead of recomputing them.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..boxes import grow_box
from .._blank import blank_volume
from ._objects import Objects, near_mask, sparse_labels


def object_filter(labels: np.ndarray, *, spacing, dendrite_mask=None, min_volume_um3: float = 0.0,
                  max_volume_um3: float = np.inf, min_planes: int = 1,
                  max_distance_to_dendrite_um: float | None = None) -> tuple[np.ndarray, dict]:
    """Keep objects by volume (µm³), number of z planes spanned and distance to the dendrite.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Objects (0 = background).
    spacing : sequence of 3 floats
        Voxel size in µm (z, y, x).
    dendrite_mask : ndarray of bool or int (labels), optional
        Needed for ``max_distance_to_dendrite_um``.
    min_volume_um3, max_volume_um3 : float
        Volume range to keep (voxel count × voxel volume).
    min_planes : int
        Smallest number of z planes an object must span.
    max_distance_to_dendrite_um : float or None
        Keep objects with a voxel this close to a dendrite voxel (Euclidean, centre to centre).

    Returns
    -------
    labels : ndarray of int32
        Kept objects renumbered 1..N in the order of their old ids.
    removed : dict
        Number of objects each rule removed (a rule sees only what earlier rules kept).

    Examples
    --------
    >>> labels = np.zeros((4, 10, 10), int); labels[1, 1:3, 1:3] = 1; labels[0:3, 5:9, 5:9] = 2
    >>> kept, removed = object_filter(labels, spacing=(0.5, 0.1, 0.1), min_planes=2)
    >>> int(kept.max()), removed["min_planes"]
    (1, 1)
    """
    objects, removed = filter_objects(Objects.of(labels), spacing=spacing, dendrite_mask=dendrite_mask,
                                      min_volume_um3=min_volume_um3, max_volume_um3=max_volume_um3,
                                      min_planes=min_planes,
                                      max_distance_to_dendrite_um=max_distance_to_dendrite_um)
    return objects.labels, removed


def filter_objects(objects: Objects, *, spacing, dendrite_mask, min_volume_um3, max_volume_um3, min_planes,
                   max_distance_to_dendrite_um) -> tuple[Objects, dict]:
    ids = objects.ids
    volume = objects.volumes(spacing)
    removed = {}
    keep = (volume >= min_volume_um3) & (volume <= max_volume_um3)
    removed["volume"] = int((~keep).sum())
    # A 2D image is one plane: every object spans it.
    planes = np.array([objects.boxes[i][0].stop - objects.boxes[i][0].start if objects.labels.ndim == 3
                       else 1 for i in ids], dtype=int)
    removed["min_planes"] = int((keep & (planes < min_planes)).sum())
    keep &= planes >= min_planes
    if max_distance_to_dendrite_um is not None and dendrite_mask is not None:
        near = np.zeros(len(ids), bool)
        near[keep] = near_mask(objects, ids[keep], dendrite_mask, spacing, max_distance_to_dendrite_um)
        removed["dendrite_distance"] = int((keep & ~near).sum())
        keep &= near
    return objects.keep(ids[keep]), removed


def noise_filter(labels: np.ndarray, dendrite_labels: np.ndarray, *, spacing, distance_um: float = 3.0,
                 dendrite_volume_um3: float = 0.16, volume_um3: float = 0.024) -> tuple[np.ndarray, int]:
    """Vidaurre-Gallart et al. (2022) eq. 12: drop small components far from the dendrite.

    A component ``s`` is removed when ``d_Vd(s) > D`` and ``getSize(s) < V_s``, where ``d_Vd``
    is the distance from ``s`` to the closest dendritic shaft component bigger than ``V_d``.
    Both conditions must hold: a small object next to the dendrite stays, and so does a large
    one far away. The paper applies the rule to spines, to dendrite components, or to both.

    Parameters
    ----------
    labels : ndarray of int
        Components to test (spines or dendrite fragments).
    dendrite_labels : ndarray of int
        Dendrite components; those larger than ``dendrite_volume_um3`` are the reference.
    spacing : sequence of 3 floats
        Voxel size in µm (z, y, x).
    distance_um, dendrite_volume_um3, volume_um3 : float
        D (µm), V_d (µm³) and V_s (µm³); the defaults are the paper's.

    Returns
    -------
    labels : ndarray of int32
        Kept components renumbered 1..N.
    n_removed : int
    """
    objects, n = noise_objects(Objects.of(labels), Objects.of(dendrite_labels), spacing=spacing,
                               distance_um=distance_um, dendrite_volume_um3=dendrite_volume_um3,
                               volume_um3=volume_um3)
    return objects.labels, n


def noise_objects(objects: Objects, dendrites: Objects, *, spacing, distance_um, dendrite_volume_um3,
                  volume_um3) -> tuple[Objects, int]:
    ids = objects.ids
    small = objects.volumes(spacing) < volume_um3
    far = np.zeros(len(ids), bool)
    if small.any():
        big = dendrites.ids[dendrites.volumes(spacing) > dendrite_volume_um3]
        reference = dendrites.mask_of(big)
        # "farther than D" is the complement of "some reference voxel within D".
        far[small] = ~near_mask(objects, ids[small], reference, spacing, distance_um)
    drop = small & far
    return (objects.keep(ids[~drop]) if drop.any() else objects), int(drop.sum())


def remove_small(labels: np.ndarray, *, spacing, min_volume_um3: float) -> tuple[np.ndarray, int]:
    """Remove components smaller than ``min_volume_um3`` (DeepD3's dendrite cleaning)."""
    objects, n = remove_small_objects(Objects.of(labels), spacing=spacing, min_volume_um3=min_volume_um3)
    return objects.labels, n


def remove_small_objects(objects: Objects, *, spacing, min_volume_um3) -> tuple[Objects, int]:
    keep = objects.volumes(spacing) >= min_volume_um3
    if keep.all():
        return objects, 0
    return objects.keep(objects.ids[keep]), int((~keep).sum())


def join_through_spines(dendrite_labels: np.ndarray, spine_labels, connectivity: int = 26) -> np.ndarray:
    """Relabel dendrite pieces that touch a common spine object (directly or along a chain
    of touching spines) as one dendrite, numbered 1.. in order of their lowest old label.

    ``spine_labels`` is a label volume or :class:`Objects` (whose boxes are then reused).

    >>> d = np.zeros((1, 1, 7), int); d[0, 0, :2] = 1; d[0, 0, 5:] = 2
    >>> s = np.zeros_like(d); s[0, 0, 2:5] = 1
    >>> join_through_spines(d, s)[0, 0].tolist()
    [1, 1, 0, 0, 0, 1, 1]
    """
    spines = spine_labels if isinstance(spine_labels, Objects) else Objects.of(spine_labels)
    n_dend = int(dendrite_labels.max())
    if n_dend < 2 or not len(spines.ids):
        return dendrite_labels
    # A graph of dendrite pieces (nodes 1..n_dend) and spines (n_dend + id), with an edge
    # wherever a spine touches a piece or another spine; each spine's box, grown by one voxel,
    # shows what it touches, so no pass over the whole volume is needed.
    ndim = dendrite_labels.ndim
    footprint = ndi.generate_binary_structure(ndim, min({6: 1, 18: 2, 26: 3}[connectivity], ndim))
    edges = []
    for i in spines.ids:
        box = grow_box(spines.boxes[i], 1, dendrite_labels.shape)
        near = ndi.binary_dilation(spines.labels[box] == i, footprint)
        edges += [(n_dend + i, d) for d in np.unique(dendrite_labels[box][near]) if d]
        edges += [(n_dend + i, n_dend + o) for o in np.unique(spines.labels[box][near]) if o and o != i]
    n_nodes = n_dend + int(spines.ids.max()) + 1
    a, b = np.array(edges, np.int64).reshape(-1, 2).T
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n_nodes, n_nodes))
    _, component = connected_components(graph, directed=False)
    _, first, group = np.unique(component[1:n_dend + 1], return_index=True, return_inverse=True)
    if len(first) == n_dend:
        return dendrite_labels
    rank = np.empty(len(first), np.int32)                   # components by their lowest piece
    rank[np.argsort(first)] = np.arange(1, len(first) + 1, dtype=np.int32)
    lut = np.concatenate([[0], rank[group]]).astype(np.int32)
    pieces = Objects.of(dendrite_labels)
    lut[pieces.counts == 0] = 0                             # ids no voxel holds: no box
    return sparse_labels(dendrite_labels, pieces.boxes, lut)


def trim_to_peak_fraction(objects: Objects, prob: np.ndarray, fraction: float,
                          connectivity: int = 26) -> Objects:
    """Drop each object's voxels below ``fraction`` of the object's own peak probability and
    keep the largest remaining piece (the one that holds most of the object).

    A network that is under-confident on thin spines has to be thresholded low to find them,
    which outlines every spine by the faint skirt of its blurred map; cutting each object at a
    fraction (0.5: half maximum) of its own peak gives back its outline.

    >>> p = np.array([[[0.1, 0.2, 0.6, 0.8, 0.4, 0.0, 0.3]]], np.float32)
    >>> o = trim_to_peak_fraction(Objects.from_mask(p >= 0.1, 26), p, 0.5)
    >>> o.labels[0, 0].tolist(), o.counts.tolist()    # the faint object 2 keeps its own peak
    ([0, 0, 1, 1, 1, 0, 2], [0, 3, 1])
    """
    if fraction <= 0:
        return objects
    labels = blank_volume(objects.labels.shape)
    counts = objects.counts.copy()
    boxes = list(objects.boxes)
    for i in objects.ids:
        box = boxes[i]
        inside = objects.labels[box] == i
        p = prob[box]
        core = cc3d.largest_k(inside & (p >= fraction * p[inside].max()), k=1,
                              connectivity=connectivity) > 0
        labels[box][core] = i
        counts[i] = int(core.sum())
        nz = np.nonzero(core)
        boxes[i] = tuple(slice(s.start + int(a.min()), s.start + int(a.max()) + 1) for s, a in zip(box, nz))
    return Objects(labels, counts, boxes)
