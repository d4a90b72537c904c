"""The learnt spine type classifier (rule_set="learnt", the 2D default): it loads without
pickle, checks its sha256, is deterministic and types hand-made rows sensibly."""

import json

import numpy as np
import pandas as pd
import pytest

from spinequant.errors import InputError
from spinequant.morphology import RULE_SETS, MorphologyConfig, SPINE_TYPES, classify_spines, measure_spines
from spinequant.morphology.learnt import MODEL_PATH, load_type_model, type_features


def _rows(*rows):
    """2D spine table rows from (area, perimeter, length, head, head area, neck length,
    neck min, neck mean, head/neck ratio, tip distance)."""
    names = ["area_um2", "perimeter_um", "length_um", "head_diameter_um", "head_area_um2",
             "neck_length_um", "neck_min_diameter_um", "neck_mean_diameter_um", "head_neck_ratio",
             "tip_distance_um"]
    return pd.DataFrame(rows, columns=names).assign(n_heads=1)


def test_model_loads_from_json_with_its_card():
    model = load_type_model()
    assert model.classes == SPINE_TYPES
    assert model.features == tuple(type_features(_rows((0.5, 3, 1, 0.8, 0.5, 0, np.nan, np.nan,
                                                         np.nan, 0.8))).columns)
    card = model.card
    assert card["training_data"]["licence"] == "MIT" and "Meng-De-Gong" in card["training_data"]["source"]
    assert "2D" in card["applies_to"]


def test_damaged_model_is_refused(tmp_path):
    params = json.loads(MODEL_PATH.read_text())
    params["layers"][0][1][0] += 1.0
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(params))
    with pytest.raises(InputError, match="sha256"):
        load_type_model(path)


def test_hand_made_rows_and_determinism():
    table = _rows(
        # a long thin protrusion without a head: filopodium or thin (the model, trained on
        # 26 filopodia, calls it thin; experts confuse the two most)
        (0.9, 6.0, 2.8, 0.45, 0.9, 0.0, np.nan, np.nan, np.nan, 2.6),
        # a big head on a clear narrow neck: mushroom
        (1.2, 4.6, 1.5, 1.1, 0.9, 0.6, 0.35, 0.45, 2.4, 1.4),
        # a short blob without a neck: stubby
        (0.5, 2.7, 0.7, 0.8, 0.5, 0.0, np.nan, np.nan, np.nan, 0.6),
    )
    first = classify_spines(table, config={"rule_set": "learnt"})
    assert first[0][0] in ("filopodia", "thin") and first[0][1:] == ["mushroom", "stubby"]
    assert all(r.startswith("learnt: p = ") for r in first[1])
    assert classify_spines(table, config={"rule_set": "learnt"}) == first
    # The default types a 2D table with the learnt model.
    assert classify_spines(table)[0] == first[0]


def test_rule_set_choice_by_dimensionality():
    assert RULE_SETS == ("auto", "neuronstudio", "risher", "learnt", "network")
    assert MorphologyConfig().rule_set == "auto"
    with pytest.raises(InputError, match="learnt"):
        MorphologyConfig(rule_set="learned")
    # A 3D table is typed by NeuronStudio's rules under auto and learnt alike.
    z, y, x = np.mgrid[:12, :40, :40]
    spine = ((y >= 10) & (y < 25) & (abs(x - 20) <= 1) & (z == 6)).astype(int)
    for rule_set in ("auto", "learnt"):
        row = measure_spines(spine, y < 10, (0.5, 0.1, 0.1), config={"rule_set": rule_set}).iloc[0]
        assert row.type_rule.startswith("neuronstudio:")
    # A 2D table by the model (without the image; with it, auto is the image network);
    # learnt on a table without its columns says what is missing.
    row = measure_spines(spine[6], y[6] < 10, (0.1, 0.1)).iloc[0]
    assert row.type_rule.startswith("learnt:")
    row = measure_spines(spine[6], y[6] < 10, (0.1, 0.1), image=spine[6] * 100.0).iloc[0]
    assert row.type_rule.startswith("spine_types_2d_network network: p=")
    with pytest.raises(InputError, match="area_um2"):
        classify_spines(pd.DataFrame({"length_um": [1.0], "head_diameter_um": [0.5],
                                      "head_neck_ratio": [2.0]}), config={"rule_set": "learnt"})


def test_a_wide_head_is_never_a_filopodium_for_the_learnt_model_either():
    from spinequant.morphology.learnt import classify_learnt

    table = _rows(
        (0.9, 6.0, 2.8, 0.45, 0.9, 0.0, np.nan, np.nan, np.nan, 2.6),
        (0.5, 2.7, 0.7, 0.8, 0.5, 0.0, np.nan, np.nan, np.nan, 0.6),
    )
    # with the guard at 0 µm every head counts as wide: no filopodium at all
    types, rules = classify_learnt(table, filopodia_max_head_um=0.0)
    assert "filopodia" not in types and all("not filopodia" in r for r in rules)
    # the default configuration applies the published 0.5 µm guard
    head = table["head_diameter_um"].to_numpy()
    types = classify_spines(table)[0]
    assert not any(t == "filopodia" and h >= 0.5 for t, h in zip(types, head))
