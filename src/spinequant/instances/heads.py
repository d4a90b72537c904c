"""Spine objects seeded at the peaks of a spine-head map (networks with a point head).

Detection and outline are separate questions here. A spine is *detected* where the head map
has a local maximum above a threshold: the network learnt that map from annotated head
positions (points are what most real data sets provide), so a bright bump of the shaft or a
fragment along its surface, which annotators never mark, does not become a spine just because
the spine map is on there. Each detected head is then *outlined* by the spine map around it:
the connected region of ``spine map >= threshold`` (or of the head blob itself, when the neck
is too faint for the spine map) that holds the head, split between heads by a watershed.
Regions of the spine map that hold no head are not spines.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.morphology import h_maxima
from skimage.segmentation import watershed

from .._blank import blank_volume
from .._half import at_least
from ._objects import Objects, label_components, sparse_labels

#: Part of the head blob (relative to the head map's own peak) that counts as the head when the
#: spine map is too faint around it: the Gaussian's half maximum.
HEAD_BLOB_FRACTION = 0.5

#: :func:`head_map_support`'s levels lie this much below the thresholds they stand for, so
#: that no rounding to the maps' type (float16: 2^-11 relative) can drop a voxel that is read,
#: whether the levels are compared with the stored maps or with their float32 values.
_SUPPORT_MARGIN = 0.99

#: Along z two peaks must lie this many z steps apart (at least ``min_distance_um``, at most
#: twice it): on coarse steps (0.5 µm, two-photon) twice the in-plane distance, as before
#: session 36; on fine steps (STED 0.2 µm, confocal 0.28 µm) the heads above and below each
#: other that the microscope resolves are no longer merged (docs/real_data.md, "Heads above
#: one another").
Z_STEPS_BETWEEN_HEADS = 1.6


def head_map_support(config) -> tuple[float, float] | None:
    """``(spine_min, head_min)``: where spine objects of ``config`` (an
    :class:`~spinequant.instances.InstanceConfig`) read the head map, or None when its method
    may not use the head map's peaks. A head map kept there and 0 elsewhere gives the same
    objects, scores and trims (``tests/test_memory_head_map.py``).

    :func:`head_peaks` finds the local maxima at or above ``head_threshold``: whether a voxel
    is one depends only on values at or above its own. :func:`objects_from_heads` outlines
    blobs above half a peak (:data:`HEAD_BLOB_FRACTION` of at least ``head_threshold``), and
    its watershed, :func:`trim_heads` and :func:`object_scores` read the head map inside the
    objects only: in the regions where the spine map is at least ``threshold`` or a blob lies.
    """
    if config.method not in ("heads", "auto"):
        return None
    return (_SUPPORT_MARGIN * config.threshold,
            _SUPPORT_MARGIN * HEAD_BLOB_FRACTION * config.head_threshold)


def head_peaks(head_prob: np.ndarray, spacing, *, threshold: float, min_distance_um: float,
               close_distance_um: float | None = None, spine_prob: np.ndarray | None = None,
               close_spine_min: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of the head map at or above ``threshold``, at least ``min_distance_um``
    apart in y/x and, along z, :data:`Z_STEPS_BETWEEN_HEADS` z steps, kept between once and
    twice ``min_distance_um`` (the microscope smears a head over several planes).

    With ``close_distance_um`` (below ``min_distance_um``) and ``spine_prob``, the maxima that
    are at least ``close_distance_um`` apart (along z by the same rule) are added where
    the spine map is at least ``close_spine_min``: two heads side by side closer than
    ``min_distance_um`` make two maxima, and the spine map tells a head beside another from a
    bump on the shaft (docs/real_data.md, "Close heads where the spine map says spine").

    Returns (K, ndim) voxel indices, strongest first, and the map's value at each.

    >>> heat = np.zeros((1, 20, 20), np.float32); heat[0, 5, 5] = 0.9; heat[0, 14, 12] = 0.4
    >>> peaks, values = head_peaks(heat, (0.5, 0.1, 0.1), threshold=0.3, min_distance_um=0.5)
    >>> peaks.tolist(), [round(float(v), 2) for v in values]
    ([[0, 5, 5], [0, 14, 12]], [0.9, 0.4])
    """
    head_prob = np.asarray(head_prob)
    if head_prob.dtype not in (np.float16, np.float32):
        head_prob = head_prob.astype(np.float32)
    peaks, values = _box_peaks(head_prob, spacing, threshold, _radius_um(spacing, head_prob.ndim, min_distance_um))
    if close_distance_um is None or spine_prob is None or close_distance_um >= min_distance_um:
        return peaks, values
    close, close_values = _box_peaks(head_prob, spacing, threshold,
                                     _radius_um(spacing, head_prob.ndim, close_distance_um))
    known = {tuple(p) for p in peaks.tolist()}
    new = np.array([tuple(p) not in known for p in close.tolist()], bool)
    if new.any():
        new[new] = np.asarray(spine_prob)[tuple(close[new].T)] >= close_spine_min
    if not new.any():
        return peaks, values
    peaks, values = np.concatenate([peaks, close[new]]), np.concatenate([values, close_values[new]])
    order = np.argsort(-values, kind="stable")
    return peaks[order], values[order]


