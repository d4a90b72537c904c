"""What kind of errors a method makes on dendritic2's distinct validation images.

    .venv/bin/python benchmarks/real2d_errors.py --methods lean2d_real

The same images, pixel size and matching as ``real2d.py`` (a found spine matches an annotated
head within 1 µm, one-to-one). Each unmatched found spine (false positive) is put in a class by
its distance to the nearest annotated head: **near** (< 1.5 µm: a second detection of a marked
spine, or one just beyond the tolerance), **on a marked stretch** (1.5-5 µm: a spine the
annotator did not mark beside ones they did, or a spot on the shaft), **far** (>= 5 µm: on a
neurite or stretch where nothing was marked). Each missed annotated head (false negative) by
what lies within 1.5 µm of it: **merged** (a found spine that matched a neighbouring annotated
head: two marked heads, one detection), **offset** (an unmatched found spine, 1-1.5 µm away),
**not found** (nothing). Writes ``benchmarks/results/real2d_errors.md``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real2d  # noqa: E402
from _table import markdown  # noqa: E402

from spinequant.evaluate.points import match_points  # noqa: E402

NEAR_UM, MARKED_UM = 1.5, 5.0


def error_classes(found_um: np.ndarray, true_um: np.ndarray) -> dict[str, int]:
    """Counts of true positives and of each class of error for one image (points in µm, (K, 2))."""
    r = match_points(np.column_stack([np.zeros(len(found_um)), found_um]),
                     np.column_stack([np.zeros(len(true_um)), true_um]), max_distance_um=real2d.MATCH_UM)
    pairs = r["pairs"]
    hit_found = np.zeros(len(found_um), bool)
    hit_found[pairs["pred_index"].to_numpy()] = True
    hit_true = np.zeros(len(true_um), bool)
    hit_true[pairs["true_index"].to_numpy()] = True
    out = dict.fromkeys(["tp", "fp_near", "fp_marked_stretch", "fp_far", "fn_merged", "fn_offset", "fn_not_found"], 0)
    out["tp"] = int(hit_found.sum())
    fp = found_um[~hit_found]
    d_fp = cKDTree(true_um).query(fp)[0] if len(true_um) else np.full(len(fp), np.inf)
    out["fp_near"] = int((d_fp < NEAR_UM).sum())
    out["fp_marked_stretch"] = int(((d_fp >= NEAR_UM) & (d_fp < MARKED_UM)).sum())
    out["fp_far"] = int((d_fp >= MARKED_UM).sum())
    fn = true_um[~hit_true]
    if len(found_um) and len(fn):
        d_fn, nearest = cKDTree(found_um).query(fn)
        close = d_fn < NEAR_UM
        out["fn_merged"] = int((close & hit_found[nearest]).sum())
        out["fn_offset"] = int((close & ~hit_found[nearest]).sum())
        out["fn_not_found"] = int((~close).sum())
    else:
        out["fn_not_found"] = len(fn)
    return out


def errors(method: str, images) -> dict:
    config = real2d.run_config(method)
    total: dict[str, int] = {}
    for im in images:
        points, _, _ = real2d.detect(im.image, im.pixel_um, config)
        for k, v in error_classes(points * im.pixel_um, im.heads_px * im.pixel_um).items():
            total[k] = total.get(k, 0) + v
    fp = total["fp_near"] + total["fp_marked_stretch"] + total["fp_far"]
    fn = total["fn_merged"] + total["fn_offset"] + total["fn_not_found"]
    row = {"method": method, "images": len(images), "true": total["tp"] + fn, "found": total["tp"] + fp,
           "tp": total["tp"], "fp": fp}
    row.update({k: f"{v} ({v / fp:.0%})" for k, v in total.items() if k.startswith("fp_")})
    row["fn"] = fn
    row.update({k: f"{v} ({v / fn:.0%})" for k, v in total.items() if k.startswith("fn_")})
    # what precision would be if spines far from every marked head were not counted
    row["precision_without_far"] = round(total["tp"] / (total["tp"] + fp - total["fp_far"]), 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["lean2d_real"])
    ap.add_argument("--out", default=str(real2d.RESULTS / "real2d_errors.md"))
    args = ap.parse_args()
    images = real2d.load_set("dendritic2")
    table = pd.DataFrame([errors(m, images) for m in args.methods])
    print(table.to_string(index=False))
    command = "python benchmarks/real2d_errors.py --methods " + " ".join(args.methods)
    Path(args.out).write_text(f"`{command}`, {date.today()}\n\n{markdown(table, digits=3)}\n")
    print({"written": args.out})


if __name__ == "__main__":
    main()
