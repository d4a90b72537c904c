"""Training the cell networks on volumes: supervised (Dice + focal loss on cell masks) or, for
WNet3D, self-supervised (SoftNCuts + reconstruction, no labels).

Shared with the spine trainer (:mod:`spinequant.segment.neural.train`): the patch sampler
and augmentation (``augment.sample_patch``: rotation, flips, resolution jitter, contrast,
gamma, blur, noise), the percentile normalisation, the thread limit, the resumable
safetensors checkpoint and the model card (weights as safetensors, sha256 in the card, no
pickle). Every random choice derives from ``seed`` and the epoch, so a run is reproducible.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from skimage.filters import threshold_otsu

from .._atomic import ensure_writable_dir
from .._json import to_json
from ..config import check_fields
from ..errors import InputError
from ..segment.neural.augment import AugmentConfig, sample_patch
from ..segment.neural.card import ModelCard, load_model, save_model
from ..segment.neural.normalise import NormaliseConfig, normalise
from ..segment.neural.sample import TrainingSample
from ..segment.neural.threads import torch_threads
from ..segment.neural.train import _load_checkpoint, _save_checkpoint
from .networks import build_cell_network, cell_architecture, foreground_probability, multiple_of
from .wnet3d import foreground_class, intensity_0_100, soft_ncut_loss

LOSSES = ("dicefocal", "wnet")


@dataclass(frozen=True)
class CellTrainConfig:
    """Training settings of a cell network (defaults sized for a CPU: minutes, not hours).

    ``tile_depth`` x ``tile_size`` x ``tile_size`` voxel patches at the model's voxel size;
    ``loss`` ``dicefocal`` (supervised; MONAI's DiceFocalLoss) or ``wnet`` (WNet3D: SoftNCuts
    on the class map, ``ncut_radius``/``ncut_sigma_intensity``/``ncut_sigma_spatial`` on the
    volume's percentile range mapped to [0, 100] (CellSeg3D remaps each volume to [0, 100]),
    plus ``reconstruction_weight`` x MSE of the reconstruction on the same scale).
    ``learning_rate`` None: 1e-3 for the supervised networks, 1e-2 for WNet3D.

    WNet3D's settings were chosen on the nuclei_lightsheet phantoms seeds 10-14
    (``python benchmarks/cells.py --wnet-settings``, docs/cells.md): radius 2 and spatial
    sigma 4 are the paper's; intensity sigma 5 instead of the paper's 1 (the phantoms' noise
    within a cell is several units on that scale; 5 and 10 learn the cells, Dice 0.80 and 0.82
    after 150 steps, 20 splits broad regions, 0.10); the reconstruction weight 5e-4 and learning
    rate 1e-2 (paper: 5e-3 to 5e-1 and 2e-5 to 2e-3) let the class map commit to two classes
    within CPU minutes: with 5e-3 and 1e-3 it stayed soft (background at 0.31 after 150 steps)
    and its Otsu cut reached Dice 0.55.
    """

    architecture: str | dict = "segresnet"
    voxel_size_um: tuple[float, float, float] | None = None   # default: median of the data
    tile_size: int = 64
    tile_depth: int = 32
    batch_size: int = 2
    steps_per_epoch: int = 20
    epochs: int = 20
    learning_rate: float | None = None
    loss: str = "auto"
    ncut_weight: float = 0.5
    reconstruction_weight: float = 5e-4
    ncut_radius: int = 2
    ncut_sigma_intensity: float = 5.0
    ncut_sigma_spatial: float = 4.0
    foreground_fraction: float = 0.5
    val_patches: int = 8
    patience: int = 6
    seed: int = 0
    num_threads: int | None = 1
    max_minutes: float | None = None
    augment: AugmentConfig | None = None     # None: see augmentation()
    normalisation: NormaliseConfig = field(default_factory=NormaliseConfig)

    def __post_init__(self):
        check_fields(self, ranges={"tile_size": (1, None, False, False), "tile_depth": (1, None, False, False),
                                   "batch_size": (1, None, False, False), "epochs": (1, None, False, False)})
        if self.loss not in ("auto", *LOSSES):
            raise InputError(f"Unknown cell training loss '{self.loss}': choose auto, {', '.join(LOSSES)}.")


def augmentation(config: CellTrainConfig, loss: str) -> AugmentConfig:
    """The configured augmentation, or by default: for the supervised networks the spine
    models' (rotation, flips, contrast, gamma, blur, noise; no z stretch, pixel size x/÷ 1.15);
    for WNet3D only rotations and flips, as in CellSeg3D (its loss compares intensities, which
    the contrast and noise changes would alter)."""
    if config.augment is not None:
        return config.augment
    if loss == "wnet":
        return dataclasses.replace(AugmentConfig.off(), rotate=True, flip=True)
    return AugmentConfig(z_stretch=1.0, scale_jitter=1.15)


def cell_samples(volumes, spacing, labels=None, names=None) -> list[TrainingSample]:
    """Training samples from (Z, Y, X) volumes and, for supervised training, their cell labels
    (any instance or binary labels: > 0 is a cell). Without labels the masks are empty (WNet3D)."""
    out = []
    for i, image in enumerate(volumes):
        lab = labels[i] if labels is not None else None
        if lab is not None and np.shape(lab) != np.shape(image):
            raise InputError(f"Cell labels {np.shape(lab)} and volume {np.shape(image)} differ in shape.")
        sem = (np.asarray(lab) > 0).astype(np.uint8) if lab is not None else np.zeros(np.shape(image), np.uint8)
        out.append(TrainingSample(np.asarray(image), sem, tuple(float(v) for v in spacing),
                                  names[i] if names else f"volume {i}"))
    return out


def load_cell_volumes(folder, *, voxel_size=None, labels: bool = True) -> list[TrainingSample]:
    """Training volumes from ``folder``: one sub-folder per volume holding ``image.tif`` and, for
    supervised training, ``labels_cells.tif`` (the layout ``spinequant synth --preset nuclei_*``
    and ``spinequant cells`` write). With ``labels=False`` (WNet3D) only the images are read."""
    from ..io import read_stack

    root = Path(folder)
    images = sorted(root.glob("*/image.tif")) or sorted(root.glob("image.tif"))
    if not images:
        raise InputError(f"No '*/image.tif' volumes were found in '{root}'. Put each training volume in its own "
                         f"sub-folder as image.tif (with labels_cells.tif for SegResNet and SwinUNETR).")
    samples = []
    for path in images:
        stack = read_stack(path, voxel_size=voxel_size)
        if stack.data.ndim != 3:
            raise InputError(f"'{path}' is not one 3D volume (shape {stack.data.shape}).")
        lab = None
        if labels:
            lab_path = path.with_name("labels_cells.tif")
            if not lab_path.exists():
                raise InputError(f"'{lab_path}' is missing: supervised cell training needs labels beside every "
                                 f"image (WNet3D learns without: --cells wnet3d).")
            lab = read_stack(lab_path, voxel_size=voxel_size or stack.spacing, check_values=False).data
        samples += cell_samples([stack.data], stack.spacing, labels=None if lab is None else [lab],
                                names=[str(path.parent.name)])
    return samples


def train_cell_model(samples: list[TrainingSample], *, out_dir, config: CellTrainConfig | None = None,
                     val_samples: list[TrainingSample] | None = None, resume: bool = True,
                     progress: bool = False, description: str = ""):
    """Train a cell network; write the best model to ``out_dir/model.safetensors`` + ``model.json``
    (and a resumable checkpoint) and return (network, card)."""
    config = config or CellTrainConfig()
    if not samples:
        raise InputError("No training volumes were given.")
    spec = cell_architecture(config.architecture)
    loss = config.loss if config.loss != "auto" else ("wnet" if spec["kind"] == "cells_wnet3d" else "dicefocal")
    if (loss == "wnet") != (spec["kind"] == "cells_wnet3d"):
        raise InputError("WNet3D trains with the 'wnet' loss (no labels); SegResNet and SwinUNETR with 'dicefocal'.")
    k = multiple_of(spec)
    if config.tile_size % k or config.tile_depth % k:
        raise InputError(f"{spec['kind']} needs patch edges that are multiples of {k}; "
                         f"got {config.tile_depth} x {config.tile_size}.")
    if loss == "dicefocal" and not any(s.semantic.any() for s in samples):
        raise InputError("Supervised cell training needs labels with cells in them; WNet3D learns without.")
    out = ensure_writable_dir(out_dir)
    with torch_threads(config.num_threads):
        return _train(samples, val_samples, out, config, spec, loss, resume, progress, description)


class _Patches:
    def __init__(self, samples, voxel, norm, config: CellTrainConfig):
        self.config, self.voxel = config, voxel
        self.images = [normalise(s.image, norm) for s in samples]
        self.labels = [s.semantic for s in samples]
        self.spacings = [s.spacing for s in samples]
        self.cells = [np.flatnonzero(s.semantic) for s in samples]
        self.planes = np.arange(config.tile_depth) - (config.tile_depth - 1) / 2.0

    def batch(self, n, rng, augment):
        xs, ys = [], []
        for _ in range(n):
            i = int(rng.integers(len(self.images)))
            shape = self.images[i].shape
            if self.cells[i].size and rng.random() < self.config.foreground_fraction:
                centre = np.unravel_index(self.cells[i][int(rng.integers(self.cells[i].size))], shape)
            else:
                centre = tuple(int(rng.integers(s)) for s in shape)
            x, y = sample_patch(self.images[i], self.labels[i], self.spacings[i], self.voxel, centre=centre,
                                size=self.config.tile_size, image_planes=self.planes, label_planes=self.planes,
                                rng=rng, config=augment)
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None].astype(np.float32))


def wnet_losses(net, x, config: CellTrainConfig):
    """(total, SoftNCuts, reconstruction MSE) of a WNet3D on a batch of normalised patches."""
    probs, recon = net.forward_train(x)
    image = intensity_0_100(x)
    ncut = soft_ncut_loss(probs, image, radius=config.ncut_radius, sigma_intensity=config.ncut_sigma_intensity,
                          sigma_spatial=config.ncut_sigma_spatial)
    rec = torch.mean((intensity_0_100(recon) - image) ** 2)
    return config.ncut_weight * ncut + config.reconstruction_weight * rec, ncut, rec


def _train(samples, val_samples, out: Path, config, spec, loss_name, resume, progress, description):
    from monai.losses import DiceFocalLoss

    torch.manual_seed(config.seed)
    net = build_cell_network(spec)
    voxel = config.voxel_size_um or tuple(float(v) for v in np.median([s.spacing for s in samples], axis=0))
    norm = dataclasses.asdict(config.normalisation)
    if val_samples is None:
        val_samples = samples
    train_p, val_p = _Patches(samples, voxel, norm, config), _Patches(val_samples, voxel, norm, config)
    val_x, val_y = val_p.batch(config.val_patches, np.random.default_rng([config.seed, 10**6]), AugmentConfig.off())
    dicefocal = DiceFocalLoss(sigmoid=True)
    wnet = loss_name == "wnet"
    augment = augmentation(config, loss_name)

    def step_loss(x, y):
        return wnet_losses(net, x, config)[0] if wnet else dicefocal(net(x), y)

    lr = config.learning_rate or (1e-2 if wnet else 1e-3)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    state = {"epoch": 0, "best_val_loss": None, "bad_epochs": 0, "history": []}
    if resume and (out / "checkpoint.json").exists():
        state = _load_checkpoint(out, net, opt)
    card = ModelCard(
        name=out.name, architecture=spec, voxel_size_um=tuple(voxel), normalisation=norm,
        tile_size=config.tile_size, tile_overlap=config.tile_size // 4, tile_depth=config.tile_depth,
        training={"description": description, "loss": loss_name, "labels_used": not wnet,
                  "volumes": [s.name for s in samples], "validation_volumes": [s.name for s in val_samples],
                  "config": to_json(dataclasses.asdict(config))},
        intended_use="Cells or nuclei in 3D fluorescence volumes (spinequant cells --method PATH): the "
                     "foreground probability; instances by spinequant's seeded Voronoi split.",
        limitations="Trained on spinequant's cell phantoms only (ellipsoids); not validated on real data.")
    started = time.monotonic()
    for epoch in range(state["epoch"], config.epochs):
        net.train()
        rng = np.random.default_rng([config.seed, epoch])
        running = []
        for _ in range(config.steps_per_epoch):
            x, y = train_p.batch(config.batch_size, rng, augment)
            loss = step_loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running.append(float(loss.detach()))
        metrics = _validate(net, spec, val_x, val_y, step_loss, wnet)
        metrics.update(epoch=epoch + 1, train_loss=float(np.mean(running)), minutes=(time.monotonic() - started) / 60)
        state["history"].append(metrics)
        improved = state["best_val_loss"] is None or metrics["val_loss"] < state["best_val_loss"]
        if improved:
            state["best_val_loss"], state["bad_epochs"] = metrics["val_loss"], 0
            arch = {**spec, "cell_class": metrics["cell_class"]} if wnet else spec
            card = dataclasses.replace(card, architecture=arch, validation=metrics)
            save_model(net, card, out / "model")
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        _save_checkpoint(out, net, opt, state)
        if progress:
            print(f"epoch {epoch + 1}: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                                                      if isinstance(v, float)), flush=True)
        if state["bad_epochs"] >= config.patience:
            break
        if config.max_minutes and time.monotonic() - started > 60 * config.max_minutes:
            break
    return load_cell_model(out / "model.json")


def _validate(net, spec, x, y, step_loss, wnet) -> dict:
    """Validation loss; for supervised models the Dice of the mask at 0.5 (for WNet3D too, when
    the validation patches have labels: it is never used for training or model choice)."""
    net.eval()
    with torch.inference_mode():
        loss = float(step_loss(x, y))
        logits = net(x)
        cls = 1
        if wnet:
            cls = foreground_class(torch.softmax(logits, dim=1), intensity_0_100(x))
        prob = foreground_probability(spec, logits, cls)
        # WNet3D's class map is thresholded by Otsu at inference (cells_from_probability)
        level = float(threshold_otsu(prob.numpy())) if wnet else 0.5
        pred = prob > level
    truth = y > 0.5
    inter, total = float((pred & truth).sum()), float(pred.sum() + truth.sum())
    dice = 2 * inter / total if total else 1.0
    return {"val_loss": loss, "val_dice": dice, "cell_class": cls}


def load_cell_model(model: str | os.PathLike):
    """A trained cell network in eval mode and its card (sha256 checked, no pickle)."""
    return load_model(model, build=build_cell_network)
