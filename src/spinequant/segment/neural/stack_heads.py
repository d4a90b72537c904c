"""A point-head 2D network's head map on stacks, joined by a 3D head network's.

The 2D network reads three planes at a time: in a stack it merges heads that lie above one
another within the microscope's PSF (about 1.2 µm apart in z, 0.6 µm in the plane) into one
peak. A ``heads3d`` network (:class:`~.architectures.Heads3D`) sees blocks of 32 planes and
parts them, but alone it loses what the 2D network learnt from real images. Their weighted
mean beat either map on every phantom preset (docs/real_data.md, "A fast 3D head map trained
on every preset"). A 2D model names its 3D partner in its card (``stack_heads``); 2D images
keep the 2D map alone.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..._half import as_dtype, at_least, store
from ...errors import InputError
from .card import ModelCard, read_card

#: Planes at a time the mean is formed in (bounds the float32 scratch to a few planes).
_PLANES = 8


def stack_heads_model(card: ModelCard, spacing=None) -> tuple[str, float] | None:
    """``(model, weight)`` of the 3D head network ``card`` joins on stacks of voxel size
    ``spacing`` (z, y, x µm), or None. An entry may name a partner for finer z steps
    (``finer_z``: its ``model``, ``weight`` and ``max_z_step_um``), which takes stacks whose z
    step is at most that; other stacks, and ``spacing`` None, get the entry's own."""
    entry = card.stack_heads or {}
    if not entry:
        return None
    finer = entry.get("finer_z")
    if finer and spacing is not None and len(spacing) == 3:
        limit = finer.get("max_z_step_um")
        if not isinstance(limit, (int, float)) or limit <= 0:
            raise InputError(f"The model card '{card.name}' has an invalid stack_heads finer_z entry {finer}: "
                             f"it needs a positive 'max_z_step_um'. Reinstall spinequant or fix the card.")
        if float(spacing[0]) <= float(limit):
            return _partner(card, finer)
    return _partner(card, entry)


def stack_heads_models(card: ModelCard) -> list[str]:
    """Every 3D head network ``card`` may join on stacks (the one for finer z steps last)."""
    entry = card.stack_heads or {}
    return [_partner(card, e)[0] for e in (entry, entry.get("finer_z")) if e]


def _partner(card: ModelCard, entry: dict) -> tuple[str, float]:
    weight = float(entry.get("weight", 0.5))
    if not 0.0 < weight <= 1.0 or "model" not in entry:
        raise InputError(f"The model card '{card.name}' has an invalid stack_heads entry {entry}: it needs "
                         f"a 'model' and a 'weight' in (0, 1]. Reinstall spinequant or fix the card.")
    return str(entry["model"]), weight


def check_partner(card: ModelCard, partner: ModelCard) -> None:
    """The partner must be a 3D head network normalised as ``card`` (it is given ``card``'s levels)."""
    if partner.architecture.get("kind") != "heads3d":
        raise InputError(f"The stack_heads model of '{card.name}' is '{partner.name}', a "
                         f"{partner.architecture.get('kind')} network, not a heads3d one.")
    keys = ("lower_percentile", "upper_percentile", "clip")
    if any(card.normalisation.get(k) != partner.normalisation.get(k) for k in keys):
        raise InputError(f"The stack_heads model '{partner.name}' is normalised unlike '{card.name}' "
                         f"({partner.normalisation} against {card.normalisation}); both must share "
                         f"their percentiles and clip.")


def joined_head_map(image: np.ndarray, heads2d: np.ndarray, *, spacing, card: ModelCard, predict,
                    engine: str, levels, spine: np.ndarray | None = None,
                    head_support: tuple[float, float] | None = None, **options
                    ) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The 2D network's head map ``heads2d`` of ``image`` joined by its 3D partner's
    (:func:`join_heads`), the partner's map alone and what a run records of the partner. ``predict`` is :func:`~.predict.predict`; ``levels`` the normalisation range
    the 2D network used; ``options`` (progress, grid, bodies, orientations) go to it."""
    from .predict import choose_engine

    name, weight = stack_heads_model(card, spacing)
    partner = read_card(name)
    check_partner(card, partner)
    engine = choose_engine(name, engine)
    wanted = keep = None
    if head_support is not None and options.get("grid") is None:
        wanted = partial(reads_head_map, spine, heads2d, head_support)
        keep = partial(_read_planes, spine, heads2d, head_support)
    (heads3d,) = predict(image, spacing=spacing, model=name, engine=engine, value_range=levels,
                         dtype=np.float16, wanted=wanted, keep=keep, **options)
    # without head_support the mean is written into its first map: the partner's is kept apart
    joined = join_heads(heads3d if head_support is not None else heads3d.copy(), heads2d, weight, spine=spine,
                        head_support=head_support)
    diag = {"model": name, "model_sha256": partner.sha256, "weight": weight, "engine": engine}
    if engine == "onnx":
        diag["onnx_sha256"] = partner.onnx["sha256"]
    return joined, heads3d, diag


def reads_head_map(spine, heads2d, head_support, *box) -> bool:
    """Whether spine objects read the head map anywhere in ``box`` ((lo, hi) per axis): where
    the spine map or the 2D head map reaches ``head_support``."""
    index = tuple(slice(lo, hi) for lo, hi in box)
    spine_min, head_min = head_support
    return bool(at_least(spine[index], spine_min).any() or at_least(heads2d[index], head_min).any())


def _read_planes(spine, heads2d, head_support, planes: slice) -> np.ndarray:
    """Where spine objects read the head map in ``planes`` (see :func:`reads_head_map`): only
    there is the 3D map joined, so only there is it kept."""
    spine_min, head_min = head_support
    return at_least(spine[planes], spine_min) | at_least(heads2d[planes], head_min)


def join_heads(heads3d: np.ndarray, heads2d: np.ndarray, weight: float, *, spine: np.ndarray | None = None,
               head_support: tuple[float, float] | None = None) -> np.ndarray:
    """``weight`` x ``heads3d`` + (1 - ``weight``) x ``heads2d``, a few planes at a time.

    Without ``head_support`` the mean is written into ``heads3d`` (returned). With
    ``head_support`` = (spine_min, head_min) the mean is kept only where the ``spine`` map or
    the 2D head map reaches them (where spine objects would read the 2D map,
    :func:`~spinequant.instances.heads.head_map_support`) and is 0 elsewhere, in a volume
    resident only there (:func:`~spinequant._blank.blank_volume`): the 3D map moves the heads
    the 2D network sees, and only its tiles that reach them need running; an in-memory run and
    a block-wise one, which keep the maps differently, join the same values.
    """
    from ..._blank import blank_volume

    out = heads3d if head_support is None else blank_volume(heads3d.shape, heads3d.dtype)
    for z in range(0, heads3d.shape[0], _PLANES):
        part = slice(z, z + _PLANES)
        if head_support is None:
            mean = weight * heads3d[part].astype(np.float32)
            mean += (1.0 - weight) * np.asarray(heads2d[part], np.float32)
            store(out[part], mean)
            continue
        # compared in the maps' own dtype, as reads_head_map chose the tiles
        read = _read_planes(spine, heads2d, head_support, part)
        mean = weight * heads3d[part][read].astype(np.float32)
        mean += (1.0 - weight) * np.asarray(heads2d[part][read], np.float32)
        out[part][read] = as_dtype(mean, out.dtype)    # only these voxels' pages are written
    return out
