"""Per-object bookkeeping on label volumes, done inside each object's bounding box.

Whole-volume passes (a distance transform, a lookup-table relabel or a statistics pass over a
1024 × 1024 × 101 stack) take seconds each; cropping to bounding boxes keeps the work
proportional to the objects, and :class:`Objects` carries voxel counts and boxes from step to
step so they are computed once.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import cc3d
import edt
import numpy as np
from scipy import ndimage as ndi

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
    def from_mask(cls, mask: np.ndarray, connectivity: int) -> Objects:
        """3D connected components of ``mask`` (ids 1..N in raster order)."""
        return cls.of(cc3d.connected_components(np.ascontiguousarray(mask), connectivity=connectivity))

    @property
    def ids(self) -> np.ndarray:
        return np.flatnonzero(self.counts)

    def volumes(self, spacing) -> np.ndarray:
        """Volume (µm³) of every id in :attr:`ids`."""
        return self.counts[self.ids] * voxel_volume(spacing)

    def keep(self, ids) -> Objects:
        """Only the objects ``ids``, renumbered 1..len(ids) in that order, as int32."""
        ids = np.asarray(ids, dtype=np.int64)
        out = blank_labels(self.labels.shape)
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


#: Label volumes from this size on are made by :func:`blank_labels`.
_BLANK_MIN_BYTES = 16 << 20


def blank_labels(shape) -> np.ndarray:
    """A zeroed int32 label volume whose pages take memory only once written.

    Spine and dendrite objects cover a few percent of a stack; written object by object
    into such a volume, a label volume is resident only around them, not whole. numpy asks
    the kernel for huge pages (2 MiB) for large arrays, which would make any object's voxel
    bring in 2 MiB around it (half a 1024 x 1024 int32 plane): a large volume is therefore
    its own anonymous mapping with huge pages declined (tests/test_memory_maps.py: 400 MiB
    with a small object in each of its 100 planes is resident for a few MiB, not 250).
    """
    shape = tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * 4
    if nbytes < _BLANK_MIN_BYTES or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.zeros(shape, np.int32)
    # Private: reading a page no one wrote maps the kernel's zero page (shared would allocate it).
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    buffer.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buffer, np.int32).reshape(shape)


def sparse_labels(labels: np.ndarray, boxes, lut: np.ndarray) -> np.ndarray:
    """``lut[labels]`` as int32, written object by object (``boxes``: the bounding box of each
    id of ``labels``) into a :func:`blank_labels` volume, where a copy or a whole-volume
    lookup would make all of it resident."""
    out = blank_labels(labels.shape)
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
    for k, i in enumerate(ids):
        if limit_um >= diagonal:
            near = grow_box(objects.boxes[i], 1, labels.shape)
            if (ndi.binary_dilation(labels[near] == i, np.ones((3,) * labels.ndim, bool)) & mask[near]).any():
                out[k] = True
                continue
        box = grow_box(objects.boxes[i], margin, labels.shape)
        target = mask[box]
        if target.any():
            # edt measures from nonzero voxels to the nearest zero, so the target must be zero.
            dist = edt.edt(~target, anisotropy=spacing, black_border=False)
            out[k] = float(dist[labels[box] == i].min()) <= limit_um
    return out
