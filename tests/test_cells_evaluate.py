"""Cell scores on hand-made label images whose answers are known."""

import numpy as np
import pandas as pd
import pytest

from spinequant.evaluate.cells import dice, evaluate_cell_files, score_cell_points, score_cells
from spinequant.io import write_tiff

SPACING = (2.0, 1.0, 1.0)


def two_cubes():
    """Two 4 x 4 x 4-voxel cells side by side along x, 4 voxels apart."""
    t = np.zeros((4, 8, 16), np.int32)
    t[:, 2:6, 2:6] = 1
    t[:, 2:6, 10:14] = 2
    return t


def test_perfect_and_empty():
    t = two_cubes()
    s = score_cells(t, t, spacing=SPACING)
    assert s["dice"] == 1.0 and s["instances"]["f1"] == 1.0 and s["points"]["f1"] == 1.0
    assert (s["curve"]["f1"] == 1.0).all() and list(s["curve"]["iou_threshold"]) == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    empty = np.zeros_like(t)
    assert dice(empty, empty) == 1.0 and dice(empty, t) == 0.0
    assert score_cells(empty, t, spacing=SPACING)["points"]["recall"] == 0.0


def test_merge_and_shift_known_scores():
    t = two_cubes()
    merged = np.where(t > 0, 1, 0)                 # one object over both cells
    s = score_cells(merged, t, spacing=SPACING)
    assert s["dice"] == 1.0                        # the foreground is right
    # each true cell has IoU 64/128 = 0.5 with the merged object: one match at 0.5, none above
    assert s["instances"]["tp"] == 1 and s["instances"]["f1"] == pytest.approx(2 / 3)
    assert s["instances"]["n_merge"] == 1
    curve = s["curve"].set_index("iou_threshold")["f1"]
    assert curve[0.5] == pytest.approx(2 / 3) and curve[0.6] == 0.0
    # its centroid lies 4 µm from each true centroid: within 5 µm one of them matches
    assert s["points"]["tp"] == 1 and s["points"]["fn"] == 1
    assert score_cells(merged, t, spacing=SPACING, max_distance_um=3.0)["points"]["tp"] == 0
    # a prediction shifted by one voxel in x: IoU 3/5 per cell
    shifted = np.roll(t, 1, axis=2)
    s = score_cells(shifted, t, spacing=SPACING)
    assert s["instances"]["mean_matched_iou"] == pytest.approx(0.6)
    assert s["curve"].set_index("iou_threshold")["f1"][0.7] == 0.0
    assert s["dice"] == pytest.approx(2 * 96 / 256)


def test_points_one_to_one_within_distance_in_um():
    t = two_cubes()
    # centroids: cell 1 at (3, 3.5, 3.5) µm, cell 2 at (3, 3.5, 11.5) µm
    truth = pd.DataFrame({"z_um": [3.0, 3.0, 30.0], "y_um": [3.5, 3.6, 3.5], "x_um": [3.5, 3.5, 11.5]})
    r = score_cell_points(t, truth, spacing=SPACING, max_distance_um=2.0)
    # two annotations on cell 1 (one is left over), none within 2 µm of cell 2
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 2)
    assert r["mean_distance_um"] == pytest.approx(0.0, abs=0.11)
    # z is in µm: the third point is 27 µm above cell 2, found only with a 30 µm tolerance
    assert score_cell_points(t, truth, spacing=SPACING, max_distance_um=30.0)["tp"] == 2


def test_evaluate_cell_files(tmp_path):
    t = two_cubes()
    write_tiff(tmp_path / "truth.tif", t, SPACING)
    write_tiff(tmp_path / "pred.tif", np.where(t > 0, 1, 0), SPACING)
    pd.DataFrame({"z_um": [3.0], "y_um": [3.5], "x_um": [11.5]}).to_csv(tmp_path / "points.csv", index=False)
    report = evaluate_cell_files(tmp_path / "pred.tif", [tmp_path / "truth.tif", tmp_path / "points.csv"])
    scores = report.tables["cell_scores"]
    assert scores["f1"].item() == pytest.approx(2 / 3) and scores["dice"].item() == 1.0
    points = report.tables["cell_points"].set_index("truth")
    assert points.loc["truth", "tp"] == 1 and points.loc["points", "tp"] == 1
    assert len(report.tables["instance_curve"]) == 9