def flank_heads(peaks: np.ndarray, values: np.ndarray, head_prob: np.ndarray, spine_prob: np.ndarray,
                image: np.ndarray, spacing, *, distance_um: float, prominence: float, head_min: float,
                spine_min: float, dip: float) -> tuple[np.ndarray, np.ndarray]:
    """``peaks`` and ``values`` (:func:`head_peaks`) with the heads that sit on the flank of a
    stronger head's blob added, strongest first.

    Two heads that touch make one blob of the head map with a second, lower maximum on its
    flank, which no box of :func:`head_peaks` leaves a peak (the stronger head's slope rises
    inside every box around it). Such a maximum is a head when it rises at least
    ``prominence`` above the saddle to any higher maximum (an h-maximum), the head map there
    is at least ``head_min`` and the spine map at least ``spine_min``, it lies at least
    ``distance_um`` from every peak (in y/x; along z as :func:`head_peaks`), and the image
    dips between it and the nearest peak, to below ``1 - dip`` of the dimmer end (smoothed by
    a voxel): two heads, not a head and its own neck (docs/real_data.md, "Where confocal and
    STED still err with the joined map")."""
    head_prob = np.asarray(head_prob)
    found = _flank_maxima(head_prob, head_min, prominence)
    if len(found):
        found = found[np.asarray(spine_prob)[tuple(found.T)] >= spine_min]
    if not len(found):
        return peaks, values
    scale = np.asarray(spacing, float) / _radius_um(spacing, head_prob.ndim, distance_um)
    found_values = head_prob[tuple(found.T)].astype(np.float32)
    order = np.argsort(-found_values, kind="stable")
    found, found_values = found[order], found_values[order]
    kept = [p for p in peaks]
    new = []
    for point in found:
        if kept:
            dist = np.linalg.norm((np.asarray(kept) - point) * scale, axis=1)
            nearest = int(np.argmin(dist))
            if dist[nearest] < 1.0 or not _dips(image, point, kept[nearest], dip):
                continue
        kept.append(point)
        new.append(len(kept) - 1)
    if not new:
        return peaks, values
    added = np.asarray(kept, np.int64)[new]
    peaks = np.concatenate([np.asarray(peaks, np.int64).reshape(-1, head_prob.ndim), added])
    values = np.concatenate([np.asarray(values, np.float32), head_prob[tuple(added.T)].astype(np.float32)])
    order = np.argsort(-values, kind="stable")
    return peaks[order], values[order]


