"""Peak memory of a chunked run against the in-memory run (docs/scale.md, "Measured").

    python benchmarks/scale_memory.py make DIR              # 48 x 1024 x 1024 phantom as DIR/big.ome.zarr
    /usr/bin/time -v python benchmarks/scale_memory.py memory DIR     # read_stack + analyze + save_result
    /usr/bin/time -v python benchmarks/scale_memory.py blocks DIR 256 # chunked_labels only (block stage)
    /usr/bin/time -v python benchmarks/scale_memory.py chunked DIR 256  # analyze_chunked

    python benchmarks/scale_memory.py stages STACK OUT      # analyze_file, resident memory per stage

Run each in a fresh process: the peak (printed, and /usr/bin/time's maximum resident set
size) is the process's.

``stages`` runs what ``spinequant analyze STACK --out OUT`` runs (read, analyze, save with
every export and the report, glibc's allocator set as the command sets it) and samples the
process's resident memory every 20 ms, printing the highest value seen in each tenth of each
stage (``segment@0.3``: from 30 % to 40 % of the network's tiles) and ``ru_maxrss``: where the
peak lies and what each stage adds (docs/scale.md, "Memory of the in-memory path").
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def stages(stack: str, out_dir: str) -> None:
    import resource
    import threading

    import psutil

    from spinequant.pipeline import analyze_file
    from spinequant.segment.neural import keep_freed_memory

    keep_freed_memory()                  # as the command line sets it
    process, state = psutil.Process(), {"stage": "read", "peaks": {}, "running": True}

    def sample():
        while state["running"]:
            peaks, stage = state["peaks"], state["stage"]
            peaks[stage] = max(peaks.get(stage, 0.0), process.memory_info().rss / 2**20)
            time.sleep(0.02)

    def progress(stage, fraction=0.0):
        state["stage"] = f"{stage}@{int(fraction * 10) / 10:.1f}"

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.perf_counter()
    result = analyze_file(stack, out_dir, progress=progress, keep_maps=False)
    state["running"] = False
    sampler.join()
    print(json.dumps({"mode": "stages", "spines": len(result.spines), "seconds": round(time.perf_counter() - t, 1),
                      "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "stage_peaks_mib": {k: round(v) for k, v in state["peaks"].items()}}, indent=1))


def main(mode: str, folder: str, chunk: str = "256") -> None:
    if mode == "stages":
        return stages(folder, chunk)
    from spinequant.pipeline.analyze import AnalyzeConfig
    from spinequant.pipeline.runinfo import peak_memory_mb

    folder, chunk_px = Path(folder), int(chunk)
    stack = folder / "big.ome.zarr"
    config = AnalyzeConfig(export_meshes=False, export_roi=False, report=False)
    t = time.perf_counter()
    out = {}
    if mode == "make":
        from spinequant.io import write_ome_zarr
        from spinequant.synth import make_phantom

        ph = make_phantom("two_photon", seed=3, shape=(48, 1024, 1024))
        write_ome_zarr(stack, ph.image, ph.spacing)
    elif mode == "memory":
        import spinequant as sq
        from spinequant.pipeline.analyze import save_result

        result = sq.analyze(sq.read_stack(stack), config=config)
        save_result(result, folder / "out_memory")
        out = {"spines": len(result.spines), "dendrites": len(result.dendrites)}
    elif mode == "blocks":
        from spinequant.scale import ScaleConfig, chunked_labels, open_volume

        volume = open_volume(stack)
        run = chunked_labels(volume.data, volume.spacing, folder / f"work_{chunk_px}", config=config,
                             scale=ScaleConfig(chunk_px=chunk_px))
        out = {"timings": {k: round(v, 1) for k, v in run["timings"].items()}}
    else:
        from spinequant.scale import analyze_chunked

        result = analyze_chunked(stack, folder / f"out_chunked_{chunk_px}", config=config, chunk_px=chunk_px)
        out = {"spines": len(result.spines), "dendrites": len(result.dendrites)}
    print(json.dumps({"mode": mode, "chunk_px": chunk_px, **out, "seconds": round(time.perf_counter() - t, 1),
                      "peak_mb": round(peak_memory_mb(), 1)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
