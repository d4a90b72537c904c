"""A cell network on a whole volume: resample to the model's voxel size, normalise, sliding
window inference (MONAI, Gaussian-weighted overlapping tiles, CPU), resample back; then cells
from the probability map by the same seeded split as the classical method."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..segment.neural.card import MODELS_DIR
from ..segment.neural.normalise import normalise
from ..segment.neural.resample import to_input_grid, to_model_grid
from ..segment.neural.threads import torch_threads
from .networks import CELL_ARCHITECTURES, foreground_probability

#: Shipped cell models are ``models/cells_<name>.json`` + ``.safetensors``.
SHIPPED_PREFIX = "cells_"


def shipped_cell_models() -> list[str]:
    """Names of the cell models shipped with spinequant (``--method NAME``)."""
    return sorted(p.stem[len(SHIPPED_PREFIX):] for p in MODELS_DIR.glob(f"{SHIPPED_PREFIX}*.json"))


def resolve_cell_model(method: str | os.PathLike) -> Path:
    """The model card of a shipped cell model's name (e.g. ``segresnet_nuclei``) or of a path
    written by ``spinequant train --cells`` (a folder or .json card). A bare network name
    (``segresnet``, ``swinunetr``, ``wnet3d``) is refused with how to train one."""
    name = str(method)
    shipped = shipped_cell_models()
    if name in shipped:
        return MODELS_DIR / f"{SHIPPED_PREFIX}{name}.json"
    listed = ", ".join(shipped) or "none"
    if name in CELL_ARCHITECTURES:
        raise InputError(
            f"'{name}' is a cell network, not a trained model (shipped cell models: {listed}). Train one on "
            f"phantoms or your labelled volumes with 'spinequant train --cells {name} ...' (or "
            f"scripts/train_cells.py) and pass its folder: --method PATH.")
    path = Path(name)
    if not path.exists():
        raise InputError(f"'{name}' is neither a cell method (classical, or a shipped model: {listed}) nor a "
                         f"model folder or .json card.")
    return path


def cell_probability(image: np.ndarray, spacing, model, *, overlap: float = 0.25, num_threads: int | None = 1,
                     batch_size: int = 1) -> tuple[np.ndarray, dict]:
    """(Z, Y, X) float32 probability that each voxel is in a cell, and what ran (model, card
    fields). ``model`` is a path or name for :func:`resolve_cell_model`, or a loaded (net, card)."""
    from monai.inferers import sliding_window_inference

    from .train import load_cell_model

    if isinstance(model, tuple):
        net, card = model
    else:
        net, card = load_cell_model(resolve_cell_model(model))
    spec = card.architecture
    grid = to_model_grid(np.asarray(image, np.float32), spacing, card.voxel_size_um)
    x = torch.from_numpy(normalise(grid, card.normalisation)[None, None].astype(np.float32))
    roi = (card.tile_depth, card.tile_size, card.tile_size)
    cls = int(spec.get("cell_class", 1))

    def predictor(tile):
        return foreground_probability(spec, net(tile), cls)

    with torch_threads(num_threads), torch.inference_mode():
        prob = sliding_window_inference(x, roi, batch_size, predictor, overlap=overlap, mode="gaussian",
                                        padding_mode="reflect")
    prob = np.asarray(prob[0, 0], np.float32)
    if prob.shape != image.shape:
        prob = to_input_grid(prob, image.shape)
    info = {"model": card.name, "architecture": spec.get("kind"), "sha256": card.sha256,
            "model_voxel_size_um": list(card.voxel_size_um), "tile": list(roi), "overlap": overlap,
            "calibrated_threshold": card.calibration.get("probability_threshold")}
    return np.clip(prob, 0, 1), info
