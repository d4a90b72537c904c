"""Train the cell networks on cell phantoms (CPU, minutes): SegResNet and SwinUNETR with the
phantoms' labels (Dice + focal loss), WNet3D on the same volumes without labels.

Training volumes: ``nuclei_lightsheet`` phantoms seeds 10-13 (40 x 128 x 128 voxels of
4 x 2 x 2 µm); validation: seed 14 (only for choosing the best epoch: the validation loss,
never its labels for WNet3D). The benchmark (benchmarks/cells.py --networks) uses seeds 100-102.

Usage:
    OMP_NUM_THREADS=1 nice -n 10 python scripts/train_cells.py segresnet --minutes 5 --out models_cells/segresnet
    OMP_NUM_THREADS=1 nice -n 10 python scripts/train_cells.py swinunetr --minutes 6 --out models_cells/swinunetr
    OMP_NUM_THREADS=1 nice -n 10 python scripts/train_cells.py wnet3d --minutes 5 --out models_cells/wnet3d
    # WNet3D needs no labels, so it can also learn the real bundled volume itself:
    OMP_NUM_THREADS=1 nice -n 10 python scripts/train_cells.py wnet3d --preset sample-cells --minutes 3 --out wnet_c5
"""

from __future__ import annotations

import argparse
import json
import time

from spinequant.cells.networks import CELL_ARCHITECTURES
from spinequant.cells.train import CellTrainConfig, cell_samples, train_cell_model
from spinequant.synth.cells import make_cell_phantom

TRAIN_SEEDS = (10, 11, 12, 13)
VAL_SEED = 14


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("network", choices=list(CELL_ARCHITECTURES))
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--preset", default="nuclei_lightsheet")
    args = parser.parse_args(argv)
    if args.preset == "sample-cells":
        if args.network != "wnet3d":
            parser.error("the bundled sample has no labels: only wnet3d trains on it")
        from spinequant.data import cells_sample_path
        from spinequant.io import read_stack

        stack = read_stack(cells_sample_path())
        samples = cell_samples([stack.data], stack.spacing, names=["sample-cells (CellSeg3D c5image)"])
        config = CellTrainConfig(architecture="wnet3d", epochs=args.epochs, steps_per_epoch=args.steps,
                                 learning_rate=args.lr, max_minutes=args.minutes, patience=args.epochs)
        _, card = train_cell_model(samples, out_dir=args.out, config=config, progress=True,
                                   description=f"wnet3d on the bundled sample-cells volume (no labels), "
                                               f"scripts/train_cells.py --minutes {args.minutes}")
        print(json.dumps({"network": "wnet3d", "validation": card.validation, "sha256": card.sha256}))
        return
    phantoms = [make_cell_phantom(args.preset, seed=s) for s in TRAIN_SEEDS]
    val = make_cell_phantom(args.preset, seed=VAL_SEED)
    supervised = args.network != "wnet3d"
    names = [f"{args.preset} seed {s}" for s in TRAIN_SEEDS]
    samples = cell_samples([p.image for p in phantoms], phantoms[0].spacing,
                           labels=[p.labels for p in phantoms] if supervised else None, names=names)
    # WNet3D's validation patches carry labels only to report a Dice; its loss ignores them
    val_samples = cell_samples([val.image], val.spacing, labels=[val.labels], names=[f"{args.preset} seed {VAL_SEED}"])
    config = CellTrainConfig(architecture=args.network, epochs=args.epochs, steps_per_epoch=args.steps,
                             learning_rate=args.lr, max_minutes=args.minutes, patience=args.epochs)
    t = time.perf_counter()
    _, card = train_cell_model(samples, out_dir=args.out, config=config, val_samples=val_samples, progress=True,
                               description=f"{args.network} on {len(samples)} {args.preset} phantoms "
                                           f"({'with' if supervised else 'without'} labels), "
                                           f"scripts/train_cells.py --minutes {args.minutes}")
    print(json.dumps({"network": args.network, "minutes": (time.perf_counter() - t) / 60,
                      "validation": card.validation, "sha256": card.sha256}))


if __name__ == "__main__":
    main()
