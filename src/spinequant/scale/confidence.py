"""The learnt spine confidence of a chunked run too large to hold in memory.

A point-head model's learnt confidence (:mod:`spinequant.pipeline.spine_confidence`) scores
every candidate spine from its measurements and a few numbers of the whole image: its median
and 99.5th percentile, each dendrite's mean intensity and size, the median intensity of all
dendrite voxels, and the image smoothed at each spine's base. Here those numbers are read from
the volume and the stitched dendrite labels tile by tile (:func:`streamed_statistics`; the
same numbers as in memory, the means summed in float64), the candidates are scored, the
dropped ones are removed from the Zarr spine labels block by block (the kept ones renumbered
1..K in the order of their old ids), and the kept spines are measured again block by block
without them (:func:`~spinequant.scale.measure.volume_tables`), as the in-memory run measures
them again. The labels are stitched afresh by every run, so a run killed while relabelling
and started again relabels the new stitch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from ..pipeline.spine_confidence import BASE_SMOOTHING_UM, PERCENTILE_SAMPLE, ImageStatistics, base_voxels, smoothed_at
from .maps import read_region, read_tiles, strided_voxels
from .streamed import exact_histogram_dtype, median, ranks_from_histogram, value_histogram

def streamed_statistics(image, dendrite_labels) -> ImageStatistics:
    """The :class:`~spinequant.pipeline.spine_confidence.ImageStatistics` of a (Z, Y, X)
    volume and its dendrite labels (numpy, Zarr or Dask), read in tiles with all planes
    (:func:`~spinequant.scale.maps.read_tiles`). The percentiles come from the voxels the in-memory sample takes (every k-th of the
    flattened volume), the median of the dendrite voxels is exact (:mod:`.streamed`: from a
    histogram of the values for 8- and 16-bit images, in the same pass; else two more passes)."""
    size = int(np.prod(image.shape))
    k = max(1, -(-size // PERCENTILE_SAMPLE))
    sample, sums, counts = [], np.zeros(1), np.zeros(1, np.int64)
    one_pass = exact_histogram_dtype(image.dtype)
    histogram = 0
    for (rows, cols), band in read_tiles(image):
        sample.append(strided_voxels(band, image.shape, rows, cols, k).astype(np.float32))
        labels = read_region(dendrite_labels, (slice(None), rows, cols))
        inside = labels > 0
        ids, values = labels[inside].astype(np.int64), band[inside]
        del labels, inside
        if not ids.size:
            continue
        n = int(ids.max()) + 1
        if n > sums.size:
            sums, counts = np.pad(sums, (0, n - sums.size)), np.pad(counts, (0, n - counts.size))
        sums[:n] += np.bincount(ids, weights=values.astype(np.float32).astype(np.float64), minlength=n)
        counts[:n] += np.bincount(ids, minlength=n)
        if one_pass:
            histogram = histogram + value_histogram(values)
    p50, p99 = np.percentile(np.concatenate(sample), [50, 99.5])
    del sample
    present = np.flatnonzero(counts > 0)
    present = present[present > 0]
    n_values = int(counts[present].sum())
    shaft = None
    if n_values and one_pass:
        middle = ranks_from_histogram(histogram, image.dtype, ((n_values - 1) // 2, n_values // 2))
        shaft = float(np.mean(np.asarray(middle, np.float32)))
    elif n_values:
        shaft = median(lambda: _dendrite_values(image, dendrite_labels), n_values, np.float32)
    return ImageStatistics(float(p50), float(p99), present.astype(np.int64), sums[present] / counts[present],
                           counts[present].astype(float), shaft, size)


def _dendrite_values(image, dendrite_labels):
    """The dendrite voxels' intensities (float32), tile by tile."""
    for (rows, cols), band in read_tiles(image):
        labels = read_region(dendrite_labels, (slice(None), rows, cols))
        yield band[labels > 0].astype(np.float32)


class KeptObjects(Mapping):
    """The per-block objects of a chunked run with only the kept spines: each block's window
    labels renumbered 1..k in the order of their global ids (``keep``: per global id)."""

    def __init__(self, objects, keep: np.ndarray, spine_offsets: dict):
        self.objects, self.keep, self.offsets = objects, keep, spine_offsets

    def __getitem__(self, name):
        found = self.objects[name]
        n = int(found.spines.max(initial=0))
        first = self.offsets[name]
        local = np.zeros(n + 1, np.uint32)
        kept = self.keep[first + 1:first + n + 1]
        local[1:][kept] = np.arange(1, int(kept.sum()) + 1, dtype=np.uint32)
        return replace(found, spines=local[found.spines])

    def __iter__(self):
        return iter(self.objects)

    def __len__(self):
        return len(self.objects)


#: Edge (pixels in y and x) of the tiles the spines' base values are read by: one read of a
#: tile's windows instead of one per spine (each a Zarr chunk decompressed for a few voxels).
BASE_TILE_PX = 512


