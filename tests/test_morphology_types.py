"""Spine types beyond the published trees: branched spines (two heads), the wide-head guard of
the filopodia rule and its in-plane length for spines pointing along z."""

import numpy as np
import pandas as pd
import pytest
from _morphology_shapes import ball, grid, segment_distance, spine_on_dendrite

from spinequant.morphology import SPINE_TYPES, classify_spines, measure_spines
from spinequant.morphology.classify import type_counts

PX = (0.08, 0.08)


def _disc(y, x, centre, radius):
    return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius ** 2


def _stick(y, x, a, b, radius):
    z = np.zeros_like(y)
    return segment_distance(z, y, x, (0, *a), (0, *b)) <= radius


def _scene_2d(shape_fn):
    """A shaft along x (y < 1 µm) and one spine drawn by ``shape_fn(y, x)`` in µm."""
    y, x = (np.mgrid[:60, :80] * 0.08).astype(float)
    shaft = y < 1.0
    spine = shape_fn(y, x) & ~shaft
    return spine.astype(np.int32), shaft


def test_y_shaped_spine_with_two_heads_is_branched():
    def y_spine(y, x):
        stem = _stick(y, x, (0.8, 3.2), (2.2, 3.2), 0.12)
        arms = _stick(y, x, (2.2, 3.2), (3.0, 2.2), 0.12) | _stick(y, x, (2.2, 3.2), (3.0, 4.2), 0.12)
        return stem | arms | _disc(y, x, (3.2, 2.0), 0.35) | _disc(y, x, (3.2, 4.4), 0.35)

    row = measure_spines(*_scene_2d(y_spine), PX).iloc[0]
    assert row.n_heads == 2
    for rule_set in ("neuronstudio", "risher"):
        t = measure_spines(*_scene_2d(y_spine), PX, config={"rule_set": rule_set}).iloc[0]
        assert t.type == "branched" and "2 heads" in t.type_rule


@pytest.mark.parametrize("second_head", [0.0, 0.12])
def test_mushroom_or_a_spine_with_a_small_side_bump_is_not_branched(second_head):
    def mushroom(y, x):
        shape = _stick(y, x, (0.8, 3.2), (2.4, 3.2), 0.12) | _disc(y, x, (2.7, 3.2), 0.4)
        if second_head:  # a bump on the neck, far narrower than the head
            shape |= _disc(y, x, (1.8, 3.4), second_head)
        return shape

    row = measure_spines(*_scene_2d(mushroom), PX, config={"rule_set": "neuronstudio"}).iloc[0]
    assert row.n_heads == 1 and row.type == "mushroom"


def test_head_on_a_wide_base_is_one_head():
    # A swelling on the way to the head (a wide base) is not a second head.
    def bulged(y, x):
        return (_stick(y, x, (0.8, 3.2), (3.0, 3.2), 0.12) | _disc(y, x, (1.5, 3.2), 0.3)
                | _disc(y, x, (3.2, 3.2), 0.35))

    assert measure_spines(*_scene_2d(bulged), PX).iloc[0].n_heads == 1


def test_two_headed_spine_in_3d_is_branched():
    spacing = (0.2, 0.1, 0.1)
    z, y, x = grid((3.0, 5.0, 6.0), spacing)
    shaft = segment_distance(z, y, x, (1.5, 0.6, -1), (1.5, 0.6, 7)) <= 0.6
    spine = segment_distance(z, y, x, (1.5, 1.0, 3.0), (1.5, 2.6, 3.0)) <= 0.12
    for side in (-1, 1):
        spine |= segment_distance(z, y, x, (1.5, 2.6, 3.0), (1.5, 3.4, 3.0 + side)) <= 0.12
        spine |= ball(z, y, x, (1.5, 3.6, 3.0 + 1.25 * side), 0.35)
    row = measure_spines((spine & ~shaft).astype(np.int32), shaft, spacing).iloc[0]
    assert row.n_heads == 2 and row.type == "branched"
    spine, dend, _ = spine_on_dendrite(spacing, neck_length=0.8, neck_radius=0.12, head_radius=0.4)
    assert measure_spines(spine, dend, spacing).iloc[0].n_heads == 1


def _row(**values):
    base = {"length_um": 2.6, "head_diameter_um": 0.3, "head_neck_ratio": np.nan, "n_heads": 1}
    return pd.DataFrame([{**base, **values}])


@pytest.mark.parametrize("rule_set", ["neuronstudio", "risher"])
def test_wide_head_without_a_neck_is_never_a_filopodium(rule_set):
    cfg = {"rule_set": rule_set}
    assert classify_spines(_row(), config=cfg)[0] == ["filopodia"]
    for head in (0.5, 0.9, 1.5):   # long, no neck found, but a wide head
        assert classify_spines(_row(head_diameter_um=head), config=cfg)[0] != ["filopodia"]
    # Turned off, the published rule again: no neck and long is a filopodium.
    off = {**cfg, "filopodia_max_head_um": None}
    assert classify_spines(_row(head_diameter_um=0.9), config=off)[0] == ["filopodia"]
    # A measured neck no narrower than the head: the ratio decides, not the head's size.
    assert classify_spines(_row(head_diameter_um=0.6, head_neck_ratio=1.0), config=cfg)[0] == ["filopodia"]


def test_filopodia_rule_reads_the_in_plane_length_of_a_spine_along_z():
    steep = _row(base_z_um=0.0, tip_z_um=2.5, base_y_um=0.0, tip_y_um=0.5, base_x_um=0.0, tip_x_um=0.0,
                 length_um=2.8)
    types, _ = classify_spines(steep)
    assert types == ["thin"]    # in-plane 0.55 µm: the z smear made it long
    flat = steep.assign(tip_z_um=0.5, tip_y_um=2.5)
    assert classify_spines(flat)[0] == ["filopodia"]


def test_branched_is_a_type_everywhere():
    assert "branched" in SPINE_TYPES
    assert type_counts(["branched", "thin", "branched"]) == {
        "stubby": 0, "thin": 1, "mushroom": 0, "branched": 2, "filopodia": 0}
