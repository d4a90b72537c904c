"""Training and fine-tuning.

Patches are drawn at random from the training stacks (most centred on a labelled voxel,
spines as often as dendrites), augmented (see :mod:`.augment`), and fed to Adam with DeepD3's
schedule: a constant learning rate for ``lr_constant_epochs`` epochs, then exponential decay
``lr * exp(-lr_decay * (epoch - lr_constant_epochs))``. After every epoch the loss and IoU on
a fixed set of validation patches are computed, a checkpoint is written (weights and
optimiser state, safetensors + JSON: resumable, never pickled), and the best model so far is
saved as ``model.safetensors`` + ``model.json``. Training stops early when the validation loss
has not improved for ``patience`` epochs. Every random choice derives from ``seed`` and the
epoch number, so a run is reproducible and a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..._atomic import atomic_path, ensure_writable_dir
from ..._json import to_json
from ...errors import InputError
from . import architectures, losses
from .augment import AugmentConfig, sample_patch
from .card import ModelCard, load_model, save_model
from .data import UNLABELLED, TrainingSample, head_heatmap
from .bodies import levels_and_bodies
from .normalise import NormaliseConfig, normalise
from .threads import torch_threads


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (defaults: DeepD3's optimiser and schedule, 128 px tiles)."""

    architecture: Any = "lean2d"
    voxel_size_um: tuple[float, float, float] | None = None   # default: median of the data
    tile_size: int = 128
    tile_depth: int = 16                  # 3D models only
    batch_size: int = 16
    steps_per_epoch: int = 50
    epochs: int = 40
    learning_rate: float = 5e-4
    lr_constant_epochs: int = 15
    lr_decay: float = 0.1
    loss: str = "auto"                    # deepd3 | deepd3_spine_dice (dual) | wce | gdl (3D) | points | points_focal
    head_sigma_um: tuple[float, float, float] = (0.75, 0.25, 0.25)   # point head: target Gaussian
    pixel_weight: str | None = "exp"      # wce only: exp | window | None
    consistency_weight: float = 0.0       # > 0: each batch also seen mirrored (flip_consistency)
    r_decay: float = 0.5
    d_max_um: float = 5.0
    foreground_fraction: float = 0.8
    val_fraction: float = 0.2
    val_patches: int = 64
    patience: int = 8
    seed: int = 0
    num_threads: int | None = 2
    max_minutes: float | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    normalisation: NormaliseConfig = field(default_factory=NormaliseConfig)


def train(samples: list[TrainingSample], *, out_dir: str | os.PathLike,
          config: TrainConfig | None = None, init: str | os.PathLike | None = None,
          resume: bool = True, val_samples: list[TrainingSample] | None = None,
          progress=True, description: str = "") -> tuple[torch.nn.Module, ModelCard]:
    """Train a model (or fine-tune ``init``) on annotated stacks; return the best one.

    Parameters
    ----------
    samples : list of TrainingSample
        Annotated stacks (see :func:`load_training_data`).
    out_dir : path
        Folder for ``model.safetensors``/``model.json`` (best so far) and the checkpoint.
    config : TrainConfig
    init : str or path, optional
        A model to start from (shipped name or folder): fine-tuning. Its architecture, voxel
        size and normalisation are kept.
    resume : bool
        Continue from the checkpoint in ``out_dir`` when there is one.
    val_samples : list, optional
        Validation stacks; default: ``val_fraction`` of ``samples`` (or of the one stack's rows).
    progress : bool or callable
        ``True`` shows a progress bar and a line per epoch. A callable is called as
        ``progress(epoch, step, metrics)`` (epoch and step counted from 1) after every training
        step with ``metrics=None``, and after each epoch's validation with its metrics (the
        keys of the model card's ``validation``). It may raise
        :class:`~spinequant.errors.Cancelled` to stop: the best model so far and the checkpoint
        of the last finished epoch stay in ``out_dir`` (a later call resumes there).
    """
    config = config or TrainConfig()
    if not samples:
        raise InputError("No training stacks were given.")
    out = ensure_writable_dir(out_dir)
    with torch_threads(config.num_threads):
        return _train(samples, out, config, init, resume, val_samples, progress, description)


