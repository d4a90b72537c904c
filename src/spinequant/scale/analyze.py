"""Chunked analysis of a volume block by block: :func:`analyze_chunked`."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import zarr

from ..errors import InputError
from ..instances.pipeline import map_support
from ..segment import network_diagnostics
from ..segment.neural.bodies import CellBodies, body_search_skipped
from ..segment.neural.card import read_card
from ..validate import check_spacing
from .blocks import Block, block_grid, halo_px, maps_halo_um, objects_halo_um, window_align
from .config import ScaleConfig
from .execute import BlockRunner, task_record
from .maps import (block_done, map_fingerprint, open_maps, read_region, stored_chunk_px, volume_levels,
                   write_block_maps)
from .stack_heads import partner_diagnostics, partner_of
from .tile_maps import run_tile_maps, tile_plan, uses_tile_sums
from .export import save_large_result
from .measure import volume_tables
from .objects import BlockObjects, StoredObjects, block_objects, stitch
from .volume import VolumeSource, open_volume

#: The working folder of a chunked run inside its results folder (maps, per-block objects,
#: the global labels); kept, so a re-run after a kill skips the finished blocks.
WORK_DIR = "chunked.work"


def chunked_labels(volume, spacing, work_dir, *, config=None, scale: ScaleConfig | None = None,
                   progress=None, runner: BlockRunner | None = None) -> dict:
    """Block maps, per-block objects and the stitched global labels of ``volume`` in ``work_dir``.

    ``volume`` is a (Z, Y, X) numpy, Zarr or Dask array (read one window at a time), or a
    :class:`~spinequant.scale.execute.VolumeSource` (what tasks on a cluster get).
    ``runner`` runs the blocks (:class:`~spinequant.scale.execute.BlockRunner`; default: in
    this process); ``progress(stage, done, total)`` is called as blocks finish.
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
    levels, bodies = volume_levels(volume, spacing, map_blocks, method=config.method,
                                   classical_config=config.classical)
    bodies_dir = work / "cell_bodies"
    shutil.rmtree(bodies_dir, ignore_errors=True)
    if bodies is not None:
        bodies.save(bodies_dir)
    from ..segment.neural.predict import choose_engine  # noqa: PLC0415 (torch only when needed)
    engine = "classical" if config.method == "classical" else choose_engine(config.method, config.engine)
    # the maps are stored only where this run's spine objects read them
    support = map_support(config.instances, heads=_has_heads(config.method))
    fingerprint = {**map_fingerprint(shape, spacing, config.method, levels, chunk, halo_px(maps_halo, spacing),
                                     engine, config.orientations), "support": json.loads(json.dumps(support))}   # as the attrs store it
    from .maps import MAPS, PARTNER
    group = open_maps(work / "maps.zarr", shape, chunk_px=chunk, heads=_has_heads(config.method),
                      fingerprint=fingerprint,
                      partner=partner_of(volume, spacing, config.method, levels, engine) is not None)
    runner = runner or BlockRunner()
    maps_path = str(work / "maps.zarr")
    if uses_tile_sums(config.method):
        plan = tile_plan(shape, spacing, config.method, map_blocks)
        ran = run_tile_maps(runner, volume, spacing, plan, group, method=config.method, levels=levels,
                            engine=engine, progress=step, support=support, orientations=config.orientations)
        diags, skipped = ran["tile_sums"] + ran["blend"], ran["resumed"]
        diag = network_diagnostics(read_card(config.method), config.method, engine, config.orientations)
        diag.update(partner_diagnostics(partner_of(volume, spacing, config.method, levels, engine)))
        tiles = {"run": sum(r["tiles"] for r in ran["tile_sums"]), "volume": plan.n_tiles}
    else:
        todo = [b for b in map_blocks if not block_done(group, b)]
        skipped = len(map_blocks) - len(todo)
        diags = runner.map(_maps_job, [(volume, spacing, b, maps_path, config.method, levels, config.classical,
                                        config.engine, support, config.orientations) for b in todo],
                           names=[b.name for b in todo], stage="maps", progress=step)
        diag, tiles = (diags[-1]["diagnostics"] if diags else {}), None
    unsearched = None if config.method == "classical" else body_search_skipped(
        shape, spacing, read_card(config.method).normalisation)
    if bodies is not None or unsearched is not None:
        diag = {**diag, "cell_bodies": unsearched or bodies.summary(spacing)}
    timings["segment"] = time.perf_counter() - t

    t = time.perf_counter()
    objects_dir = objects_folder(work / "objects", {"format": 2, "maps": fingerprint,
                                                     "instances": asdict(config.instances),
                                                     "halo_px": halo_px(obj_halo, spacing),
                                                     "cell_bodies": bodies and bodies.summary(spacing)})
    todo = [b for b in obj_blocks if not (objects_dir / f"{b.name}.npz").exists()]
    bodies_path = None if bodies is None else str(bodies_dir)
    objs = runner.map(_objects_job, [(maps_path, volume, spacing, b, config.instances, shape,
                                      str(objects_dir / f"{b.name}.npz"), bodies_path) for b in todo],
                      names=[b.name for b in todo], stage="instances", progress=step)
    objects_seconds = time.perf_counter() - t
    labels = zarr.open_group(str(work / "labels.zarr"), mode="w", zarr_format=2)
    edge = stored_chunk_px(chunk)
    kw = dict(shape=shape, dtype=np.uint32, chunks=(shape[0], edge, edge), fill_value=0,
              config={"write_empty_chunks": True})
    spines, dendrites = labels.create_array("spines", **kw), labels.create_array("dendrites", **kw)
    stitched = stitch(obj_blocks, StoredObjects(objects_dir, obj_blocks), spines, dendrites)
    timings["instances"] = time.perf_counter() - t
    chunking = {
        "chunk_px": chunk, "blocks": len(map_blocks), "grid": [max(b.index[0] for b in map_blocks) + 1,
                                                               max(b.index[1] for b in map_blocks) + 1],
        "maps_halo_um": round(maps_halo, 3), "maps_halo_px": halo_px(maps_halo, spacing),
        "objects_halo_um": round(obj_halo, 3), "objects_halo_px": halo_px(obj_halo, spacing),
        "blocks_resumed": skipped, "objects_resumed": len(obj_blocks) - len(todo),
        "spines_clipped_by_halo": stitched["clipped"],
        "levels": fingerprint["levels"], "maps": [m for m in (*MAPS, PARTNER) if m in group],
        "block_seconds": {"maps": [d["seconds"] for d in diags], "instances": [d["seconds"] for d in objs]},
        "stage_seconds": {"maps": round(timings["segment"], 3), "instances": round(objects_seconds, 3),
                          "stitch": round(timings["instances"] - objects_seconds, 3)},
        "network_tiles": tiles,
        "workers": runner.n_workers(),
        "peak_mb_per_process": peak_memory_per_process(diags + objs),
    }
    return {"spine_labels": spines, "dendrite_labels": dendrites, "scores": stitched["scores"],
            "object_blocks": obj_blocks, "objects": StoredObjects(objects_dir, obj_blocks),
            "spine_offsets": stitched["spine_offsets"], "dendrite_boxes": stitched["dendrite_boxes"],
            "dendrite_voxels": stitched["dendrite_voxels"],
            "config": config, "chunking": chunking, "engine": engine,
            "diagnostics": {"segment": diag}, "timings": timings}


