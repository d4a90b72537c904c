"""Per-object bookkeeping on label volumes, done inside each object's bounding box.

Whole-volume passes (a distance transform, a lookup-table relabel or a statistics pass over a
1024 × 1024 × 101 stack) take seconds each; cropping to bounding boxes keeps the work
proportional to the objects, and :class:`Objects` carries voxel counts and boxes from step to
step so they are computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import edt
import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .._blank import BLANK_MIN_BYTES, blank_volume
from ..boxes import grow_box


@dataclass
class Objects:
    """A label volume with the voxel count and bounding box of every id (index 0 unused)."""

    labels: np.ndarray
    counts: np.ndarray
    boxes: list

    @classmethod
    def of(cls, labels: np.ndarray) -> Objects:
        s = cc3d.statistics(np.ascontiguousarray(labels))
        boxes = list(s["bounding_boxes"])
        counts = np.asarray(s["voxel_counts"], dtype=np.int64)
        boxes[0], counts[0] = None, 0
        return cls(labels, counts, boxes)

    @classmethod
    def from_mask(cls, mask: np.ndarray, connectivity: int, threshold: float | None = None) -> Objects:
        """3D connected components of ``mask`` (ids 1..N in raster order); of ``mask >=
        threshold`` with a ``threshold`` (see :func:`label_components`)."""
        return cls.of(label_components(mask, connectivity, threshold=threshold))

    @property
    def ids(self) -> np.ndarray:
        return np.flatnonzero(self.counts)

    def volumes(self, spacing) -> np.ndarray:
        """Volume (µm³) of every id in :attr:`ids`."""
        return self.counts[self.ids] * voxel_volume(spacing)

    def keep(self, ids) -> Objects:
        """Only the objects ``ids``, renumbered 1..len(ids) in that order, as int32."""
        ids = np.asarray(ids, dtype=np.int64)
        out = blank_volume(self.labels.shape)
        for new, old in enumerate(ids, start=1):
            box = self.boxes[old]
            view = out[box]
            view[self.labels[box] == old] = new
        return Objects(out, np.concatenate([[0], self.counts[ids]]), [None] + [self.boxes[i] for i in ids])

    def mask_of(self, ids) -> np.ndarray:
        """Boolean mask of the objects ``ids``."""
        mask = np.zeros(self.labels.shape, dtype=bool)
        for i in ids:
            box = self.boxes[i]
            mask[box] |= self.labels[box] == i
        return mask


#: z planes per slab of :func:`label_components`, as voxels (16 MiB of cc3d's uint32 labels).
_SLAB_VOXELS = 4 << 20


def label_components(mask: np.ndarray, connectivity: int = 26, *, threshold: float | None = None,
                     extra=()) -> np.ndarray:
    """``cc3d.connected_components(mask, connectivity)``: the same ids (1..N in raster order
    of each object's first voxel), for a large 3D mask in a :func:`blank_volume` volume.
    With ``threshold``, ``mask`` is a map and the mask is ``mask >= threshold``; ``extra``
    ((start, bool array) pairs) sets those pieces too. The mask is made a slab at a time:
    a large stack's whole mask is never held.

    cc3d labels a whole volume densely, in uint32 as soon as its upper estimate of the count
    passes 65,535 (on any mask of a large stack): 4 bytes a voxel, resident whole, however few
    the objects. Here it labels slabs of planes in turn; each slab's ids are written where its
    mask is set, offset past the ids of the slabs before it, and the pieces that touch across
    a slab face are joined afterwards. Ranked by their first (lowest) piece, the joined
    objects get cc3d's ids, since a slab's ids follow the raster order within it.
    """
    def masked(z0, z1):
        """The mask of the planes [z0, z1) (rows of a 2D mask)."""
        part = mask[z0:z1]
        part = part >= threshold if threshold is not None else np.array(part, bool) if extra else part
        for start, piece in extra:
            za, zb = max(start[0], z0), min(start[0] + piece.shape[0], z1)
            if za < zb:
                where = (slice(za - z0, zb - z0),) + tuple(slice(a, a + k) for a, k in zip(start[1:], piece.shape[1:]))
                part[where] |= piece[za - start[0]:zb - start[0]]
        return np.ascontiguousarray(part)

    plane = int(np.prod(mask.shape[1:], dtype=np.int64))
    if mask.ndim != 3 or mask.size * 4 < BLANK_MIN_BYTES or mask.size >= 2**31:
        return cc3d.connected_components(masked(0, mask.shape[0]), connectivity=connectivity)
    step = max(1, _SLAB_VOXELS // plane)
    out = blank_volume(mask.shape)
    offset, pairs, last = 0, [], None
    for z in range(0, mask.shape[0], step):
        slab, n = cc3d.connected_components(masked(z, z + step), connectivity=connectivity, return_N=True)
        where = slab != 0
        out[z:z + step][where] = slab[where].astype(np.int32) + offset
        first = out[z]
        if last is not None:
            pairs.extend(_touching(last, first, connectivity))
        last, offset = out[min(z + step, mask.shape[0]) - 1], offset + n
        del slab, where
    if not pairs:
        return out
    a, b = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(offset + 1, offset + 1))
    _, joined = connected_components(graph, directed=False)
    lowest = np.full(joined.max() + 1, offset + 1, np.int64)
    np.minimum.at(lowest, joined, np.arange(offset + 1))
    rank = np.zeros(len(lowest), np.int64)
    rank[np.argsort(lowest)] = np.arange(len(lowest))     # the background (0) ranks first
    lut = rank[joined].astype(np.int32)
    for z in range(0, mask.shape[0], step):
        view = out[z:z + step]
        where = view != 0
        view[where] = lut[view[where]]
    return out


def _touching(below: np.ndarray, above: np.ndarray, connectivity: int):
    """Id pairs of the set voxels of two neighbouring planes that touch (26-, 18- or
    6-connectivity: diagonal, edge or face neighbours across the planes)."""
    reach = {26: 2, 18: 1, 6: 0}[connectivity]
    ny, nx = below.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if abs(dy) + abs(dx) > reach:
                continue
            a = below[max(0, -dy):ny - max(0, dy), max(0, -dx):nx - max(0, dx)]
            b = above[max(0, dy):ny - max(0, -dy), max(0, dx):nx - max(0, -dx)]
            both = (a != 0) & (b != 0)
            if both.any():
                yield np.unique(np.stack([a[both], b[both]]), axis=1)


def sparse_labels(labels: np.ndarray, boxes, lut: np.ndarray) -> np.ndarray:
    """``lut[labels]`` as int32, written object by object (``boxes``: the bounding box of each
    id of ``labels``) into a :func:`blank_volume` volume, where a copy or a whole-volume
    lookup would make all of it resident."""
    out = blank_volume(labels.shape)
    for old in np.flatnonzero(lut):
        box = boxes[old]
        view = out[box]
        view[labels[box] == old] = lut[old]
    return out


def margin_voxels(distance_um: float, spacing) -> tuple[int, int, int]:
    return tuple(int(np.ceil(distance_um / float(s))) + 1 for s in spacing)


def voxel_volume(spacing) -> float:
    """Volume of a voxel (µm³); area of a pixel (µm²) for a 2D spacing."""
    return float(np.prod([float(s) for s in spacing]))


def near_mask(objects: Objects, ids, mask: np.ndarray, spacing, limit_um: float) -> np.ndarray:
    """For each object, whether a ``mask`` voxel lies within ``limit_um`` of one of its voxels.
    ``mask`` may be a label volume (nonzero: set), read box by box.

    Distances are Euclidean in µm between voxel centres. Each object is handled in its bounding
    box widened by ``limit_um``. An object that touches ``mask`` (26 neighbours) is answered
    without a distance transform when ``limit_um`` covers a voxel diagonal: that is the common
    case for spines, and a transform costs milliseconds per object.
    """
    spacing = tuple(float(s) for s in spacing)
    diagonal = float(np.sqrt(np.sum(np.square(spacing))))
    margin = margin_voxels(limit_um, spacing)
    labels = objects.labels
    out = np.zeros(len(ids), dtype=bool)
    whole = tuple(slice(0, n) for n in labels.shape)
    whole_distance = None     # one transform for every object whose widened box is the array
    for k, i in enumerate(ids):
        if limit_um >= diagonal:
            near = grow_box(objects.boxes[i], 1, labels.shape)
            if (ndi.binary_dilation(labels[near] == i, np.ones((3,) * labels.ndim, bool)) & (mask[near] != 0)).any():
                out[k] = True
                continue
        box = grow_box(objects.boxes[i], margin, labels.shape)
        if box == whole:
            if whole_distance is None:
                whole_distance = _distance_to(mask[box] != 0, spacing)
            dist = whole_distance
        else:
            dist = _distance_to(mask[box] != 0, spacing)
        if dist is not None:
            out[k] = float(dist[labels[box] == i].min()) <= limit_um
    return out


def _distance_to(target: np.ndarray, spacing) -> np.ndarray | None:
    """Distance (µm) of every voxel to the nearest ``target`` voxel; None without one."""
    if not target.any():
        return None
    # edt measures from nonzero voxels to the nearest zero, so the target must be zero.
    return edt.edt(~target, anisotropy=spacing, black_border=False)
