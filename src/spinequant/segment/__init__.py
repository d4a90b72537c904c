"""Semantic segmentation: dendrite and spine maps in [0, 1] from a stack.

Every method returns the same pair of float32 maps (dendrite, spine) with the image's shape,
so that spine objects, measurements and exports are shared by all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLASSICAL = "classical"


@dataclass
class SegmentMaps:
    """The maps a method made: dendrite and spine probabilities in [0, 1] and, for networks
    with a point head, the map of spine-head centres (else ``None``); diagnostics are the
    numbers the method chose from the data, saved with the run."""

    dendrite: np.ndarray
    spine: np.ndarray
    heads: np.ndarray | None = None
    diagnostics: dict = field(default_factory=dict)


def segment_maps(image: np.ndarray, *, spacing, method: str = CLASSICAL, classical_config=None,
                 engine: str = "auto", progress: bool = False) -> SegmentMaps:
    """All maps of ``method`` for ``image`` (see :class:`SegmentMaps`)."""
    dend, spine, diag, *heads = _maps(image, spacing=spacing, method=method,
                                      classical_config=classical_config, engine=engine, progress=progress)
    return SegmentMaps(dend, spine, heads[0] if heads else None, diag)


def semantic_maps(image: np.ndarray, *, spacing, method: str = CLASSICAL, classical_config=None,
                  engine: str = "auto", progress: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Dendrite and spine maps for ``image`` by ``method``: ``"classical"`` or a model name/path.

    Returns ``(dendrite_prob, spine_prob, diagnostics)``; diagnostics are the numbers the
    method chose from the data (thresholds, model card), saved with the run.
    """
    return _maps(image, spacing=spacing, method=method, classical_config=classical_config,
                 engine=engine, progress=progress)[:3]


def _maps(image, *, spacing, method, classical_config, engine, progress):
    if method == CLASSICAL:
        from dataclasses import asdict

        from .classical import segment_classical

        dend, spine, diag = segment_classical(image, spacing=spacing, config=classical_config,
                                              return_diagnostics=True)
        return dend, spine, asdict(diag)
    from .neural.card import read_card
    from .neural.predict import choose_engine, predict

    card = read_card(method)
    engine = choose_engine(method, engine)
    dend, spine, *heads = predict(image, spacing=spacing, model=method, engine=engine, progress=progress)
    # The weights' checksum pins the exact model a run used.
    diag = {"model": method, "model_name": card.name, "model_sha256": card.sha256,
            "model_voxel_size_um": list(card.voxel_size_um), "engine": engine}
    if engine == "onnx":
        diag["onnx_sha256"] = card.onnx["sha256"]
    return (dend, spine, diag, *heads)