def _train(samples, out, config, init, resume, val_samples, progress, description):
    torch.manual_seed(config.seed)
    if init is not None:
        net, base = load_model(init)
        spec, voxel, norm = base.architecture, base.voxel_size_um, base.normalisation
        if config.loss == "auto":   # fine-tune with the loss the model was trained with
            config = dataclasses.replace(config, loss=base.training.get("config", {}).get("loss", "auto"))
    else:
        spec = architectures.architecture(config.architecture)
        net = architectures.build(spec)
        voxel = config.voxel_size_um or tuple(float(v) for v in np.median([s.spacing for s in samples], axis=0))
        norm = dataclasses.asdict(config.normalisation)
    spec = architectures.architecture(spec)
    if not spec.get("point_head") and any(np.all(s.semantic == UNLABELLED) for s in samples):
        raise InputError(
            "Some training images are annotated with spine points only (no masks), which only a "
            "model with a point head can learn from. Fine-tune the shipped one (--from lean2d_real) "
            "or choose --architecture lean2d_points.")
    if val_samples is None:
        samples, val_samples = split_validation(samples, config.val_fraction)
    sampler = PatchSampler(samples, spec, voxel, norm, config)
    val_x, val_y = PatchSampler(val_samples, spec, voxel, norm, config).fixed_set(
        config.val_patches, np.random.default_rng([config.seed, 10**6]))
    loss_fn = _loss_function(spec, config, voxel)
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    state = {"epoch": 0, "best_val_loss": None, "bad_epochs": 0, "history": []}
    ckpt = out / "checkpoint.json"
    if resume and ckpt.exists():
        state = _load_checkpoint(out, net, opt)
    card = ModelCard(
        name=Path(out).name, architecture=spec, voxel_size_um=tuple(voxel), normalisation=norm,
        tile_size=288 if spec["kind"] == "dual_unet2d" else 128, tile_overlap=32,
        tile_depth=config.tile_depth,
        training={"description": description, "init": str(init) if init else None,
                  "stacks": [s.name for s in samples], "validation_stacks": [s.name for s in val_samples],
                  "config": to_json(dataclasses.asdict(config))})
    started = time.monotonic()
    for epoch in range(state["epoch"], config.epochs):
        lr = config.learning_rate * float(np.exp(-config.lr_decay * max(0, epoch - config.lr_constant_epochs)))
        for g in opt.param_groups:
            g["lr"] = lr
        net.train()
        rng = np.random.default_rng([config.seed, epoch])
        report = progress if callable(progress) else None
        bar = tqdm(range(config.steps_per_epoch), disable=report is not None or not progress, leave=False,
                   desc=f"epoch {epoch + 1}/{config.epochs}", unit="step")
        running = []
        for step in bar:
            x, y = sampler.batch(config.batch_size, rng)
            if config.consistency_weight > 0:
                loss = flip_consistency(net, loss_fn, torch.from_numpy(x), torch.from_numpy(y),
                                        MIRRORS[int(rng.integers(len(MIRRORS)))], config.consistency_weight)
            else:
                loss = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(running[-20:]):.4f}")
            if report is not None:
                report(epoch + 1, step + 1, None)
        metrics = evaluate_patches(net, spec, val_x, val_y, loss_fn)
        metrics.update(epoch=epoch + 1, train_loss=float(np.mean(running)), lr=lr)
        state["history"].append(metrics)
        improved = state["best_val_loss"] is None or metrics["val_loss"] < state["best_val_loss"]
        if improved:
            state["best_val_loss"], state["bad_epochs"] = metrics["val_loss"], 0
            card = dataclasses.replace(card, validation=metrics)
            save_model(net, card, out / "model")
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        _save_checkpoint(out, net, opt, state)
        if report is not None:
            report(epoch + 1, config.steps_per_epoch, metrics)
        elif progress:
            tqdm.write(f"epoch {epoch + 1}: train loss {metrics['train_loss']:.4f}  val loss "
                       f"{metrics['val_loss']:.4f}  dendrite IoU {iou_text(metrics['dendrite_iou'])}  "
                       f"spine IoU {iou_text(metrics['spine_iou'])}" + ("  *" if improved else ""))
        if state["bad_epochs"] >= config.patience:
            break
        if config.max_minutes and time.monotonic() - started > 60 * config.max_minutes:
            break
    return load_model(out / "model.json")


def split_validation(samples: list[TrainingSample], fraction: float):
    """Hold out whole stacks, or the last rows (y) of the only stack."""
    if len(samples) >= 2:
        n_val = max(1, int(round(fraction * len(samples))))
        return samples[:-n_val], samples[-n_val:]
    s = samples[0]
    cut = int(round(s.image.shape[1] * (1 - fraction)))

    def part(sl, tag):
        heads = None
        if s.heads is not None:      # the head points of these rows, in their coordinates
            inside = (s.heads[:, 1] >= (sl.start or 0)) & (s.heads[:, 1] < (sl.stop or s.image.shape[1]))
            heads = s.heads[inside] - np.array([0, sl.start or 0, 0])
        return TrainingSample(s.image[:, sl], s.semantic[:, sl], s.spacing, s.name + tag, heads=heads,
                              weight=s.weight)
    return [part(slice(0, cut), "[train rows]")], [part(slice(cut, None), "[validation rows]")]


