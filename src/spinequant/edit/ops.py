"""Corrections of a spine label image: pure functions, each returning a new label array.

Every function takes the spine labels (``(Z, Y, X)`` or ``(Y, X)`` ints, 0 = background, one
id per spine) and leaves its input untouched. Points are voxel indices in the labels' own
order (z, y, x), as a viewer reports them after dividing world coordinates by the spacing.

>>> labels = np.zeros((1, 5, 9), int); labels[0, 2, 1:4] = 1; labels[0, 2, 5:8] = 2
>>> merge_spines(labels, [1, 2])[0, 2].tolist()
[0, 1, 1, 1, 0, 1, 1, 1, 0]
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage
from skimage.draw import line as draw_line
from skimage.segmentation import watershed

from ..errors import InputError
from ..validate import check_spacing


def spine_ids(labels: np.ndarray) -> np.ndarray:
    """The ids present in ``labels`` (without 0), sorted."""
    ids = np.unique(labels)
    return ids[ids > 0]


def next_id(labels: np.ndarray) -> int:
    """An id no spine has yet: one above the largest."""
    return int(labels.max(initial=0)) + 1


def _require(labels: np.ndarray, ids) -> list[int]:
    ids = [int(i) for i in np.atleast_1d(ids)]
    missing = sorted(set(ids) - set(spine_ids(labels).tolist()))
    if missing:
        raise InputError(f"No spine with id {', '.join(map(str, missing))} in the labels; pick ids "
                         f"that the spine table lists.")
    return ids


def delete_spines(labels: np.ndarray, ids) -> np.ndarray:
    """``labels`` without the spines ``ids`` (their voxels become background)."""
    ids = _require(labels, ids)
    return np.where(np.isin(labels, ids), 0, labels).astype(labels.dtype)


def merge_spines(labels: np.ndarray, ids) -> np.ndarray:
    """``labels`` with the spines ``ids`` (two or more) joined into one, which keeps the smallest id."""
    ids = _require(labels, ids)
    if len(set(ids)) < 2:
        raise InputError("Merging needs at least two different spines; select two.")
    return np.where(np.isin(labels, ids), min(ids), labels).astype(labels.dtype)


def _point(labels: np.ndarray, point) -> tuple[int, ...]:
    p = tuple(int(round(float(v))) for v in point)
    if len(p) != labels.ndim or any(not 0 <= v < n for v, n in zip(p, labels.shape)):
        raise InputError(f"The point {tuple(point)} lies outside the image {labels.shape}; click inside it.")
    return p


def split_spine_by_seeds(labels: np.ndarray, spine_id: int, seeds, spacing) -> np.ndarray:
    """Split spine ``spine_id`` into one piece per seed point (two or more, all inside it).

    Each voxel goes to the seed it reaches first when flooding down from the spine's centre
    line (a watershed of the distance to the spine's surface, in µm), so the cut falls at the
    narrowest place between the seeds, a neck or the gap between two touching heads. The
    first seed's piece keeps ``spine_id``; the others get new ids.
    """
    spine_id, = _require(labels, [spine_id])
    sp = check_spacing(spacing, ndim=labels.ndim)
    mask = labels == spine_id
    seeds = [_point(labels, s) for s in seeds]
    if len(set(seeds)) < 2:
        raise InputError("Splitting a spine needs two different seed points inside it.")
    outside = [s for s in seeds if not mask[s]]
    if outside:
        raise InputError(f"The seed point(s) {outside} do not lie in spine {spine_id}; put each seed "
                         f"inside the spine to split.")
    markers = np.zeros(labels.shape, np.int32)
    for k, s in enumerate(seeds, start=1):
        markers[s] = k
    depth = ndimage.distance_transform_edt(mask, sampling=sp)
    pieces = watershed(-depth, markers, mask=mask)
    return _relabel_pieces(labels, mask, pieces, spine_id)


def split_spine_by_line(labels: np.ndarray, spine_id: int, start, end) -> np.ndarray:
    """Split spine ``spine_id`` along a line drawn across it in the y/x plane.

    ``start`` and ``end`` are the line's two ends (z, y, x) or (y, x); the cut runs through
    every plane of the spine (as drawn on a projection or a slice). The largest piece keeps
    ``spine_id``, every other piece gets a new id, and the voxels under the line join the
    piece nearest them. An error when the line does not cut the spine in two.
    """
    spine_id, = _require(labels, [spine_id])
    mask = labels == spine_id
    (y0, x0), (y1, x1) = (tuple(int(round(float(v))) for v in p[-2:]) for p in (start, end))
    rows, cols = draw_line(y0, x0, y1, x1)
    keep = (rows >= 0) & (rows < labels.shape[-2]) & (cols >= 0) & (cols < labels.shape[-1])
    cut = np.zeros(labels.shape[-2:], bool)
    cut[rows[keep], cols[keep]] = True
    cut = np.broadcast_to(cut, labels.shape) & mask
    # A digital line blocks face-connected paths only: pieces are face-connected components.
    pieces = cc3d.connected_components(mask & ~cut, connectivity=6 if labels.ndim == 3 else 4)
    if pieces.max() < 2:
        raise InputError(f"The line does not cut spine {spine_id} in two; draw it right across the "
                         f"spine, from background to background.")
    sizes = np.bincount(pieces.ravel())[1:]
    order = np.argsort(-sizes, kind="stable") + 1
    ranked = np.zeros(len(sizes) + 1, np.int64)
    ranked[order] = np.arange(1, len(sizes) + 1)
    pieces = ranked[pieces]
    # Voxels under the line join the nearest piece.
    _, nearest = ndimage.distance_transform_edt(pieces == 0, return_indices=True)
    pieces = np.where(mask, pieces[tuple(nearest)], 0)
    return _relabel_pieces(labels, mask, pieces, spine_id)


def _relabel_pieces(labels, mask, pieces, spine_id: int) -> np.ndarray:
    """``labels`` with ``mask`` re-labelled from ``pieces`` (1 keeps ``spine_id``, 2... new ids)."""
    out = labels.copy()
    first = next_id(labels)
    values = pieces[mask].astype(np.int64)
    out[mask] = np.where(values == 1, spine_id, first + values - 2)
    return out


def add_spine(labels: np.ndarray, point, values: np.ndarray, spacing, *, dendrite_labels=None,
              fraction: float = 0.5, max_radius_um: float = 1.5) -> np.ndarray:
    """``labels`` with a new spine grown from ``point`` in ``values`` (a spine map or the image).

    The spine is the connected region around the point whose values are at least ``fraction``
    of the value at the point (the same rule as the instance stage's ``peak_fraction``), that
    lies within ``max_radius_um`` of it, and that belongs to no spine and no dendrite yet.
    The new spine gets the next free id; an error when the point is background or already
    inside a spine.
    """
    sp = check_spacing(spacing, ndim=labels.ndim)
    values = np.asarray(values, float)
    if values.shape != labels.shape:
        raise InputError(f"The map to grow a spine in has shape {values.shape}, the labels {labels.shape}; "
                         f"use a map of the same image.")
    p = _point(labels, point)
    if labels[p]:
        raise InputError(f"The point {p} lies in spine {int(labels[p])} already.")
    if not values[p] > 0:
        raise InputError(f"The point {p} has value {values[p]:g}: nothing to grow a spine from; click on "
                         f"the spine itself.")
    free = labels == 0
    if dendrite_labels is not None:
        free &= np.asarray(dendrite_labels) == 0
    if not free[p]:
        raise InputError(f"The point {p} lies in the dendrite; click on the spine beside it.")
    box = tuple(slice(max(0, c - r), min(n, c + r + 1))
                for c, r, n in zip(p, np.ceil(max_radius_um / np.asarray(sp, float)).astype(int), labels.shape))
    local = tuple(c - b.start for c, b in zip(p, box))
    grid = np.meshgrid(*[(np.arange(b.start, b.stop) - c) * s for b, c, s in zip(box, p, sp)], indexing="ij")
    near = sum(g ** 2 for g in grid) <= max_radius_um ** 2
    region = free[box] & near & (values[box] >= fraction * values[p])
    pieces = cc3d.connected_components(region, connectivity=26 if labels.ndim == 3 else 8)
    out = labels.copy()
    out[box][pieces == pieces[local]] = next_id(labels)
    return out