def tiled_base_values(image, spines: pd.DataFrame, spacing, *, runner=None, tile_px: int = BASE_TILE_PX,
                      progress=None) -> np.ndarray:
    """:func:`~spinequant.pipeline.spine_confidence.smoothed_at` of a (Z, Y, X) volume, the
    spines grouped by the ``tile_px`` tile of their base point: each group's windows are read
    at once (their common box) and smoothed in a task of ``runner`` (a
    :class:`~spinequant.scale.execute.BlockRunner`; default: this process), so ``image`` must
    be readable where the tasks run. The values are those of ``smoothed_at`` on the whole
    volume: every window lies inside its group's box, whose edges are the volume's wherever a
    window is cut by them."""
    from .execute import BlockRunner

    out = np.full(len(spines), np.nan)
    if not len(spines):
        return out
    sp = np.asarray(spacing, float)
    shape = np.array(image.shape)
    grid = base_voxels(spines, sp)
    valid = np.isfinite(grid).all(axis=1)
    points = np.clip(np.nan_to_num(grid).astype(np.int64), 0, shape - 1)
    reach = np.ceil(4.0 * BASE_SMOOTHING_UM / sp).astype(int) + 1     # smoothed_at's window
    tiles = points[:, 1] // tile_px * (int(shape[2]) // tile_px + 1) + points[:, 2] // tile_px
    jobs, members = [], []
    for tile in np.unique(tiles[valid]):
        idx = np.flatnonzero(valid & (tiles == tile))
        box = tuple(slice(int(max(points[idx, a].min() - reach[a], 0)), int(min(points[idx, a].max() + reach[a] + 1, shape[a])))
                    for a in range(3))
        start = np.array([b.start for b in box])
        local = (points[idx] - start) * sp                             # µm in the box's frame
        jobs.append((image, box, pd.DataFrame(local, columns=[f"base_{a}_um" for a in "zyx"]), sp))
        members.append(idx)
    values = (runner or BlockRunner()).map(_base_values_job, jobs, names=[str(k) for k in range(len(jobs))],
                                           stage="base values", progress=progress)
    for idx, v in zip(members, values):
        out[idx] = v
    return out


def _base_values_job(job) -> np.ndarray:
    """The smoothed image at the base points of one tile (a task)."""
    image, box, points, sp = job
    return smoothed_at(np.asarray(read_region(image, box)), points, sp)


def chunked_confident_spines(spines: pd.DataFrame, scores, image, spine_labels, dendrite_labels, spacing, config,
                             *, blocks, objects, spine_offsets: dict, dendrite_boxes: dict, dendrite_voxels: dict,
                             skeleton, measure_image, runner, skeleton_max_voxels: int, progress=None):
    """Score the candidate ``spines`` of a chunked run by the model's learnt confidence, drop
    those below ``config.min_confidence`` from the Zarr ``spine_labels`` (block cores
    ``blocks``) and measure the kept ones again. ``image``: the volume as this process reads
    it; ``measure_image``: as the measuring tasks read it (a ``VolumeSource`` on a cluster).
    Returns ``(spines, dendrites, dropped)``: the kept spines' table (``confidence`` second),
    the dendrite table counting them, and how many candidates were dropped."""
    from ..pipeline.analyze import model_calibration
    from ..pipeline.spine_confidence import confidence_model, spine_confidence
    from ..segment.neural.card import resolve
    from .measure import volume_tables

    calibration = model_calibration(config.method, config.confidence)
    model = confidence_model(calibration, resolve(config.method)[0].parent)
    statistics = streamed_statistics(image, dendrite_labels)
    ids = spines["id"].to_numpy(np.int64)
    base = tiled_base_values(measure_image, spines, spacing, runner=runner, progress=progress)
    prob = spine_confidence(model, spines, np.asarray(scores)[ids], None, None, spacing,
                            statistics=statistics, base_values=base)
    keep = np.zeros(len(scores), bool)                             # per global id (0: none)
    keep[ids[prob >= config.min_confidence]] = True
    rank = np.cumsum(keep)
    new_ids = (rank * keep).astype(np.uint32)                      # old id -> new id, 0 if dropped
    for i, b in enumerate(blocks):
        core = (slice(None), *b.core)
        spine_labels[core] = new_ids[read_region(spine_labels, core)]
        if progress:
            progress("confidence", i + 1, len(blocks))
    offsets = {name: int(rank[first]) for name, first in spine_offsets.items()}
    kept, dendrites, _, _ = volume_tables(
        spine_labels, dendrite_labels, measure_image, spacing, blocks=blocks,
        objects=KeptObjects(objects, keep, spine_offsets), spine_offsets=offsets, dendrite_boxes=dendrite_boxes,
        dendrite_voxels=dendrite_voxels, config=config.morphology, skeleton_max_voxels=skeleton_max_voxels,
        runner=runner, progress=progress, skeleton=skeleton)
    confidence = np.zeros(int(keep.sum()) + 1)
    confidence[new_ids[ids[keep[ids]]]] = prob[keep[ids]]
    kept.insert(1, "confidence", confidence[kept["id"].to_numpy(np.int64)])
    return kept, dendrites, int(len(ids) - keep[ids].sum())
