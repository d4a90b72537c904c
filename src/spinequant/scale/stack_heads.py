"""The 3D partner's head map joined to a 2D network's in block-wise runs.

A point-head 2D model may name a ``heads3d`` network that joins its head map on stacks
(:mod:`spinequant.segment.neural.stack_heads`). A block-wise run blends the 2D network's maps
of a core from the whole volume's tiles (:mod:`.tile_maps`); the partner then runs on a window
around the core large enough to hold every one of its whole-volume tiles that covers the core
(:func:`~spinequant.segment.neural.tiling.sliding_window` with ``grid=``), so the core gets the
values an in-memory run gives, and the two maps are joined as there
(:func:`~spinequant.segment.neural.stack_heads.join_heads`).
"""

from __future__ import annotations

import math
from functools import partial
from dataclasses import dataclass

import numpy as np

from .blocks import Block, network_halo_px
from .maps import read_region


@dataclass(frozen=True)
class Partner:
    """What a block needs to run the 2D model ``method``'s 3D partner: the volume, its
    spacing, the whole volume's normalisation ``levels``, the engine and orientations."""

    volume: object
    spacing: tuple
    method: str
    levels: tuple
    engine: str
    orientations: int = 1


def partner_of(volume, spacing, method: str, levels, engine: str, orientations: int = 1) -> Partner | None:
    """The :class:`Partner` of a 2D point-head ``method`` whose card names one, else None."""
    from ..segment import CLASSICAL

    if method == CLASSICAL:
        return None
    from ..segment.neural.card import read_card
    from ..segment.neural.stack_heads import stack_heads_model

    if stack_heads_model(read_card(method)) is None:
        return None
    return Partner(volume, tuple(spacing), method, tuple(levels), engine, orientations)


def partner_diagnostics(partner: Partner | None) -> dict:
    """What a run records of the partner (as an in-memory run does), or nothing."""
    if partner is None:
        return {}
    from ..segment.neural.card import read_card
    from ..segment.neural.predict import choose_engine
    from ..segment.neural.stack_heads import stack_heads_model

    name, weight = stack_heads_model(read_card(partner.method), partner.spacing)
    card = read_card(name)
    engine = choose_engine(name, partner.engine)
    diag = {"model": name, "model_sha256": card.sha256, "weight": weight, "engine": engine}
    if engine == "onnx":
        diag["onnx_sha256"] = card.onnx["sha256"]
    return {"stack_heads": diag}


def joined_core_heads(partner: Partner, block: Block, heads2d: np.ndarray, spine: np.ndarray,
                      head_support: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """``heads2d`` (the 2D network's head map of ``block``'s core) joined by the partner's,
    and the partner's map of the core alone."""
    from ..segment.neural.card import read_card
    from ..segment.neural.predict import choose_engine, predict
    from ..segment.neural.stack_heads import check_partner, join_heads, stack_heads_model

    card = read_card(partner.method)
    name, weight = stack_heads_model(card, partner.spacing)
    other = read_card(name)
    check_partner(card, other)
    shape = partner.volume.shape
    # every partner tile covering the core, plus a pixel for each resampling
    halo = math.ceil(network_halo_px(other.tile_size) * other.voxel_size_um[1] / partner.spacing[1]) + 1
    window = [slice(max(c.start - halo, 0), min(c.stop + halo, n)) for c, n in zip(block.core, shape[1:])]
    image = read_region(partner.volume, (slice(None), *window))
    core = (slice(None), *(slice(c.start - w.start, c.stop - w.start) for c, w in zip(block.core, window)))
    wanted = None if head_support is None else partial(_reads_core_heads, spine, heads2d, head_support, core[1:])
    (heads3d,) = predict(image, spacing=partner.spacing, model=name, engine=choose_engine(name, partner.engine),
                         value_range=partner.levels, grid=((window[0].start, window[1].start), shape[1:]),
                         dtype=np.float16, orientations=partner.orientations, wanted=wanted)
    heads3d = np.ascontiguousarray(heads3d[core])
    # without head_support join_heads writes the mean into its first map
    joined = join_heads(heads3d if head_support is not None else heads3d.copy(), heads2d, weight, spine=spine,
                        head_support=head_support)
    return joined, heads3d


def _reads_core_heads(spine, heads2d, head_support, core, zs, ys, xs) -> bool:
    """Whether a 3D tile covering ``zs``, ``ys``, ``xs`` (voxels of the window) reaches a
    voxel of the core (``core``: its (y, x) slices in the window) where spine objects read
    the head map (:func:`~spinequant.segment.neural.stack_heads.reads_head_map` on the core's
    maps ``spine`` and ``heads2d``): only those tiles run, and the joined map is the same."""
    from ..segment.neural.stack_heads import reads_head_map

    local = []
    for (lo, hi), c in zip((ys, xs), core):
        lo, hi = max(lo, c.start) - c.start, min(hi, c.stop) - c.start
        if lo >= hi:
            return False
        local.append((lo, hi))
    return reads_head_map(spine, heads2d, head_support, zs, *local)
