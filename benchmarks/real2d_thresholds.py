"""How much of dendritic2's gap lies between images (how many spines each has) and how much
within them (which candidates are spines), for one method.

    .venv/bin/python benchmarks/real2d_thresholds.py --method lean2d_real

The same images, pixel size and matching as ``real2d.py`` (a found spine matches an annotated
head within 1 µm, one-to-one). Every candidate down to a confidence of 0.02 is kept, then
scored at minimum confidences 0.025-0.975 (steps of 0.025) in three ways:

* **one threshold for all images** (what ``analyze`` does; the default is the best of them);
* **the best threshold for each image** (an oracle that knows the marks: the most that any
  per-image adjustment of how many spines are kept, by the image's brightness, density or an
  annotator's habit, could give);
* **as many as marked** (a ceiling on the second: with each image's found count as it is at the
  default threshold, every found spine counted right up to the smaller of found and marked).

Writes ``benchmarks/results/real2d_thresholds.md``: pooled precision, recall and F1 for each,
and the spread of per-image F1 at the default threshold.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real2d  # noqa: E402
from _table import markdown  # noqa: E402

from spinequant.evaluate.points import match_points  # noqa: E402

THRESHOLDS = np.round(np.arange(0.025, 0.976, 0.025), 3)
FLOOR = 0.02


def image_counts(found_um: np.ndarray, confidence: np.ndarray, true_um: np.ndarray) -> pd.DataFrame:
    """True positives and found spines of one image at each threshold (points in µm, (K, 2))."""
    rows = []
    for t in THRESHOLDS:
        keep = confidence >= t
        r = match_points(np.column_stack([np.zeros(keep.sum()), found_um[keep]]),
                         np.column_stack([np.zeros(len(true_um)), true_um]), max_distance_um=real2d.MATCH_UM)
        rows.append({"threshold": float(t), "tp": int(r["tp"]), "found": int(keep.sum()), "true": len(true_um)})
    return pd.DataFrame(rows)


def pooled(tp: float, found: float, true: float) -> dict:
    return {"precision": tp / max(found, 1), "recall": tp / max(true, 1), "f1": 2 * tp / max(found + true, 1)}


def summarise(counts: pd.DataFrame, default: float) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(rows of the three ways of scoring, per-image quantiles at the default threshold, a note)."""
    counts = counts.assign(f1=2 * counts.tp / (counts.found + counts.true).clip(lower=1))
    by_t = counts.groupby("threshold")[["tp", "found", "true"]].sum()
    best_t = max(by_t.index, key=lambda t: pooled(*by_t.loc[t])["f1"])
    at_default = counts[np.isclose(counts.threshold, default)]
    best = counts.loc[counts.groupby("image")["f1"].idxmax()]
    rows = [
        {"scoring": f"one threshold, the default ({default:.3f})", **pooled(*at_default[["tp", "found", "true"]].sum())},
        {"scoring": f"one threshold, the best ({best_t:.3f})", **pooled(*by_t.loc[best_t])},
        {"scoring": "the best threshold for each image (oracle; median "
                    f"{best.threshold.median():.3f}, 10-90 % {best.threshold.quantile(0.1):.3f}-"
                    f"{best.threshold.quantile(0.9):.3f})", **pooled(*best[["tp", "found", "true"]].sum())},
        {"scoring": "as many as marked (every found spine right up to min(found, marked), at the default)",
         **pooled(np.minimum(at_default.found, at_default.true).sum(), at_default.found.sum(), at_default.true.sum())},
    ]
    ratio = at_default.found / at_default.true.clip(lower=1)
    spread = pd.DataFrame({
        "per image, at the default": ["F1", "found / marked", "precision", "recall"],
        **{f"{int(q * 100)} %": [at_default.f1.quantile(q), ratio.quantile(q),
                                 (at_default.tp / at_default.found.clip(lower=1)).quantile(q),
                                 (at_default.tp / at_default.true.clip(lower=1)).quantile(q)]
           for q in (0.1, 0.25, 0.5, 0.75, 0.9)}})
    errors = (at_default.found + at_default.true - 2 * at_default.tp).sort_values(ascending=False).to_numpy()
    low = counts[np.isclose(counts.threshold, 0.05)]
    notes = (f"The worst quarter of the images (by errors) hold {errors[: len(errors) // 4].sum() / errors.sum():.0%} "
             f"of the errors at the default; {int(low.tp.sum())} of {int(low.true.sum())} marked heads "
             f"({low.tp.sum() / low.true.sum():.0%}) have a found spine at a minimum confidence of 0.05.")
    return pd.DataFrame(rows), spread, notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="lean2d_real", help="a method with a calibrated confidence")
    ap.add_argument("--out", default=str(real2d.RESULTS / "real2d_thresholds.md"))
    args = ap.parse_args()
    import spinequant as sq
    from spinequant.pipeline.analyze import model_calibration

    config = real2d.run_config(args.method)
    calibration = model_calibration(config.method, config.confidence)
    if not calibration:
        raise SystemExit(f"{args.method} has no calibrated confidence to threshold")
    default = float(config.min_confidence if config.min_confidence is not None else calibration["min_confidence"])
    if not np.isclose(THRESHOLDS, default).any():
        raise SystemExit(f"{args.method}'s default minimum confidence {default} is not on the 0.025 grid")
    config = dataclasses.replace(config, min_confidence=FLOOR)
    parts = []
    for im in real2d.load_set("dendritic2"):
        spines = sq.analyze(im.image, spacing=(im.pixel_um, im.pixel_um), config=config).spines
        found = spines[["head_y_um", "head_x_um"]].to_numpy(float)
        parts.append(image_counts(found, spines["confidence"].to_numpy(float), im.heads_px * im.pixel_um)
                     .assign(image=im.name))
    counts = pd.concat(parts, ignore_index=True)
    rows, spread, notes = summarise(counts, default)
    print(rows.to_string(index=False))
    print(spread.to_string(index=False))
    print(notes)
    command = f"python benchmarks/real2d_thresholds.py --method {args.method}"
    Path(args.out).write_text(f"`{command}`, {date.today()}, dendritic2 distinct validation images "
                              f"({counts.image.nunique()}, {int(counts.groupby('image').true.first().sum())} "
                              f"marked spines)\n\n{markdown(rows, digits=3)}\n{markdown(spread, digits=2)}\n{notes}\n")
    print({"written": args.out})


if __name__ == "__main__":
    main()
