"""Spine type rules: NeuronStudio (Rodriguez et al. 2008) and Risher et al. (2014)."""

import numpy as np
import pandas as pd
import pytest

from spinequant.errors import InputError
from spinequant.morphology import MorphologyConfig, classify_spines

NAN = np.nan


def _classify(rows, **config):
    table = pd.DataFrame(rows, columns=["length_um", "head_diameter_um", "head_neck_ratio"])
    return classify_spines(table, config=config or None)


def test_neuronstudio_rules_and_thresholds():
    types, rules = _classify([
        (1.2, 0.50, 2.0),    # neck, big head          -> mushroom
        (1.2, 0.34, 2.0),    # neck, head < 0.35 µm    -> thin
        (1.2, 0.35, 1.11),   # just over both limits   -> mushroom
        (1.2, 0.40, 1.10),   # ratio not above 1.1, length/head 3 > 2.5 -> thin
        (1.0, 0.40, 1.10),   # length/head 2.5, not above              -> stubby
        (0.5, 0.50, NAN),    # no neck                 -> stubby
        (2.5, 0.30, NAN),    # headless, longer than 2 µm -> filopodia
        (2.5, 0.30, 1.5),    # long but with a head    -> thin
    ])
    assert types == ["mushroom", "thin", "mushroom", "thin", "stubby", "stubby", "filopodia", "thin"]
    assert rules[0] == "neuronstudio: head/neck > 1.1 and head >= 0.35 um"
    assert rules[3] == "neuronstudio: head/neck <= 1.1 and length/head > 2.5"
    assert rules[6].startswith("neuronstudio: no head")


def test_risher_decision_tree():
    types, rules = _classify([
        (2.5, 0.30, NAN),   # headless and > 2 µm      -> filopodia
        (0.5, 0.60, 3.0),   # length/width <= 1        -> stubby
        (1.0, 0.70, 3.0),   # head > 0.6 µm            -> mushroom
        (1.5, 0.40, 3.0),   # long thin
        (0.8, 0.40, 3.0),   # thin
    ], rule_set="risher")
    assert types == ["filopodia", "stubby", "mushroom", "thin", "thin"]
    assert "long thin" in rules[3] and "long thin" not in rules[4]
    assert rules[2] == "risher: head width > 0.6 um"


def test_thresholds_are_configurable_and_filopodia_rule_can_be_off():
    types, _ = _classify([(1.2, 0.50, 2.0)], mushroom_min_head_um=0.6)
    assert types == ["thin"]
    types, rules = _classify([(2.5, 0.30, NAN)], filopodia_min_length_um=None)
    assert types == ["thin"] and "length/head > 2.5" in rules[0]


def test_config_is_checked_and_saveable():
    cfg = MorphologyConfig(rule_set="risher")
    assert cfg.to_dict()["risher_mushroom_min_head_um"] == 0.6
    with pytest.raises(InputError, match="rule set"):
        MorphologyConfig(rule_set="bogus")
    with pytest.raises(InputError, match="neck_ratio"):
        MorphologyConfig(neck_ratio=-1)
    with pytest.raises(InputError, match="Unknown morphology settings"):
        _classify([(1, 1, 1)], neck_ration=2)