def normalised(sample: TrainingSample, norm) -> np.ndarray:
    """``sample``'s image normalised as inference normalises it: at the levels of the voxels
    outside its cell bodies (:func:`.bodies.levels_and_bodies`), so that a training phantom
    with a body shows its dendrites at the contrast the network will see them at."""
    levels, _ = levels_and_bodies(sample.image, norm, spacing=sample.spacing)
    return normalise(sample.image, norm, value_range=levels)


class PatchSampler:
    """Random augmented patches from normalised stacks, for one architecture."""

    def __init__(self, samples, spec, voxel, norm, config: TrainConfig):
        self.spec, self.voxel, self.config = spec, tuple(voxel), config
        self.points = bool(spec.get("point_head"))
        self.images = [normalised(s, norm) for s in samples]
        self.labels = [np.ascontiguousarray(s.semantic, np.uint8) for s in samples]
        self.spacings = [s.spacing for s in samples]
        weights = np.array([s.weight for s in samples], float)
        self.weights = weights / weights.sum()
        self.fg = [[np.flatnonzero(lab == k) for k in (1, 2)] for lab in self.labels]
        # Head maps are targets only where heads were annotated; a sample without them has
        # its head map unknown (NaN), which the loss ignores like unlabelled pixels.
        self.heats = None
        if self.points:
            self.heats = [head_heatmap(lab.shape, s.heads, s.spacing, sigma_um=config.head_sigma_um)
                          if s.heads is not None else np.full(lab.shape, np.nan, np.float32)
                          for s, lab in zip(samples, self.labels)]
            for pools, s, lab in zip(self.fg, samples, self.labels):
                if s.heads is not None and len(s.heads):
                    idx = np.clip(np.round(s.heads).astype(int), 0, np.array(lab.shape) - 1)
                    pools.append(np.ravel_multi_index(tuple(idx.T), lab.shape))
        if spec["kind"] == "unet3d":
            planes = np.arange(config.tile_depth) - (config.tile_depth - 1) / 2.0
            self.img_planes, self.lab_planes = planes, planes
        else:
            k = spec.get("z_context", 0)
            self.img_planes, self.lab_planes = np.arange(-k, k + 1), np.zeros(1)

    def patch(self, rng, augment: AugmentConfig):
        i = int(rng.choice(len(self.images), p=self.weights))
        lab = self.labels[i]
        r = rng.random()
        pools = [p for p in self.fg[i] if p.size]
        if pools and r < self.config.foreground_fraction:
            pool = pools[int(rng.integers(len(pools)))]
            centre = np.unravel_index(pool[int(rng.integers(pool.size))], lab.shape)
        else:
            centre = tuple(int(rng.integers(n)) for n in lab.shape)
        return sample_patch(self.images[i], lab, self.spacings[i], self.voxel, centre=centre,
                            size=self.config.tile_size, image_planes=self.img_planes,
                            label_planes=self.lab_planes, rng=rng, config=augment,
                            target_map=self.heats[i] if self.points else None)

    def batch(self, n, rng, augment: AugmentConfig | None = None):
        augment = self.config.augment if augment is None else augment
        patches = [self.patch(rng, augment) for _ in range(n)]
        x = np.stack([p[0] for p in patches])
        y = np.stack([p[1] for p in patches])
        if self.points:   # (N, 2, T, T) float: semantic labels, head map
            heat = np.stack([p[2] for p in patches])
            return x, np.concatenate([y.astype(np.float32), heat], axis=1)
        if self.spec["kind"] == "unet3d":
            return x[:, None], y.astype(np.int64)
        return x, y[:, 0].astype(np.int64)

    def fixed_set(self, n, rng):
        return self.batch(n, rng, AugmentConfig.off())


#: The in-plane mirrorings a batch is also seen in (last two axes: y, x).
MIRRORS = ((-1,), (-2,), (-2, -1))