def objects_folder(path: Path, fingerprint: dict) -> Path:
    """The folder of per-block objects: kept when made from the same maps and settings (a
    re-run skips the blocks whose file exists), emptied otherwise."""
    stamp = path / "fingerprint.json"
    record = json.dumps(fingerprint, sort_keys=True, default=str)
    if path.exists() and (not stamp.exists() or stamp.read_text() != record):
        shutil.rmtree(path)
    if not path.exists():
        path.mkdir(parents=True)
        stamp.write_text(record)
    return path


def _maps_job(job) -> dict:
    """One block's maps (a task: runs in a worker process)."""
    volume, spacing, block, maps_path, method, levels, classical, engine, support, orientations = job
    t = time.perf_counter()
    group = zarr.open_group(maps_path, mode="r+")
    diagnostics = write_block_maps(volume, spacing, block, group, method=method, levels=levels,
                                   classical_config=classical, engine=engine, support=support,
                                   orientations=orientations)
    return {"diagnostics": diagnostics, **task_record(t)}


def _objects_job(job) -> dict:
    """One block's spine objects and core dendrites, saved to their file (a task)."""
    maps_path, volume, spacing, block, instances, shape, out, bodies_path = job
    t = time.perf_counter()
    group = zarr.open_group(maps_path, mode="r")
    bodies = None if bodies_path is None else CellBodies.load(bodies_path)
    block_objects(group, volume, spacing, block, config=instances, shape=shape, bodies=bodies).save(Path(out))
    return task_record(t)


