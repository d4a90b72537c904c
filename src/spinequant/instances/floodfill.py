"""DeepD3's seeded 3D flood fill (Fernholz et al., Online Methods, "ROI detection")."""

from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage as ndi

from ..boxes import grow_box
from ._objects import Objects, margin_voxels, voxel_volume


def seeded_flood_fill(spine_prob: np.ndarray, *, spacing, seed_threshold: float = 0.8,
                      growth_threshold: float = 0.5, max_distance_to_seed_um: float = 2.0,
                      max_drop: float = 0.5, connectivity: int = 26) -> np.ndarray:
    """Grow one object from each unclaimed seed voxel, brightest seed first.

    A voxel at or above ``seed_threshold`` that no object has claimed starts a new object.
    The object takes every unclaimed voxel connected to the seed through voxels that are
    (1) at or above ``growth_threshold``, (2) within ``max_distance_to_seed_um`` of the seed
    (Euclidean, µm, anisotropic) and (3) no more than ``max_drop`` below the seed's value.

    Parameters
    ----------
    spine_prob : ndarray, shape (Z, Y, X)
        Spine probability in [0, 1].
    spacing : sequence of 3 floats
        Voxel size in µm (z, y, x).

    Returns
    -------
    ndarray of int32
        0 = background, 1..N in the order the seeds were taken.

    Examples
    --------
    >>> p = np.zeros((3, 9, 9), np.float32); p[1, 2:5, 2:5] = 0.9; p[1, 6, 6] = 0.85
    >>> labels = seeded_flood_fill(p, spacing=(0.5, 0.1, 0.1))
    >>> int(labels.max()), int((labels == 1).sum())
    (2, 9)
    """
    return flood_fill_objects(spine_prob, spacing=spacing, seed_threshold=seed_threshold,
                              growth_threshold=growth_threshold,
                              max_distance_to_seed_um=max_distance_to_seed_um,
                              max_drop=max_drop, connectivity=connectivity).labels


def flood_fill_objects(spine_prob, *, spacing, seed_threshold, growth_threshold, max_distance_to_seed_um,
                       max_drop, connectivity, min_volume_um3: float = 0.0) -> Objects:
    """:func:`seeded_flood_fill` that also returns each object's voxel count and box.

    Seeds in candidate regions smaller than ``min_volume_um3`` are skipped: an object never
    leaves its region, so it would be too small to keep (noise specks cost no fill).
    """
    prob = np.asarray(spine_prob, dtype=np.float32)
    labels = np.zeros(prob.shape, dtype=np.int32)
    counts, boxes = [0], [None]
    candidate = prob >= growth_threshold
    # Growth never leaves the connected component of the candidate voxels that holds the seed,
    # so each fill works in the intersection of that component's box and the seed's ball.
    regions = cc3d.connected_components(candidate, connectivity=connectivity)
    region_stats = cc3d.statistics(regions)
    region_boxes = region_stats["bounding_boxes"]
    seeds = np.flatnonzero(prob >= seed_threshold)
    if min_volume_um3 > 0:
        big = region_stats["voxel_counts"] * voxel_volume(spacing) >= min_volume_um3
        seeds = seeds[big[regions.ravel()[seeds]]]
    if seeds.size == 0:
        return Objects(labels, np.zeros(1, np.int64), [None])
    # Brightest first; ties in raster order so results are reproducible.
    seeds = seeds[np.argsort(-prob.ravel()[seeds], kind="stable")]
    margin = margin_voxels(max_distance_to_seed_um, spacing)
    spacing = tuple(float(s) for s in spacing)
    flat = labels.ravel()
    n = 0
    for index in seeds:
        if flat[index]:
            continue
        centre = np.unravel_index(index, prob.shape)
        ball = grow_box(tuple(slice(c, c + 1) for c in centre), margin, prob.shape)
        region = region_boxes[regions[centre]]
        box = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(ball, region))
        near = sum(((axis - c) * s) ** 2 for axis, c, s in zip(np.ogrid[box], centre, spacing)) \
            <= max_distance_to_seed_um ** 2
        seed_value = prob[centre]
        ok = candidate[box] & near & (labels[box] == 0) & (prob[box] >= seed_value - max_drop)
        local = cc3d.connected_components(ok, connectivity=connectivity)
        n += 1
        own = local == local[tuple(c - b.start for c, b in zip(centre, box))]
        labels[box][own] = n
        (local_box,) = ndi.find_objects(own.astype(np.uint8))
        counts.append(int(own.sum()))
        boxes.append(tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, local_box)))
    return Objects(labels, np.asarray(counts, dtype=np.int64), boxes)
