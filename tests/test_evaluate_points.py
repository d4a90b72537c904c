"""Point matching in µm with anisotropic voxels and tolerances, by hand."""

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.evaluate import match_points, voxels_to_um
from spinequant.evaluate.points import label_centroids


def test_ellipsoid_tolerance_deepd3_default():
    pred = [[0.0, 0.0, 0.0]]
    # (2/2.5)^2 + (0.5/0.85)^2 = 0.986 <= 1: inside; with x 0.6: 1.138 > 1: outside
    assert match_points(pred, [[2.0, 0.0, 0.5]])["tp"] == 1
    assert match_points(pred, [[2.0, 0.0, 0.6]])["tp"] == 0
    # a sphere of 1 µm does not reach 2 µm in z
    assert match_points(pred, [[2.0, 0.0, 0.5]], max_distance_um=1.0)["tp"] == 0
    r = match_points(pred, [[2.0, 0.0, 0.5]])
    assert r["pairs"]["distance_um"].tolist() == pytest.approx([np.hypot(2.0, 0.5)])
    assert r["mean_distance_um"] == pytest.approx(np.hypot(2.0, 0.5))


def test_voxel_coordinates_scaled_by_spacing():
    spacing = (2.0, 0.5, 0.5)
    pred = voxels_to_um([[1, 4, 4]], spacing=spacing)          # (2, 2, 2) µm
    truth = voxels_to_um([[2, 4, 4], [1, 4, 7]], spacing=spacing)  # (4, 2, 2) and (2, 2, 3.5)
    np.testing.assert_allclose(pred, [[2.0, 2.0, 2.0]])
    # 2 µm apart in z and 1.5 µm in x: with a 1.6 µm sphere only the z neighbour fails
    r = match_points(pred, truth, max_distance_um=1.6)
    assert r["pairs"][["pred_index", "true_index"]].values.tolist() == [[0, 1]]
    assert (r["tp"], r["fp"], r["fn"]) == (1, 0, 1)
    assert r["precision"] == 1.0 and r["recall"] == 0.5 and r["f1"] == pytest.approx(2 / 3)


def test_hungarian_finds_more_pairs_than_greedy():
    pred = [[0, 0, 0.0], [0, 0, 1.4]]
    truth = [[0, 0, 0.5], [0, 0, -0.9]]
    h = match_points(pred, truth, max_distance_um=1.0)
    g = match_points(pred, truth, max_distance_um=1.0, method="greedy")
    assert h["tp"] == 2 and h["f1"] == 1.0
    assert sorted(map(tuple, h["pairs"][["pred_index", "true_index"]].values.tolist())) == [(0, 1), (1, 0)]
    assert g["tp"] == 1 and g["f1"] == 0.5


def test_one_to_one():
    r = match_points([[0, 0, 0]] * 3, [[0, 0, 0.1]], max_distance_um=1)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 2, 0)
    assert r["precision"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("n_pred, n_true, f1, precision, recall", [
    (0, 0, 1.0, 1.0, 1.0), (0, 2, 0.0, 0.0, 0.0), (2, 0, 0.0, 0.0, 0.0)])
def test_empty_point_sets(n_pred, n_true, f1, precision, recall):
    r = match_points(np.zeros((n_pred, 3)), np.ones((n_true, 3)))
    assert (r["f1"], r["precision"], r["recall"]) == (f1, precision, recall)
    assert np.isnan(r["mean_distance_um"]) and len(r["pairs"]) == 0


def test_bad_points_and_tolerance():
    with pytest.raises(InputError):
        match_points([[0, 0]], [[0, 0, 0]])
    with pytest.raises(InputError):
        match_points([[0, 0, 0]], [[0, 0, 0]], max_distance_um=(1, 2))
    with pytest.raises(InputError):
        match_points([[0, 0, np.nan]], [[0, 0, 0]])


def test_label_centroids_anisotropic():
    labels = np.zeros((3, 4, 4), np.int32)
    labels[0:2, 1, 1] = 3
    labels[2, 3, 2:4] = 8
    t = label_centroids(labels, spacing=(2.0, 0.5, 0.25))
    assert t["id"].tolist() == [3, 8]
    np.testing.assert_allclose(t[["z_um", "y_um", "x_um"]].to_numpy(), [[1.0, 0.5, 0.25], [4.0, 1.5, 0.625]])
    assert len(label_centroids(np.zeros((2, 2, 2), int), spacing=(1, 1, 1))) == 0
