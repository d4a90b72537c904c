"""``spinequant train DATA_DIR --out MODEL_DIR``: train or fine-tune a segmentation network."""

from __future__ import annotations

from dataclasses import replace

from ..pipeline.training import train_model
from ..segment.neural import TrainConfig, load_training_data
from ..segment.neural.train import iou_text
from ..segment.neural.architectures import PRESETS


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train or fine-tune a neural segmentation model on annotated stacks",
        description="Train a network on annotated stacks (image.tif + labels_semantic.tif with 0 "
                    "background, 1 dendrite, 2 spine, one sub-folder per stack; or 2D images in "
                    "DATA_DIR/images with YOLO boxes or polygons in DATA_DIR/labels), or fine-tune a "
                    "shipped model with --from. The best model is written to MODEL_DIR as "
                    "model.safetensors + model.json; use it with 'analyze --method MODEL_DIR'. "
                    "Running the same command again resumes from MODEL_DIR's checkpoint.")
    p.add_argument("data_dir", help="folder with the annotated stacks")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the model and checkpoints")
    p.add_argument("--from", dest="init", metavar="MODEL",
                   help="start from this model (shipped name or folder): fine-tuning")
    p.add_argument("--architecture", default="lean2d", choices=sorted(PRESETS),
                   help="network to train from scratch (default lean2d; ignored with --from)")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs,
                   help=f"most epochs to train (default {TrainConfig.epochs}; training stops earlier "
                        f"when the validation loss stops improving)")
    p.add_argument("--steps-per-epoch", type=int, default=TrainConfig.steps_per_epoch,
                   help=f"batches per epoch (default {TrainConfig.steps_per_epoch})")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                   help=f"patches per batch (default {TrainConfig.batch_size})")
    p.add_argument("--tile-size", type=int, default=TrainConfig.tile_size, help="patch edge in pixels")
    p.add_argument("--learning-rate", type=float, default=None,
                   help=f"Adam learning rate (default {TrainConfig.learning_rate:g}, a tenth of it with --from)")
    p.add_argument("--loss", default="auto", choices=["auto", "deepd3", "deepd3_spine_dice", "wce", "gdl", "points"],
                   help="auto: the base model's loss with --from, else deepd3 (2D) or wce (unet3d)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of patch sampling, augmentation and initial weights (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for training (default 2)")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    p.add_argument("--voxel-size", nargs="+", type=float, metavar="SIZE",
                   help="voxel size in µm of all stacks (Z Y X), or pixel size of 2D images (Y X), "
                        "overriding their metadata")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if MODEL_DIR has a checkpoint")
    p.add_argument("--cells", default=None, choices=["segresnet", "swinunetr", "wnet3d"],
                   help="train a 3D cell network instead (docs/cells.md): DATA_DIR holds one sub-folder per volume "
                        "with image.tif and labels_cells.tif (WNet3D: image.tif only, no labels); use the result "
                        "with 'spinequant cells STACK --method MODEL_DIR'")
    p.set_defaults(func=run)


def _run_cells(args) -> int:
    from ..cells.train import CellTrainConfig, load_cell_volumes, train_cell_model

    samples = load_cell_volumes(args.data_dir, voxel_size=args.voxel_size, labels=args.cells != "wnet3d")
    config = CellTrainConfig(architecture=args.cells, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                             learning_rate=args.learning_rate, seed=args.seed,
                             num_threads=args.threads, max_minutes=args.max_minutes)
    print(f"training {args.cells} on {len(samples)} volume(s) from {args.data_dir}")
    _, card = train_cell_model(samples, out_dir=args.out, config=config, resume=not args.no_resume, progress=True,
                               description=f"spinequant train --cells {args.cells} {args.data_dir}")
    v = card.validation
    print(f"best model (epoch {v.get('epoch')}): validation loss {v.get('val_loss', float('nan')):.4f}, "
          f"Dice {v.get('val_dice', float('nan')):.3f}; written to {args.out}/model.safetensors and model.json")
    return 0


def run(args) -> int:
    if args.cells:
        return _run_cells(args)
    samples = load_training_data(args.data_dir, voxel_size=args.voxel_size)
    lr = args.learning_rate or (TrainConfig.learning_rate / 10 if args.init else TrainConfig.learning_rate)
    config = replace(TrainConfig(), architecture=args.architecture, epochs=args.epochs,
                     steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                     tile_size=args.tile_size, learning_rate=lr, seed=args.seed,
                     num_threads=args.threads, max_minutes=args.max_minutes, loss=args.loss)
    print(f"training on {len(samples)} stack(s) from {args.data_dir}"
          + (f", fine-tuning {args.init}" if args.init else f", architecture {args.architecture}"))
    trained = train_model(samples, out_dir=args.out, config=config, init=args.init,
                          resume=not args.no_resume, description=f"spinequant train {args.data_dir}")
    v = trained.card.validation
    print(f"best model (epoch {v.get('epoch')}): validation loss {v.get('val_loss', float('nan')):.4f}, "
          f"dendrite IoU {iou_text(v.get('dendrite_iou'))}, spine IoU {iou_text(v.get('spine_iou'))}")
    if trained.summary():
        print(trained.summary())
    print(f"written to {args.out}/model.safetensors and model.json")
    return 0