def partner_heads(peaks: np.ndarray, values: np.ndarray, head_prob: np.ndarray, partner_prob: np.ndarray,
                  spine_prob: np.ndarray, spacing, *, threshold: float, head_threshold: float,
                  min_distance_um: float, support: tuple[float, float], dendrite_mask=None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``peaks`` and ``values`` (:func:`head_peaks` of the joined head map ``head_prob``) with
    the 3D partner's own heads added, strongest first.

    On a stack the joined map is the mean of a 2D network's head map and its 3D partner's
    (:mod:`spinequant.segment.neural.stack_heads`). Where the 2D network merges two heads
    above one another into one peak, the partner's map may still part them while their mean
    does not. A peak of ``partner_prob`` at or above ``threshold`` (spaced as
    :func:`head_peaks` spaces peaks) is a head too when it lies ``min_distance_um`` from every
    peak (along z as there), the joined map there is at least ``head_threshold`` and it lies
    outside ``dendrite_mask``: the partner alone does not make a head on the shaft, where a
    bright swelling looks like one (docs/real_data.md, "The 3D partner's own heads, off the shaft").

    The partner's map is read only where the spine objects read the joined map (``support``:
    ``(spine_min, head_min)`` of :func:`head_map_support`, evaluated on ``spine_prob`` and
    ``head_prob``), so a block-wise run, which keeps the maps only there, adds the same heads.
    """
    ndim = head_prob.ndim
    masked = _partner_in_support(partner_prob, spine_prob, head_prob, support, threshold)
    if masked is None:
        return peaks, values
    radius = _radius_um(spacing, ndim, min_distance_um)
    found, _ = _box_peaks(masked, spacing, threshold, radius)
    del masked
    if len(found):
        found = found[np.asarray(head_prob)[tuple(found.T)].astype(np.float32) >= head_threshold]
    if len(found) and dendrite_mask is not None:
        found = found[np.asarray(dendrite_mask)[tuple(found.T)] == 0]
    peaks = np.asarray(peaks, np.int64).reshape(-1, ndim)
    if len(found) and len(peaks):
        scale = np.asarray(spacing, float) / radius
        distance, _ = cKDTree(peaks * scale).query(found * scale)
        found = found[distance >= 1.0]
    if not len(found):
        return peaks, values
    peaks = np.concatenate([peaks, found])
    values = np.concatenate([np.asarray(values, np.float32), head_prob[tuple(found.T)].astype(np.float32)])
    order = np.argsort(-values, kind="stable")
    return peaks[order], values[order]


def _partner_in_support(partner_prob, spine_prob, head_prob, support, threshold):
    """``partner_prob`` where the spine map or the joined head map reaches ``support``, 0
    elsewhere, in a volume resident only on the planes that reach ``threshold`` there (the
    other planes cannot change which voxels at or above it are peaks); None when none does."""
    spine_min, head_min = support
    out = None
    for z in range(partner_prob.shape[0] if partner_prob.ndim == 3 else 1):
        plane = partner_prob[z] if partner_prob.ndim == 3 else partner_prob
        if not at_least(plane, threshold).any():
            continue
        index = z if partner_prob.ndim == 3 else Ellipsis
        read = at_least(spine_prob[index], spine_min) | at_least(head_prob[index], head_min)
        kept = np.where(read, plane, plane.dtype.type(0))
        if not at_least(kept, threshold).any():
            continue
        if out is None:
            out = blank_volume(partner_prob.shape, partner_prob.dtype)
        out[index] = kept
    return out


def _flank_maxima(head_prob: np.ndarray, head_min: float, prominence: float) -> np.ndarray:
    """Voxels of the h-maxima (depth ``prominence``) of the head map's regions at or above
    ``head_min``, one per maximum (its highest voxel), each region taken alone in its box."""
    above = at_least(head_prob, head_min)
    if not above.any():
        return np.zeros((0, head_prob.ndim), np.int64)
    regions = cc3d.connected_components(above if above.ndim == 3 else above[None], connectivity=26)
    if above.ndim == 2:
        regions = regions[0]
    out = []
    for label, box in enumerate(ndi.find_objects(regions), start=1):
        if box is None:
            continue
        inside = regions[box] == label
        relief = np.where(inside, head_prob[box].astype(np.float32), np.float32(0))
        maxima = h_maxima(relief, prominence) & inside
        marks, n = ndi.label(maxima, structure=np.ones((3,) * relief.ndim))
        if n:
            tops = np.asarray(ndi.maximum_position(relief, marks, np.arange(1, n + 1)), np.int64)
            out.append(tops.reshape(-1, relief.ndim) + [b.start for b in box])
    return np.concatenate(out) if out else np.zeros((0, head_prob.ndim), np.int64)


def _dips(image: np.ndarray, a, b, dip: float) -> bool:
    """Whether ``image``, smoothed by a voxel, falls between voxels ``a`` and ``b`` below
    ``1 - dip`` of the dimmer of the two (read along the straight line, in a box around it)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    lo = np.maximum(np.floor(np.minimum(a, b)).astype(int) - 3, 0)
    hi = np.minimum(np.ceil(np.maximum(a, b)).astype(int) + 4, image.shape)
    crop = ndi.gaussian_filter(np.asarray(image[tuple(slice(l, h) for l, h in zip(lo, hi))], np.float32), 1.0,
                               mode="nearest", truncate=3.0)
    steps = int(np.ceil(np.abs(b - a).max())) + 1
    line = np.linspace(a - lo, b - lo, max(steps, 2))
    along = ndi.map_coordinates(crop, line.T, order=1)
    return bool(along.min() < (1.0 - dip) * min(along[0], along[-1]))


