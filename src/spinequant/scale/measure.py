"""Measuring the stitched objects crop by crop, never the whole volume at once.

The in-memory measurements already work object by object on small boxes; here those boxes
are read from the stitched Zarr labels instead of whole arrays:

- **dendrites**: each dendrite's skeleton (:func:`~spinequant.morphology.dendrite_skeleton`)
  is made on its own bounding box (plus one voxel, as in memory), and the trees are put
  together into one skeleton of the volume, so lengths, branch points and positions along a
  dendrite are those of the whole dendrite. A box of more than ``skeleton_max_voxels`` is
  thinned tile by tile (:mod:`.tiled_skeleton`). Peak memory: the largest dendrite's box up
  to that size, and about that size above it.
- **spines**: the spines a block owns are measured together
  (:func:`~spinequant.morphology.measure_spines`) on the box that holds them all, widened by
  the distance up to which a spine's distance to the dendrite is exact
  (:data:`~spinequant.morphology.spines.DENDRITE_SEARCH_UM`) and 2 voxels, with the whole
  volume's skeleton for their positions. Peak memory: about one block window.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import ndimage

from ..boxes import grow_box
from ..morphology import dendrite_centrelines, dendrite_skeleton, measure_dendrites, measure_spines
from ..morphology.spines import DENDRITE_SEARCH_UM, nearest_neighbour_distance
from ..morphology.skeleton import DendriteSkeleton
from .config import ScaleConfig
from .execute import BlockRunner
from .maps import read_region
from .tiled_skeleton import tiled_dendrite_skeleton

#: Coordinate columns of the spine table, shifted from a crop's frame to the volume's.
POINTS = ("centroid", "base", "head", "tip")


def volume_skeleton(dendrite_labels, spacing, dendrite_boxes: dict, *, config,
                    skeleton_max_voxels: int = ScaleConfig.skeleton_max_voxels, runner=None) -> DendriteSkeleton:
    """The skeleton of every dendrite of a (Zarr) label volume, each made on its own box, in
    tiles of about ``skeleton_max_voxels`` when the box is larger; the dendrites are
    independent tasks of ``runner`` (a :class:`~spinequant.scale.execute.BlockRunner`; default:
    this process)."""
    sp = np.asarray(spacing, float)
    ids = sorted(dendrite_boxes)
    jobs = [(dendrite_labels, dendrite_boxes[did], did, sp, skeleton_max_voxels, config) for did in ids]
    parts = (runner or BlockRunner()).map(_dendrite_job, jobs, names=[str(did) for did in ids], stage="skeletons")
    if not parts:
        return dendrite_skeleton(np.zeros((1, 1, 1), np.int32), sp, config=config)
    shift = np.cumsum([0] + [len(p.label) for p in parts[:-1]])
    fields = {name: np.concatenate([getattr(p, name) for p in parts])
              for name in ("coords_um", "label", "radius_um", "position_um", "degree", "end_extension_um")}
    parent = np.concatenate([np.where(p.parent >= 0, p.parent + s, -1) for p, s in zip(parts, shift)])
    return DendriteSkeleton(parent=parent, spacing=sp, **fields)


def _dendrite_job(job) -> DendriteSkeleton:
    """The skeleton of one dendrite (a task), in volume coordinates."""
    dendrite_labels, box, did, sp, max_voxels, config = job
    box = grow_box(box, 1, dendrite_labels.shape)
    if int(np.prod([s.stop - s.start for s in box])) > max_voxels:
        part = tiled_dendrite_skeleton(dendrite_labels, box, did, sp, max_voxels=max_voxels, config=config)
    else:
        part = dendrite_skeleton(_own_label(dendrite_labels, box, did), sp, config=config)
    offset_um = np.array([s.start for s in box]) * sp
    return replace(part, coords_um=part.coords_um + offset_um, label=np.full_like(part.label, did), _trees={})


def _own_label(labels, box, label: int) -> np.ndarray:
    """int32 volume of ``box``: 1 where ``labels`` is ``label``; read in slabs of rows, so no
    more than the result and one slab is held."""
    out = np.zeros(tuple(s.stop - s.start for s in box), np.int32)
    step = 256
    for y in range(box[1].start, box[1].stop, step):
        rows = slice(y, min(y + step, box[1].stop))
        part = read_region(labels, (box[0], rows, box[2]))
        out[:, rows.start - box[1].start:rows.stop - box[1].start] = part == label
    return out


def block_spines(spine_labels, dendrite_labels, image, spacing, *, window_spines: np.ndarray, window, first_id: int,
                 skeleton: DendriteSkeleton, config) -> pd.DataFrame | None:
    """The table of the spines one block owns (``window_spines``: its labels 1..n on its
    ``window`` (y, x slices), global ids ``first_id + 1 ..``); None when it owns none."""
    sp = np.asarray(spacing, float)
    n = int(window_spines.max(initial=0))
    if n == 0:
        return None
    found = [b for b in ndimage.find_objects(window_spines) if b is not None]
    box = tuple(slice(min(b[k].start for b in found) + o, max(b[k].stop for b in found) + o)
                for k, o in zip(range(3), (0, window[0].start, window[1].start)))
    margin = np.ceil(DENDRITE_SEARCH_UM / sp).astype(int) + 2
    region = grow_box(box, margin, spine_labels.shape)
    # in the labels' own 32-bit types, in place: the region is about a block's window, and
    # int64 copies of it (half a gigabyte each for a 1024-px block) cost more than measuring
    labels = read_region(spine_labels, region)
    dendrites = read_region(dendrite_labels, region)
    if dendrites.base is not None or not dendrites.flags.writeable:     # a view of labels held in memory
        dendrites = dendrites.copy()
    dendrites[labels > 0] = 0
    own = labels.astype(np.int32)
    del labels
    own -= first_id
    own[(own < 0) | (own > n)] = 0
    offset_um = np.array([s.start for s in region]) * sp
    shifted = replace(skeleton, coords_um=skeleton.coords_um - offset_um, _trees={})
    table = measure_spines(own, dendrites, sp, image=None if image is None else read_region(image, region),
                           config=config, skeleton=shifted)
    table["id"] += first_id
    for point in POINTS:
        for axis, name in enumerate(f"{point}_{a}_um" for a in "zyx"):
            table[name] += offset_um[axis]
    return table


def volume_tables(spine_labels, dendrite_labels, image, spacing, *, blocks, objects, spine_offsets: dict,
                  dendrite_boxes: dict, dendrite_voxels: dict, config,
                  skeleton_max_voxels: int = ScaleConfig.skeleton_max_voxels, runner=None, progress=None,
                  skeleton: DendriteSkeleton | None = None):
    """Spine and dendrite tables and the skeleton of stitched Zarr labels, crop by crop.

    ``blocks``/``objects``: the blocks of the spine-object stage and their saved objects
    (a mapping by block name), ``spine_offsets``/``dendrite_boxes``/``dendrite_voxels``: from
    :func:`~spinequant.scale.objects.stitch`; ``skeleton_max_voxels``: see :func:`volume_skeleton`.
    The dendrites' skeletons and each block's spine table are independent tasks of ``runner``
    (a :class:`~spinequant.scale.execute.BlockRunner`; default: this process), so ``image``
    must be readable where they run (a ``VolumeSource`` on a cluster).
    ``skeleton``: the dendrites' skeleton when it was made before (spines measured again).
    Returns ``(spines, dendrites, skeleton, centrelines)``.
    """
    runner = runner or BlockRunner()
    if skeleton is None:
        skeleton = volume_skeleton(dendrite_labels, spacing, dendrite_boxes, config=config,
                                   skeleton_max_voxels=skeleton_max_voxels, runner=runner)
    shared_objects, shared_skeleton = runner.shared(objects), runner.shared(skeleton)
    jobs = [(spine_labels, dendrite_labels, image, spacing, shared_objects, b, spine_offsets[b.name], shared_skeleton,
             config) for b in blocks]
    tables = [t for t in runner.map(_spines_job, jobs, names=[b.name for b in blocks], stage="spine tables",
                                    progress=progress) if t is not None]
    if tables:
        spines = pd.concat(tables, ignore_index=True).sort_values("id", ignore_index=True)
        spines["nn_distance_um"] = nearest_neighbour_distance(spines)
    else:
        empty = np.zeros((1, 1, 1), np.int32)
        spines = measure_spines(empty, empty, spacing, image=None if image is None else np.zeros((1, 1, 1)),
                                config=config, skeleton=skeleton)
    rows = []
    for did in sorted(dendrite_boxes):
        # The dendrite table needs only each dendrite's voxel count from the labels (its
        # lengths, radii and branch points come from the skeleton): its voxels, in a row.
        voxels = np.full((1, 1, int(dendrite_voxels[did])), did, dtype=np.int32)
        rows.append(measure_dendrites(voxels, spacing, spines=spines, config=config, skeleton=skeleton))
    dendrites = (pd.concat(rows, ignore_index=True) if rows else
                 measure_dendrites(np.zeros((1, 1, 1), np.int32), spacing, spines=spines, config=config,
                                   skeleton=skeleton))
    centrelines = dendrite_centrelines(None, spacing, config=config, skeleton=skeleton)
    return spines, dendrites, skeleton, centrelines


def _spines_job(job) -> pd.DataFrame | None:
    """The table of the spines one block owns (a task)."""
    spine_labels, dendrite_labels, image, spacing, objects, block, first_id, skeleton, config = job
    return block_spines(spine_labels, dendrite_labels, image, spacing, window_spines=objects[block.name].spines,
                        window=block.window, first_id=first_id, skeleton=skeleton, config=config)

