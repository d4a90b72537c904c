"""Chunked analysis of a volume block by block: :func:`analyze_chunked`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import zarr

from ..errors import InputError
from ..stack import Stack
from ..validate import check_spacing
from .blocks import Block, block_grid, halo_px, maps_halo_um, objects_halo_um, window_align
from .config import ScaleConfig
from .maps import block_done, map_fingerprint, open_maps, volume_levels, write_block_maps
from .objects import BlockObjects, block_objects, stitch

#: The working folder of a chunked run inside its results folder (maps, per-block objects,
#: the global labels); kept, so a re-run after a kill skips the finished blocks.
WORK_DIR = "chunked.work"


class _StoredObjects(Mapping):
    """Per-block objects read from their files on each access (memory: a few blocks)."""

    def __init__(self, folder: Path, blocks: list[Block]):
        self.folder, self.names = folder, [b.name for b in blocks]

    def __getitem__(self, name):
        return BlockObjects.load(self.folder / f"{name}.npz")

    def __iter__(self):
        return iter(self.names)

    def __len__(self):
        return len(self.names)


def chunked_labels(volume, spacing, work_dir, *, config=None, scale: ScaleConfig | None = None,
                   progress=None) -> dict:
    """Block maps, per-block objects and the stitched global labels of ``volume`` in ``work_dir``.

    ``volume`` is a (Z, Y, X) numpy, Zarr or Dask array (read one window at a time).
    Returns a dict: ``spine_labels``, ``dendrite_labels`` (Zarr arrays), ``scores``, the
    resolved ``config``, the ``chunking`` (block grid and halos, for run.json) and
    ``diagnostics``.
    """
    from ..pipeline.analyze import resolve_config

    config = resolve_config(config)
    scale = scale or ScaleConfig()
    if len(volume.shape) != 3:
        raise InputError(f"Chunked analysis needs a 3D (Z, Y, X) volume; got shape {tuple(volume.shape)}. "
                         f"Analyse 2D images in memory (without --chunked).")
    spacing = check_spacing(spacing, ndim=3)
    step = progress or (lambda name, done, total: None)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(n) for n in volume.shape)
    chunk = -(-scale.chunk_px // 16) * 16
    maps_halo = scale.maps_halo_um if scale.maps_halo_um is not None else maps_halo_um(config.method, config.classical)
    obj_halo = scale.objects_halo_um if scale.objects_halo_um is not None else objects_halo_um(config.instances)
    map_blocks = block_grid(shape, chunk_px=chunk, halo=halo_px(maps_halo, spacing),
                            align=window_align(config.method, spacing, config.classical))
    obj_blocks = block_grid(shape, chunk_px=chunk, halo=halo_px(obj_halo, spacing))
    timings = {}

    t = time.perf_counter()
    levels = volume_levels(volume, spacing, map_blocks, method=config.method, classical_config=config.classical)
    from ..segment.neural.predict import choose_engine  # noqa: PLC0415 (torch only when needed)
    engine = "classical" if config.method == "classical" else choose_engine(config.method, config.engine)
    fingerprint = map_fingerprint(shape, spacing, config.method, levels, chunk, halo_px(maps_halo, spacing), engine)
    from .maps import MAPS
    group = open_maps(work / "maps.zarr", shape, chunk_px=chunk, heads=_has_heads(config.method),
                      fingerprint=fingerprint)
    skipped, diag = 0, {}
    for i, block in enumerate(map_blocks):
        step("maps", i, len(map_blocks))
        if block_done(group, block):
            skipped += 1
            continue
        diag = write_block_maps(volume, spacing, block, group, method=config.method, levels=levels,
                                classical_config=config.classical, engine=config.engine)
    timings["segment"] = time.perf_counter() - t

    t = time.perf_counter()
    objects_dir = work / "objects"
    objects_dir.mkdir(exist_ok=True)
    for i, block in enumerate(obj_blocks):
        step("instances", i, len(obj_blocks))
        block_objects(group, volume, spacing, block, config=config.instances, shape=shape).save(
            objects_dir / f"{block.name}.npz")
    labels = zarr.open_group(str(work / "labels.zarr"), mode="w", zarr_format=2)
    kw = dict(shape=shape, dtype=np.uint32, chunks=(shape[0], chunk, chunk), fill_value=0,
              config={"write_empty_chunks": True})
    spines, dendrites = labels.create_array("spines", **kw), labels.create_array("dendrites", **kw)
    stitched = stitch(obj_blocks, _StoredObjects(objects_dir, obj_blocks), spines, dendrites)
    timings["instances"] = time.perf_counter() - t
    chunking = {
        "chunk_px": chunk, "blocks": len(map_blocks), "grid": [max(b.index[0] for b in map_blocks) + 1,
                                                               max(b.index[1] for b in map_blocks) + 1],
        "maps_halo_um": round(maps_halo, 3), "maps_halo_px": halo_px(maps_halo, spacing),
        "objects_halo_um": round(obj_halo, 3), "objects_halo_px": halo_px(obj_halo, spacing),
        "blocks_resumed": skipped, "spines_clipped_by_halo": stitched["clipped"],
        "levels": fingerprint["levels"], "maps": [m for m in MAPS if m in group],
    }
    return {"spine_labels": spines, "dendrite_labels": dendrites, "scores": stitched["scores"],
            "config": config, "chunking": chunking, "engine": engine,
            "diagnostics": {"segment": diag}, "timings": timings}


def _has_heads(method: str) -> bool:
    from ..pipeline.analyze import has_point_head

    return has_point_head(method)


def open_volume(path, *, channel=None, time_point=None, voxel_size=None, allow_incomplete=False) -> Stack:
    """The stack at ``path`` with one channel and time point selected, its data left lazy
    where the format allows it (OME-Zarr / Zarr: a Dask array)."""
    from ..io import open_stack

    stack = open_stack(path, voxel_size=voxel_size, allow_incomplete=allow_incomplete)
    stack = stack.select(channel=channel, time=time_point)
    if stack.data.ndim != 3:
        raise InputError(f"'{path}' is a 2D image; chunked analysis is for 3D volumes. Leave out --chunked.")
    return stack


def analyze_chunked(path, out_dir, *, config=None, chunk_px: int | None = None, chunk_um: float | None = None,
                    channel=None, time_point=None, voxel_size=None, progress=None):
    """Analyse the stack at ``path`` block by block and write the usual result folder.

    The maps, spine objects and dendrites are made block by block (see :mod:`spinequant.scale`);
    the stitched labels are measured as whole volumes (this increment: the spine and dendrite
    label volumes and the image must fit in memory for the measurements, 9 bytes a voxel for
    uint16 images, against about 4 x that for a float32 stack in memory).
    ``chunk_px`` (or ``chunk_um``, in y/x) sets the block cores' edge. A re-run into the same
    ``out_dir`` after a kill skips the blocks whose maps are finished.

    Returns the :class:`~spinequant.pipeline.analyze.AnalysisResult` that was saved.
    """
    from ..pipeline.analyze import AnalysisResult, _spine_confidence, save_result
    from ..pipeline.plausibility import size_warnings
    from ..morphology import dendrite_centrelines, dendrite_skeleton, measure_dendrites, measure_spines

    stack = open_volume(path, channel=channel, time_point=time_point, voxel_size=voxel_size)
    spacing = tuple(float(s) for s in stack.spacing)
    if chunk_px is not None and chunk_um is not None:
        raise InputError("Give the chunk size in pixels or in µm, not both.")
    scale = ScaleConfig() if chunk_px is None and chunk_um is None else ScaleConfig(
        chunk_px=int(chunk_px if chunk_px is not None else round(chunk_um / spacing[1])))
    out_dir = Path(out_dir)
    chunked = chunked_labels(stack.data, spacing, out_dir / WORK_DIR, config=config, scale=scale, progress=progress)
    config = chunked["config"]
    t = time.perf_counter()
    image = np.asarray(stack.data)
    spine_labels = np.asarray(chunked["spine_labels"][...]).astype(np.int32)
    dendrite_labels = np.asarray(chunked["dendrite_labels"][...]).astype(np.int32)
    skeleton = dendrite_skeleton(dendrite_labels, spacing, config=config.morphology)
    spines = measure_spines(spine_labels, dendrite_labels, spacing, image=image, config=config.morphology,
                            skeleton=skeleton)
    dendrites = measure_dendrites(dendrite_labels, spacing, spines=spines, config=config.morphology,
                                  skeleton=skeleton)
    centrelines = dendrite_centrelines(dendrite_labels, spacing, config=config.morphology, skeleton=skeleton)
    spines.insert(1, "confidence", _spine_confidence(spines["id"], chunked["scores"], config.method))
    timings = {**chunked["timings"], "measure": time.perf_counter() - t}
    result = AnalysisResult(
        image=image, spacing=spacing, dendrite_prob=None, spine_prob=None, spine_labels=spine_labels,
        dendrite_labels=dendrite_labels, spines=spines, dendrites=dendrites, centrelines=centrelines,
        config=config, timings=timings,
        diagnostics={**chunked["diagnostics"], "warnings": size_warnings(dendrites, spacing),
                     "chunked": chunked["chunking"]})
    save_result(result, out_dir, source={"path": str(path), "chunked": chunked["chunking"]})
    return result
