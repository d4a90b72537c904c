"""Speed and peak memory of `analyze` per stage, for stack sizes from 64x256x256 to 101x1024x1024.

Each size runs in a fresh process (so its peak memory is its own) on a two-photon phantom,
with 2 threads. Prints a table with seconds per stage, voxels per second and peak memory,
and the growth of the total time with the number of voxels; writes
benchmarks/results/speed.md and .csv.

Usage:  python benchmarks/speed.py [--method classical] [--sizes 64x256x256 101x1024x1024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from _table import markdown

RESULTS = Path(__file__).parent / "results"
SIZES = ("64x256x256", "64x512x512", "101x1024x1024")
STAGES = ("segment", "instances", "measure", "export")


def one_run(size: str, method: str) -> dict:
    """Runs in the child process: make the phantom, analyse and save it, report times."""
    import tempfile
    import time

    from spinequant.pipeline import AnalyzeConfig, analyze, save_result
    from spinequant.pipeline.runinfo import peak_memory_mb
    from spinequant.synth import make_phantom

    if method != "classical":   # as the command line does: this process is ours
        from spinequant.segment.neural import keep_freed_memory

        keep_freed_memory()
    shape = tuple(int(v) for v in size.split("x"))
    t = time.perf_counter()
    ph = make_phantom("two_photon", seed=5, shape=shape)
    synth_s = time.perf_counter() - t
    before = peak_memory_mb()
    config = AnalyzeConfig(method=method, report=False)
    t = time.perf_counter()
    result = analyze(ph.image, spacing=ph.spacing, config=config)
    with tempfile.TemporaryDirectory() as tmp:
        save_result(result, tmp)
    total = time.perf_counter() - t
    return {"size": size, "voxels": int(np.prod(shape)), "synth_s": synth_s,
            **{f"{k}_s": result.timings.get(k, float("nan")) for k in STAGES},
            "total_s": total, "spines": len(result.spines),
            "peak_mb": peak_memory_mb(), "phantom_peak_mb": before}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="classical")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(args.child, args.method)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    rows = []
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", size, "--method", args.method],
                             capture_output=True, text=True, env=env, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{size:>14}  total {r['total_s']:.1f} s  "
              + "  ".join(f"{k} {r[k + '_s']:.1f}" for k in STAGES)
              + f"  peak {r['peak_mb']:.0f} MB", flush=True)
    table = pd.DataFrame(rows)
    table["Mvoxels_per_s"] = table["voxels"] / table["total_s"] / 1e6
    if len(table) > 1:
        slope = np.polyfit(np.log(table["voxels"]), np.log(table["total_s"]), 1)[0]
        growth = f"Total time grows as voxels^{slope:.2f} over these sizes."
    else:
        growth = ""
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / f"speed_{args.method}.csv", index=False)
    header = (f"`analyze --method {args.method}` speed, {date.today()}, {platform.machine()}, "
              f"{os.cpu_count()} cores, 2 threads; phantom two_photon seed 5; report not included.\n\n")
    (RESULTS / f"speed_{args.method}.md").write_text(header + markdown(table, digits=2) + "\n" + growth + "\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(growth)


if __name__ == "__main__":
    main()
