"""Spine types (stubby, thin, mushroom, branched, filopodia) by decision rules.

Three rule sets, thresholds in :class:`MorphologyConfig` (sources, trees and the measurement
against expert-typed outlines in ``docs/measurements.md``):

Both published rule sets start with two added rules:

    0. two or more heads (``n_heads`` >= 2)                          -> branched (Risher et
       al.'s class; NeuronStudio has none)
    1. no head (head/neck ratio <= 1.1, or no neck found and a head narrower than 0.5 µm)
       and length > 2 µm                                            -> filopodia (Risher et
       al.'s 2 µm; the length is the in-plane one for a 3D spine pointing along z)

``neuronstudio`` (Rodriguez et al. 2008, PLoS ONE 3:e1997; NeuronStudio's defaults)
    2. head/neck ratio > 1.1 and head diameter >= 0.35 µm             -> mushroom
    3. head/neck ratio > 1.1 and head diameter <  0.35 µm             -> thin
    4. length / head diameter > 2.5                                   -> thin
    5. otherwise                                                      -> stubby

``risher`` (Risher et al. 2014, PLoS ONE 9:e107591, Fig. 2 decision tree)
    2. length / head width <= 1             -> stubby
    3. head width > 0.6 µm                  -> mushroom
    4. otherwise                            -> thin ("long thin" when length >= 1 µm)

``learnt`` (2D tables): a small classifier on the measured columns, fitted to expert-typed
outlines (:mod:`spinequant.morphology.learnt`); a 3D table is typed by the ``neuronstudio``
rules (the model never saw 3D measurements).

``network`` (2D images): a small network on the image around each spine
(:mod:`spinequant.morphology.type_network`); it needs the image, so :func:`measure_spines`
applies it, and from a table alone this function types a 2D spine as ``learnt`` does.

``auto`` (the default): from a table alone ``learnt`` for a 2D spine table (it has
``area_um2``), otherwise ``neuronstudio``; :func:`measure_spines` given a 2D image uses
``network``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .config import SPINE_TYPES, MorphologyConfig, resolve_config


def classify_spines(table: pd.DataFrame, *, config: MorphologyConfig | dict | None = None):
    """Type of every spine and the rule that decided it.

    Parameters
    ----------
    table : DataFrame
        Needs ``length_um``, ``head_diameter_um`` and ``head_neck_ratio`` (NaN when the spine
        has no neck), as made by :func:`measure_spines`; uses ``n_heads`` and the base and
        tip coordinates when present. The
        ``learnt`` rule set needs every column its model reads (a 2D spine table).
    config : MorphologyConfig or dict, optional
        ``rule_set`` and thresholds.

    Returns
    -------
    types, rules : two lists of str
        One of :data:`SPINE_TYPES` per row, and a short description of the deciding rule.

    Examples
    --------
    >>> t = pd.DataFrame({"length_um": [1.2, 0.5], "head_diameter_um": [0.6, 0.5],
    ...                   "head_neck_ratio": [3.0, np.nan]})
    >>> classify_spines(t, config={"rule_set": "neuronstudio"})[0]
    ['mushroom', 'stubby']
    """
    cfg = resolve_config(config)
    # "network" needs the image (measure_spines applies it); from a table alone a 2D spine
    # is typed by the learnt classifier of its outline.
    if (cfg.rule_set in ("learnt", "network") and not _is_3d(table)) or (cfg.rule_set == "auto" and "area_um2" in table):
        from .learnt import classify_learnt

        return classify_learnt(table, filopodia_max_head_um=cfg.filopodia_max_head_um)
    decide = _risher if cfg.rule_set == "risher" else _neuronstudio
    name = "risher" if cfg.rule_set == "risher" else "neuronstudio"   # 3D auto / learnt: NeuronStudio
    n = len(table)
    heads = table["n_heads"] if "n_heads" in table else np.ones(n)
    types, rules = [], []
    for length, head, ratio, n_heads, fil_length in zip(
            table["length_um"], table["head_diameter_um"], table["head_neck_ratio"],
            heads, filopodia_length(table)):
        spine = _Spine(float(length), float(head), float(ratio), int(n_heads), float(fil_length))
        t, r = (_branched(spine, name) or _filopodium(spine, cfg, name)
                or decide(spine.length, spine.head, spine.ratio, cfg))
        types.append(t)
        rules.append(r)
    return types, rules


class _Spine(NamedTuple):
    length: float
    head: float
    ratio: float
    n_heads: int
    filopodia_length: float


def _is_3d(table: pd.DataFrame) -> bool:
    return "volume_um3" in table or "base_z_um" in table


def filopodia_length(table: pd.DataFrame) -> np.ndarray:
    """The length (µm) the filopodia rule reads: ``length_um``, or in a 3D table, for a
    spine pointing more along z than across (base to tip), its in-plane part.

    The microscope smears a spine along z (2-4 times its width at 0.5 µm steps), so one
    pointing up or down reads long along z; its projection onto the plane does not.

    >>> t = pd.DataFrame({"length_um": [3.0, 3.0], "base_z_um": [0.0, 0.0], "tip_z_um": [2.4, 0.0],
    ...                   "base_y_um": [0.0, 0.0], "tip_y_um": [0.6, 2.8],
    ...                   "base_x_um": [0.0, 0.0], "tip_x_um": [0.8, 0.0]})
    >>> np.round(filopodia_length(t), 2).tolist()
    [1.15, 3.0]
    """
    length = table["length_um"].to_numpy(float)
    if not {"base_z_um", "tip_z_um"} <= set(table.columns):
        return length
    dz, dy, dx = (table[f"tip_{a}_um"].to_numpy(float) - table[f"base_{a}_um"].to_numpy(float)
                  for a in "zyx")
    planar = np.hypot(dy, dx)
    straight = np.hypot(dz, planar)
    steep = np.abs(dz) > planar
    return np.where(steep, length * planar / np.where(straight > 0, straight, 1.0), length)


def _branched(spine: _Spine, name: str):
    if spine.n_heads >= 2:
        return "branched", f"{name}: {spine.n_heads} heads"
    return None


def _filopodium(spine: _Spine, cfg, name):
    if cfg.filopodia_min_length_um is None:
        return None
    no_neck = not np.isfinite(spine.ratio)
    if no_neck and cfg.filopodia_max_head_um is not None and spine.head >= cfg.filopodia_max_head_um:
        return None  # no neck found, but a wide head: a head all the same
    headless = not spine.ratio > cfg.neck_ratio  # NaN (no neck) counts as headless
    if headless and spine.filopodia_length > cfg.filopodia_min_length_um:
        return "filopodia", (f"{name}: no head (head/neck <= {cfg.neck_ratio:g}"
                             + (f", or no neck and head < {cfg.filopodia_max_head_um:g} um"
                                if cfg.filopodia_max_head_um is not None else "")
                             + f") and length > {cfg.filopodia_min_length_um:g} um")
    return None


def _neuronstudio(length, head, ratio, cfg):
    if ratio > cfg.neck_ratio:
        if head >= cfg.mushroom_min_head_um:
            return "mushroom", (f"neuronstudio: head/neck > {cfg.neck_ratio:g} and "
                                f"head >= {cfg.mushroom_min_head_um:g} um")
        return "thin", (f"neuronstudio: head/neck > {cfg.neck_ratio:g} and "
                        f"head < {cfg.mushroom_min_head_um:g} um")
    if head > 0 and length / head > cfg.thin_ratio:
        return "thin", (f"neuronstudio: head/neck <= {cfg.neck_ratio:g} and "
                        f"length/head > {cfg.thin_ratio:g}")
    return "stubby", (f"neuronstudio: head/neck <= {cfg.neck_ratio:g} and "
                      f"length/head <= {cfg.thin_ratio:g}")


def _risher(length, head, ratio, cfg):
    if head > 0 and length / head <= cfg.risher_stubby_max_length_to_width:
        return "stubby", f"risher: length/width <= {cfg.risher_stubby_max_length_to_width:g}"
    if head > cfg.risher_mushroom_min_head_um:
        return "mushroom", f"risher: head width > {cfg.risher_mushroom_min_head_um:g} um"
    if length >= cfg.risher_long_thin_min_length_um:
        return "thin", (f"risher: long thin (head <= {cfg.risher_mushroom_min_head_um:g} um, "
                        f"length >= {cfg.risher_long_thin_min_length_um:g} um)")
    return "thin", (f"risher: thin (head <= {cfg.risher_mushroom_min_head_um:g} um, "
                    f"length < {cfg.risher_long_thin_min_length_um:g} um)")


def type_counts(types) -> dict[str, int]:
    """Number of spines of each type (every key of :data:`SPINE_TYPES` present)."""
    values = list(types)
    return {t: int(np.sum([v == t for v in values])) for t in SPINE_TYPES}
