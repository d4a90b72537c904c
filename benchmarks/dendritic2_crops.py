"""At which pixel size do dendritic2's zoomed ``spine_image`` crops read right?

    .venv/bin/python benchmarks/dendritic2_crops.py            # lean2d, every 5th crop / 4th field

The set does not record pixel sizes, and most of its images are crops of a few spines stretched
to 416 px. A model that never saw the set (``lean2d``, phantoms only) is run on validation crops
and on validation fields at several assumed pixel sizes; where it finds the annotated spines
best is where the images read right (relative to how it reads the fields, whose size is judged
from the shaft width). A found spine matches an annotated head within 11 px (1 µm in a field
at 0.09 µm), one-to-one, the same in pixels at every assumed size. Writes
benchmarks/results/dendritic2_crops.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_real_models import REAL2D, read_grey  # noqa: E402

from _table import markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MATCH_PX = 11.0


def score(paths, method: str, pixel_um: float) -> dict:
    import spinequant as sq
    from spinequant.evaluate.points import match_points
    from spinequant.pipeline.analyze import AnalyzeConfig

    tp = n_pred = n_true = 0
    config = AnalyzeConfig(method=method, report=False)
    for path in paths:
        image = read_grey(path)
        labels = np.loadtxt(path.parents[1] / "labels" / (path.stem + ".txt"), ndmin=2)
        truth = labels[:, [2, 1]] * np.array(image.shape)
        spines = sq.analyze(image, spacing=(pixel_um, pixel_um), config=config).spines
        found = spines[["head_y_um", "head_x_um"]].to_numpy(float) / pixel_um
        r = match_points(np.column_stack([np.zeros(len(found)), found]),
                         np.column_stack([np.zeros(len(truth)), truth]), max_distance_um=MATCH_PX)
        tp, n_pred, n_true = tp + r["tp"], n_pred + r["n_pred"], n_true + r["n_true"]
    return {"images": len(paths), "true": n_true, "found": n_pred, "precision": tp / max(n_pred, 1),
            "recall": tp / max(n_true, 1), "f1": 2 * tp / max(n_pred + n_true, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="lean2d")
    args = ap.parse_args()
    folder = REAL2D / "dendritic2" / "valid" / "images"
    labelled = [p for p in sorted(folder.glob("*.jpg")) if (p.parents[1] / "labels" / (p.stem + ".txt")).exists()]
    crops = [p for p in labelled if p.name.startswith("spine_image")][::5]
    fields = [p for p in labelled if not p.name.startswith("spine_image")][::4]
    rows = []
    for kind, paths, sizes in (("crops", crops, (0.09, 0.06, 0.045, 0.03, 0.025, 0.02, 0.015)),
                               ("fields", fields, (0.12, 0.09, 0.07))):
        for px in sizes:
            rows.append({"images": kind, "pixel_um": px, **score(paths, args.method, px)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).round(3)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dendritic2_crops.md").write_text(
        f"`python benchmarks/dendritic2_crops.py --method {args.method}`, {time.strftime('%Y-%m-%d')}\n\n"
        + markdown(table, digits=3) + "\n")
    print(markdown(table, digits=3))


if __name__ == "__main__":
    main()
