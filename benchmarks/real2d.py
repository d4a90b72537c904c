"""Spine detection on real annotated 2D images (../shared/data/real2d), per method.

    .venv/bin/python benchmarks/real2d.py --methods classical lean2d lean2d_real

Sets (see ../shared/data/real2d/README.md): ``dendritic2/valid`` restricted to the
images of ``valid_distinct.txt`` (not near-copies of a training image; 136 of its 139 have a
label file), and
``spine_types/val`` (15 images with typed outlines). Neither was used for training or for
choosing a model's epoch. A found spine matches an annotated head within 1 µm, one-to-one
(Hungarian). The pixel size of these sets is not recorded: they are analysed at the size
judged from the shaft width (dendritic2 0.09 µm, its zoomed `spine_image` crops 0.025 µm; spine_types 0.08 µm for 1024 px images,
0.12 µm for 512 px) and at 0.75x and 1.33x of it, the matching tolerance staying 1 µm at the
judged size, so the columns show what a misstated pixel size costs.

For a model with a point head, the detection score of every spine found with a low head
threshold is also collected (``--calibrate``): a logistic (Platt) calibration of the score
against "a human marked this spine" is fitted on one half of the images and its expected
calibration error measured on the other half, and the reverse; the calibration fitted on all
images is written to the model card with the threshold that maximises F1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_real_models  # noqa: E402
from train_real_models import REAL2D, SPINE_TYPES_UM, dendritic2_pixel_um, read_grey  # noqa: E402

from _table import markdown  # noqa: E402

from spinequant.evaluate.points import match_points  # noqa: E402
from spinequant.segment.neural.yolo_data import yolo_training_sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCALES = (1.0, 0.75, 4 / 3)
MATCH_UM = 1.0
TYPE_NAMES = ("mushroom", "stubby", "branched", "thin", "filopodia")


@dataclasses.dataclass
class Image2D:
    name: str
    image: np.ndarray
    pixel_um: float
    heads_px: np.ndarray          # (K, 2) row, col
    types: np.ndarray | None      # class per head (spine_types only)


def load_set(name: str) -> list[Image2D]:
    out = []
    if name == "dendritic2":
        folder = REAL2D / "dendritic2" / "valid"
        for stem in (REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split():
            label = folder / "labels" / (Path(stem).stem + ".txt")
            if not label.exists():   # 3 of the 139 have no label file: not scored
                continue
            img = read_grey(folder / "images" / stem)
            px = dendritic2_pixel_um(stem)
            s, _ = yolo_training_sample(img, label, pixel_size_um=px, outlines=False)
            out.append(Image2D(stem, img, px, s.heads[:, 1:], None))
    else:
        folder = REAL2D / "spine_types" / "val"
        for path in sorted((folder / "images").glob("*.png")):
            img = read_grey(path)
            px = SPINE_TYPES_UM.get(img.shape[0], 0.08)
            s, classes = yolo_training_sample(img, folder / "labels" / (path.stem + ".txt"),
                                              pixel_size_um=px, outlines=True)
            out.append(Image2D(path.name, img, px, s.heads[:, 1:], classes))
    return out


def run_config(method: str, raw_threshold: float | None = None):
    """``analyze``'s settings for ``method``; ``raw_threshold`` sets a point-head model's
    head-map threshold (to collect every candidate for calibration). ``MODEL@components``
    builds the objects from the model's spine map as for networks without a point head;
    ``MODEL@head_map`` scores its spines by the head-map peak alone (no learnt confidence)."""
    from spinequant.pipeline.analyze import AnalyzeConfig, default_instance_config, model_calibration
    from spinequant.segment.neural.calibration import confidence

    if method.endswith("@components"):   # ablation: a point-head model's spine map alone
        from spinequant.pipeline.analyze import NEURAL_INSTANCES

        return AnalyzeConfig(method=method[: -len("@components")], report=False, instances=NEURAL_INSTANCES)
    if method.endswith("@head_map"):     # ablation: without the learnt confidence
        return AnalyzeConfig(method=method[: -len("@head_map")], report=False, confidence="head_map")
    config = AnalyzeConfig(method=method, report=False)
    if raw_threshold is None:
        return config
    calibration = model_calibration(method)
    if calibration:
        return dataclasses.replace(config, min_confidence=float(confidence([raw_threshold], calibration)[0]))
    return dataclasses.replace(config, instances=dataclasses.replace(
        default_instance_config(method), head_threshold=raw_threshold))


def detect(image: np.ndarray, pixel_um: float, config):
    """Spines ``analyze`` finds in a 2D image: (K, 2) head positions in pixels, raw detection
    scores (NaN for methods without) and types."""
    import spinequant as sq
    from spinequant.pipeline.analyze import model_calibration
    from spinequant.segment.neural.calibration import score_for

    spines = sq.analyze(image, spacing=(pixel_um, pixel_um), config=config).spines
    points = spines[["head_y_um", "head_x_um"]].to_numpy(float) / pixel_um
    calibration = model_calibration(config.method, config.confidence)
    raw = spines["confidence"].to_numpy(float)
    if calibration and calibration.get("method") == "platt" and np.isfinite(raw).all():
        raw = np.array([score_for(c, calibration) for c in raw])
    return points, raw, spines["type"].to_numpy()


def score(sets, method, scale, *, raw_threshold=None, collect=False):
    config = run_config(method, raw_threshold)
    rows, samples = [], []
    for set_name, images in sets.items():
        tp = tp_type = n_pred = n_true = 0
        t = time.perf_counter()
        for im in images:
            pts, raw, types = detect(im.image, im.pixel_um * scale, config)
            r = match_points(np.column_stack([np.zeros(len(pts)), pts * im.pixel_um]),
                             np.column_stack([np.zeros(len(im.heads_px)), im.heads_px * im.pixel_um]),
                             max_distance_um=MATCH_UM)
            tp, n_pred, n_true = tp + r["tp"], n_pred + r["n_pred"], n_true + r["n_true"]
            pairs = r["pairs"]
            if im.types is not None and len(pairs):
                truth = np.array(TYPE_NAMES)[im.types[pairs["true_index"].to_numpy()]]
                tp_type += int((types[pairs["pred_index"].to_numpy()] == truth).sum())
            if collect:
                hit = np.zeros(len(pts), bool)
                hit[pairs["pred_index"].to_numpy()] = True
                samples.append(pd.DataFrame({"set": set_name, "image": im.name, "score": raw, "hit": hit,
                                             "n_true": len(im.heads_px)}))
        row = {"set": set_name, "method": method, "pixel_size": f"{scale:.2f}x", "images": len(images),
               "true": n_true, "found": n_pred, **_prf(tp, n_pred, n_true)}
        if images and images[0].types is not None:
            row["f1_with_type"] = _prf(tp_type, n_pred, n_true)["f1"]
        row["s_per_image"] = (time.perf_counter() - t) / len(images)
        rows.append(row)
    return rows, (pd.concat(samples, ignore_index=True) if samples else None)


def _prf(tp, n_pred, n_true) -> dict:
    return {"precision": tp / n_pred if n_pred else float("nan"),
            "recall": tp / n_true if n_true else float("nan"),
            "f1": 2 * tp / (n_pred + n_true) if n_pred + n_true else 1.0}


def calibrate(sets, method: str, *, out_card: str | None, plot: Path, floor: float = 0.05) -> dict:
    """Fit the confidence calibration of a point-head model on every candidate it finds
    (head-map peaks down to ``floor``); ECE by two-fold cross-fitting over images; the
    minimum confidence that maximises F1 on all sets together."""
    from spinequant.pipeline.analyze import model_calibration
    from spinequant.segment.neural.calibration import confidence, expected_calibration_error, fit_platt

    if (model_calibration(method) or {}).get("method") == "trees":
        return learnt_reliability(sets, method, plot)
    _, found = score(sets, method, 1.0, raw_threshold=floor, collect=True)
    names = sorted(found["image"].unique())
    fold = found["image"].map({n: i % 2 for i, n in enumerate(names)})
    probs = np.zeros(len(found))
    for k in (0, 1):
        params = fit_platt(found["score"][fold != k], found["hit"][fold != k])
        probs[(fold == k).to_numpy()] = confidence(found["score"][fold == k], params)
    result = {}
    for set_name in list(sets) + ["all"]:
        sel = np.ones(len(found), bool) if set_name == "all" else (found["set"] == set_name).to_numpy()
        ece, table = expected_calibration_error(probs[sel], found["hit"].to_numpy()[sel])
        result[set_name] = {"ece_cross_fitted": ece, "detections": int(sel.sum()), "reliability": table.tolist()}
    params = fit_platt(found["score"], found["hit"])
    conf = confidence(found["score"], params)
    n_true = sum(len(im.heads_px) for images in sets.values() for im in images)
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    f1 = [2 * found["hit"][conf >= g].sum() / ((conf >= g).sum() + n_true) for g in grid]
    # Every threshold below the floor's own confidence keeps the same candidates: of equal F1s
    # take the highest, else the head threshold it stands for lies below the floor fitted on
    # and a run keeps peaks the calibration never saw (thousands of them on a weak head map).
    best = float(grid[len(f1) - 1 - int(np.argmax(f1[::-1]))])
    calibration = {**params, "min_confidence": best,
                   "fitted_on": f"benchmarks/real2d.py --calibrate: {len(found)} candidate spines "
                                f"(head-map peaks >= {floor}) on {', '.join(sets)} validation images",
                   "ece_cross_fitted": {k: round(v["ece_cross_fitted"], 4) for k, v in result.items()},
                   "f1_at_min_confidence": round(float(max(f1)), 4)}
    result["calibration"] = calibration
    result["f1_by_min_confidence"] = dict(zip(grid.tolist(), np.round(f1, 4).tolist()))
    if out_card:
        from spinequant.segment.neural.card import update_card

        update_card(out_card, calibration=calibration)
    _reliability_plot(probs, found["hit"].to_numpy(), found["set"].to_numpy(), plot)
    return result


def learnt_reliability(sets, method: str, plot: Path) -> dict:
    """ECE and reliability of a model's learnt confidence (fitted on training images only, so
    these validation images measure it directly; nothing is written to the card). Every
    candidate is scored (minimum confidence 1e-9)."""
    from spinequant.pipeline.analyze import AnalyzeConfig, model_calibration
    from spinequant.segment.neural.calibration import expected_calibration_error

    calibration = model_calibration(method)
    config = AnalyzeConfig(method=method, report=False, min_confidence=1e-9)
    rows = []
    for set_name, images in sets.items():
        for im in images:
            pts, prob, _ = detect(im.image, im.pixel_um, config)
            r = match_points(np.column_stack([np.zeros(len(pts)), pts * im.pixel_um]),
                             np.column_stack([np.zeros(len(im.heads_px)), im.heads_px * im.pixel_um]),
                             max_distance_um=MATCH_UM)
            hit = np.zeros(len(pts), bool)
            hit[r["pairs"]["pred_index"].to_numpy()] = True
            rows.append(pd.DataFrame({"set": set_name, "image": im.name, "score": prob, "hit": hit}))
    found = pd.concat(rows, ignore_index=True)
    probs, hits = found["score"].to_numpy(), found["hit"].to_numpy()
    result = {}
    for set_name in list(sets) + ["all"]:
        sel = np.ones(len(found), bool) if set_name == "all" else (found["set"] == set_name).to_numpy()
        ece, table = expected_calibration_error(probs[sel], hits[sel])
        result[set_name] = {"ece": ece, "candidates": int(sel.sum()), "reliability": table.tolist()}
    n_true = sum(len(im.heads_px) for images in sets.values() for im in images)
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    result["f1_by_min_confidence"] = {float(g): round(2 * float(hits[probs >= g].sum()) / ((probs >= g).sum() + n_true), 4)
                                      for g in grid}
    result["calibration"] = {k: v for k, v in calibration.items() if k not in ("features", "head_map")}
    _reliability_plot(probs, hits, found["set"].to_numpy(), plot,
                      xlabel="learnt confidence (fitted on training images)")
    return result


def _reliability_plot(probs, hits, set_names, path, xlabel="confidence (cross-fitted)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spinequant.segment.neural.calibration import expected_calibration_error

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    for name in np.unique(set_names):
        sel = set_names == name
        ece, table = expected_calibration_error(probs[sel], hits[sel])
        ax.plot(table[:, 1], table[:, 2], marker="o", label=f"{name} (ECE {ece:.3f}, n={sel.sum()})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction a human marked")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["classical", "lean2d", "lean2d_real"])
    ap.add_argument("--sets", nargs="+", default=["dendritic2", "spine_types"])
    ap.add_argument("--scales", type=float, nargs="+", default=list(SCALES))
    ap.add_argument("--out", default=str(RESULTS / "real2d.md"))
    ap.add_argument("--calibrate", metavar="MODEL_JSON", default=None,
                    help="fit the confidence calibration of this point-head model (card path) first "
                         "and write it into the card")
    ap.add_argument("--dendritic2-um", type=float, default=train_real_models.DENDRITIC2_UM,
                    help="pixel size (µm) dendritic2's fields are judged to have (the 1.00x column)")
    args = ap.parse_args()
    train_real_models.set_dendritic2_um(args.dendritic2_um)
    sets = {name: load_set(name) for name in args.sets}
    if args.calibrate:
        # beside the table (the default --out: benchmarks/results/real2d_calibration.json, _reliability.png)
        stem = Path(args.out).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        result = calibrate(sets, args.calibrate, out_card=args.calibrate,
                           plot=stem.with_name(stem.name + "_reliability.png"))
        stem.with_name(stem.name + "_calibration.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k != "reliability"}, indent=1, default=str)[:3000])
    rows = []
    for method in args.methods:
        for scale in args.scales:
            r, _ = score(sets, method, scale)
            rows += r
            print(pd.DataFrame(r).round(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).round(3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        f"`python benchmarks/real2d.py --methods {' '.join(args.methods)}`"
        f"{'' if args.dendritic2_um == 0.09 else f' --dendritic2-um {args.dendritic2_um}'}, "
        f"{time.strftime('%Y-%m-%d')}\n\n" + markdown(table, digits=3) + "\n")
    print(markdown(table, digits=3))
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
