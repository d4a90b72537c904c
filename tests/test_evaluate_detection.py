"""Spine detection matching by centre distance or IoU, on hand-built label images."""

import numpy as np

from spinequant.evaluate.detection import match_spine_objects

SPACING = (0.5, 0.1, 0.1)


def _cube(labels, value, z, y, x, r=2):
    labels[z, y - r:y + r + 1, x - r:x + r + 1] = value


def test_centre_distance_in_um_uses_spacing():
    truth = np.zeros((10, 60, 60), int)
    _cube(truth, 1, 2, 10, 10)
    pred = np.zeros_like(truth)
    _cube(pred, 5, 2, 10, 18)   # 0.8 µm away in x, no overlap: matches within 1 µm
    _cube(pred, 6, 5, 40, 40)   # nothing there: false positive
    r = match_spine_objects(pred, truth, spacing=SPACING, max_distance_um=1.0)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)
    assert r["pairs"] == [(1, 5)]
    # The same offset along z is 3 planes x 0.5 µm = 1.5 µm: no match.
    pred_z = np.zeros_like(truth)
    _cube(pred_z, 5, 5, 10, 10)
    r = match_spine_objects(pred_z, truth, spacing=SPACING, max_distance_um=1.0)
    assert (r["tp"], r["fp"], r["fn"]) == (0, 1, 1)


def test_iou_alone_can_match_and_matching_is_one_to_one():
    truth = np.zeros((4, 40, 40), int)
    truth[1, 5:30, 5:8] = 1          # a long spine: centre at y 1.75 µm
    pred = np.zeros_like(truth)
    pred[1, 5:20, 5:8] = 2           # covers 15 of 25 voxels rows: IoU 0.6, centre 0.5 µm off
    pred[1, 20:30, 5:8] = 3          # IoU 0.4, centre 0.75 µm off
    r = match_spine_objects(pred, truth, spacing=(1.0, 0.1, 0.1), max_distance_um=0.1, min_iou=0.3)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)
    assert r["pairs"] == [(1, 2)]    # the better IoU wins
    assert r["f1"] == 2 / 3


def test_empty_inputs_have_documented_scores():
    empty = np.zeros((3, 10, 10), int)
    one = empty.copy()
    _cube(one, 1, 1, 5, 5, r=1)
    assert match_spine_objects(empty, empty, spacing=SPACING)["f1"] == 1.0
    r = match_spine_objects(empty, one, spacing=SPACING)
    assert (r["recall"], r["f1"]) == (0.0, 0.0)
    r = match_spine_objects(one, empty, spacing=SPACING)
    assert (r["precision"], r["f1"]) == (0.0, 0.0)
