"""A large volume analysed in blocks on 1 and 2 Dask workers (docs/scale.md, "Large volumes").

    python benchmarks/scale_large.py make DIR 3072          # 48 x 3072 x 3072 uint16 as DIR/large.ome.zarr
    python benchmarks/scale_large.py make DIR 4096 body     # ... 48 x 4096 x 4096 with a cell body in the first tile
    python benchmarks/scale_large.py memory DIR             # in-memory rate on one 48 x 1024 x 1024 tile
    python benchmarks/scale_large.py run DIR 1 1024         # analyze_chunked, 1 worker, 1024-px blocks
    python benchmarks/scale_large.py run DIR 2 1024         # ... 2 workers (again: resumes a killed run)
    python benchmarks/scale_large.py window DIR 512         # one inner block's maps + objects, in this process
    python benchmarks/scale_large.py stitch DIR out_w1_c1024   # the stitching alone, on a run's objects
    python benchmarks/scale_large.py tail DIR out_w1_c1024 [head_map]   # a copy of a run resumed: stitch, measure, export (large-volume path)
    python benchmarks/scale_large.py table DIR              # the markdown table of the runs so far
    python benchmarks/scale_large.py inmemory DIR           # the whole volume in memory: read, analyze, save
    python benchmarks/scale_large.py tiles DIR 1024         # network tiles per volume: every block's, each once
    python benchmarks/scale_large.py compare BEFORE AFTER   # runs of two folders (same volume) side by side
    python benchmarks/scale_large.py same RUN_A RUN_B       # two runs' maps, labels and spine tables compared
    python benchmarks/scale_large.py tilesums DIR 1024      # every block's tile sums and blend, timed, here

The volume is put together from four phantom tiles (two-photon preset, 48 x 1024 x 1024,
seeds 0-3, each placed mirrored or not by its grid position) and written as OME-Zarr chunk by
chunk (a Dask array, never whole in memory): to the pipeline it reads like any OME-Zarr stack.
A 20 GB volume is ``make DIR 14848`` (48 x 14848 x 14848 x 2 bytes = 21.2 GB).

``run`` prints, as one JSON line (also appended to DIR/runs.jsonl): wall time and voxels/s,
the peak resident memory of every worker process (from the blocks' own reports) and of the
main process (which levels, stitches, measures and exports), the time of every block, and the
scheduler overhead of each stage: its wall time less the summed block times over the workers,
and the peak resident memory of every process sampled every 5 s (``sampled_peak_mb``, MiB;
the measuring tasks report none of their own); each stage's progress goes to stderr.
Run each mode in a fresh process; OMP_NUM_THREADS=1, except ``inmemory``: with
OMP_NUM_THREADS=1 the in-memory network runs on one thread, while a chunked run on N workers
uses N cores, so run ``inmemory`` without it (all cores, as a user's ``analyze`` runs); its
JSON line says how many threads the network had (``segment_threads``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _table import log_run

TILE = (48, 1024, 1024)


def make(folder: Path, edge: int, body: bool = False) -> dict:
    import dask.array as da
    import numpy as np

    from spinequant.io import write_ome_zarr
    from spinequant.synth import make_phantom

    phantoms = [make_phantom("two_photon", seed=s, shape=TILE) for s in range(4)]
    if body:            # the first tile (top left, not mirrored) shows a cell body: seed 0 with one added
        phantoms.append(make_phantom("two_photon", seed=0, shape=TILE, n_somata=(1, 1)))
    spacing = phantoms[0].spacing
    # One Dask array per phantom, shared by every tile that shows it: da.from_array copies a
    # numpy array into each graph it makes (225 tiles of 100 MB each for a 20 GB volume).
    tiles = [da.from_array(p.image, chunks=(TILE[0], 256, 256)) for p in phantoms]
    n = -(-edge // TILE[1])
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            tile = tiles[4] if body and i == j == 0 else tiles[(i * 3 + j) % 4]
            row.append(tile[:, ::-1] if (i + j) % 2 else tile[:, :, ::-1] if i % 2 else tile)
        rows.append(row)
    volume = da.block(rows)[:, :edge, :edge]
    write_ome_zarr(folder / "large.ome.zarr", volume, spacing)
    return {"shape": list(volume.shape), "gb": round(volume.nbytes / 1e9, 2), "cell_body": body}


def memory(folder: Path) -> dict:
    import spinequant as sq
    from spinequant.pipeline.analyze import AnalyzeConfig
    from spinequant.synth import make_phantom

    ph = make_phantom("two_photon", seed=0, shape=TILE)
    t = time.perf_counter()
    result = sq.analyze(ph.image, spacing=ph.spacing, config=AnalyzeConfig(export_meshes=False, export_roi=False,
                                                                           report=False))
    seconds = time.perf_counter() - t
    return {"voxels": ph.image.size, "seconds": round(seconds, 1), "voxels_per_s": round(ph.image.size / seconds),
            "spines": len(result.spines)}


def run(folder: Path, workers: int, chunk: int) -> dict:
    from spinequant.pipeline.analyze import AnalyzeConfig
    from spinequant.pipeline.runinfo import peak_memory_mb
    from spinequant.scale import analyze_chunked

    config = AnalyzeConfig(export_meshes=False, export_roi=False, report=False)
    out = folder / f"out_w{workers}_c{chunk}"
    t = time.perf_counter()
    with MemorySampler() as sampled:
        result = analyze_chunked(folder / "large.ome.zarr", out, config=config, chunk_px=chunk, workers=workers,
                                 progress=stage_log(t))
    seconds = time.perf_counter() - t
    ch = result.diagnostics["chunked"]
    voxels = int(result.image.size)
    overhead = {stage: round(ch["stage_seconds"][stage] - sum(ch["block_seconds"][stage]) / workers, 1)
                for stage in ("maps", "instances")}
    return {"workers": workers, "chunk_px": chunk, "blocks": ch["blocks"], "voxels": voxels,
            "seconds": round(seconds, 1), "voxels_per_s": round(voxels / seconds),
            "timings": {k: round(v, 1) for k, v in result.timings.items()},
            "peak_mb_workers": ch["peak_mb_per_process"], "peak_mb_main": round(peak_memory_mb(), 1),
            "block_seconds": ch["block_seconds"], "stage_seconds": ch["stage_seconds"],
            "scheduler_overhead_s": overhead, "network_tiles": ch.get("network_tiles"),
            "spines": len(result.spines), "dendrites": len(result.dendrites),
            "resumed": {"maps": ch["blocks_resumed"], "objects": ch["objects_resumed"]},
            "sampled_peak_mb": sampled.peaks_mb()}


def stage_log(started: float, every: int = 25):
    """A progress callback that prints each stage's start, end and every ``every`` blocks
    with the clock and the seconds since ``started`` (stderr)."""
    def progress(stage, done, total):
        if done in (0, total) or done % every == 0:
            print(f"{time.strftime('%H:%M:%S')} {time.perf_counter() - started:8.1f} s  {stage} {done}/{total}",
                  file=sys.stderr, flush=True)
    return progress


class MemorySampler:
    """Resident memory of this process and all its children (the Dask workers), sampled every
    ``seconds`` in a thread: the peak of each process, including the measuring tasks, which
    report no peak of their own (psutil)."""

    def __init__(self, seconds: float = 5.0):
        import threading

        self.seconds, self.peaks, self.stop = seconds, {}, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        import psutil

        me = psutil.Process()
        while not self.stop.wait(self.seconds):
            for proc in [me] + me.children(recursive=True):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                key = "main" if proc.pid == me.pid else str(proc.pid)
                self.peaks[key] = max(self.peaks.get(key, 0), rss)

    def peaks_mb(self) -> dict:
        return {k: round(v / 2 ** 20) for k, v in self.peaks.items() if v > 2 ** 27}      # (not the 10 MB helpers)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def window(folder: Path, chunk: int) -> dict:
    """One inner block's maps and objects in this process: peak memory against window size."""
    from spinequant.pipeline.analyze import AnalyzeConfig, has_point_head, resolve_config
    from spinequant.pipeline.runinfo import peak_memory_mb
    from spinequant.scale import block_grid, halo_px, maps_halo_um, objects_halo_um, open_volume, volume_levels
    from spinequant.scale.analyze import _maps_job, _objects_job
    from spinequant.scale.maps import map_fingerprint, open_maps
    from spinequant.scale.stack_heads import partner_of

    config = resolve_config(AnalyzeConfig())
    stack = open_volume(folder / "large.ome.zarr")
    volume, spacing = stack.data, stack.spacing
    halo = halo_px(maps_halo_um(config.method), spacing)
    blocks = block_grid(volume.shape, chunk_px=chunk, halo=halo)
    ny, nx = (-(-n // chunk) for n in volume.shape[1:])
    block = blocks[(ny // 2) * nx + nx // 2]
    levels = volume_levels(volume, spacing, blocks, method=config.method)[0]
    work = folder / f"window_{chunk}"
    group = open_maps(work / "maps.zarr", volume.shape, chunk_px=chunk, heads=has_point_head(config.method),
                      fingerprint=map_fingerprint(volume.shape, spacing, config.method, levels, chunk, halo, "x"),
                      partner=partner_of(volume, spacing, config.method, levels, "auto") is not None)
    base = peak_memory_mb()
    t = time.perf_counter()
    _maps_job((volume, spacing, block, str(work / "maps.zarr"), config.method, levels, None, "auto", None, 1))
    maps_s = time.perf_counter() - t
    obj = block_grid(volume.shape, chunk_px=chunk, halo=halo_px(objects_halo_um(config.instances), spacing))
    t = time.perf_counter()
    _objects_job((str(work / "maps.zarr"), volume, spacing, obj[blocks.index(block)], config.instances,
                  volume.shape, str(work / "objects.npz")))
    window_voxels = volume.shape[0] * block.window_shape[0] * block.window_shape[1]
    del group
    return {"chunk_px": chunk, "window": [volume.shape[0], *block.window_shape], "window_voxels": window_voxels,
            "maps_s": round(maps_s, 1), "objects_s": round(time.perf_counter() - t, 1),
            "peak_mb_before_block": round(base, 1), "peak_mb": round(peak_memory_mb(), 1)}


def stitch_only(folder: Path, run_name: str) -> dict:
    """Time :func:`~spinequant.scale.objects.stitch` on a run's objects, stored in the
    current (sparse) format (a run made before it stored them dense)."""
    import numpy as np
    import zarr

    from spinequant.pipeline.runinfo import peak_memory_mb
    from spinequant.scale import block_grid
    from spinequant.scale.objects import BlockObjects, StoredObjects, stitch

    work = folder / run_name / "chunked.work"
    run = json.loads((folder / run_name / "run.json").read_text())
    shape, ch = run["input"]["shape"], run["input"]["chunked"]
    blocks = block_grid(shape, chunk_px=ch["chunk_px"], halo=ch["objects_halo_px"])
    sparse = folder / "stitch_objects"
    sparse.mkdir(exist_ok=True)
    for b in blocks:
        BlockObjects.load(work / "objects" / f"{b.name}.npz").save(sparse / f"{b.name}.npz")
    out = zarr.open_group(str(folder / "stitch_labels.zarr"), mode="w", zarr_format=2)
    kw = dict(shape=shape, dtype=np.uint32, chunks=(shape[0], ch["chunk_px"], ch["chunk_px"]), fill_value=0)
    base = peak_memory_mb()
    t = time.perf_counter()
    result = stitch(blocks, StoredObjects(sparse, blocks), out.create_array("s", **kw), out.create_array("d", **kw))
    return {"run": run_name, "stitch_s": round(time.perf_counter() - t, 1), "n_spines": result["n_spines"],
            "n_dendrites": result["n_dendrites"], "peak_mb_before": round(base, 1), "peak_mb": round(peak_memory_mb(), 1),
            "stitch_s_in_run": ch.get("stage_seconds", {}).get("stitch")}


def resumed_tail(folder: Path, run_name: str, confidence: str = "auto") -> dict:
    """The main process's part of a run (stitching, measurement, large-volume export) on a copy
    of a finished run's folder, whose block files are resumed; the large-volume export is used
    whatever the volume's size, as for a volume larger than memory (so the learnt spine
    confidence is streamed; ``confidence="head_map"`` scores by the head map instead)."""
    import resource
    import shutil

    from spinequant.pipeline.analyze import AnalyzeConfig
    from spinequant.scale import ScaleConfig, analyze_chunked

    run = json.loads((folder / run_name / "run.json").read_text())
    copy = folder / f"{run_name}.tail_{confidence}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder / run_name, copy)
    t = time.perf_counter()
    result = analyze_chunked(folder / "large.ome.zarr", copy, chunk_px=run["input"]["chunked"]["chunk_px"],
                             scale=ScaleConfig(whole_export_max_voxels=2 ** 20),
                             config=AnalyzeConfig(report=False, confidence=confidence))
    return {"run": run_name, "confidence": confidence, "timings_s": result.timings,
            "below_min_confidence": result.diagnostics.get("below_min_confidence"), "seconds": round(time.perf_counter() - t, 1), "spines": len(result.spines),
            "dendrites": len(result.dendrites),
            "peak_mb_main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def in_memory(folder: Path) -> dict:
    """The whole volume read into memory, analysed and saved as the chunked ``run`` saves it
    (the in-memory rate of the same volume, the same hour)."""
    import spinequant as sq
    from spinequant.pipeline.analyze import AnalyzeConfig, save_result
    from spinequant.pipeline.runinfo import peak_memory_mb
    from spinequant.segment.neural.onnx_runtime import default_threads

    config = AnalyzeConfig(export_meshes=False, export_roi=False, report=False)
    t0 = time.perf_counter()
    stack = sq.read_stack(folder / "large.ome.zarr")
    t1 = time.perf_counter()
    result = sq.analyze(stack.data, spacing=stack.spacing, config=config)
    t2 = time.perf_counter()
    save_result(result, folder / "out_inmemory")
    t3 = time.perf_counter()
    voxels = int(stack.data.size)
    return {"voxels": voxels, "read_s": round(t1 - t0, 1), "analyze_s": round(t2 - t1, 1),
            "save_s": round(t3 - t2, 1), "seconds": round(t3 - t0, 1), "voxels_per_s": round(voxels / (t3 - t0)),
            "segment_s": round(result.timings.get("segment", float("nan")), 1),
            "segment_threads": default_threads() or "one per physical core", "peak_mb": round(peak_memory_mb(), 1), "spines": len(result.spines), "dendrites": len(result.dendrites)}


def tiles(folder: Path, chunk: int) -> dict:
    """Network tiles (one per plane) a chunked run runs: before, every block ran all of the
    volume's tiles inside its window (those covering its core, so the ones straddling a core
    boundary once per block); now each tile once. Counted from the tile grid (the volume is
    at the model's pixel size, so no resampling)."""
    from spinequant.pipeline.analyze import AnalyzeConfig, resolve_config
    from spinequant.scale import block_grid, halo_px, maps_halo_um, open_volume
    from spinequant.scale.tile_maps import tile_plan

    config = resolve_config(AnalyzeConfig())
    stack = open_volume(folder / "large.ome.zarr")
    shape, spacing = stack.data.shape, stack.spacing
    blocks = block_grid(shape, chunk_px=chunk, halo=halo_px(maps_halo_um(config.method), spacing))
    plan = tile_plan(shape, spacing, config.method, blocks)
    assert not plan.tiles.resampled

    def inside(axis, window):          # tiles lying wholly in a window (sliding_window with grid=)
        before = axis.pad[0] if window.start == 0 else 0
        after = axis.pad[1] if window.stop == axis.length else 0
        lo, hi = window.start + axis.pad[0] - before, window.stop + axis.pad[0] + after
        return sum(1 for s in axis.starts if lo <= s and s + axis.size <= hi)

    per_block = [inside(plan.tiles.y, b.window[0]) * inside(plan.tiles.x, b.window[1]) for b in blocks]
    planes = plan.tiles.model_shape[0]
    return {"chunk_px": chunk, "blocks": len(blocks), "tile_px": [plan.tiles.y.size, plan.tiles.x.size],
            "tiles_per_plane": len(plan.tiles.y.starts) * len(plan.tiles.x.starts),
            "every_block": sum(per_block) * planes, "each_once": plan.n_tiles,
            "ratio": round(sum(per_block) * planes / plan.n_tiles, 2)}


def compare(before: Path, after: Path) -> str:
    """Before/after rows of the ``run``s in two folders, with the in-memory rate of each."""
    lines = ["| code | block | blocks | network tiles run | maps stage s | objects s | measure s | export s | "
             "whole run s | voxels/s | x in-memory | peak MB per worker | main MB | spines / dendrites |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, folder in (("before", before), ("after", after)):
        runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
        memory = [r for r in runs if r["mode"] == "inmemory"]
        counts = {r["chunk_px"]: r for r in runs if r["mode"] == "tiles"}
        if memory:
            m = memory[-1]
            lines.append(f"| in memory | - | - | {counts and next(iter(counts.values()))['each_once']} | "
                         f"{m['segment_s']} | | | | {m['seconds']} | {m['voxels_per_s']:,} | 1 | | {m['peak_mb']} | "
                         f"{m['spines']} / {m['dendrites']} |")
        for r in (r for r in runs if r["mode"] == "run"):
            tiles_run = r.get("network_tiles", {}).get("run") if r.get("network_tiles") else None
            if tiles_run is None and r["chunk_px"] in counts:
                tiles_run = f"{counts[r['chunk_px']]['every_block']} (counted on the grid)"
            rate = f"{r['voxels_per_s'] / memory[-1]['voxels_per_s']:.2f}" if memory else "-"
            t = r["timings"]
            lines.append(f"| {name}, {r['workers']} worker(s) | {r['chunk_px']} | {r['blocks']} | {tiles_run} | "
                         f"{r['stage_seconds']['maps']} | {r['stage_seconds']['instances']} | {t.get('measure')} | "
                         f"{t.get('export')} | {r['seconds']} | {r['voxels_per_s']:,} | {rate} | "
                         f"{', '.join(str(v) for v in r['peak_mb_workers'].values())} | {r['peak_mb_main']} | "
                         f"{r['spines']} / {r['dendrites']} |")
    return "\n".join(lines)


def same(run_a: Path, run_b: Path) -> dict:
    """Two runs' (result folders of the same volume) maps, stitched labels and spine tables."""
    import numpy as np
    import pandas as pd
    import zarr

    out = {"runs": [str(run_a), str(run_b)]}
    work = [zarr.open_group(str(d / "chunked.work" / name), mode="r") for name in ("maps.zarr", "labels.zarr")
            for d in (run_a, run_b)]
    for (a, b), names, kind in (((work[0], work[1]), ("dendrite", "spine", "heads"), "map"),
                                ((work[2], work[3]), ("spines", "dendrites"), "labels")):
        for n in names:
            worst, over = 0.0, 0
            for y in range(0, a[n].shape[1], 512):
                x, z = (np.asarray(g[n][:, y:y + 512]).astype(np.float64) for g in (a, b))
                d = np.abs(x - z)
                worst, over = max(worst, float(d.max())), over + int((d > 1e-4).sum())
            out[f"{n} {kind}"] = {"max_diff": worst, "voxels_over_1e-4": over}
    sa, sb = (pd.read_csv(d / "spines.csv") for d in (run_a, run_b))
    out["spines"] = [len(sa), len(sb)]
    if len(sa) == len(sb):
        cols = [c for c in sa.columns if sa[c].dtype.kind == "f"]
        out["spine_columns_max_diff"] = max(float(np.nanmax(np.abs(sa[c].to_numpy() - sb[c].to_numpy())))
                                            for c in cols)
    return out


def tile_sums(folder: Path, chunk: int) -> dict:
    """Every block's tile sums, then every block's blend, in this process, timed (the maps
    stage of a chunked run with the network, without the scheduler)."""
    import shutil

    from spinequant.pipeline.analyze import AnalyzeConfig, resolve_config
    from spinequant.scale import block_grid, open_volume, volume_levels
    from spinequant.scale.maps import open_maps
    from spinequant.scale.tile_maps import blend_block_maps, tile_plan, write_tile_sums
    from spinequant.segment.neural.predict import choose_engine

    method = resolve_config(AnalyzeConfig()).method
    stack = open_volume(folder / "large.ome.zarr")
    volume, spacing = stack.data, stack.spacing
    blocks = block_grid(volume.shape, chunk_px=chunk, halo=0)
    levels = volume_levels(volume, spacing, blocks, method=method)[0]
    root = folder / f"tilesums_{chunk}.zarr"
    shutil.rmtree(root, ignore_errors=True)
    group = open_maps(root, volume.shape, chunk_px=chunk, heads=True, fingerprint={"benchmark": 1})
    plan = tile_plan(volume.shape, spacing, method, blocks)
    engine = choose_engine(method)
    sums, blends = {}, {}
    for b in blocks:
        t = time.perf_counter()
        r = write_tile_sums(volume, plan, b, root, method=method, levels=levels, engine=engine)
        sums[b.name] = {"s": round(time.perf_counter() - t, 2), "tiles": r["tiles"], "write_s": r["write_s"]}
    for b in blocks:
        t = time.perf_counter()
        blend_block_maps(plan, b, group)
        blends[b.name] = round(time.perf_counter() - t, 2)
    shutil.rmtree(root, ignore_errors=True)
    return {"chunk_px": chunk, "tile_sums": sums, "blend_s": blends}


def table(folder: Path) -> str:
    lines = ["| workers | block | blocks | voxels | wall s | voxels/s | peak MB per worker | main MB | "
             "overhead maps/instances s | spines |", "|---|---|---|---|---|---|---|---|---|---|"]
    for line in (folder / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("mode") != "run":
            continue
        lines.append(f"| {r['workers']} | {r['chunk_px']} | {r['blocks']} | {r['voxels']:,} | {r['seconds']} | "
                     f"{r['voxels_per_s']:,} | {', '.join(str(v) for v in r['peak_mb_workers'].values())} | "
                     f"{r['peak_mb_main']} | {r['scheduler_overhead_s']['maps']} / "
                     f"{r['scheduler_overhead_s']['instances']} | {r['spines']} |")
    return "\n".join(lines)


def main(mode: str, folder: str, *args: str) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if mode == "table":
        print(table(folder))
        return
    if mode == "compare":
        print(compare(folder, Path(args[0])))
        return
    if mode == "same":
        print(json.dumps(same(folder, Path(args[0]))))
        return
    out = {"make": lambda: make(folder, int(args[0]), body="body" in args[1:]), "memory": lambda: memory(folder),
           "run": lambda: run(folder, int(args[0]), int(args[1])),
           "window": lambda: window(folder, int(args[0])),
           "stitch": lambda: stitch_only(folder, args[0]), "tail": lambda: resumed_tail(folder, *args[:2]),
           "inmemory": lambda: in_memory(folder), "tiles": lambda: tiles(folder, int(args[0])),
           "tilesums": lambda: tile_sums(folder, int(args[0]))}[mode]()
    log_run(folder, mode, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
