"""Cells of a volume larger than memory, block by block (``spinequant cells --chunked``).

The volume is read lazily (:func:`spinequant.scale.open_volume`) and cut into blocks with a
halo (:func:`spinequant.scale.block_grid`: whole z, a grid in y/x). The classical foreground
threshold is chosen **once** for the whole volume: a first pass over the blocks finds the
range of the outline image (the Gaussian-smoothed volume) on every core, a second sums the
cores' 256-bin histograms over that range, and Otsu's threshold of the summed histogram is
the one :func:`~spinequant.cells.voronoi_otsu.voronoi_otsu` computes on the whole volume
(the same bins). Each block is then labelled on its window with that threshold
(:func:`~spinequant.cells.voronoi_otsu.split_foreground`) and keeps the cells whose centre
lies in its core, whole (:func:`spinequant.scale.objects.owned_objects`); the owned cells are
written into global labels core by core (:func:`spinequant.scale.objects.stitch`), so a cell
cut by a block border has one id and is counted once. The table is measured block by block
on each block's window (each owned cell lies whole in it). Blocks run here or on a Dask
cluster (:class:`~spinequant.scale.execute.BlockRunner`); a re-run into the same folder skips
finished blocks.

Not available chunked (a clear error): the networks (their sliding-window tiles and
normalisation would have to be laid on the whole volume's grid) and ``flatten_sigma_um``
(its blur reaches a few cell diameters, its dark level and mean are the whole volume's).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from ..config import config_to_dict
from ..errors import InputError
from ..scale.analyze import objects_folder, peak_memory_per_process, task_record
from ..scale.objects import StoredObjects
from ..scale.blocks import Block, block_grid, halo_px
from ..scale.execute import BlockRunner
from ..scale.maps import read_region, read_window
from ..scale.objects import BlockObjects, clipped_objects, owned_objects, stitch
from ..scale.volume import VolumeSource, open_volume
from ..validate import check_spacing
from .config import CellChunkConfig, CellConfig
from .measure import measure_cells, summarize_cells
from .voronoi_otsu import sigma_voxels, split_foreground

#: The working folder of a chunked cell run inside its results folder (levels, per-block
#: cells, the global labels); kept, so a re-run after a kill skips finished blocks.
WORK_DIR = "cells.work"
#: Bins of the outline histogram: those of ``skimage.filters.threshold_otsu``, so the
#: threshold equals the in-memory one.
NBINS = 256
#: ``scipy.ndimage.gaussian_filter``'s reach in sigmas (its ``truncate``).
GAUSS_TRUNCATE = 4.0


def cell_halo_um(config: CellConfig, max_cell_diameter_um: float) -> float:
    """Context (µm, y/x) a block needs around its core for the cells it owns to come out as in
    the whole volume: 1.5 cell diameters (a round cell reaches half a diameter from its centre,
    and the rival seed that decides a voxel's cell lies nearer it than its own seed, within one
    more diameter) plus the Gaussians' reach (4 sigma of the larger of the spot and outline
    sigmas, in y/x) and the seeds' maximum radius.

    >>> cell_halo_um(CellConfig(), 25.0)
    45.5
    """
    sigma = max(np.max(np.broadcast_to(np.asarray(s, float), (3,))[1:])
                for s in (config.spot_sigma_um, config.outline_sigma_um))
    return 1.5 * max_cell_diameter_um + GAUSS_TRUNCATE * float(sigma) + config.spot_radius_um


def _outline_halo_px(config: CellConfig, spacing) -> int:
    """Halo (px, aligned) for the outline image of a core to equal the whole volume's."""
    return halo_px(GAUSS_TRUNCATE * max(np.broadcast_to(np.asarray(config.outline_sigma_um, float), (3,))[1:]) + 1,
                   spacing)


def _check_chunkable(config: CellConfig) -> None:
    if config.method != "classical":
        raise InputError(f"--chunked runs the classical method only (this run asks for '{config.method}'): a "
                         f"network's tiles and normalisation are not yet laid on the whole volume's grid. "
                         f"Leave out --chunked, or --method.")
    if config.flatten_sigma_um is not None:
        raise InputError("--flatten is not available with --chunked: its blur reaches a few cell diameters and "
                         "its dark level is the whole volume's. Leave out one of the two.")


