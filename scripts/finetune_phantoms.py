"""Fine-tune a shipped model on a few phantoms of one preset and score it before and after on
held-out phantoms of that preset (the README's fine-tuning example).

    .venv/bin/python scripts/finetune_phantoms.py --preset two_photon --stacks 3 --minutes 3
    .venv/bin/python scripts/finetune_phantoms.py --preset confocal --set membrane=True   # unseen: membrane label

The command-line equivalent: write the phantoms with ``spinequant synth``, then
``spinequant train PHANTOMS --out MODEL_DIR --from lean2d``.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import torch

from spinequant.segment.neural import TrainConfig, TrainingSample, train
from spinequant.synth import make_phantom

from train_default_models import VAL_SEED, evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="two_photon")
    ap.add_argument("--model", default="lean2d")
    ap.add_argument("--stacks", type=int, default=3, help="annotated phantoms to fine-tune on")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="work/finetuned", help="model folder (default inside the git-ignored work/)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="phantom setting changed for training and scoring (a Python literal), "
                         "e.g. membrane=True to test on a labelling the model never saw")
    args = ap.parse_args()
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    samples = []
    for seed in range(40_000, 40_000 + args.stacks):
        ph = make_phantom(args.preset, seed=seed, **overrides)
        samples.append(TrainingSample(ph.image, ph.semantic, ph.spacing, f"{args.preset}-{seed}"))
    ph = make_phantom(args.preset, seed=VAL_SEED, **overrides)
    val = [TrainingSample(ph.image, ph.semantic, ph.spacing, "validation")]
    config = TrainConfig(tile_size=128, batch_size=8, steps_per_epoch=20, epochs=100,
                         learning_rate=1.5e-4, lr_constant_epochs=100, loss="deepd3_spine_dice",
                         patience=5, val_patches=32, num_threads=args.threads, max_minutes=args.minutes)
    train(samples, out_dir=args.out, config=config, init=args.model, val_samples=val,
          description=f"fine-tuned on {args.stacks} {args.preset} phantoms")
    torch.set_num_threads(args.threads)
    before = evaluate(args.model, presets=(args.preset,), overrides=overrides)
    after = evaluate(Path(args.out) / "model.json", presets=(args.preset,), classical=False,
                     overrides=overrides)
    result = {"before": before[args.preset], "after": after[args.preset]["neural"]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
