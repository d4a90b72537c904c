"""Fit a point-head model's learnt spine confidence (spinequant.pipeline.spine_confidence).

    .venv/bin/python scripts/train_spine_confidence.py [--model lean2d_real] [--no-install]

Every spine the model finds down to a head-map peak of ``--floor`` (0.05) is a candidate:
measured by ``analyze`` as any spine, described by its features, and labelled by whether a
human marked it (a marked head within 1 µm, one-to-one) or, on phantoms, whether it is a true
spine (``match_spine_objects``). Training candidates: the dendritic2 training fields (not its
zoomed crops) and spine_types/train, also read at 0.75x and 1.33x of their pixel size with
``--scales 0.75 1.3333`` (how the shipped trees were fitted: a misstated size should not cost
spines), and phantoms of every preset (seeds 3001-3006, weighted 4x per size the real images
are read at, so that they make about a fifth of the weight). A gradient-boosted tree ensemble
(scikit-learn's HistGradientBoostingClassifier: 300 trees of up to 31 leaves, learning rate
0.05, at least 40 candidates per leaf, half the features drawn for each split) is fitted on them; the default minimum confidence is the
one that maximises F1 on out-of-fold predictions (5 folds grouped by image, its copies at other sizes in the same
fold) of the real training candidates at their judged size. Validation (never used for fitting or choosing): dendritic2/valid's
distinct images, spine_types/val, phantoms of seeds 1001-1003 (those of benchmarks/accuracy.py);
their F1 and expected calibration error are printed and written to the card.

Needs scikit-learn (``pip install scikit-learn``; only for fitting: the package evaluates the
saved trees with numpy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from real2d import Image2D, MATCH_UM, load_set  # noqa: E402
import train_real_models  # noqa: E402
from train_real_models import REAL2D, SPINE_TYPES_UM, read_grey  # noqa: E402

import spinequant as sq  # noqa: E402
from spinequant.evaluate.detection import match_spine_objects  # noqa: E402
from spinequant.evaluate.points import match_points  # noqa: E402
from spinequant.pipeline.analyze import AnalyzeConfig, default_instance_config, model_calibration  # noqa: E402
from spinequant.pipeline.spine_confidence import FEATURES, confidence_features  # noqa: E402
from spinequant.segment.neural.calibration import confidence, expected_calibration_error, score_for  # noqa: E402
from spinequant.segment.neural.yolo_data import yolo_training_sample  # noqa: E402
from spinequant.synth.presets import REALISTIC  # noqa: E402

TRAIN_PHANTOM_SEEDS = tuple(range(3001, 3007))
VAL_PHANTOM_SEEDS = (1001, 1002, 1003)
PHANTOM_WEIGHT = 4.0
# The best grouped out-of-fold F1 of twelve settings (session 31; all within 0.002):
# docs/real_data.md "The trees' settings".
TREES = dict(max_iter=300, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=40, max_features=0.5,
             random_state=0)


def training_images() -> dict[str, list[Image2D]]:
    out = {"dendritic2": [], "spine_types": []}
    folder = REAL2D / "dendritic2" / "train"
    for p in sorted((folder / "images").glob("*.jpg")):
        label = folder / "labels" / (p.stem + ".txt")
        if p.name.startswith("spine_image") or not label.exists():
            continue
        img = read_grey(p)
        px = train_real_models.DENDRITIC2_UM
        s, _ = yolo_training_sample(img, label, pixel_size_um=px, outlines=False)
        out["dendritic2"].append(Image2D(p.name, img, px, s.heads[:, 1:], None))
    folder = REAL2D / "spine_types" / "train"
    for p in sorted((folder / "images").glob("*.png")):
        img = read_grey(p)
        px = SPINE_TYPES_UM.get(img.shape[0], 0.08)
        s, classes = yolo_training_sample(img, folder / "labels" / (p.stem + ".txt"), pixel_size_um=px, outlines=True)
        out["spine_types"].append(Image2D(p.name, img, px, s.heads[:, 1:], classes))
    return out


def candidate_config(model: str, floor: float, relax: dict | None = None) -> AnalyzeConfig:
    """``analyze``'s settings that keep every head-map peak down to ``floor``, with the
    instance settings ``relax`` (``candidate_instances`` of the calibration) changed."""
    head_map = model_calibration(model, "head_map")
    instances = dataclasses.replace(default_instance_config(model), **(relax or {}))
    return AnalyzeConfig(method=model, report=False, confidence="head_map", instances=instances,
                         min_confidence=float(confidence([floor], head_map)[0]))


def candidates(res, head_map: dict) -> tuple[pd.DataFrame, np.ndarray]:
    raw = np.array([score_for(c, head_map) for c in res.spines["confidence"].to_numpy(float)])
    return confidence_features(res.spines, raw, res.image, res.dendrite_labels, res.spacing), raw


def collect_images(sets: dict, model: str, floor: float, scale: float = 1.0, relax: dict | None = None) -> pd.DataFrame:
    """Candidates of every image, analysed at ``scale`` times its pixel size (a misstated
    size: the matching stays 1 µm at the judged size, as in benchmarks/real2d.py)."""
    config, head_map = candidate_config(model, floor, relax), model_calibration(model, "head_map")
    rows = []
    for set_name, images in sets.items():
        t = time.perf_counter()
        for im in images:
            stated = im.pixel_um * scale
            res = sq.analyze(im.image, spacing=(stated, stated), config=config)
            f, _ = candidates(res, head_map)
            pts = res.spines[["head_y_um", "head_x_um"]].to_numpy(float) / scale
            r = match_points(np.column_stack([np.zeros(len(pts)), pts]),
                             np.column_stack([np.zeros(len(im.heads_px)), im.heads_px * im.pixel_um]),
                             max_distance_um=MATCH_UM)
            hit = np.zeros(len(pts), bool)
            hit[r["pairs"]["pred_index"].to_numpy()] = True
            name = f"{set_name}/{im.name}" + ("" if scale == 1.0 else f"@{scale:.2f}x")
            rows.append(f.assign(hit=hit, set=set_name, image=name, n_true=len(im.heads_px)))
        print(f"  {set_name} at {scale:.2f}x: {len(images)} images, {time.perf_counter() - t:.0f} s", flush=True)
    return pd.concat(rows, ignore_index=True)


def collect_phantoms(seeds, model: str, floor: float, relax: dict | None = None,
                     overrides: dict | None = None) -> pd.DataFrame:
    from spinequant.synth import PRESETS, make_phantom

    config, head_map = candidate_config(model, floor, relax), model_calibration(model, "head_map")
    rows = []
    for preset in PRESETS:
        for seed in seeds:
            ph = make_phantom(preset, seed=seed, **(overrides or {}))
            res = sq.analyze(ph.image, spacing=ph.spacing, config=config)
            f, _ = candidates(res, head_map)
            det = match_spine_objects(res.spine_labels, ph.spine_labels, spacing=ph.spacing)
            hit = res.spines["id"].isin({int(p) for _, p in det["pairs"]}).to_numpy()
            rows.append(f.assign(hit=hit, set=f"phantom_{preset}", image=f"{preset}/{seed}{'+realistic' if overrides else ''}",
                                 n_true=det["n_true"]))
    return pd.concat(rows, ignore_index=True)


def f1_by_set(df: pd.DataFrame, prob: np.ndarray, threshold: float) -> dict:
    out = {}
    n_true = df.groupby("image")[["set", "n_true"]].first().groupby("set")["n_true"].sum()
    for s, nt in n_true.items():
        keep = (df["set"] == s).to_numpy() & (prob >= threshold)
        tp = int(df["hit"].to_numpy()[keep].sum())
        out[s] = {"precision": tp / max(int(keep.sum()), 1), "recall": tp / nt, "f1": 2 * tp / (int(keep.sum()) + nt)}
    return out


def best_threshold(df: pd.DataFrame, prob: np.ndarray) -> float:
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
    n_true = df.groupby("image")["n_true"].first().sum()
    hit = df["hit"].to_numpy()
    f1 = [2 * hit[prob >= g].sum() / ((prob >= g).sum() + n_true) for g in grid]
    return float(grid[int(np.argmax(f1))])


def export_trees(clf, path: Path) -> None:
    """The fitted HistGradientBoostingClassifier as a TreeEnsemble file."""
    from spinequant.segment.neural.tree_ensemble import TreeEnsemble

    parts, roots, start = [], [], 0
    for (tree,) in clf._predictors:
        nodes = tree.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported")
        roots.append(start)
        parts.append(nodes)
        start += len(nodes)
    nodes = np.concatenate(parts)
    TreeEnsemble(features=FEATURES, baseline=float(np.ravel(clf._baseline_prediction)[0]),
                 roots=np.array(roots, np.int64), feature=nodes["feature_idx"].astype(np.int64),
                 threshold=nodes["num_threshold"].astype(np.float64), left=nodes["left"].astype(np.int64),
                 right=nodes["right"].astype(np.int64), missing_left=nodes["missing_go_to_left"].astype(bool),
                 is_leaf=nodes["is_leaf"].astype(bool), value=nodes["value"].astype(np.float64)).save(path)


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    from spinequant.segment.neural.card import read_card, resolve, sha256_of, update_card
    from spinequant.segment.neural.tree_ensemble import TreeEnsemble

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="lean2d_real")
    ap.add_argument("--floor", type=float, default=0.05)
    ap.add_argument("--cache", type=Path, default=None, help="folder to keep the candidate tables in")
    ap.add_argument("--no-install", action="store_true", help="fit and report, leave the card alone")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0],
                    help="also train on the real images analysed at these multiples of their pixel size "
                         "(candidates of a misstated size; 1.0 always included)")
    ap.add_argument("--relax", nargs="*", default=[], metavar="KEY=VALUE",
                    help="instance settings of the candidates (e.g. min_volume_um3=0), recorded in the card "
                         "as candidate_instances and used by analyze with the learnt confidence")
    ap.add_argument("--relax-2d", nargs="*", default=[], metavar="KEY=VALUE",
                    help="instance settings of the candidates of 2D images only (on top of --relax; the real "
                         "images are 2D, the phantoms 3D), recorded as candidate_instances_2d")
    ap.add_argument("--realistic-phantoms", action="store_true",
                    help="also train on the same phantom seeds drawn with spinequant.synth.presets.REALISTIC "
                         "(varicosities labelled as shaft, heads with faint necks, shaft texture)")
    ap.add_argument("--dendritic2-um", type=float, default=train_real_models.DENDRITIC2_UM,
                    help="pixel size (µm) dendritic2's fields are read at")
    args = ap.parse_args()
    train_real_models.set_dendritic2_um(args.dendritic2_um)
    relax = {k: float(v) for k, v in (item.split("=", 1) for item in args.relax)}
    relax_2d = {**relax, **{k: float(v) for k, v in (item.split("=", 1) for item in args.relax_2d)}}

    def cached(name, make):
        path = args.cache / f"{name}.parquet" if args.cache else None
        if path is not None and path.exists():
            return pd.read_parquet(path)
        df = make()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_parquet(path)
        return df

    print("training candidates", flush=True)
    images = training_images()
    scales = [1.0] + [x for x in args.scales if x != 1.0]
    train = pd.concat([cached("train_real" + ("" if x == 1.0 else f"_x{x:.2f}"),
                              lambda x=x: collect_images(images, args.model, args.floor, x, relax_2d)) for x in scales]
                      + [cached("train_phantoms", lambda: collect_phantoms(TRAIN_PHANTOM_SEEDS, args.model, args.floor,
                                                                          relax))]
                      + ([cached("train_phantoms_realistic", lambda: collect_phantoms(
                          TRAIN_PHANTOM_SEEDS, args.model, args.floor, relax, REALISTIC))] if args.realistic_phantoms else []),
                      ignore_index=True)
    print("validation candidates", flush=True)
    val_images = {s: load_set(s) for s in ("dendritic2", "spine_types")}
    val = pd.concat([cached("val_real", lambda: collect_images(val_images, args.model, args.floor, relax=relax_2d)),
                     cached("val_phantoms", lambda: collect_phantoms(VAL_PHANTOM_SEEDS, args.model, args.floor, relax)),
                     cached("val_phantoms_realistic", lambda: collect_phantoms(VAL_PHANTOM_SEEDS, args.model, args.floor,
                                                                               relax, REALISTIC)).assign(
                         set=lambda d: d["set"] + "_realistic")],
                    ignore_index=True)
    # the real validation images at the misstated sizes (reported, as benchmarks/real2d.py does)
    misstated = {x: cached(f"val_real_x{x:.2f}", lambda x=x: collect_images(val_images, args.model, args.floor, x,
                                                                            relax_2d))
                 for x in (0.75, 4 / 3)}
    x, y = train[list(FEATURES)].to_numpy(float), train["hit"].to_numpy().astype(int)
    # the phantoms keep their share of the weight however many sizes the real images are read at
    w = np.where(train["set"].str.startswith("phantom_").to_numpy(), PHANTOM_WEIGHT * len(scales), 1.0)
    real = ~train["set"].str.startswith("phantom_").to_numpy()
    judged = real & ~train["image"].str.contains("@").to_numpy()      # at the judged pixel size
    groups = train["image"].str.split("@").str[0].to_numpy()           # an image's copies in one fold
    oof = np.zeros(len(train))
    for a, b in GroupKFold(5).split(x, y, groups):
        oof[b] = HistGradientBoostingClassifier(**TREES).fit(x[a], y[a], sample_weight=w[a]).predict_proba(x[b])[:, 1]
    min_confidence = best_threshold(train[judged], oof[judged])
    clf = HistGradientBoostingClassifier(**TREES).fit(x, y, sample_weight=w)

    card_path, _ = resolve(args.model)
    out = card_path.with_name(card_path.stem + "_confidence.safetensors")
    tmp = Path(tempfile.mkdtemp()) / out.name
    export_trees(clf, tmp)
    trees = TreeEnsemble.load(tmp)
    xv = val[list(FEATURES)].to_numpy(float)
    prob = trees.predict_proba(xv)
    assert np.allclose(prob, clf.predict_proba(xv)[:, 1], atol=1e-9), "exported trees disagree with scikit-learn"

    head_map = model_calibration(args.model, "head_map")
    raw_prob = confidence(val["head_map_peak"], head_map)
    report = {}
    for name, p, thr in (("head-map peak (calibrated)", raw_prob, head_map["min_confidence"]),
                         ("learnt confidence", prob, min_confidence)):
        scores = f1_by_set(val, p, thr)
        for s in scores:
            sel = (val["set"] == s).to_numpy()
            scores[s]["ece"] = expected_calibration_error(p[sel], val["hit"].to_numpy()[sel])[0]
        report[name] = scores
        for x, df in misstated.items():
            p_x = (trees.predict_proba(df[list(FEATURES)].to_numpy(float)) if name == "learnt confidence"
                   else confidence(df["head_map_peak"], head_map))
            for s, r in f1_by_set(df, p_x, thr).items():
                scores[s][f"f1_{x:.2f}x"] = r["f1"]
        print(f"\n{name}, minimum confidence {thr}:")
        for s, r in scores.items():
            extra = "".join(f"  F1 {k[3:]} {v:.3f}" for k, v in r.items() if k.startswith("f1_"))
            print(f"  {s:22s} P {r['precision']:.3f}  R {r['recall']:.3f}  F1 {r['f1']:.3f}  ECE {r['ece']:.3f}{extra}")
    if args.no_install:
        return
    tmp.replace(out)
    calibration = {
        "method": "trees", "file": out.name, "sha256": sha256_of(out), "candidate_floor": args.floor,
        "candidate_instances": relax,
        **({"candidate_instances_2d": relax_2d} if relax_2d != relax else {}),
        "min_confidence": min_confidence, "features": list(FEATURES),
        "fitted_on": (f"scripts/train_spine_confidence.py --scales {' '.join(f'{x:g}' for x in scales[1:])}"
                      + "".join(f" {flag} {' '.join(items)}" for flag, items in (("--relax", args.relax),
                                                                                  ("--relax-2d", args.relax_2d))
                                if items) + (" --realistic-phantoms" if args.realistic_phantoms else "") + ": "
                      f"{int(real.sum())} candidates (head-map peaks >= {args.floor}) on the dendritic2 training "
                      f"fields and spine_types/train read at {', '.join(f'{x:.2f}x' for x in scales)} of their "
                      f"pixel size, {int((~real).sum())} on phantoms (seeds {TRAIN_PHANTOM_SEEDS[0]}-"
                      f"{TRAIN_PHANTOM_SEEDS[-1]}{', each also drawn with REALISTIC' if args.realistic_phantoms else ''}, "
                      f"weight {PHANTOM_WEIGHT * len(scales):g}); minimum confidence by "
                      f"out-of-fold F1 at the judged size"),
        "validation": {s: {k: round(float(v), 4) for k, v in r.items()} for s, r in report["learnt confidence"].items()},
        "head_map": head_map,
    }
    update_card(card_path, calibration=calibration)
    print(f"\ninstalled {out.name} in {card_path}")


if __name__ == "__main__":
    main()