def _chunk_for_budget(max_memory, shape, spacing, config) -> tuple[int, dict]:
    """The block size for a memory budget, and what run.json records about it."""
    from ..pipeline.analyze import resolve_config
    from .memory import chunk_for_memory, parse_memory, predicted_peak

    config = resolve_config(config)
    halo = halo_px(maps_halo_um(config.method, config.classical), spacing)
    chunk = chunk_for_memory(max_memory, shape, halo=halo, method=config.method)
    window = shape[0] * min(chunk + 2 * halo, shape[1]) * min(chunk + 2 * halo, shape[2])
    return chunk, {"bytes": parse_memory(max_memory), "chunk_px": chunk,
                   "predicted_peak_mb_per_worker": round(predicted_peak(window, config.method) / 1e6)}


def peak_memory_per_process(records: list[dict]) -> dict:
    """The highest peak memory reported by each process that ran blocks (MB, by pid)."""
    peaks: dict[str, float] = {}
    for r in records:
        peaks[str(r["pid"])] = max(peaks.get(str(r["pid"]), 0.0), r["peak_mb"])
    return peaks


def _has_heads(method: str) -> bool:
    from ..pipeline.analyze import has_point_head

    return has_point_head(method)


def analyze_chunked(path, out_dir, *, config=None, chunk_px: int | None = None, chunk_um: float | None = None,
                    channel=None, time_point=None, voxel_size=None, progress=None,
                    workers: int | None = None, scheduler: str | None = None, say=None,
                    scale: ScaleConfig | None = None, max_memory=None, ratio_channel: int | None = None):
    """Analyse the stack at ``path`` block by block and write the usual result folder.

    The maps, spine objects and dendrites are made block by block (see :mod:`spinequant.scale`).
    Up to ``scale.whole_export_max_voxels`` the stitched labels are measured as in memory
    (:func:`~spinequant.pipeline.analyze.measure_objects`) and the result folder is the
    in-memory one; above, they are measured crop by crop (:mod:`spinequant.scale.measure`: each
    dendrite on its box, each block's spines on theirs; :mod:`spinequant.scale.confidence`),
    whole-volume files are left out and ``results.ome.zarr`` is written chunk by chunk
    (:mod:`spinequant.scale.export`).
    ``chunk_px`` (or ``chunk_um``, in y/x) sets the block cores' edge (else ``scale.chunk_px``). A re-run into the same
    ``out_dir`` after a kill skips the blocks whose maps are finished.
    ``workers``: run the blocks on a local Dask cluster of that many processes; ``scheduler``:
    on the running cluster at that address (:class:`~spinequant.scale.execute.BlockRunner`);
    neither: in this process. ``say(message)`` gets the cluster's description and dashboard link.
    ``max_memory`` (``"4GB"``, bytes): choose the block size whose predicted peak per worker
    fits (:func:`~spinequant.scale.memory.chunk_for_memory`; not with ``chunk_px``/``chunk_um``).
    ``ratio_channel``: a second, tagged channel of the same file; spines.csv gets its mean and
    the RSDR (see :func:`~spinequant.pipeline.analyze.spine_ratios`; above the whole-export size
    streamed tile by tile, :mod:`spinequant.scale.ratio`, without the PSF-corrected ratio).

    Returns the :class:`~spinequant.pipeline.analyze.AnalysisResult` that was saved (above
    the whole-export size its image and labels are the lazy volume and the Zarr label arrays).
    """
    from ..pipeline.analyze import AnalysisResult, AnalyzeConfig, measure_objects, save_result, spine_ratios
    from .ratio import streamed_ratios
    from ..pipeline.plausibility import size_warnings

    stack = open_volume(path, channel=channel, time_point=time_point, voxel_size=voxel_size)
    spacing = tuple(float(s) for s in stack.spacing)
    scale = scale or ScaleConfig()
    whole = int(np.prod(stack.data.shape)) <= scale.whole_export_max_voxels
    config = config or AnalyzeConfig()
    tagged, channels = _tagged_volume(path, ratio_channel, stack, channel=channel, time_point=time_point,
                                      voxel_size=voxel_size, whole=whole, config=config)
    if chunk_px is not None and chunk_um is not None:
        raise InputError("Give the chunk size in pixels or in µm, not both.")
    budget = None
    if max_memory is not None:
        if chunk_px is not None or chunk_um is not None:
            raise InputError("Give the block size (--chunk-size) or a memory budget (--max-memory), not both.")
        chunk_px, budget = _chunk_for_budget(max_memory, stack.data.shape, spacing, config)
    if chunk_px is not None or chunk_um is not None:
        scale = replace(scale, chunk_px=int(chunk_px if chunk_px is not None else round(chunk_um / spacing[1])))
    out_dir = Path(out_dir)
    source = VolumeSource(str(path), channel, time_point, None if voxel_size is None else tuple(voxel_size))
    with BlockRunner(workers=workers, scheduler=scheduler, say=say) as runner:
        volume = source if runner.client is not None else stack.data
        chunked = chunked_labels(volume, spacing, out_dir / WORK_DIR, config=config, scale=scale, progress=progress,
                                 runner=runner)
        config = chunked["config"]
        t = time.perf_counter()
        if whole:
            # the result holds the image and labels anyway: measured as in memory, in this process
            # (read here, not through the cluster, which is the default scheduler in this block)
            image = read_region(stack.data, (slice(None),) * 3)
            spine_labels = np.asarray(chunked["spine_labels"][...]).astype(np.int32)
            dendrite_labels = np.asarray(chunked["dendrite_labels"][...]).astype(np.int32)
            spines, spine_labels, dendrites, centrelines, dropped = measure_objects(
                image, spine_labels, dendrite_labels, chunked["scores"], spacing, config)
        else:
            spines, dendrites, centrelines, dropped = _tables_block_by_block(chunked, stack, volume, spacing, config,
                                                                             scale, runner, progress)
            image, spine_labels, dendrite_labels = stack.data, chunked["spine_labels"], chunked["dendrite_labels"]
    if budget is not None:
        chunked["chunking"]["max_memory"] = budget
    diagnostics = {**chunked["diagnostics"], "chunked": chunked["chunking"]}
    if dropped is not None:
        diagnostics["below_min_confidence"] = dropped
    warnings = size_warnings(dendrites, spacing)
    if tagged is not None:
        if whole:
            spines, diagnostics["ratio"] = spine_ratios(spines, np.asarray(tagged), image, spine_labels,
                                                        dendrite_labels, spacing=spacing, config=config.ratio)
        else:
            spines, diagnostics["ratio"] = streamed_ratios(spines, tagged, stack.data, spine_labels, dendrite_labels,
                                                           config=config.ratio)
        if diagnostics["ratio"].get("warning"):
            warnings.append(diagnostics["ratio"]["warning"])
    timings = {**chunked["timings"], "measure": time.perf_counter() - t}
    diagnostics["warnings"] = warnings
    source_record = {"path": str(path), "chunked": chunked["chunking"], **channels}
    if not whole:
        save_large_result(out_dir, image=stack.data, spacing=spacing, spine_labels=chunked["spine_labels"],
                          dendrite_labels=chunked["dendrite_labels"], spines=spines, dendrites=dendrites,
                          centrelines=centrelines, config=config, diagnostics=diagnostics, timings=timings,
                          source=source_record, limit=scale.whole_export_max_voxels, progress=progress)
        return AnalysisResult(
            image=stack.data, spacing=spacing, dendrite_prob=None, spine_prob=None,
            spine_labels=chunked["spine_labels"], dendrite_labels=chunked["dendrite_labels"], spines=spines,
            dendrites=dendrites, centrelines=centrelines, config=config, timings=timings, diagnostics=diagnostics)
    result = AnalysisResult(
        image=image, spacing=spacing, dendrite_prob=None, spine_prob=None, spine_labels=spine_labels,
        dendrite_labels=dendrite_labels, spines=spines, dendrites=dendrites, centrelines=centrelines,
        config=config, timings=timings, diagnostics=diagnostics)
    save_result(result, out_dir, source=source_record)
    return result


