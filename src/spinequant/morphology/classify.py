"""Spine types (stubby, thin, mushroom, filopodia) by published decision rules.

Two rule sets, thresholds in :class:`MorphologyConfig` (sources and trees in
``docs/measurements.md``):

``neuronstudio`` (Rodriguez et al. 2008, PLoS ONE 3:e1997; NeuronStudio's defaults)
    1. no head (head/neck ratio <= 1.1 or no neck) and length > 2 µm  -> filopodia (added;
       NeuronStudio has no filopodia class, threshold from Risher et al. 2014)
    2. head/neck ratio > 1.1 and head diameter >= 0.35 µm             -> mushroom
    3. head/neck ratio > 1.1 and head diameter <  0.35 µm             -> thin
    4. length / head diameter > 2.5                                   -> thin
    5. otherwise                                                      -> stubby

``risher`` (Risher et al. 2014, PLoS ONE 9:e107591, Fig. 2 decision tree)
    1. no head and length > 2 µm            -> filopodia
    2. length / head width <= 1             -> stubby
    3. head width > 0.6 µm                  -> mushroom
    4. otherwise                            -> thin ("long thin" when length >= 1 µm)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import MorphologyConfig, resolve_config

SPINE_TYPES = ("stubby", "thin", "mushroom", "filopodia")


def classify_spines(table: pd.DataFrame, *, config: MorphologyConfig | dict | None = None):
    """Type of every spine and the rule that decided it.

    Parameters
    ----------
    table : DataFrame
        Needs ``length_um``, ``head_diameter_um`` and ``head_neck_ratio`` (NaN when the spine
        has no neck), as made by :func:`measure_spines`.
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
    >>> classify_spines(t)[0]
    ['mushroom', 'stubby']
    """
    cfg = resolve_config(config)
    decide = _neuronstudio if cfg.rule_set == "neuronstudio" else _risher
    types, rules = [], []
    for length, head, ratio in zip(table["length_um"], table["head_diameter_um"],
                                   table["head_neck_ratio"]):
        t, r = decide(float(length), float(head), float(ratio), cfg)
        types.append(t)
        rules.append(r)
    return types, rules


def _filopodium(length, ratio, cfg) -> str | None:
    headless = not ratio > cfg.neck_ratio  # NaN (no neck) counts as headless
    if cfg.filopodia_min_length_um is not None and headless and length > cfg.filopodia_min_length_um:
        return (f"{cfg.rule_set}: no head (head/neck <= {cfg.neck_ratio:g}) and "
                f"length > {cfg.filopodia_min_length_um:g} um")
    return None


def _neuronstudio(length, head, ratio, cfg):
    rule = _filopodium(length, ratio, cfg)
    if rule:
        return "filopodia", rule
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
    rule = _filopodium(length, ratio, cfg)
    if rule:
        return "filopodia", rule
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
    """Number of spines of each type (all four keys present)."""
    values = list(types)
    return {t: int(np.sum([v == t for v in values])) for t in SPINE_TYPES}
