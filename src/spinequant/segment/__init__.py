"""Semantic segmentation: dendrite and spine maps in [0, 1] from a stack.

Every method returns the same pair of float32 maps (dendrite, spine) with the image's shape,
so that spine objects, measurements and exports are shared by all of them. A 2D image (Y, X)
with a (y, x) spacing gives 2D maps (see :func:`predict_plane` for networks).
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
    #: On stacks whose head map joins a 3D partner's (a model card's ``stack_heads``), the
    #: partner's map alone, where the head map is kept; spine objects add its own peaks.
    partner_heads: np.ndarray | None = None


def segment_maps(image: np.ndarray, *, spacing, method: str = CLASSICAL, classical_config=None,
                 engine: str = "auto", progress=False, levels=None, grid=None,
                 head_support: tuple[float, float] | None = None, orientations: int = 1) -> SegmentMaps:
    """All maps of ``method`` for ``image`` (see :class:`SegmentMaps`).

    ``levels`` are the numbers a method otherwise chooses from ``image`` itself: for a network
    the normalisation range ``(low, high)``, for the classical method a
    :class:`~spinequant.segment.classical.ClassicalLevels`. A block-wise run
    (:mod:`spinequant.scale`) chooses them once from the whole volume and passes them to every
    block, so that all blocks are segmented alike.

    ``grid`` (networks, 3D stacks only): ``((oy, ox), (NY, NX))`` when ``image`` is the window
    at (oy, ox) of a volume NY x NX pixels wide; the network then runs the whole volume's
    tiles (see :func:`~spinequant.segment.neural.predict.predict`). The classical method
    ignores it (a block-wise run aligns its windows instead).

    ``progress``: ``True`` shows a progress bar (networks); a callable is called with the
    fraction of the work done (per batch of network tiles, per step of the classical method)
    and may raise :class:`~spinequant.errors.Cancelled` to stop. The maps do not depend on it.

    ``head_support`` (networks with a point head): ``(spine_min, head_min)``, the head map is
    kept only where the spine map or the head map reaches these, and is 0 elsewhere (see
    :func:`~spinequant.segment.neural.predict.predict`).

    ``orientations`` (networks): 1, 4 or 8, the maps averaged over the image's mirror images
    (4) and quarter turns (8) (:mod:`~spinequant.segment.neural.orientations`).
    """
    dend, spine, diag, *heads = _maps(image, spacing=spacing, method=method,
                                      classical_config=classical_config, engine=engine, progress=progress,
                                      levels=levels, grid=grid, head_support=head_support,
                                      orientations=orientations)
    return SegmentMaps(dend, spine, heads[0] if heads else None, diag, heads[1] if len(heads) > 1 else None)


def semantic_maps(image: np.ndarray, *, spacing, method: str = CLASSICAL, classical_config=None,
                  engine: str = "auto", progress=False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Dendrite and spine maps for ``image`` by ``method``: ``"classical"`` or a model name/path.

    ``image`` is a (Z, Y, X) stack with a (z, y, x) ``spacing`` or a (Y, X) image with a
    (y, x) one (a single plane or a projection); the maps have the image's shape.

    Returns ``(dendrite_prob, spine_prob, diagnostics)``; diagnostics are the numbers the
    method chose from the data (thresholds, model card), saved with the run.
    """
    return _maps(image, spacing=spacing, method=method, classical_config=classical_config,
                 engine=engine, progress=progress)[:3]


def _maps(image, *, spacing, method, classical_config, engine, progress, levels=None, grid=None,
          head_support=None, orientations=1):
    if method == CLASSICAL:
        from dataclasses import asdict

        from .classical import segment_classical

        dend, spine, diag = segment_classical(image, spacing=spacing, config=classical_config,
                                              return_diagnostics=True, levels=levels,
                                              progress=progress if callable(progress) else None)
        return dend, spine, asdict(diag)
    from ..errors import InputError
    from .neural.card import read_card
    from .neural.predict import choose_engine, predict

    card = read_card(method)
    if card.architecture.get("kind") == "heads3d":
        raise InputError(f"'{method}' is a 3D head network that joins a 2D model's head map on stacks "
                         f"(see that model's card, stack_heads); it makes no dendrite or spine map of its "
                         f"own. Use the 2D model (e.g. lean2d_real) as the method.")
    engine = choose_engine(method, engine)
    if np.ndim(image) == 2:
        dend, spine, *heads = predict_plane(predict, image, spacing=spacing,
                                            model_z_um=card.voxel_size_um[0], model=method,
                                            engine=engine, progress=progress, value_range=levels,
                                            head_support=head_support, orientations=orientations)
        return (dend, spine, network_diagnostics(card, method, engine, orientations), *heads)
    bodies = unsearched = None
    if levels is None:
        from .neural.bodies import body_search_skipped, levels_and_bodies

        levels, bodies = levels_and_bodies(image, card.normalisation, spacing=spacing)
        unsearched = body_search_skipped(np.shape(image), spacing, card.normalisation)
    from .neural.stack_heads import joined_head_map, stack_heads_model

    joined = _has_point_head(card) and stack_heads_model(card) is not None
    # The 3D partner's tiles are about a fifth of the work (docs/real_data.md).
    first, rest = _split_progress(progress, 0.8 if joined else 1.0)
    dend, spine, *heads = predict(image, spacing=spacing, model=method, engine=engine, progress=first,
                                  value_range=levels, grid=grid, head_support=head_support, bodies=bodies,
                                  orientations=orientations)
    diag = network_diagnostics(card, method, engine, orientations)
    if joined and heads:
        heads[0], partner, diag["stack_heads"] = joined_head_map(
            image, heads[0], spacing=spacing, card=card, predict=predict, engine=engine, levels=levels,
            spine=spine, head_support=head_support, progress=rest, grid=grid, bodies=bodies,
            orientations=orientations)
        if partner is not None:
            heads.append(partner)
    if bodies is not None or unsearched is not None:
        diag["cell_bodies"] = unsearched or bodies.summary(spacing)
    return (dend, spine, diag, *heads)


def _has_point_head(card) -> bool:
    from .neural import specs

    return specs.n_outputs(card.architecture) == 3


def _split_progress(progress, share: float):
    """``progress`` for two parts of the work, the first taking ``share`` of it."""
    if not callable(progress):
        return progress, progress
    return (lambda f: progress(share * float(f)),
            lambda f: progress(share + (1.0 - share) * float(f)))


def network_diagnostics(card, method: str, engine: str, orientations: int = 1) -> dict:
    """What a run records of the network that made its maps (``card``: its model card)."""
    # The weights' checksum pins the exact model a run used.
    diag = {"model": method, "model_name": card.name, "model_sha256": card.sha256,
            "model_voxel_size_um": list(card.voxel_size_um), "engine": engine,
            "orientations": int(orientations)}
    if engine == "onnx":
        diag["onnx_sha256"] = card.onnx["sha256"]
    return diag


def predict_plane(predict, image: np.ndarray, *, spacing, model_z_um: float, **options) -> tuple:
    """Run a stack network's ``predict`` on a 2D image: the maps of one plane, squeezed to 2D.

    The image becomes a one-plane stack whose z step is the model's own (``model_z_um``), so
    it is resampled in y/x only; a network that reads the planes above and below as z context
    sees the plane itself there (the stack's border is padded by reflection). Every map
    ``predict`` returns is squeezed, whatever their number.
    """
    maps = predict(np.asarray(image)[None], spacing=(float(model_z_um), *spacing), **options)
    return tuple(m[0] for m in maps)
