"""Scores from counts and voxel-wise semantic scores, against hand-computed values."""

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.evaluate import (combine_raters, dendrite_band, scores_from_counts,
                                 semantic_scores, semantic_scores_vs_raters)


def test_scores_from_counts_hand_values():
    s = scores_from_counts(6, 2, 4)
    assert s["precision"] == pytest.approx(6 / 8)
    assert s["recall"] == pytest.approx(6 / 10)
    assert s["f1"] == pytest.approx(12 / 18)
    assert s["iou"] == pytest.approx(6 / 12)
    assert s["dice"] == s["f1"]


@pytest.mark.parametrize("tp, fp, fn, expected", [
    (0, 0, 0, dict(precision=1.0, recall=1.0, f1=1.0, iou=1.0)),   # both empty
    (0, 3, 0, dict(precision=0.0, recall=0.0, f1=0.0, iou=0.0)),   # truth empty
    (0, 0, 3, dict(precision=0.0, recall=0.0, f1=0.0, iou=0.0)),   # prediction empty
    (0, 2, 2, dict(precision=0.0, recall=0.0, f1=0.0, iou=0.0)),   # no overlap
])
def test_scores_from_counts_empty_conventions(tp, fp, fn, expected):
    s = scores_from_counts(tp, fp, fn)
    for key, value in expected.items():
        assert s[key] == value


def _labels():
    # 1 x 2 x 5 voxels; classes 0 background, 1 dendrite, 2 spine
    truth = np.array([[[1, 1, 1, 2, 2], [0, 0, 0, 0, 2]]])
    pred = np.array([[[1, 1, 0, 2, 1], [0, 1, 0, 2, 2]]])
    return pred, truth


def test_semantic_scores_per_class():
    pred, truth = _labels()
    t = semantic_scores(pred, truth).set_index("class")
    # dendrite: truth {0,1,2}, pred {0,1,4,6}: tp 2, fp 2, fn 1
    assert t.loc["dendrite", ["tp", "fp", "fn"]].tolist() == [2, 2, 1]
    assert t.loc["dendrite", "iou"] == pytest.approx(2 / 5)
    assert t.loc["dendrite", "dice"] == pytest.approx(4 / 7)
    assert t.loc["dendrite", "precision"] == pytest.approx(0.5)
    assert t.loc["dendrite", "recall"] == pytest.approx(2 / 3)
    # spine: truth {3,4,9}, pred {3,8,9}: tp 2, fp 1, fn 1
    assert t.loc["spine", ["tp", "fp", "fn"]].tolist() == [2, 1, 1]
    assert t.loc["spine", "iou"] == pytest.approx(0.5)
    assert t.loc["spine", "f1"] == pytest.approx(2 / 3)


def test_semantic_scores_empty_class_and_mask():
    truth = np.zeros((2, 2, 2), int)
    pred = np.zeros((2, 2, 2), int)
    pred[0, 0, 0] = 2
    t = semantic_scores(pred, truth).set_index("class")
    assert t.loc["dendrite", "f1"] == 1.0 and t.loc["dendrite", "iou"] == 1.0   # absent from both
    assert t.loc["spine", "f1"] == 0.0 and t.loc["spine", "precision"] == 0.0   # only predicted
    mask = np.ones_like(truth, bool)
    mask[0, 0, 0] = False
    t = semantic_scores(pred, truth, mask=mask).set_index("class")
    assert t.loc["spine", "f1"] == 1.0                                         # the FP is outside
    b = semantic_scores(pred > 0, truth > 0)
    assert b["class"].tolist() == ["foreground"] and b["fp"].tolist() == [1]


def test_semantic_scores_shape_mismatch():
    with pytest.raises(InputError, match="shape"):
        semantic_scores(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))


def test_dendrite_band_anisotropic():
    d = np.zeros((5, 5, 9), bool)
    d[2, 2, 4] = True
    band = dendrite_band(d, spacing=(1.0, 0.5, 0.25), max_distance_um=1.0)
    # along x: 1 µm = 4 voxels each side; along y: 2 voxels; along z: 1 voxel
    assert band[2, 2].astype(int).tolist() == [1] * 9
    assert band[2, :, 4].astype(int).tolist() == [1, 1, 1, 1, 1]
    assert band[:, 2, 4].astype(int).tolist() == [0, 1, 1, 1, 0]
    # diagonal (z 1 µm, x 0.25 µm) is sqrt(1.0625) > 1 µm away
    assert not band[3, 2, 5] and band[3, 2, 4]
    assert not dendrite_band(np.zeros((2, 2, 2)), spacing=(1, 1, 1), max_distance_um=5).any()


def test_combine_raters_and_scores_vs_raters():
    u = np.array([[[1, 1, 0, 2]]])
    v = np.array([[[1, 0, 0, 2]]])
    w = np.array([[[1, 1, 1, 0]]])
    assert combine_raters([u, v, w]).astype(int).tolist() == [[[1, 0, 0, 0]]]
    assert combine_raters([u, v, w], how="union").astype(int).tolist() == [[[1, 1, 1, 1]]]
    assert combine_raters([u, v, w], how="majority").astype(int).tolist() == [[[1, 1, 0, 1]]]
    with pytest.raises(InputError):
        combine_raters([u], how="mean")
    pred = np.array([[[1, 1, 0, 2]]])
    t = semantic_scores_vs_raters(pred, [u, v, w], names=["U", "V", "W"])
    assert t["truth"].unique().tolist() == ["U", "V", "W", "intersection", "union"]
    rows = t.set_index(["truth", "class"])
    # intersection: dendrite {0}, spine {} -> dendrite IoU 1/2; spine predicted but absent -> 0
    assert rows.loc[("intersection", "dendrite"), "iou"] == pytest.approx(0.5)
    assert rows.loc[("intersection", "spine"), "iou"] == 0.0
    # union: dendrite {0,1,2}, spine {3}
    assert rows.loc[("union", "dendrite"), "iou"] == pytest.approx(2 / 3)
    assert rows.loc[("union", "spine"), "iou"] == 1.0
    assert rows.loc[("U", "dendrite"), "f1"] == 1.0
