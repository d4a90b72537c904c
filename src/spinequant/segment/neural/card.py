"""A model is its weights (safetensors) plus a JSON model card that says how to use them.

The card records the architecture, the voxel size the model was trained at, the intensity
normalisation, the tiling defaults, what it was trained on, its validation metrics and the
sha256 of the weights file. Loading checks the hash and never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._atomic import atomic_path
from ...errors import InputError
from .normalise import NormaliseConfig

if TYPE_CHECKING:
    import torch

#: Shipped models live here as <name>.safetensors + <name>.json.
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
#: The model ``predict`` uses when none is named.
DEFAULT_MODEL = "lean2d_real"


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to run a network besides its weights."""

    name: str
    architecture: dict[str, Any]
    voxel_size_um: tuple[float, float, float]
    normalisation: dict[str, Any] = field(default_factory=lambda: dataclasses.asdict(NormaliseConfig()))
    tile_size: int = 288
    tile_overlap: int = 32
    tile_depth: int = 16
    training: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    spinequant_version: str = ""
    onnx: dict[str, Any] = field(default_factory=dict)   # see onnx_runtime.export_onnx
    # Point-head models: Platt parameters of the detection confidence, the default minimum
    # confidence and how both were measured (see calibration.py, benchmarks/real2d.py).
    calibration: dict[str, Any] = field(default_factory=dict)
    # Point-head 2D models: a 3D head network (``heads3d``) whose head map is averaged with
    # this model's on stacks, ``{"model": name, "weight": its share}`` (see stack_heads.py).
    stack_heads: dict[str, Any] = field(default_factory=dict)
    # What the model is for, where it is known to fall short, and its benchmark results with
    # the command and the spine-object settings behind them (scripts/model_card_notes.py).
    intended_use: str = ""
    limitations: str = ""
    benchmarks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(
                f"The model card has unknown field(s) {unknown} (known: {sorted(known)}). Was it "
                f"written by a newer spinequant? Update spinequant, or remove those fields."
            )
        d["voxel_size_um"] = tuple(float(v) for v in d["voxel_size_um"])
        return cls(**d)


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(model: torch.nn.Module, card: ModelCard, path: str | os.PathLike) -> ModelCard:
    """Write ``<path>.safetensors`` and ``<path>.json`` (``path`` without suffix); return the card
    with the weights' sha256 filled in."""
    from safetensors.torch import save_file

    from ... import __version__

    base = Path(path)
    weights, card_path = base.with_suffix(".safetensors"), base.with_suffix(".json")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "name": card.name})
        digest = sha256_of(tmp)
    card = dataclasses.replace(card, sha256=digest, spinequant_version=__version__)
    with atomic_path(card_path) as tmp:
        tmp.write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return card


def update_card(model: str | os.PathLike, **fields) -> ModelCard:
    """Change fields of a model's card (e.g. its calibration) without rewriting its weights,
    so their sha256 and any ONNX export made from them stay valid."""
    card_path, _ = resolve(model)
    card = dataclasses.replace(read_card(card_path), **fields)
    with atomic_path(card_path) as tmp:
        tmp.write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return card


def resolve(model: str | os.PathLike | None) -> tuple[Path, Path]:
    """(card path, weights path) for a shipped model name, a folder, or a .json/.safetensors."""
    if model is None:
        model = DEFAULT_MODEL
    p = Path(model)
    if p.is_dir():
        cards = sorted(p.glob("*.json"))
        cards = [c for c in cards if c.with_suffix(".safetensors").exists()]
        if p.joinpath("model.json").exists():
            cards = [p / "model.json"]
        if len(cards) != 1:
            raise InputError(
                f"The folder '{p}' should hold one model (a .json card beside a .safetensors "
                f"file of the same name), but {len(cards)} were found. Name the .json file instead."
            )
        p = cards[0]
    elif p.suffix in (".json", ".safetensors") and p.exists():
        p = p.with_suffix(".json")
    elif (MODELS_DIR / f"{model}.json").exists():
        p = MODELS_DIR / f"{model}.json"
    else:
        shipped = sorted(c.stem for c in MODELS_DIR.glob("*.json"))
        raise InputError(
            f"No model '{model}' was found: it is neither a shipped model "
            f"({', '.join(shipped) or 'none installed'}) nor a model folder or .json card. "
            f"Give a shipped name or the path written by 'spinequant train'."
        )
    weights = p.with_suffix(".safetensors")
    if not p.exists() or not weights.exists():
        raise InputError(f"The model card '{p}' needs its weights '{weights}' beside it; one is missing.")
    return p, weights


def read_card(model: str | os.PathLike | None = None) -> ModelCard:
    """The model card of a shipped name, folder or card path (the weights are not read)."""
    card_path, _ = resolve(model)
    try:
        return ModelCard.from_dict(json.loads(card_path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"The model card '{card_path}' is not valid ({exc}); re-export the model.") from None


def load_model(model: str | os.PathLike | None = None, *, build=None) -> tuple[torch.nn.Module, ModelCard]:
    """Load a network in eval mode and its card; raise :class:`InputError` if the weights'
    sha256 does not match the card (a damaged or replaced file). ``build`` makes the network
    from the card's architecture dict (default: the spine networks' ``architectures.build``)."""
    from safetensors.torch import load_file

    from . import architectures

    _, weights = resolve(model)
    card = read_card(model)
    digest = sha256_of(weights)
    if card.sha256 and digest != card.sha256:
        raise InputError(
            f"The weights '{weights}' do not match their model card: sha256 {digest[:12]}... "
            f"but the card records {card.sha256[:12]}.... The file is damaged or was replaced; "
            f"reinstall spinequant or copy the model again."
        )
    net = (build or architectures.build)(card.architecture)
    state = load_file(str(weights))  # safetensors: tensors only, no pickle
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"The weights '{weights}' do not fit the architecture in the card: {exc}") from None
    return net.eval(), card


def available_models() -> list[str]:
    """Names of the models shipped with spinequant."""
    return sorted(c.stem for c in MODELS_DIR.glob("*.json") if c.with_suffix(".safetensors").exists())
