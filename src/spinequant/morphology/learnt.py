"""Spine types learnt from expert-typed 2D outlines (``rule_set="learnt"``).

A small classifier on the columns of a 2D spine table, fitted to the spine outlines of the
spine_types set (Dendritic-Spine-Analyzer-YOLO11 by Meng-De-Gong, MIT) by
``scripts/train_type_classifier.py``. The model is a JSON file in ``spinequant/models``: the
features' names, their standardisation (mean, scale) and dense layers (weights, biases; tanh
between layers, none after the last, so one layer is a multinomial logistic regression), with
a model card and the sha256 of its parameters, which is checked when it is read. No pickle.

The model saw 2D measurements only (lengths and widths in the plane, areas): a 3D table is
typed by the ``neuronstudio`` rules (:func:`~spinequant.morphology.classify_spines`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

#: The shipped model (see its ``model_card``).
MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "spine_types_2d.json"


def _log(values) -> np.ndarray:
    return np.log(np.maximum(np.asarray(values, float), 1e-3))


def _column(table: pd.DataFrame, name: str) -> np.ndarray:
    if name not in table:
        raise InputError(f"The learnt spine type model needs the column {name!r} of a 2D spine "
                         f"table (measure_spines on a 2D image); this table has {list(table.columns)}.")
    return table[name].to_numpy(float)


def type_features(table: pd.DataFrame) -> pd.DataFrame:
    """The learnt model's inputs, from a 2D spine table (one row per spine).

    Sizes enter as logarithms; a spine without a measured neck has ``neck_found`` 0, its
    head/neck ratios 1 (log 0) and its neck as wide as its head. ``straightness`` is the
    tip's distance from the dendrite over the spine's length.
    """
    area, perimeter = _column(table, "area_um2"), _column(table, "perimeter_um")
    length, head = _column(table, "length_um"), _column(table, "head_diameter_um")
    ratio = _column(table, "head_neck_ratio")
    neck_min = _column(table, "neck_min_diameter_um")
    tip = np.nan_to_num(_column(table, "tip_distance_um"), nan=0.0)
    n_heads = table["n_heads"].to_numpy(float) if "n_heads" in table else np.ones(len(table))
    found = np.isfinite(ratio)
    return pd.DataFrame({
        "log_area": _log(area), "log_perimeter": _log(perimeter), "log_length": _log(length),
        "log_head": _log(head), "head_share": _column(table, "head_area_um2") / np.maximum(area, 1e-9),
        "circularity": 4 * np.pi * area / np.maximum(perimeter, 1e-9) ** 2,
        "log_length_to_head": _log(length) - _log(head),
        "neck_length": _column(table, "neck_length_um"), "neck_found": found.astype(float),
        "log_head_neck_ratio": np.where(found, _log(ratio), 0.0),
        "log_head_to_neck_min": np.where(found, _log(head) - _log(neck_min), 0.0),
        "log_tip_distance": np.log(tip + 0.05), "several_heads": (n_heads >= 2).astype(float),
        "straightness": tip / np.maximum(length, 1e-9),
        "log_neck_mean": _log(np.where(found, _column(table, "neck_mean_diameter_um"), head)),
        "log_head_area": _log(_column(table, "head_area_um2")),
    }, index=table.index)


@dataclass(frozen=True)
class TypeModel:
    """A classifier read from JSON: standardise, then dense layers with tanh between."""

    classes: tuple[str, ...]
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]   # (weights (n_in, n_out), bias (n_out,))
    card: dict

    def probabilities(self, features: pd.DataFrame) -> np.ndarray:
        x = (features[list(self.features)].to_numpy(float) - self.mean) / self.scale
        # A value that could not be measured reads as the training set's mean.
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        for k, (weights, bias) in enumerate(self.layers):
            x = x @ weights + bias
            if k < len(self.layers) - 1:
                x = np.tanh(x)
        x = x - x.max(axis=1, keepdims=True)
        p = np.exp(x)
        return p / p.sum(axis=1, keepdims=True)


def parameters_sha256(params: dict) -> str:
    """sha256 of the model's parameters (classes, features, standardisation, layers), written
    as canonical JSON: the model card records it and :func:`load_type_model` checks it."""
    keys = ("classes", "features", "mean", "scale", "layers")
    text = json.dumps({k: params[k] for k in keys}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@lru_cache(maxsize=4)
def load_type_model(path: str | Path = MODEL_PATH) -> TypeModel:
    """Read a type model from JSON and check its parameters against the card's sha256."""
    params = json.loads(Path(path).read_text())
    expected = params.get("model_card", {}).get("parameters_sha256")
    if expected != parameters_sha256(params):
        raise InputError(f"The spine type model {path} does not match the sha256 in its model card; "
                         f"the file is damaged or was edited by hand. Re-run "
                         f"scripts/train_type_classifier.py.")
    return TypeModel(
        classes=tuple(params["classes"]), features=tuple(params["features"]),
        mean=np.asarray(params["mean"], float), scale=np.asarray(params["scale"], float),
        layers=tuple((np.asarray(w, float), np.asarray(b, float)) for w, b in params["layers"]),
        card=params["model_card"],
    )


def classify_learnt(table: pd.DataFrame, model: TypeModel | None = None, *,
                    filopodia_max_head_um: float | None = None):
    """Types of a 2D spine table by the learnt model, and the deciding "rule" (the model and
    its probability for the chosen type).

    ``filopodia_max_head_um``: the published rule sets' wide-head guard, applied here too: a
    spine whose head is at least this wide is never a filopodium (it takes the model's most
    probable other type). A head seen apart from its faint neck measures long and headless,
    which the model, trained on 26 filopodia, would otherwise call a filopodium.

    Returns
    -------
    types, rules : two lists of str, as :func:`~spinequant.morphology.classify_spines`.
    """
    model = model or load_type_model()
    if not len(table):
        return [], []
    p = model.probabilities(type_features(table))
    guarded = np.zeros(len(table), bool)
    if filopodia_max_head_um is not None and "filopodia" in model.classes:
        head = table["head_diameter_um"].to_numpy(float)
        guarded = np.nan_to_num(head, nan=0.0) >= filopodia_max_head_um
        p = p.copy()
        p[guarded, model.classes.index("filopodia")] = -1.0
    best = p.argmax(axis=1)
    types = [model.classes[k] for k in best]
    rules = [f"learnt: p = {p[i, k]:.2f}" + (f"; head >= {filopodia_max_head_um:g} um, not filopodia"
                                               if guarded[i] else "")
             for i, k in enumerate(best)]
    return types, rules
