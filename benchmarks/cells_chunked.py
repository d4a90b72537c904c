"""In-memory vs chunked cell segmentation (``spinequant cells`` with and without ``--chunked``).

A nuclei phantom is written as a TIFF; each run is a fresh process (OMP_NUM_THREADS=1) so its
peak RSS is its own: the in-memory run (:func:`~spinequant.cells.analyze_cells_file`), the
chunked run with the default export (the result folder of the in-memory run: labels and image
loaded at the end) and the chunked run with the streamed export (``whole_export_max_voxels=0``:
cells.csv, results.ome.zarr chunk by chunk, run.json; what a volume above 2**28 voxels gets).
Per run: cells, time, peak RSS; per chunked run its instance F1 against the in-memory labels
at IoU 0.5, mean matched IoU, and the largest centroid and volume differences of matched cells.
Writes benchmarks/results/cells_chunked_<Z>x<Y>x<X>.md.

Usage:  python benchmarks/cells_chunked.py [--preset nuclei_confocal] [--shape 48 512 512] [--chunk 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _table import markdown  # noqa: E402

CHILD = """
import json, sys, time
from spinequant.cells import analyze_cells_file
from spinequant.cells.chunked import analyze_cells_chunked
from spinequant.cells.config import CellChunkConfig
from spinequant.pipeline.runinfo import peak_memory_mb
mode, path, out, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t = time.perf_counter()
if mode == "memory":
    r = analyze_cells_file(path, out, report=False)
else:
    limit = 0 if mode == "chunked_streamed" else 2 ** 28
    r = analyze_cells_chunked(path, out, chunk_px=chunk, report=False,
                              chunking=CellChunkConfig(whole_export_max_voxels=limit))
print(json.dumps({"n": int(r.summary["n_cells"]), "seconds": time.perf_counter() - t,
                  "peak_mb": peak_memory_mb()}))
"""


def _labels(out: Path, mode: str) -> np.ndarray:
    if mode == "chunked_streamed":
        import zarr

        return np.asarray(zarr.open_array(str(out / "results.ome.zarr" / "labels" / "cells" / "0"), mode="r")[...])
    import tifffile

    return tifffile.imread(out / "labels_cells.tif")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="nuclei_confocal")
    ap.add_argument("--shape", nargs=3, type=int, default=(48, 512, 512))
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--seed", type=int, default=100)
    args = ap.parse_args()
    from spinequant.evaluate.cells import score_cells
    from spinequant.evaluate.points import match_points
    from spinequant.io import write_tiff
    from spinequant.synth.cells import make_cell_phantom

    ph = make_cell_phantom(args.preset, seed=args.seed, shape=tuple(args.shape))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows, ref = [], None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nuclei.tif"
        write_tiff(path, ph.image, ph.spacing)
        for mode in ("memory", "chunked", "chunked_streamed"):
            out = Path(tmp) / mode
            done = subprocess.run([sys.executable, "-c", CHILD, mode, str(path), str(out), str(args.chunk)],
                                  env=env, check=True, capture_output=True, text=True)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            labels = _labels(out, mode)
            table = pd.read_csv(out / "cells.csv")
            row = {"run": mode, "cells": run["n"], "time_s": run["seconds"], "peak_rss_mb": run["peak_mb"]}
            if ref is None:
                ref = (labels, table)
            else:
                score = score_cells(labels, ref[0], spacing=ph.spacing)["instances"]
                cols = ["centroid_z_um", "centroid_y_um", "centroid_x_um"]
                pairs = match_points(table[cols].to_numpy(), ref[1][cols].to_numpy(), max_distance_um=1.0)["pairs"]
                a, b = pairs["pred_index"].to_numpy(), pairs["true_index"].to_numpy()
                row.update({"f1_vs_memory": score["f1"], "centroids_matched": len(a), "mean_iou": score["mean_matched_iou"],
                            "max_centroid_diff_um": float(np.abs(table[cols].to_numpy()[a]
                                                                 - ref[1][cols].to_numpy()[b]).max()),
                            "max_volume_diff_um3": float(np.abs(table["volume_um3"].to_numpy()[a]
                                                                - ref[1]["volume_um3"].to_numpy()[b]).max())})
            rows.append(row)
            print(row, flush=True)
    frame = pd.DataFrame(rows)
    text = (f"# Cells in memory vs chunked\n\n{args.preset} seed {args.seed}, shape {tuple(args.shape)} "
            f"({np.prod(args.shape) / 1e6:.1f} Mvoxel), blocks of {args.chunk} px, default halo; "
            f"`python benchmarks/cells_chunked.py --preset {args.preset} --shape {' '.join(map(str, args.shape))} "
            f"--chunk {args.chunk}`\n\n" + markdown(frame, digits=3))
    target = Path(__file__).parent / "results" / f"cells_chunked_{'x'.join(map(str, args.shape))}.md"
    target.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
