"""Re-run every benchmark behind a figure in the README (``make bench``), one after another.

    .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--list]

Each entry is the exact command the README names; each writes its table to
``benchmarks/results/``. The whole set takes about two hours on a 2-core CPU (the real-data
benchmark and the 101 x 1024 x 1024 speed run are most of it). A failing benchmark is reported
and the others still run; the exit code is the number that failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable

#: (name, arguments after the interpreter, README section the figures appear in).
BENCHMARKS = [
    ("real2d", ["benchmarks/real2d.py", "--methods", "classical", "lean2d", "lean2d_real",
                "lean2d_real@head_map", "lean2d_real@components"], "Accuracy: on real annotated images"),
    ("dendritic2_agreement", ["benchmarks/dendritic2_agreement.py", "--method", "lean2d_real"],
     "Accuracy: on real annotated images (agreement of the annotations)"),
    ("real2d_errors", ["benchmarks/real2d_errors.py", "--methods", "lean2d", "lean2d_real@head_map", "lean2d_real"],
     "Accuracy: on real annotated images (docs/real_data.md, the kinds of error)"),
    ("real2d_thresholds", ["benchmarks/real2d_thresholds.py", "--method", "lean2d_real"],
     "Accuracy: on real annotated images (docs/real_data.md, dendritic2's gap between and within images)"),
    ("head_widths", ["benchmarks/head_widths.py"],
     "Accuracy: on real annotated images (dendritic2's pixel size, docs/real_data.md)"),
    ("types_real2d", ["benchmarks/types_real2d.py", "--on", "detections", "--method", "lean2d_real"],
     "Spine types on real outlines (docs/measurements.md)"),
    ("accuracy", ["benchmarks/accuracy.py", "--methods", "classical", "lean2d", "lean2d_real", "--n", "3"],
     "Accuracy: on phantoms"),
    ("measure_accuracy", ["benchmarks/measure_accuracy.py"], "Measurements on the phantoms' true labels"),
    ("measure_accuracy_2d", ["benchmarks/measure_accuracy.py", "--2d", "--seeds", "20"],
     "2D measurements (docs/measurements.md)"),
    ("measure_after_segmentation", ["benchmarks/measure_after_segmentation.py"],
     "Measurements after segmentation"),
    ("speed", ["benchmarks/speed.py", "--method", "lean2d_real"], "Speed: in process, per size"),
    ("speed_classical", ["benchmarks/speed.py", "--method", "classical"], "Speed: in process, per size"),
    ("neural_speed", ["benchmarks/neural_speed.py", "--nets", "lean2d_points", "--no-stack"], "Speed: the network alone"),
    ("measure_spines_speed", ["benchmarks/measure_spines_speed.py"], "Speed: measuring spines"),
    ("fuzz_inputs", ["benchmarks/fuzz_inputs.py"], "Reliability (docs/reliability.md)"),
    ("tracking", ["benchmarks/tracking.py", "--presets", "two_photon", "confocal", "--seeds", "0", "1", "2"],
     "Accuracy: spines over time (docs/timelapse.md)"),
    ("cells", ["benchmarks/cells.py", "--seeds", "3"], "Accuracy: cells (docs/cells.md)"),
    ("ratio", ["benchmarks/ratio.py"], "Accuracy: two-channel ratio (docs/timelapse.md)"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=[b[0] for b in BENCHMARKS])
    ap.add_argument("--list", action="store_true", help="print the commands and stop")
    args = ap.parse_args()
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only]
    if args.list:
        for name, argv, where in chosen:
            print(f"{name:28s} python {' '.join(argv)}    # {where}")
        return 0
    failed = []
    for name, argv, where in chosen:
        print(f"== {name}: python {' '.join(argv)}", flush=True)
        t = time.perf_counter()
        code = subprocess.call([PY, *argv], cwd=HERE.parent)
        print(f"== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - t:.0f} s",
              flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())