def flip_consistency(net, loss_fn, x, y, axes, weight: float):
    """The supervised loss of a batch and of its mirror image (``axes`` flipped, the maps
    flipped back), averaged, plus ``weight`` times their disagreement: one minus the soft Dice
    overlap of the two passes' probabilities, per output map. A network trained with
    rotations and flips still answers differently for an image and its mirror (on dendritic2
    its spines on the two agree at F1 0.88); the term asks it to answer the same."""
    logits = net(x)
    mirrored = torch.flip(net(torch.flip(x, axes)), axes)
    loss = 0.5 * (loss_fn(logits, y) + loss_fn(mirrored, y))
    p, q = torch.sigmoid(logits), torch.sigmoid(mirrored)
    dims = tuple(d for d in range(p.ndim) if d != 1)
    overlap = 2 * (p * q).sum(dims) / ((p * p).sum(dims) + (q * q).sum(dims)).clamp_min(1e-6)
    return loss + weight * (1 - overlap).mean()


def _loss_function(spec, config: TrainConfig, voxel):
    kind = config.loss
    if spec.get("point_head"):
        if kind not in ("auto", "points", "points_focal"):
            raise InputError(f"A model with a point head trains with the 'points' or 'points_focal' "
                             f"loss, not {kind!r}.")
        return losses.points_focal_loss if kind == "points_focal" else losses.points_loss
    if kind == "auto":
        kind = "wce" if spec["kind"] == "unet3d" else "deepd3"
    if kind in ("deepd3", "deepd3_spine_dice"):
        if spec["kind"] == "unet3d":
            raise InputError(f"The {kind} loss needs a dual-decoder model; use wce or gdl for unet3d.")
        return losses.deepd3_loss if kind == "deepd3" else losses.deepd3_spine_dice_loss
    if spec["kind"] != "unet3d":
        raise InputError(f"The {kind} loss needs the 3-class unet3d model; use deepd3 for 2D models.")
    if kind == "gdl":
        return losses.generalised_dice_loss
    if kind != "wce":
        raise InputError(f"Unknown loss '{kind}': choose deepd3, wce or gdl.")

    def wce(logits, y):
        sem = y.numpy()
        wk = losses.class_weights(sem)[sem]
        if config.pixel_weight:
            wk = wk * np.stack([losses.pixel_weights(s, voxel, mode=config.pixel_weight,
                                                     r_decay=config.r_decay, d_max_um=config.d_max_um)
                                for s in sem])
        return losses.weighted_cross_entropy(logits, y, torch.from_numpy(wk.astype(np.float32)))
    return wce


def evaluate_patches(net, spec, x, y, loss_fn, batch: int = 16) -> dict[str, float]:
    """Loss and IoU (threshold 0.5) of dendrite and spine on labelled patches; the IoUs are
    None when no pixel of the patches is labelled (data annotated with spine points only)."""
    net.eval()
    total, inter, union, labelled = 0.0, np.zeros(2), np.zeros(2), 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb, yb = torch.from_numpy(x[i:i + batch]), torch.from_numpy(y[i:i + batch])
            logits = net(xb)
            total += float(loss_fn(logits, yb)) * len(xb)
            pred = architectures.to_probabilities(spec, logits).numpy() > 0.5
            sem = yb.numpy()[:, 0] if spec.get("point_head") else yb.numpy()
            known = sem != UNLABELLED
            labelled += int(known.sum())
            for k in range(2):
                truth = sem == k + 1
                inter[k] += np.logical_and(pred[:, k] & known, truth).sum()
                union[k] += np.logical_or(pred[:, k] & known, truth).sum()
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    if not labelled:
        return {"val_loss": total / len(x), "dendrite_iou": None, "spine_iou": None}
    return {"val_loss": total / len(x), "dendrite_iou": float(iou[0]), "spine_iou": float(iou[1])}


def iou_text(value) -> str:
    """An IoU for a person: "n/a (no masks)" when the validation data had no labelled pixel."""
    return "n/a (no masks)" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _save_checkpoint(out: Path, net, opt, state) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for key, val in st.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(val).contiguous()
    with atomic_path(out / "checkpoint.safetensors") as tmp:
        save_file(tensors, str(tmp))
    meta = {**state, "param_groups": osd["param_groups"]}
    with atomic_path(out / "checkpoint.json") as tmp:
        tmp.write_text(json.dumps(to_json(meta), indent=1))


def _load_checkpoint(out: Path, net, opt) -> dict:
    meta = json.loads((out / "checkpoint.json").read_text())
    tensors = load_file(str(out / "checkpoint.safetensors"))
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    optim_state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            optim_state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": optim_state, "param_groups": meta.pop("param_groups")})
    return meta


