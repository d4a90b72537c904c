"""Choose between a training run's best-validation-loss model and its last epoch by spine
detection on validation images (not the benchmark's).

    .venv/bin/python scripts/choose_epoch.py work/models/lean2d_real

Writes the last epoch (from the run's checkpoint) as ``<run>-last/model.*`` and prints the
detection precision, recall and F1 of both on dendritic2 validation images that are
near-copies of training images (every sixth of them; the benchmark reports only the distinct
ones), at head-map thresholds 0.2, 0.3 and 0.4. The validation loss mixes the dendrite, spine
and head terms; detection is what the model is for.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "benchmarks")]

import real2d  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
import train_real_models  # noqa: E402
from train_real_models import REAL2D, dendritic2, dendritic2_pixel_um  # noqa: E402

from spinequant.segment.neural import load_model, save_model  # noqa: E402


def last_epoch(run: Path) -> Path:
    net, card = load_model(run / "model.json")
    tensors = load_file(str(run / "checkpoint.safetensors"))
    net.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    history = json.loads((run / "checkpoint.json").read_text())["history"]
    out = run.with_name(run.name + "-last")
    out.mkdir(exist_ok=True)
    save_model(net, dataclasses.replace(card, validation=history[-1]), out / "model")
    return out / "model.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="the training run's folder")
    ap.add_argument("--dendritic2-um", type=float, default=train_real_models.DENDRITIC2_UM,
                    help="pixel size (µm) dendritic2's fields are read at (as the run was trained)")
    args = ap.parse_args()
    train_real_models.set_dendritic2_um(args.dendritic2_um)
    distinct = set((REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split())
    names = sorted(p.name for p in (REAL2D / "dendritic2" / "valid" / "images").glob("*.jpg")
                   if p.name not in distinct)[1::6]
    images = [real2d.Image2D(s.name, s.image[0], dendritic2_pixel_um(s.name), s.heads[:, 1:], None)
              for s in dendritic2("valid", names=set(names))]
    for model in (args.run / "model.json", last_epoch(args.run)):
        for threshold in (0.2, 0.3, 0.4):
            row = real2d.score({"near-copies": images}, str(model), 1.0, raw_threshold=threshold)[0][0]
            print(f"{model}  threshold {threshold}: {len(images)} images, precision {row['precision']:.3f}, "
                  f"recall {row['recall']:.3f}, F1 {row['f1']:.3f}", flush=True)


if __name__ == "__main__":
    main()
