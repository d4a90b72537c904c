"""Fit the ``learnt`` spine type classifier to expert-typed 2D outlines (spine_types set).

Recipe of ``src/spinequant/models/spine_types_2d.json``:

    PYTHONPATH=src python scripts/train_type_classifier.py          # fits, writes the JSON

Every spine outline of ``spine_types/train`` (Dendritic-Spine-Analyzer-YOLO11 by Meng-De-Gong,
MIT; 1,289 spines typed M S B T F) is measured with :func:`spinequant.measure_spines` on the
truth label image (pixel size 0.08 µm at 1024 px, 0.12 µm at 512 px, the project's judgement
from the shaft widths), and a small network (one hidden layer of 16 tanh units; settings and
why below) with class weights is fitted to the features of :mod:`spinequant.morphology.learnt`
with torch, then written as plain JSON: no scikit-learn, no pickle. The val split (102 spines)
is scored by ``benchmarks/types_real2d.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_real_models import REAL2D, SPINE_TYPES_UM, read_grey  # noqa: E402

from spinequant.evaluate.readers import read_yolo_polygons  # noqa: E402
from spinequant.morphology import MorphologyConfig, measure_spines  # noqa: E402
from spinequant.segment.neural.yolo_data import dendrite_from_signal  # noqa: E402

#: The set's classes, in the order of its label files (0 M ... 4 F).
CLASS_NAMES = ("mushroom", "stubby", "branched", "thin", "filopodia")
MODEL = Path(__file__).resolve().parents[1] / "src" / "spinequant" / "models" / "spine_types_2d.json"


def measure_outlines(split: str, config: MorphologyConfig | None = None) -> pd.DataFrame:
    """The 2D spine table of every typed outline of ``spine_types/<split>``, measured on the
    truth labels (each polygon's non-zero pixels), with ``truth`` (the annotated type),
    ``image`` and ``pixel_um`` columns. A polygon without signal has no row."""
    folder = REAL2D / "spine_types" / split
    tables = []
    for path in sorted((folder / "images").glob("*.png")):
        image = read_grey(path)
        px = SPINE_TYPES_UM.get(image.shape[0], 0.08)
        polygons, classes = read_yolo_polygons(folder / "labels" / (path.stem + ".txt"), image.shape)
        # The polygons are drawn loosely around each spine; the images have their background
        # set to 0, so a spine's shape is its polygon's signal.
        labels = np.where(dendrite_from_signal(image, np.zeros_like(polygons, bool)), polygons, 0)
        dendrite = dendrite_from_signal(image, labels > 0)
        table = measure_spines(labels, dendrite, (px, px), config=config)
        table["truth"] = [CLASS_NAMES[c] for c in classes[table["id"].to_numpy() - 1]]
        table["image"] = path.name
        table["pixel_um"] = px
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def analysed_images(split: str, method: str, morphology=None):
    """For every image of ``spine_types/<split>``: ``(name, pixel size, analyze's result,
    matched pairs, expert classes)``, the spines ``analyze`` finds with ``method`` matched to
    the experts' outlines (head within 1 µm, one-to-one; ``pairs`` has ``pred_index`` and
    ``true_index``)."""
    import spinequant as sq
    from spinequant.evaluate.points import match_points
    from spinequant.pipeline.analyze import AnalyzeConfig
    from spinequant.segment.neural.yolo_data import yolo_training_sample

    folder = REAL2D / "spine_types" / split
    config = AnalyzeConfig(method=method, report=False)
    if morphology is not None:
        config = AnalyzeConfig(method=method, report=False, morphology=morphology)
    for path in sorted((folder / "images").glob("*.png")):
        image = read_grey(path)
        px = SPINE_TYPES_UM.get(image.shape[0], 0.08)
        truth, classes = yolo_training_sample(image, folder / "labels" / (path.stem + ".txt"), pixel_size_um=px)
        result = sq.analyze(image, spacing=(px, px), config=config)
        found = result.spines[["head_y_um", "head_x_um"]].to_numpy(float)
        pairs = match_points(np.column_stack([np.zeros(len(found)), found]),
                             np.column_stack([np.zeros(len(truth.heads)), truth.heads[:, 1:] * px]),
                             max_distance_um=1.0)["pairs"]
        yield path.name, px, result, pairs, classes


def measure_detections(split: str, method: str) -> pd.DataFrame:
    """The 2D spine table ``analyze`` makes with ``method`` on every image of
    ``spine_types/<split>``, restricted to the spines that match an expert's outline (head
    within 1 µm, one-to-one) and carrying its type as ``truth``: what the classifier will see
    in use (objects outlined by the pipeline, not by the experts)."""
    tables = []
    for name, px, result, pairs, classes in analysed_images(split, method):
        table = result.spines.iloc[pairs["pred_index"].to_numpy()].copy()
        table["truth"] = [CLASS_NAMES[c] for c in classes[pairs["true_index"].to_numpy()]]
        table["image"] = name
        table["pixel_um"] = px
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


#: Chosen by 5-fold cross-validation on train, folds by image (``benchmarks/types_real2d.py
#: --cv``, 2026-11-30): one hidden layer of 16 tanh units, Adam, weight decay 1e-3, class
#: weights (inverse class frequency) ** 0.5. Grouped-CV accuracy / macro F1: this 0.77 / 0.74;
#: the same without class weights 0.78 / 0.75 (within noise; the weights keep the rare types'
#: recall up), full inverse weights 0.73 / 0.69; logistic regression 0.71-0.75 / 0.66-0.71.
HIDDEN = 16
WEIGHT_DECAY = 1e-3
CLASS_WEIGHT_POWER = 0.5
STEPS = 400
SEED = 0


def fit_type_model(table: pd.DataFrame, *, hidden: int = HIDDEN, weight_decay: float = WEIGHT_DECAY,
                   class_weight_power: float = CLASS_WEIGHT_POWER, steps: int = STEPS,
                   seed: int = SEED) -> dict:
    """Parameters (as :func:`spinequant.morphology.learnt.load_type_model` reads them) of a
    classifier fitted to a measured, typed table (``truth`` column). ``hidden`` 0 gives a
    multinomial logistic regression. Full-batch Adam on CPU from a fixed seed: the same table
    gives the same parameters."""
    import torch

    from spinequant.morphology import SPINE_TYPES
    from spinequant.morphology.learnt import type_features

    features = type_features(table)
    x = features.to_numpy(float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    classes = list(SPINE_TYPES)
    y = np.array([classes.index(t) for t in table["truth"]])
    counts = np.bincount(y, minlength=len(classes))
    class_weight = np.where(counts > 0, (len(y) / (len(classes) * np.maximum(counts, 1))), 0.0)
    weights = torch.tensor(class_weight[y] ** class_weight_power, dtype=torch.float32)

    generator = torch.Generator().manual_seed(seed)
    sizes = [x.shape[1]] + ([hidden] if hidden else []) + [len(classes)]
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        w = (torch.rand(n_in, n_out, generator=generator) * 2 - 1) * bound
        b = (torch.rand(n_out, generator=generator) * 2 - 1) * bound
        layers += [w.requires_grad_(), b.requires_grad_()]
    inputs = torch.tensor((x - mean) / scale, dtype=torch.float32)
    target = torch.tensor(y)
    optimiser = torch.optim.Adam(layers, lr=1e-2, weight_decay=weight_decay)

    def forward(z):
        for k in range(0, len(layers), 2):
            z = z @ layers[k] + layers[k + 1]
            if k < len(layers) - 2:
                z = torch.tanh(z)
        return z

    for _ in range(steps):
        optimiser.zero_grad()
        loss = (torch.nn.functional.cross_entropy(forward(inputs), target, reduction="none")
                * weights).sum() / weights.sum()
        loss.backward()
        optimiser.step()
    pairs = [(layers[k].detach().double().numpy().round(6).tolist(),
              layers[k + 1].detach().double().numpy().round(6).tolist()) for k in range(0, len(layers), 2)]
    return {"classes": classes, "features": list(features.columns), "mean": mean.round(6).tolist(),
            "scale": scale.round(6).tolist(), "layers": pairs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=MODEL)
    ap.add_argument("--on", choices=["outlines", "detections"], default="detections",
                    help="measure the experts' outlines, or the spines a method finds (matched to them)")
    ap.add_argument("--method", default="lean2d_real", help="with --on detections: the segmentation method")
    args = ap.parse_args(argv)
    from spinequant.morphology.learnt import load_type_model, parameters_sha256

    train = measure_outlines("train") if args.on == "outlines" else measure_detections("train", args.method)
    params = fit_type_model(train)
    counts = train["truth"].value_counts().to_dict()
    params["model_card"] = {
        "name": "spine_types_2d",
        "task": "spine type (stubby, thin, mushroom, branched, filopodia) from the columns of a "
                "2D spine table (measure_spines on a 2D image)",
        "applies_to": "2D spine tables only; a 3D table is typed by the neuronstudio rules",
        "architecture": f"standardised features -> dense {HIDDEN} tanh -> dense 5 -> softmax",
        "training_data": {
            "source": "spine_types/train of the Dendritic-Spine-Analyzer-YOLO11 dataset by "
                      "Meng-De-Gong (https://github.com/Meng-De-Gong/Dendritic-Spine-Analyzer-YOLO11)",
            "licence": "MIT",
            "spines": int(len(train)), "per_type": {k: int(v) for k, v in counts.items()},
            "pixel_size_um": "not recorded; 0.08 at 1024 px, 0.12 at 512 px (judged from shaft widths)",
            "measured_on": ("each expert polygon's non-zero pixels (the images' background is 0)"
                            if args.on == "outlines" else
                            f"the spine objects analyze finds with {args.method}, matched to the experts' "
                            f"outlines (head within 1 µm)"),
        },
        "training": {"hidden": HIDDEN, "weight_decay": WEIGHT_DECAY, "optimiser": "Adam lr 0.01, full batch",
                     "steps": STEPS, "seed": SEED,
                     "class_weights": f"(inverse class frequency) ** {CLASS_WEIGHT_POWER}"},
        "recipe": f"python scripts/train_type_classifier.py --on {args.on}"
                  + (f" --method {args.method}" if args.on == "detections" else ""),
        "evaluation": "python benchmarks/types_real2d.py (numbers in docs/measurements.md)",
        "parameters_sha256": parameters_sha256(params),
    }
    args.out.write_text(json.dumps(params, indent=1) + "\n")
    load_type_model.cache_clear()
    load_type_model(args.out)   # checks the sha256
    print(f"wrote {args.out} ({len(train)} training spines)")


if __name__ == "__main__":
    main()