def _outline_core(volume, spacing, block: Block, config: CellConfig) -> np.ndarray:
    image = read_window(volume, block).astype(np.float32, copy=False)
    outline = ndi.gaussian_filter(image, sigma_voxels(config.outline_sigma_um, spacing), mode="nearest")
    return outline[(slice(None), *block.core_in_window)]


def _range_job(job) -> dict:
    """(min, max) of one core's outline image (a task)."""
    volume, spacing, block, config = job
    t = time.perf_counter()
    core = _outline_core(volume, spacing, block, config)
    return {"min": float(core.min()), "max": float(core.max()), **task_record(t)}


def _histogram_job(job) -> dict:
    """One core's outline histogram over the whole volume's range (a task)."""
    volume, spacing, block, config, lo, hi = job
    t = time.perf_counter()
    core = _outline_core(volume, spacing, block, config)
    counts, _ = np.histogram(core.reshape(-1), bins=NBINS, range=(np.float32(lo), np.float32(hi)))
    return {"counts": counts, **task_record(t)}


def volume_threshold(volume, spacing, config: CellConfig, blocks: list[Block], runner: BlockRunner,
                     progress=None) -> dict:
    """Otsu's threshold (times the config's factor) of the whole volume's outline image, from
    two passes over ``blocks`` (range, then summed histogram); and the foreground separation
    (:func:`~spinequant.cells.voronoi_otsu.foreground_separation`) from the histogram's bins."""
    names = [b.name for b in blocks]
    ranges = runner.map(_range_job, [(volume, spacing, b, config) for b in blocks], names=names,
                        stage="range", progress=progress)
    lo = np.float32(np.min([r["min"] for r in ranges]))        # NaN propagates
    hi = np.float32(np.max([r["max"] for r in ranges]))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError("The cell volume contains NaN or infinite values; spinequant needs finite intensities: "
                         "replace them (e.g. with 0 in Fiji via Process > Math > Remove NaNs) and try again.")
    if lo == hi:
        raise InputError(f"The cell volume is constant (every smoothed voxel is {float(lo):g}); check the file "
                         f"or the channel chosen.")
    hists = runner.map(_histogram_job, [(volume, spacing, b, config, float(lo), float(hi)) for b in blocks],
                       names=names, stage="histogram", progress=progress)
    counts = np.sum([h["counts"] for h in hists], axis=0)
    edges = np.histogram_bin_edges(np.array([lo, hi], np.float32), bins=NBINS, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    level = float(threshold_otsu(hist=(counts, centres))) * config.threshold_factor
    return {"otsu_threshold": level, "foreground_separation": _histogram_separation(counts, centres, level),
            "records": ranges + hists}


def _histogram_separation(counts, centres, level) -> float:
    fg, bg = centres > level, centres <= level
    if not counts[fg].sum() or not counts[bg].sum():
        return float("nan")
    mean = (lambda m: float(np.average(centres[m], weights=counts[m])))
    spread = float(np.sqrt(np.average((centres[bg] - mean(bg)) ** 2, weights=counts[bg])))
    return (mean(fg) - mean(bg)) / spread if spread > 0 else float("inf")


def _cells_job(job) -> dict:
    """One block's cells: labelled on its window with the global threshold; the cells whose
    centre lies in its core kept whole and saved (a task)."""
    volume, spacing, block, config, level, shape, out = job
    t = time.perf_counter()
    work = read_window(volume, block).astype(np.float32, copy=False)
    outline = ndi.gaussian_filter(work, sigma_voxels(config.outline_sigma_um, spacing), mode="nearest")
    mask = outline > level
    del outline
    labels, _ = split_foreground(work, mask, spacing, config)
    owned, _ = owned_objects(labels, block)
    core = tuple(c.stop - c.start for c in block.core)
    BlockObjects(owned, None, np.zeros((shape[0], *core), np.uint32),
                 clipped_objects(owned, block, shape)).save(Path(out))
    return task_record(t)


def _table_job(job) -> pd.DataFrame:
    """The rows of the cells a block owns (global ids ``first``..``last``), measured on its window."""
    labels_path, intensities, spacing, block, first, last, shape = job
    if last < first:
        return pd.DataFrame()
    labels = read_window(zarr.open_array(labels_path, mode="r"), block).astype(np.int64)
    labels[(labels < first) | (labels > last)] = 0
    channels = {name: read_window(v, block) for name, v in intensities.items()}
    table = measure_cells(labels, spacing, intensities=channels)
    for axis, start in (("y", block.window[0].start), ("x", block.window[1].start)):
        table[f"centroid_{axis}_um"] += start * spacing[1 if axis == "y" else 2]
    # the volume's faces, not the window's: all of z, the window's y/x edges only at the border
    faces = [labels[0], labels[-1]]
    for axis, (w, n) in enumerate(zip(block.window, shape[1:]), start=1):
        if w.start == 0:
            faces.append(np.take(labels, 0, axis=axis))
        if w.stop == n:
            faces.append(np.take(labels, -1, axis=axis))
    table["touches_border"] = np.isin(table["id"], np.unique(np.concatenate([f.ravel() for f in faces])))
    return table


def chunked_cells(volume, spacing, work_dir, *, config: CellConfig | None = None,
                  chunking: CellChunkConfig | None = None, intensities: dict | None = None, runner=None,
                  progress=None) -> dict:
    """Global cell labels (a Zarr array in ``work_dir``) and the cell table of ``volume``.

    ``volume``: a (Z, Y, X) numpy, Zarr or Dask array, or a
    :class:`~spinequant.scale.volume.VolumeSource` (on a cluster). ``intensities`` maps channel
    names to volumes of the same shape (default: ``{"c0": volume}``). ``progress(stage, done,
    total)`` is called as blocks finish. Returns ``labels``, ``cells``, ``chunking`` (for
    run.json), ``diagnostics`` and ``timings``.
    """
    config = config or CellConfig()
    chunking = chunking or CellChunkConfig()
    _check_chunkable(config)
    if len(volume.shape) != 3:
        raise InputError(f"Chunked cell segmentation needs a 3D (Z, Y, X) volume; got shape {tuple(volume.shape)}.")
    spacing = check_spacing(spacing, ndim=3, where="the cell volume")
    step = progress or (lambda name, done, total: None)
    runner = runner or BlockRunner()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(n) for n in volume.shape)
    chunk = -(-chunking.chunk_px // 16) * 16
    halo_um = chunking.halo_um if chunking.halo_um is not None else cell_halo_um(config, chunking.max_cell_diameter_um)
    blocks = block_grid(shape, chunk_px=chunk, halo=halo_px(halo_um, spacing))
    timings = {}

    t = time.perf_counter()
    fingerprint = {"format": 1, "shape": list(shape), "spacing": list(spacing), "chunk_px": chunk,
                   "halo_px": halo_px(halo_um, spacing), "config": config_to_dict(config)}
    levels = _cached_levels(work / "levels.json", fingerprint)
    records = []
    if levels is None:
        outline_blocks = block_grid(shape, chunk_px=chunk, halo=_outline_halo_px(config, spacing))
        levels = volume_threshold(volume, spacing, config, outline_blocks, runner, progress=step)
        records = levels.pop("records")
        _write_json(work / "levels.json", {"fingerprint": fingerprint, "levels": levels})
    level = levels["otsu_threshold"]
    objects_dir = objects_folder(work / "objects", {**fingerprint, "level": level})
    todo = [b for b in blocks if not (objects_dir / f"{b.name}.npz").exists()]
    done = runner.map(_cells_job, [(volume, spacing, b, config, level, shape, str(objects_dir / f"{b.name}.npz"))
                                   for b in todo], names=[b.name for b in todo], stage="cells", progress=step)
    timings["segment"] = time.perf_counter() - t

    t = time.perf_counter()
    labels = zarr.open_group(str(work / "labels.zarr"), mode="w", zarr_format=2).create_array(
        "cells", shape=shape, dtype=np.uint32, chunks=(shape[0], chunk, chunk), fill_value=0,
        config={"write_empty_chunks": True})
    stored = StoredObjects(objects_dir, blocks)
    stitched = stitch(blocks, stored, labels, None)
    n_cells = stitched["n_spines"]
    offsets = stitched["spine_offsets"]
    ends = [offsets[b.name] for b in blocks[1:]] + [n_cells]
    labels_path = str(work / "labels.zarr" / "cells")
    channels = intensities if intensities is not None else {"c0": volume}
    tables = runner.map(_table_job, [(labels_path, channels, spacing, b, offsets[b.name] + 1, end, shape)
                                     for b, end in zip(blocks, ends)],
                        names=[b.name for b in blocks], stage="measure", progress=step)
    nonempty = [tb for tb in tables if len(tb)]
    cells = (pd.concat(nonempty, ignore_index=True) if nonempty
             else measure_cells(np.zeros((1, 1, 1), np.int32), spacing, intensities={
                 name: np.zeros((1, 1, 1)) for name in channels}))
    cells = cells.sort_values("id", kind="stable").reset_index(drop=True)
    timings["measure"] = time.perf_counter() - t
    record = {
        "chunk_px": chunk, "blocks": len(blocks),
        "grid": [max(b.index[0] for b in blocks) + 1, max(b.index[1] for b in blocks) + 1],
        "halo_um": round(halo_um, 3), "halo_px": halo_px(halo_um, spacing),
        "max_cell_diameter_um": chunking.max_cell_diameter_um,
        "blocks_resumed": len(blocks) - len(todo), "cells_clipped_by_halo": stitched["clipped"],
        "threshold": "Otsu of the whole volume's outline histogram (256 bins, two passes over the blocks)",
        "block_seconds": [d["seconds"] for d in done], "workers": runner.n_workers(),
        "peak_mb_per_process": peak_memory_per_process(records + done),
    }
    # seeds and pieces per window overlap between blocks: only the owned cells are counted
    diagnostics = {"otsu_threshold": level, "foreground_separation": levels["foreground_separation"],
                   "n_cells": n_cells}
    return {"labels": labels, "cells": cells, "chunking": record, "diagnostics": diagnostics, "timings": timings}


def _cached_levels(path: Path, fingerprint: dict) -> dict | None:
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    same = json.dumps(record.get("fingerprint"), sort_keys=True) == json.dumps(fingerprint, sort_keys=True, default=str)
    return record["levels"] if same else None


def _write_json(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, sort_keys=True, default=str))
    tmp.replace(path)


