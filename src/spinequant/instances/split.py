"""Split touching spines by seeded watershed, one object at a time."""

from __future__ import annotations

import cc3d
import edt
import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from ..boxes import grow_box
from ..errors import InputError
from ._objects import Objects

_WATERSHED_CONNECTIVITY = {6: 1, 18: 2, 26: 3}


def split_touching(labels: np.ndarray, *, spacing, by: str = "distance", spine_prob=None,
                   min_distance_um: float = 0.5, min_depth: float | None = None,
                   connectivity: int = 26) -> np.ndarray:
    """Cut objects that hold several spines along watershed lines.

    Inside each object a relief is built: the Euclidean distance to the object's boundary
    (µm, ``by="distance"``, see :func:`distance_relief`) or the spine probability
    (``by="probability"``). Its regional maxima that rise at least ``min_depth`` above the
    saddle to any higher maximum (h-maxima) become seeds; seeds closer than
    ``min_distance_um`` to a higher seed are dropped.
    An object with two or more seeds is split by watershed from them.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Objects to split (0 = background).
    spacing : sequence of 3 floats
        Voxel size in µm (z, y, x).
    by : {"distance", "probability"}
        Relief to flood.
    spine_prob : ndarray, optional
        Needed for ``by="probability"``.
    min_distance_um : float
        Smallest distance between two seeds.
    min_depth : float, optional
        Depth of a seed: µm for ``"distance"`` (default 0.03), probability units for
        ``"probability"`` (default 0.1).

    Returns
    -------
    ndarray of int32
        Objects renumbered 1..N (raster order of the original ids, parts in seed order).
    """
    if by not in ("distance", "probability"):
        raise InputError(f"split_by must be 'distance', 'probability' or 'none', not {by!r}.")
    if by == "probability" and spine_prob is None:
        raise InputError("Splitting by probability needs the spine probability map; give spine_prob.")
    if min_depth is None:
        min_depth = 0.03 if by == "distance" else 0.1
    return split_objects(Objects.of(labels), spacing=spacing, by=by, spine_prob=spine_prob,
                         min_distance_um=min_distance_um, min_depth=min_depth,
                         connectivity=connectivity).labels


def split_objects(objects: Objects, *, spacing, by, spine_prob, min_distance_um, min_depth,
                  connectivity) -> Objects:
    spacing = tuple(float(s) for s in spacing)
    labels = objects.labels
    out = np.zeros(labels.shape, dtype=np.int32)
    counts, boxes = [0], [None]
    for i in objects.ids:
        box = grow_box(objects.boxes[i], 1, labels.shape)
        mask = labels[box] == i
        view = out[box]
        markers = None
        if mask.sum() > 1:
            if by == "distance":
                relief = distance_relief(mask, spacing)
            else:
                relief = np.where(mask, np.asarray(spine_prob[box], dtype=np.float32), 0)
            markers = _seeds(relief, mask, spacing, min_distance_um, min_depth, connectivity)
        if markers is None:
            view[mask] = len(counts)
            counts.append(objects.counts[i])
            boxes.append(objects.boxes[i])
            continue
        parts = watershed(-relief, markers, mask=mask, connectivity=_WATERSHED_CONNECTIVITY[connectivity])
        part_counts, part_boxes = _part_stats(parts, box)
        view[mask] = parts[mask] + (len(counts) - 1)
        counts.extend(part_counts)
        boxes.extend(part_boxes)
    return Objects(out, np.asarray(counts, dtype=np.int64), boxes)


def _part_stats(parts: np.ndarray, box: tuple):
    """Voxel counts and bounding boxes (in full-volume coordinates) of parts 1..n in a crop."""
    counts, boxes = [], []
    for j, local in enumerate(ndi.find_objects(parts), start=1):
        if local is None:  # a seed flooded nothing: keep the numbering, with an empty part
            counts.append(0)
            boxes.append(None)
            continue
        counts.append(int((parts[local] == j).sum()))
        boxes.append(tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, local)))
    return counts, boxes


def distance_relief(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance (µm) from each voxel of ``mask`` to the object's boundary.

    When the z step is at least twice the pixel size, a spine head spans only a few planes
    and the distance to the planes above and below caps the 3D distance everywhere (two
    touching heads then show one flat ridge, no saddle). There the distance is measured within
    each plane; otherwise in 3D with the anisotropic voxel size. A 2D mask is measured in
    its plane.
    """
    if mask.ndim == 2 or spacing[0] < 2 * max(spacing[1], spacing[2]):
        return edt.edt(mask, anisotropy=spacing, black_border=True)
    out = np.zeros(mask.shape, dtype=np.float32)
    for z in range(mask.shape[0]):
        if mask[z].any():
            out[z] = edt.edt(mask[z], anisotropy=spacing[1:], black_border=True)
    return out


def _seeds(relief, mask, spacing, min_distance_um, min_depth, connectivity) -> np.ndarray | None:
    # A single spine usually has one regional maximum; skip the costly h-maxima test then.
    plateau = (relief == ndi.maximum_filter(relief, footprint=np.ones((3,) * mask.ndim, bool))) & mask
    if cc3d.connected_components(plateau, connectivity=connectivity).max() < 2:
        return None
    peaks = h_maxima(relief, min_depth) & mask if relief.max() > min_depth else np.zeros_like(mask)
    marks = cc3d.connected_components(peaks, connectivity=connectivity)
    m = int(marks.max())
    if m < 2:
        return None
    boxes = ndi.find_objects(marks)
    # One representative point per plateau (its highest voxel) for the distance test.
    points, heights = [], []
    for j in range(1, m + 1):
        local = np.argwhere(marks[boxes[j - 1]] == j)[0] + [b.start for b in boxes[j - 1]]
        points.append(local * spacing)
        heights.append(relief[tuple(local)])
    order = np.argsort(heights, kind="stable")[::-1]
    kept: list[int] = []
    for j in order:
        if all(np.linalg.norm(points[j] - points[k]) >= min_distance_um for k in kept):
            kept.append(j)
    if len(kept) < 2:
        return None
    out = np.zeros(marks.shape, dtype=np.int32)
    for new, j in enumerate(sorted(kept), start=1):
        out[marks == j + 1] = new
    return out
