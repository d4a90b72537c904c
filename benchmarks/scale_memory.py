"""Peak memory of a chunked run against the in-memory run (docs/scale.md, "Measured").

    python benchmarks/scale_memory.py make DIR              # 48 x 1024 x 1024 phantom as DIR/big.ome.zarr
    /usr/bin/time -v python benchmarks/scale_memory.py memory DIR     # read_stack + analyze + save_result
    /usr/bin/time -v python benchmarks/scale_memory.py blocks DIR 256 # chunked_labels only (block stage)
    /usr/bin/time -v python benchmarks/scale_memory.py chunked DIR 256  # analyze_chunked

Run each in a fresh process: the peak (printed, and /usr/bin/time's maximum resident set
size) is the process's.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(mode: str, folder: str, chunk: str = "256") -> None:
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