def analyze_cells_chunked(path, out_dir, *, config: CellConfig | None = None,
                          chunking: CellChunkConfig | None = None, chunk_px: int | None = None, max_memory=None,
                          channel=None, time_point=None, voxel_size=None, workers: int | None = None,
                          scheduler: str | None = None, say=None, progress=None, report: bool = True):
    """Segment and measure the cells of the stack at ``path`` block by block; write the result
    folder (as :func:`~spinequant.cells.pipeline.analyze_cells_file` up to
    ``chunking.whole_export_max_voxels``; above, cells.csv, results.ome.zarr written chunk by
    chunk and run.json). ``chunk_px`` or ``max_memory`` (``"4GB"``: the largest block whose
    predicted peak per worker fits, :func:`~spinequant.scale.memory.chunk_for_memory`)
    override ``chunking.chunk_px``; ``workers``/``scheduler`` run the blocks on a Dask cluster
    (:class:`~spinequant.scale.execute.BlockRunner`). Every channel of the file is measured
    (``c0``, ``c1``...). Returns the :class:`~spinequant.cells.pipeline.CellResult` (above the
    whole-export size its image and labels are the lazy volume and the Zarr labels).
    """
    from ..scale.memory import chunk_for_memory, parse_memory, predicted_peak

    config = config or CellConfig()
    chunking = chunking or CellChunkConfig()
    _check_chunkable(config)
    stack = open_volume(path, channel=channel, time_point=time_point, voxel_size=voxel_size)
    spacing = tuple(float(s) for s in stack.spacing)
    shape = tuple(int(n) for n in stack.data.shape)
    budget = None
    if max_memory is not None:
        if chunk_px is not None:
            raise InputError("Give the block size (--chunk-size) or a memory budget (--max-memory), not both.")
        halo_um = chunking.halo_um if chunking.halo_um is not None else cell_halo_um(
            config, chunking.max_cell_diameter_um)
        chunk_px = chunk_for_memory(max_memory, shape, halo=halo_px(halo_um, spacing), method="classical")
        window = shape[0] * min(chunk_px + 2 * halo_px(halo_um, spacing), shape[1]) * min(
            chunk_px + 2 * halo_px(halo_um, spacing), shape[2])
        budget = {"bytes": parse_memory(max_memory), "chunk_px": chunk_px,
                  "predicted_peak_mb_per_worker": round(predicted_peak(window, "classical") / 1e6)}
    if chunk_px is not None:
        chunking = replace(chunking, chunk_px=int(chunk_px))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    channels = _channel_sources(path, stack, channel, time_point, voxel_size)
    with BlockRunner(workers=workers, scheduler=scheduler, say=say) as runner:
        remote = runner.client is not None
        source = VolumeSource(str(path), channel, time_point, None if voxel_size is None else tuple(voxel_size))
        volume = source if remote else stack.data
        intensities = {name: (s if remote else open_volume(
            s.path, channel=s.channel, time_point=s.time_point, voxel_size=s.voxel_size).data)
            for name, s in channels.items()}
        chunked = chunked_cells(volume, spacing, out_dir / WORK_DIR, config=config, chunking=chunking,
                                intensities=intensities, runner=runner, progress=progress)
    if budget is not None:
        chunked["chunking"]["max_memory"] = budget
    return _save(path, out_dir, stack, spacing, config, chunking, chunked, channel=channel, time_point=time_point,
                 report=report)


