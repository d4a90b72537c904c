"""Can a network learn the marks of a few dendritic2 fields at all? A capacity drill.

    # train on 28 dendritic2 training fields and nothing else, from the installed network,
    # and from it widened to 32 filters (same function, Net2WiderNet), with the installed recipe's augmentation
    .venv/bin/python scripts/drill_fields.py train --name drill16 --init src/spinequant/models/lean2d_real.json
    .venv/bin/python scripts/drill_fields.py train --name drill32 --widen-from src/spinequant/models/lean2d_real.json
    # score each by its head map alone on those fields and on the distinct validation fields
    .venv/bin/python scripts/drill_fields.py score work/drill/drill16/model.json work/drill/drill32/model.json
    # which augmentation the drill cannot absorb: rotations and flips, quarter turns and flips, or scale jitter alone,
    # scored on the fields as given (one orientation) as well as with analyze's eight
    .venv/bin/python scripts/drill_fields.py train --name drill16_rot --scale-jitter 1 --init src/spinequant/models/lean2d_real.json
    .venv/bin/python scripts/drill_fields.py train --name drill16_scale --no-rotate --init src/spinequant/models/lean2d_real.json
    .venv/bin/python scripts/drill_fields.py train --name drill16_quarter --right-angles --scale-jitter 1 --init src/spinequant/models/lean2d_real.json
    .venv/bin/python scripts/drill_fields.py score work/drill/drill16_*/model.json --drilled-only --orientations 1

Session 8 drilled the network on 28 training fields: with augmentation it reproduced their
marks at F1 0.78 only, without augmentation at 0.93, so it can hold the marks pixel for pixel
but not a rule for them that survives a rotated, rescaled copy. Whether a wider network learns
such a rule is the question this script answers (docs/real_data.md, "A capacity drill").
The fields are every k-th field (not zoomed crop) of ``dendritic2/train``; the validation loss
that picks the best epoch is taken on fixed patches of the same fields (a drill measures fit).
Scoring: spines found by ``analyze`` with the head map alone (a head-map peak of at least 0.2,
0.3, 0.4, 0.5 or 0.6; the best F1 is reported), matched to the marks within 1 µm as
``benchmarks/real2d.py`` does, with the fields read at the benchmark's 0.09 µm.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train_real_models as trm  # noqa: E402

THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)


def training_fields(n: int) -> list[str]:
    """Every k-th field (not zoomed crop) of dendritic2/train with a label file: n names."""
    folder = trm.REAL2D / "dendritic2" / "train"
    fields = [p.name for p in sorted((folder / "images").glob("*.jpg"))
              if not p.name.startswith("spine_image") and (folder / "labels" / (p.stem + ".txt")).exists()]
    return fields[:: max(len(fields) // n, 1)][:n]


def train_drill(args) -> None:
    from spinequant.segment.neural import TrainConfig, train
    from spinequant.segment.neural.architectures import architecture
    from spinequant.segment.neural.augment import AugmentConfig

    trm.set_dendritic2_um(args.dendritic2_um)
    torch.manual_seed(args.seed)
    out = Path(args.work) / args.name
    fields = trm.dendritic2("train", names=set(training_fields(args.fields)))
    arch = args.architecture
    init = args.init
    if args.widen_from:
        arch = {**architecture(arch), "base_filters": 2 * architecture(arch)["base_filters"]}
        init = trm.widen(Path(args.work) / f"{args.name}-init", arch, args.widen_from, seed=args.seed)
    # the installed recipe's augmentation (rotation, flips, scale jitter 1.4, no intensity changes)
    augment = (dataclasses.replace(AugmentConfig(), scale_jitter=args.scale_jitter, rotate=args.rotate,
                                   flip=args.rotate, right_angles=args.right_angles,
                                   **trm.INTENSITY["off"])
               if args.augment else AugmentConfig.off())
    like = {}
    if init is None:   # from scratch: the installed network's pixel size and normalisation
        from spinequant.segment.neural.card import read_card
        from spinequant.segment.neural.normalise import NormaliseConfig
        card = read_card(args.like)
        like = dict(voxel_size_um=tuple(card.voxel_size_um), normalisation=NormaliseConfig(**card.normalisation))
    config = TrainConfig(
        **like, architecture=arch, tile_size=args.tile, batch_size=args.batch, steps_per_epoch=args.steps,
        epochs=args.epochs, learning_rate=args.lr, lr_constant_epochs=args.epochs // 2, lr_decay=0.05,
        loss="points", patience=args.epochs, val_patches=64, num_threads=args.threads,
        max_minutes=args.minutes, seed=args.seed, augment=augment)
    t = time.perf_counter()
    train(fields, out_dir=out, config=config, init=init, val_samples=fields,
          description=f"capacity drill on {len(fields)} dendritic2 training fields (scripts/drill_fields.py)")
    print(f"{args.name}: trained in {(time.perf_counter() - t) / 60:.1f} min", flush=True)


def score(args) -> None:
    import real2d
    from _table import markdown

    from spinequant.segment.neural.yolo_data import yolo_training_sample

    folder = trm.REAL2D / "dendritic2" / "train"
    drilled = []
    for name in training_fields(args.fields):
        img = trm.read_grey(folder / "images" / name)
        px = real2d.dendritic2_pixel_um(name)
        s, _ = yolo_training_sample(img, folder / "labels" / (Path(name).stem + ".txt"), pixel_size_um=px,
                                    outlines=False)
        drilled.append(real2d.Image2D(name, img, px, s.heads[:, 1:], None))
    sets = {"drilled fields": drilled}
    if not args.drilled_only:
        sets["dendritic2 distinct validation"] = real2d.load_set("dendritic2")
    rows = []
    for model in args.models:
        for set_name, images in sets.items():
            if args.peaks:
                points = _peak_finder(model, images, args.orientations or 1)
            else:
                points = _analyze_finder(model, args.orientations)
            rows.append({"model": model, "set": set_name, "images": len(images), **_best_f1(images, points)})
            print(rows[-1], flush=True)
    print(markdown(pd.DataFrame(rows), digits=3))


def _analyze_finder(model: str, orientations: int | None):
    """Spines ``analyze`` finds with the head map alone at head-map peak t: (image, t) -> (K, 2) px."""
    import real2d

    def points(im, t):
        config = real2d.run_config(model, raw_threshold=t)
        if orientations:
            config = dataclasses.replace(config, orientations=orientations)
        return real2d.detect(im.image, im.pixel_um, config)[0]

    return points


def _peak_finder(model: str, images, orientations: int):
    """The head map's own peaks (at least 0.4 µm apart, as analyze's): no dendrite, no spine
    objects, so that a network whose dendrite and spine maps never learnt anything (a drill
    from random weights: dendritic2 has points only) is scored by what it learnt."""
    from spinequant.instances.heads import head_peaks
    from spinequant.segment.neural import predict

    maps = {im.name: predict(im.image[None], spacing=(0.5, im.pixel_um, im.pixel_um), model=model,
                             dtype=np.float32, orientations=orientations)[2][0] for im in images}

    def points(im, t):
        return head_peaks(maps[im.name], (im.pixel_um, im.pixel_um), threshold=t, min_distance_um=0.4)[0]

    return points


def _best_f1(images, points) -> dict:
    """Precision, recall and F1 at the threshold of :data:`THRESHOLDS` with the best F1, the
    points of ``points(image, threshold)`` matched to the marks within 1 µm."""
    import real2d

    from spinequant.evaluate.points import match_points

    best = None
    for t in THRESHOLDS:
        tp = n_pred = n_true = 0
        for im in images:
            pts = points(im, t)
            r = match_points(np.column_stack([np.zeros(len(pts)), pts * im.pixel_um]),
                             np.column_stack([np.zeros(len(im.heads_px)), im.heads_px * im.pixel_um]),
                             max_distance_um=real2d.MATCH_UM)
            tp, n_pred, n_true = tp + r["tp"], n_pred + r["n_pred"], n_true + r["n_true"]
        prf = real2d._prf(tp, n_pred, n_true)
        if best is None or prf["f1"] > best["f1"]:
            best = {"head_threshold": t, **prf}
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--name", required=True)
    tr.add_argument("--init", default=None, help="start from this point-head model")
    tr.add_argument("--widen-from", default=None, help="start from this model's function at twice its width")
    tr.add_argument("--architecture", default="lean2d_points",
                    help="a preset (lean2d_points_p4m: filters shared over quarter turns and mirrors)")
    tr.add_argument("--like", default="src/spinequant/models/lean2d_real.json",
                    help="without --init: take the pixel size and normalisation of this model")
    tr.add_argument("--fields", type=int, default=28)
    tr.add_argument("--epochs", type=int, default=60)
    tr.add_argument("--steps", type=int, default=40)
    tr.add_argument("--tile", type=int, default=256)
    tr.add_argument("--batch", type=int, default=2)
    tr.add_argument("--lr", type=float, default=5e-4)
    tr.add_argument("--minutes", type=float, default=90.0)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--no-augment", dest="augment", action="store_false",
                    help="no rotation, flip or scaling (intensity changes are off either way, as installed)")
    tr.add_argument("--scale-jitter", type=float, default=1.4, help="pixel size x U(1/j, j); 1 = none")
    tr.add_argument("--right-angles", action="store_true", help="rotate by quarter turns only")
    tr.add_argument("--no-rotate", dest="rotate", action="store_false", help="no rotation and no flips")
    tr.add_argument("--dendritic2-um", type=float, default=0.075, help="pixel size the fields are read at in training")
    tr.add_argument("--work", default="work/drill")
    sc = sub.add_parser("score")
    sc.add_argument("models", nargs="+")
    sc.add_argument("--fields", type=int, default=28)
    sc.add_argument("--drilled-only", action="store_true", help="score the drilled fields only")
    sc.add_argument("--orientations", type=int, default=None,
                    help="orientations averaged (analyze's default for 2D, eight, unless given)")
    sc.add_argument("--peaks", action="store_true",
                    help="score the head map's peaks alone (no dendrite, no spine objects; one orientation "
                         "unless --orientations)")
    args = ap.parse_args()
    train_drill(args) if args.command == "train" else score(args)


if __name__ == "__main__":
    main()