def _radius_um(spacing, ndim: int, distance_um: float) -> np.ndarray:
    """Peaks' least distance per axis: ``distance_um`` in y/x and, along z,
    :data:`Z_STEPS_BETWEEN_HEADS` z steps kept between once and twice it."""
    z_um = float(np.clip(Z_STEPS_BETWEEN_HEADS * float(np.asarray(spacing, float)[0]), distance_um, 2.0 * distance_um))
    return np.array([z_um, distance_um, distance_um])[-ndim:]


def _box_peaks(head_prob: np.ndarray, spacing, threshold: float, radius_um: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Maxima of ``head_prob`` at or above ``threshold`` in boxes of ``radius_um`` (one radius
    per axis), then thinned to one per ellipsoid of those radii, strongest first."""
    radius = np.maximum(np.round(radius_um / np.asarray(spacing, float)), 1).astype(int)
    # A box maximum filter, separable: in the plane on each plane once, then along the first
    # axis over a rolling window of filtered planes (mode "nearest" at the ends: the window is
    # clipped, which gives the same maxima as scipy's filter of the whole map); planes with
    # nothing above the threshold, and not within reach of one that has, are never filtered.
    # Then the exact (ellipsoidal) spacing among the candidates. (No labelled regions and no
    # stack-sized copies: at a learnt confidence's low candidate floor regions would span much
    # of a stack.)
    planes = head_prob if head_prob.ndim == 3 else head_prob[None]
    n, r = planes.shape[0], int(radius[0]) if head_prob.ndim == 3 else 0
    in_plane = tuple(2 * radius[-2:] + 1)
    found = []
    filtered = {}                                   # plane index -> its in-plane box maximum
    for c in [k for k in range(n) if (planes[k] >= threshold).any()]:
        for k in range(max(c - r, 0), min(c + r + 1, n)):
            if k not in filtered:                   # (scipy.ndimage takes no float16)
                filtered[k] = ndi.maximum_filter(planes[k].astype(np.float32), size=in_plane, mode="nearest")
        for k in [k for k in filtered if k < c - r]:
            del filtered[k]
        box = np.maximum.reduce([filtered[k] for k in range(max(c - r, 0), min(c + r + 1, n))])
        plane = planes[c].astype(np.float32)
        hits = np.argwhere((plane == box) & (plane >= threshold))
        found.append(hits if head_prob.ndim == 2 else np.column_stack([np.full(len(hits), c), hits]))
    candidates = np.unique(np.concatenate(found), axis=0) if found else np.zeros((0, head_prob.ndim), int)
    values = head_prob[tuple(candidates.T)].astype(np.float32)
    order = np.argsort(-values, kind="stable")
    candidates, values = candidates[order], values[order]
    if len(candidates) > 1:
        scaled = candidates * (np.asarray(spacing, float) / radius_um)
        tree = cKDTree(scaled)
        keep = np.ones(len(candidates), bool)
        for i in range(len(candidates)):
            if keep[i]:
                near = tree.query_ball_point(scaled[i], r=1.0 - 1e-9)
                keep[[j for j in near if j > i]] = False
        candidates, values = candidates[keep], values[keep]
    return candidates, values


def objects_from_heads(peaks: np.ndarray, spine_prob: np.ndarray, head_prob: np.ndarray, *,
                       threshold: float, connectivity: int) -> Objects:
    """One object per head in ``peaks``: the region of ``spine_prob >= threshold`` or of the
    head's own blob that holds it, shared between heads by a watershed on the two maps.
    Object ``k + 1`` belongs to ``peaks[k]``."""
    peaks = np.asarray(peaks, dtype=np.int64).reshape(-1, spine_prob.ndim)
    if len(peaks) == 0:
        return Objects.of(np.zeros(spine_prob.shape, np.int32))
    # A head the spine map misses (a faint spine) is outlined by its own blob: the head map
    # above half its peak around it. The blob is several times a head's size (the target
    # Gaussian is wide, tallest along z), so it stands in only where the spine map is silent.
    # The region is spine_prob >= threshold plus these blobs, labelled without holding it whole.
    blobs = []
    for peak in peaks:
        if spine_prob[tuple(peak)] >= threshold or any(_covers(start, blob, peak) for start, blob in blobs):
            continue
        box = tuple(slice(max(p - r, 0), p + r + 1) for p, r in zip(peak, _blob_reach(head_prob.ndim)))
        blob = head_prob[box] >= HEAD_BLOB_FRACTION * float(head_prob[tuple(peak)])
        pieces = cc3d.connected_components(np.ascontiguousarray(blob))
        centre = tuple(p - b.start for p, b in zip(peak, box))
        blobs.append((tuple(b.start for b in box), pieces == pieces[centre]))
    components = label_components(spine_prob, connectivity, threshold=threshold, extra=blobs)
    boxes = cc3d.statistics(components)["bounding_boxes"]
    owner = components[tuple(peaks.T)].astype(np.int64)
    heads_per_component = np.bincount(owner, minlength=len(boxes))
    # Component -> spine id: its head's id (1..K) when it holds one head, a placeholder above
    # every head id when it holds several (split below), background when it holds none.
    lut = np.zeros(len(boxes), np.int64)
    shared = np.flatnonzero(heads_per_component > 1)
    lut[shared] = len(peaks) + shared
    alone = heads_per_component[owner] == 1
    lut[owner[alone]] = np.flatnonzero(alone) + 1
    lut[0] = 0
    labels = sparse_labels(components, boxes, lut)
    del components
    for comp in shared:
        box = boxes[comp]
        inside = labels[box] == len(peaks) + comp
        ks = np.flatnonzero(owner == comp)
        markers = np.zeros(inside.shape, np.int32)
        markers[tuple((peaks[ks] - [b.start for b in box]).T)] = ks + 1
        landscape = -(head_prob[box].astype(np.float32) + spine_prob[box])
        split = watershed(landscape, markers=markers, mask=inside)
        labels[box][inside] = split[inside]
    return Objects.of(labels)


def _covers(start, blob: np.ndarray, point) -> bool:
    """Whether the mask ``blob`` placed at ``start`` sets ``point``."""
    local = tuple(int(p) - s for p, s in zip(point, start))
    return all(0 <= i < n for i, n in zip(local, blob.shape)) and bool(blob[local])


def _blob_reach(ndim: int) -> tuple[int, ...]:
    return (4, 8, 8)[-ndim:]


def trim_heads(objects: Objects, spine_prob: np.ndarray, head_prob: np.ndarray, fraction: float,
               threshold: float) -> Objects:
    """Cut each object at ``fraction`` of its own peak in the spine map -- in the head map
    for an object the spine map never reaches ``threshold`` in (a head outlined by its blob)
    -- keeping the piece that holds the head."""
    labels = blank_volume(objects.labels.shape)
    for i in objects.ids:
        box = objects.boxes[i]
        own = objects.labels[box] == i
        spine, head = spine_prob[box], head_prob[box]
        level = spine if spine[own].max() >= threshold else head
        keep = own & (level >= fraction * level[own].max())
        pieces = cc3d.connected_components(np.ascontiguousarray(keep))
        top = np.unravel_index(int(np.argmax(np.where(own, head, -1.0))), own.shape)
        if pieces[top]:
            keep = pieces == pieces[top]
        view = labels[box]
        view[own & keep] = i
    return Objects.of(labels)


def object_scores(objects: Objects, head_prob: np.ndarray) -> np.ndarray:
    """Each object's strongest head-map value (the score of its detection), by id (index 0
    unused)."""
    scores = np.zeros(len(objects.counts), np.float32)
    for i in objects.ids:
        box = objects.boxes[i]
        scores[i] = float(head_prob[box][objects.labels[box] == i].max())
    return scores