def _channel_sources(path, stack, channel, time_point, voxel_size) -> dict:
    """The channels whose intensities go into the table, as volume sources."""
    from ..io import open_stack

    size = tuple(voxel_size) if voxel_size is not None else None
    opened = open_stack(path, voxel_size=voxel_size, require_spacing=False, lazy=True)
    n = opened.size_of("C") if "C" in opened.axes else 1
    if n == 1:
        return {"c0": VolumeSource(str(path), channel, time_point, size)}
    return {f"c{c}": VolumeSource(str(path), c, time_point, size) for c in range(n)}


def _save(path, out_dir, stack, spacing, config, chunking, chunked, *, channel, time_point, report):
    from .pipeline import CellResult, _weak_foreground, save_cells

    shape = tuple(int(n) for n in stack.data.shape)
    cells = chunked["cells"]
    summary = summarize_cells(cells, shape, spacing)
    diagnostics = {"segment": chunked["diagnostics"], "chunked": chunked["chunking"]}
    warning = _weak_foreground(chunked["diagnostics"]["foreground_separation"])
    if warning:
        diagnostics["segment"]["warning"] = warning
    source = {"path": str(Path(path).resolve()), "format": stack.metadata.get("format"), "channel": channel,
              "time": time_point, "spacing_source": stack.spacing_source, "chunked": config_to_dict(chunking)}
    if int(np.prod(shape)) <= chunking.whole_export_max_voxels:
        result = CellResult(image=np.asarray(read_region(stack.data, (slice(None),) * 3)), spacing=spacing,
                            labels=np.asarray(chunked["labels"][...]).astype(np.int32), cells=cells,
                            summary=summary, config=config, timings=chunked["timings"], diagnostics=diagnostics)
        save_cells(result, out_dir, source=source, report=report)
        return result
    _save_large(out_dir, stack.data, spacing, chunked["labels"], cells, summary, config, diagnostics,
                chunked["timings"], source, chunking.whole_export_max_voxels)
    return CellResult(image=stack.data, spacing=spacing, labels=chunked["labels"], cells=cells, summary=summary,
                      config=config, timings=chunked["timings"], diagnostics=diagnostics)


