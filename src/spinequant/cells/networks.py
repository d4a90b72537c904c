"""3D networks for cells: MONAI's SegResNet and SwinUNETR (supervised) and WNet3D (self-supervised).

Small configurations that train on a CPU in minutes. Every network takes (N, 1, Z, Y, X)
normalised intensities; the supervised ones return one foreground logit per voxel, WNet3D its
encoder's class logits (the cell class is recorded in the model card after training).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import InputError

#: Cell architectures by name: the kind and its (CPU-sized) settings.
CELL_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # 8 initial filters, 3 resolutions: 0.18 M parameters (CellSeg3D's default is 16 filters, 4 levels)
    "segresnet": {"kind": "cells_segresnet", "init_filters": 8, "blocks_down": [1, 2, 2], "blocks_up": [1, 1]},
    # feature size 12 (the smallest MONAI allows), one Swin block per stage, 4^3 windows: 3.7 M
    # parameters, most in the bottleneck convolutions (CellSeg3D: feature size 48, 2 blocks per stage)
    "swinunetr": {"kind": "cells_swinunetr", "feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [3, 3, 3, 3],
                  "window_size": 4},
    # 4 base filters, 2 pooling steps per U-Net, 2 classes: 0.04 M parameters, trains in CPU
    # minutes (paper: 64 filters, 3 steps, 2 classes)
    "wnet3d": {"kind": "cells_wnet3d", "n_classes": 2, "base_filters": 4, "depth": 2, "groups": 2},
}
KINDS = {spec["kind"]: name for name, spec in CELL_ARCHITECTURES.items()}


def cell_architecture(name_or_spec: str | dict) -> dict[str, Any]:
    """The full architecture dict of a cell network name or a (partial) dict with a kind."""
    if isinstance(name_or_spec, str):
        if name_or_spec not in CELL_ARCHITECTURES:
            raise InputError(f"Unknown cell network '{name_or_spec}': choose {', '.join(CELL_ARCHITECTURES)}.")
        return dict(CELL_ARCHITECTURES[name_or_spec])
    spec = dict(name_or_spec)
    if spec.get("kind") not in KINDS:
        raise InputError(f"'{spec.get('kind')}' is not a cell network kind ({', '.join(KINDS)}).")
    return {**CELL_ARCHITECTURES[KINDS[spec["kind"]]], **spec}


def build_cell_network(spec: str | dict) -> nn.Module:
    """An untrained cell network (deterministic for a given torch seed)."""
    spec = cell_architecture(spec)
    kind = spec["kind"]
    if kind == "cells_wnet3d":
        from .wnet3d import WNet3D

        return WNet3D(n_classes=spec["n_classes"], base_filters=spec["base_filters"], depth=spec["depth"],
                      groups=spec["groups"])
    try:
        from monai.networks.nets import SegResNet, SwinUNETR
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError("The supervised cell networks need MONAI: pip install 'spinequant[cells]'.") from None
    if kind == "cells_segresnet":
        return SegResNet(spatial_dims=3, in_channels=1, out_channels=1, init_filters=spec["init_filters"],
                         blocks_down=tuple(spec["blocks_down"]), blocks_up=tuple(spec["blocks_up"]))
    return SwinUNETR(in_channels=1, out_channels=1, feature_size=spec["feature_size"], depths=tuple(spec["depths"]),
                     num_heads=tuple(spec["num_heads"]), window_size=spec["window_size"], spatial_dims=3)


def multiple_of(spec: dict) -> int:
    """Patch edges must be a multiple of this (the network's total down-sampling)."""
    spec = cell_architecture(spec)
    if spec["kind"] == "cells_segresnet":
        return 2 ** (len(spec["blocks_down"]) - 1)
    if spec["kind"] == "cells_swinunetr":
        return 32
    return 2 ** spec["depth"]


def foreground_probability(spec: dict, logits: torch.Tensor, cell_class: int = 1) -> torch.Tensor:
    """(N, 1, ...) probability that a voxel belongs to a cell, from a network's logits."""
    if cell_architecture(spec)["kind"] == "cells_wnet3d":
        return torch.softmax(logits, dim=1)[:, cell_class:cell_class + 1]
    return torch.sigmoid(logits)
