"""Reproduce the shipped neural models: train on phantoms of every preset, with domain
randomisation, then score held-out phantoms against the classical method.

    .venv/bin/python scripts/train_default_models.py --architecture lean2d --minutes 14

Writes the model to src/spinequant/models/<name>.safetensors + .json (``--no-install`` keeps
it in the work folder only) and prints per-preset scores. CPU only; 2 threads by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np

from spinequant.segment.neural import TrainConfig, TrainingSample, load_model, predict, save_model, train
from spinequant.segment.neural.architectures import architecture
from spinequant.segment.neural.card import MODELS_DIR
from spinequant.synth import PRESETS, make_phantom

TRAIN_SEEDS = range(100, 10_000)
VAL_SEED, TEST_SEED = 20_000, 30_000


def randomised_phantom(preset: str, seed: int, overrides: dict | None = None,
                       base_shape: tuple[int, int, int] | None = None) -> TrainingSample:
    """A phantom whose voxel size, SNR, haze and spine density vary around the preset's
    (``overrides``: further phantom settings, e.g. realism features switched on;
    ``base_shape``: the field in voxels at the preset's voxel size, default the preset's)."""
    rng = np.random.default_rng(seed)
    base = PRESETS[preset]
    z, y, x = base.spacing
    xy = y * float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    spacing = (z * float(rng.uniform(0.7, 1.4)), xy, xy)
    field = base_shape or base.shape
    shape = (field[0], *[int(round(n * y / xy)) for n in field[1:]])
    ph = make_phantom(preset, seed=seed, shape=shape, spacing=spacing,
                      snr=base.imaging.snr * float(np.exp(rng.uniform(np.log(0.4), np.log(1.5)))),
                      haze=base.distractors.haze * float(rng.uniform(0.0, 3.0)), **(overrides or {}))
    heads = ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy() / np.asarray(ph.spacing)
    return TrainingSample(np.asarray(ph.image), np.asarray(ph.semantic), tuple(ph.spacing), f"{preset}-{seed}",
                          heads=heads)


def score(dend, spine, phantom, instance_config=None) -> dict:
    """Dendrite and spine IoU (threshold 0.5) and spine detection F1 after instance finding."""
    from spinequant.evaluate.detection import match_spine_objects
    from spinequant.instances import spine_instances

    sem = phantom.semantic
    out = {}
    for name, prob, k in (("dendrite_iou", dend, 1), ("spine_iou", spine, 2)):
        p, t = prob > 0.5, sem == k
        out[name] = float((p & t).sum() / max((p | t).sum(), 1))
    inst = spine_instances(spine, dend, spacing=phantom.spacing, config=instance_config)
    m = match_spine_objects(inst.spine_labels, phantom.spine_labels, spacing=phantom.spacing)
    out.update(spine_f1=float(m["f1"]), spine_precision=float(m["precision"]), spine_recall=float(m["recall"]))
    return out


def evaluate(model, n_per_preset: int = 2, presets=tuple(PRESETS), classical: bool = True,
             overrides: dict | None = None) -> dict:
    """Scores of ``model`` and of the classical method on held-out phantoms, per preset
    (``overrides``: phantom settings changed from the preset's)."""
    from spinequant.pipeline.analyze import default_instance_config
    from spinequant.segment.classical import segment_classical

    net, card = load_model(model)
    results = {}
    for preset in presets:
        rows = {"neural": [], "classical": []} if classical else {"neural": []}
        for i in range(n_per_preset):
            ph = make_phantom(preset, seed=TEST_SEED + i, **(overrides or {}))
            t = time.perf_counter()
            rows["neural"].append({**score(*predict(ph.image, spacing=ph.spacing, model=(net, card)), ph,
                                           default_instance_config("neural")),
                                   "seconds": time.perf_counter() - t})
            if not classical:
                continue
            t = time.perf_counter()
            rows["classical"].append({**score(*segment_classical(ph.image, spacing=ph.spacing), ph,
                                              default_instance_config("classical")),
                                      "seconds": time.perf_counter() - t})
        results[preset] = {m: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for m, v in rows.items()}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--architecture", default="lean2d")
    ap.add_argument("--name", default=None, help="model name (default: the architecture)")
    ap.add_argument("--per-preset", type=int, default=8, help="training phantoms per preset")
    ap.add_argument("--minutes", type=float, default=14.0, help="training time budget")
    ap.add_argument("--epochs", type=int, default=30, help="most epochs (early stopping may end sooner)")
    ap.add_argument("--constant-epochs", type=int, default=10, help="epochs at the full learning rate")
    ap.add_argument("--decay", type=float, default=0.15, help="exponential learning-rate decay per epoch after that")
    ap.add_argument("--patience", type=int, default=8, help="epochs without validation gain before stopping")
    ap.add_argument("--work", default="work/models", help="folder for checkpoints")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="patches per step (3D: 16-plane blocks)")
    ap.add_argument("--loss", default=None,
                    help="default: deepd3_spine_dice for 2D models, wce (Vidaurre-Gallart) for unet3d")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--evaluate-only", action="store_true")
    args = ap.parse_args()
    name = args.name or args.architecture
    out = Path(args.work) / name
    if not args.evaluate_only:
        t = time.perf_counter()
        samples = [randomised_phantom(p, seed) for p in PRESETS
                   for seed in list(TRAIN_SEEDS)[:args.per_preset]]
        val = [randomised_phantom(p, VAL_SEED) for p in PRESETS]
        print(f"{len(samples)} training and {len(val)} validation phantoms in {time.perf_counter() - t:.0f} s")
        loss = "wce" if architecture(args.architecture)["kind"] == "unet3d" else "deepd3_spine_dice"
        config = TrainConfig(architecture=args.architecture, voxel_size_um=(0.5, 0.094, 0.094),
                             tile_size=128, batch_size=args.batch, steps_per_epoch=40, epochs=args.epochs,
                             learning_rate=1.5e-3, lr_constant_epochs=args.constant_epochs, lr_decay=args.decay,
                             loss=args.loss or loss, patience=args.patience, val_patches=48,
                             num_threads=args.threads, max_minutes=args.minutes, seed=0)
        train(samples, out_dir=out, config=config, val_samples=val,
              description=f"{len(samples)} domain-randomised phantoms of presets {', '.join(PRESETS)} "
                          f"(scripts/train_default_models.py)")
    import torch
    torch.set_num_threads(args.threads)
    results = evaluate(out / "model.json")
    print(json.dumps(results, indent=1))
    net, card = load_model(out / "model.json")
    card = dataclasses.replace(card, name=name, validation={**card.validation, "held_out_phantoms": results})
    save_model(net, card, out / "model")
    if not args.no_install:
        install_model(out, name)


def install_model(out: Path, name: str) -> None:
    """Copy a trained model (``out/model.*``) into the package as shipped model ``name``."""
    for suffix in (".safetensors", ".json"):
        shutil.copyfile(out / f"model{suffix}", MODELS_DIR / f"{name}{suffix}")
    print(f"installed as {MODELS_DIR / name}.* (next: spinequant export-onnx {name})")


if __name__ == "__main__":
    main()
