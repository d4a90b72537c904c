"""Spine types on real, expert-typed 2D outlines: the rule sets, the learnt classifier and
(``--on detections``) the image network.

Every spine outline of the spine_types set (Dendritic-Spine-Analyzer-YOLO11 by Meng-De-Gong,
MIT; classes M S B T F) is measured with ``measure_spines`` on the truth label image (each
polygon's non-zero pixels; 0.08 µm pixels at 1024 px, 0.12 µm at 512 px) and typed by each
rule set; the types are compared with the annotated ones. The outlines are given, so the
F1 with the right type equals the accuracy (micro average); macro F1 averages the five types.

    PYTHONPATH=src python benchmarks/types_real2d.py          # val and train, all rule sets
    PYTHONPATH=src python benchmarks/types_real2d.py --cv     # + model choice: grouped 5-fold CV on train
    python benchmarks/types_real2d.py --on detections --method lean2d_real --cv
        # the spines analyze finds (matched to the outlines, head within 1 µm), as typed in use

Writes benchmarks/results/types_real2d.md. The learnt model and the network were fitted to
train: their train figures are not a test. The network needs the image and the spine's own
object, so it is scored on detections only (an expert's polygon gives the type away).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_type_classifier import fit_type_model, measure_detections, measure_outlines  # noqa: E402

from _table import markdown  # noqa: E402

from spinequant.morphology import SPINE_TYPES, MorphologyConfig, classify_spines  # noqa: E402
from spinequant.morphology.learnt import TypeModel, classify_learnt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RULE_SETS = {
    "neuronstudio": MorphologyConfig(rule_set="neuronstudio"),
    "risher": MorphologyConfig(rule_set="risher"),
    "neuronstudio, no wide-head guard": MorphologyConfig(rule_set="neuronstudio", filopodia_max_head_um=None),
    "risher, no wide-head guard": MorphologyConfig(rule_set="risher", filopodia_max_head_um=None),
    "learnt": MorphologyConfig(rule_set="learnt"),
}
#: Candidates of the model choice (--cv): hidden units (0 = logistic regression), class weight power.
CANDIDATES = [(0, 0.0), (0, 0.5), (0, 1.0), (16, 0.0), (16, 0.5), (16, 1.0)]


def scores(truth, predicted) -> dict:
    """Accuracy, macro F1 and recall per type."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    out = {"n": len(truth), "accuracy (= F1, right type)": float(np.mean(truth == predicted))}
    f1s = []
    for t in SPINE_TYPES:
        tp = np.sum((truth == t) & (predicted == t))
        n_true, n_pred = np.sum(truth == t), np.sum(predicted == t)
        if n_true:
            out[f"recall {t} ({n_true})"] = tp / n_true
        if n_true or n_pred:
            f1s.append(2 * tp / (n_true + n_pred))
    out["macro F1"] = float(np.mean(f1s))
    return out


def confusion(truth, predicted) -> pd.DataFrame:
    table = pd.crosstab(pd.Categorical(truth, SPINE_TYPES), pd.Categorical(predicted, SPINE_TYPES),
                        dropna=False)
    table.index.name, table.columns.name = "expert", "measured"
    return table.reset_index().rename(columns=str)


def grouped_cv(train: pd.DataFrame, folds: int = 5) -> pd.DataFrame:
    """Accuracy and macro F1 of each candidate model, 5-fold CV on train with folds by image
    (spines of one image are never in both training and test)."""
    images = np.array(sorted(train["image"].unique()))
    order = np.random.default_rng(0).permutation(len(images))
    fold_of = {images[i]: k % folds for k, i in enumerate(order)}
    fold = train["image"].map(fold_of).to_numpy()
    rows = []
    for hidden, power in CANDIDATES:
        predicted = np.empty(len(train), dtype=object)
        for k in range(folds):
            params = fit_type_model(train[fold != k], hidden=hidden, class_weight_power=power)
            model = TypeModel(tuple(params["classes"]), tuple(params["features"]),
                              np.asarray(params["mean"]), np.asarray(params["scale"]),
                              tuple((np.asarray(w), np.asarray(b)) for w, b in params["layers"]), {})
            predicted[fold == k] = classify_learnt(train[fold == k], model)[0]
        s = scores(train["truth"], predicted)
        rows.append({"model": "logistic regression" if hidden == 0 else f"MLP {hidden} tanh",
                     "class weights": f"(1/frequency)^{power:g}",
                     "accuracy": s["accuracy (= F1, right type)"], "macro F1": s["macro F1"]})
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cv", action="store_true", help="also run the model choice (grouped CV on train)")
    ap.add_argument("--on", choices=["outlines", "detections"], default="outlines")
    ap.add_argument("--method", default="lean2d_real", help="with --on detections: the segmentation method")
    args = ap.parse_args(argv)
    if args.on == "outlines":
        splits = {split: measure_outlines(split) for split in ("val", "train")}
        parts = ["# Spine types on real outlines (spine_types)\n"]
    else:
        splits = {split: measure_detections(split, args.method) for split in ("val", "train")}
        parts = [f"# Spine types of the spines {args.method} finds in spine_types (matched to the "
                 f"experts' outlines; `--on detections --method {args.method}`)\n"]
    for split, table in splits.items():
        rows, confusions = [], []
        for name, cfg in RULE_SETS.items():
            types, _ = classify_spines(table, config=cfg)
            rows.append({"rule set": name, **scores(table["truth"], types)})
            if split == "val" and "guard" not in name:
                confusions.append(f"\n{name}, val (rows: expert, columns: measured)\n\n"
                                  + markdown(confusion(table["truth"], types)))
        if args.on == "detections":   # the image network (the 2D default) typed them in analyze
            rows.append({"rule set": "network (2D default)", **scores(table["truth"], table["type"])})
            if split == "val":
                confusions.append("\nnetwork, val (rows: expert, columns: measured)\n\n"
                                  + markdown(confusion(table["truth"], table["type"])))
        result = pd.DataFrame(rows)
        parts.append(f"\n## {split} ({len(table)} spines)\n\n" + markdown(result))
        parts.extend(confusions)
        print(f"{split}:\n{result.to_string(index=False)}", flush=True)
    both = pd.concat(splits, names=["split"]).reset_index(level=0)
    sizes = both.groupby(["split", "pixel_um"]).size().rename("spines").reset_index()
    medians = both.groupby("truth")[["length_um", "head_diameter_um", "area_um2"]].median().reset_index()
    medians["no neck found"] = both.groupby("truth")["head_neck_ratio"].apply(lambda r: r.isna().mean()).values
    parts.append("\n## Spines per pixel size\n\n" + markdown(sizes)
                 + "\n## Medians per expert type (train and val)\n\n" + markdown(medians))
    if args.cv:
        parts.append("\n## Model choice: grouped 5-fold CV on train\n\n" + markdown(grouped_cv(splits["train"])))
    RESULTS.mkdir(exist_ok=True)
    name = "types_real2d.md" if args.on == "outlines" else "types_real2d_detections.md"
    (RESULTS / name).write_text("".join(parts))
    print("".join(parts))


if __name__ == "__main__":
    main()