def _save_large(out_dir, image, spacing, labels, cells, summary, config, diagnostics, timings, source, limit):
    """cells.csv, results.ome.zarr (image and labels read chunk by chunk) and run.json (last)."""
    import dask.array as da

    from .. import __version__
    from .._atomic import undo_on_failure
    from ..export.tables import write_table
    from ..io import write_ome_zarr
    from ..pipeline.runinfo import peak_memory_mb, versions, write_run_json
    from ..scale.export import NOT_WRITTEN, clear_run_record, lazy_volume, volume_sha256

    with undo_on_failure():
        clear_run_record(out_dir)
        t = time.perf_counter()
        write_table(out_dir / "cells.csv", cells, parquet=False)
        write_ome_zarr(out_dir / "results.ome.zarr", lazy_volume(image), spacing, labels={"cells": da.from_zarr(labels)})
        timings["export"] = time.perf_counter() - t
        record = {
            "spinequant": __version__, "complete": True, "analysis": "cells",
            "input": {**source, "shape": list(image.shape), "dtype": str(read_region(image, (0, slice(0, 1),
                                                                                             slice(0, 1))).dtype),
                      "spacing_um": list(spacing), "data_sha256_tiles": volume_sha256(image)},
            "config": config_to_dict(config), "summary": summary, "diagnostics": diagnostics,
            "not_written": NOT_WRITTEN.format(limit=limit, n=int(np.prod(image.shape))).replace(
                "ImageJ ROI set, meshes, ", ""),
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "peak_memory_mb": round(peak_memory_mb(), 1), "versions": versions(),
        }
        write_run_json(out_dir, record)
    return out_dir