def _tagged_volume(path, ratio_channel, stack, *, channel, time_point, voxel_size, whole: bool, config):
    """The tagged channel of a ratio run (None without one), opened lazily and checked before
    the run starts, and what run.json's input records about the two channels."""
    if ratio_channel is None:
        return None, {}
    from ..pipeline.batch import check_ratio_channel, ratio_record

    names = check_ratio_channel(path, ratio_channel, channel=channel)
    if not whole and config.ratio.psf_fwhm_um is not None:
        raise InputError("The PSF-corrected ratio (--psf-fwhm) needs the whole volume in memory; this volume is "
                         "above scale.whole_export_max_voxels. Leave out --psf-fwhm (the raw rsdr is still "
                         "written).")
    tagged = open_volume(path, channel=ratio_channel, time_point=time_point, voxel_size=voxel_size)
    return tagged.data, ratio_record(names, channel, ratio_channel)


def _tables_block_by_block(chunked: dict, stack, volume, spacing, config, scale, runner, progress):
    """The spine and dendrite tables of a volume above the whole-export size, measured crop by
    crop (:func:`~spinequant.scale.measure.volume_tables`) and, with a learnt confidence, its
    candidates scored and the kept ones measured again block by block
    (:mod:`spinequant.scale.confidence`). Returns ``(spines, dendrites, centrelines,
    below_min_confidence)``."""
    from ..pipeline.analyze import confident_spines, learnt_confidence
    from .confidence import chunked_confident_spines

    # the dendrites' skeletons and the blocks' spine tables are tasks on the workers when
    # there are several (with one, nothing runs beside them: they stay in this process)
    here = runner.n_workers() < 2
    tasks = BlockRunner() if here else runner
    image = stack.data if here else volume
    spines, dendrites, skeleton, centrelines = volume_tables(
        chunked["spine_labels"], chunked["dendrite_labels"], image, spacing,
        blocks=chunked["object_blocks"], objects=chunked["objects"], spine_offsets=chunked["spine_offsets"],
        dendrite_boxes=chunked["dendrite_boxes"], dendrite_voxels=chunked["dendrite_voxels"],
        config=config.morphology, skeleton_max_voxels=scale.skeleton_max_voxels, runner=tasks, progress=progress)
    dropped = None
    if chunked["scores"] is not None and learnt_confidence(config):
        # the whole volume is never held: its statistics are streamed, the labels relabelled
        # block by block and the kept spines measured again block by block
        spines, dendrites, dropped = chunked_confident_spines(
            spines, chunked["scores"], stack.data, chunked["spine_labels"], chunked["dendrite_labels"],
            spacing, config, blocks=chunked["object_blocks"], objects=chunked["objects"],
            spine_offsets=chunked["spine_offsets"], dendrite_boxes=chunked["dendrite_boxes"],
            dendrite_voxels=chunked["dendrite_voxels"], skeleton=skeleton, measure_image=image, runner=tasks,
            skeleton_max_voxels=scale.skeleton_max_voxels, progress=progress)
    else:      # the head-map confidence (or none): a column added, nothing dropped
        spines, _, dropped = confident_spines(spines, chunked["spine_labels"], chunked["scores"], stack.data,
                                              chunked["dendrite_labels"], spacing, config, skeleton=skeleton)
    return spines, dendrites, centrelines, dropped
