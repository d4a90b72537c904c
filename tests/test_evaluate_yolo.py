"""YOLO box and polygon label files: readers with hand-computed pixels, and `spinequant evaluate`
of a 2D result against them through the real command line."""

import imagecodecs
import numpy as np
import pandas as pd
import pytest

from spinequant.cli import EXIT_INPUT, main
from spinequant.errors import InputError
from spinequant.evaluate.readers import (detect_kind, parse_classes, read_points, read_yolo_boxes,
                                         read_yolo_polygons)
from spinequant.io import write_tiff

SHAPE = (10, 20)          # height, width: a fraction f of the width is the pixel coordinate 20 f - 0.5
YX = (0.1, 0.1)


def _txt(path, *lines):
    path.write_text("\n".join(lines) + "\n")
    return path


# --- readers -----------------------------------------------------------------------------------

def test_boxes_become_their_centres_in_pixels(tmp_path):
    path = _txt(tmp_path / "boxes.txt", "0 0.5 0.5 0.2 0.2", "1 0.25 0.1 0.1 0.2", "")
    points, classes = read_yolo_boxes(path, SHAPE)
    # (0.5 * 10 - 0.5, 0.5 * 20 - 0.5) and (0.1 * 10 - 0.5, 0.25 * 20 - 0.5)
    np.testing.assert_allclose(points, [[4.5, 9.5], [0.5, 4.5]])
    assert classes.tolist() == [0, 1]
    assert detect_kind(path) == "yolo"


POLYGONS = [
    "0 0.1 0.2 0.3 0.2 0.3 0.5 0.1 0.5",   # rectangle: x 0.1-0.3 -> columns 2..5, y 0.2-0.5 -> rows 2..4
    "3 0.75 0.5 0.1 0.2",                  # a box: x 0.7-0.8 -> columns 14, 15; y 0.4-0.6 -> rows 4, 5
    "4 0.52 0.47 0.53 0.47 0.53 0.48",     # smaller than a pixel: the pixel holding its centroid
]


def test_polygons_become_a_label_image(tmp_path):
    labels, classes = read_yolo_polygons(_txt(tmp_path / "poly.txt", *POLYGONS), SHAPE)
    expected = np.zeros(SHAPE, np.int32)
    expected[2:5, 2:6] = 1
    expected[4:6, 14:16] = 2
    expected[4, 10] = 3                   # centroid (4.23, 10.03) in pixel coordinates
    np.testing.assert_array_equal(labels, expected)
    assert classes.tolist() == [0, 3, 4]
    points, _ = read_yolo_boxes(tmp_path / "poly.txt", SHAPE)
    np.testing.assert_allclose(points[:2], [[3.0, 3.5], [4.5, 14.5]])   # polygon centroid, box centre


def test_later_polygons_win_where_they_overlap(tmp_path):
    labels, _ = read_yolo_polygons(_txt(tmp_path / "o.txt", "0 0.5 0.5 1 1", "1 0.5 0.5 0.1 0.2"), SHAPE)
    assert (labels == 2).sum() == 4 and (labels == 1).sum() == 200 - 4


@pytest.mark.parametrize("line, words", [
    ("0 0.5 0.5", "has 2 numbers after the class"),
    ("0 0.1 0.1 0.2 0.2 0.3", "has 5 numbers after the class"),
    ("0 120 80 26 26", "outside 0-1.*Are they in pixels"),
    ("0.5 0.5 0.5 0.1 0.1", "starts with 0.5.*class number"),
    ("spine 0.5 0.5 0.1 0.1", "is not a YOLO label line"),
])
def test_bad_yolo_lines(tmp_path, line, words):
    path = _txt(tmp_path / "bad.txt", "0 0.5 0.5 0.1 0.1", line)
    with pytest.raises(InputError, match="Line 2 of .*" + words):
        read_yolo_polygons(path, SHAPE)


def test_an_empty_label_file_has_no_objects(tmp_path):
    (tmp_path / "none.txt").write_text("")
    points, classes = read_yolo_boxes(tmp_path / "none.txt", SHAPE)
    assert points.shape == (0, 2) and classes.size == 0
    assert read_yolo_polygons(tmp_path / "none.txt", SHAPE)[0].max() == 0


def test_text_point_lists_are_not_taken_for_yolo(tmp_path):
    path = _txt(tmp_path / "p.txt", "x_um,y_um,z_um", "1,2,3")
    assert detect_kind(path) == "points"


def test_parse_classes():
    assert parse_classes("M,S,B,T,F") == {0: "mushroom", 1: "stubby", 2: "branched", 3: "thin", 4: "filopodia"}
    assert parse_classes("spine") == {0: "spine"}
    with pytest.raises(InputError, match="empty name"):
        parse_classes("M,,S")


def test_2d_point_tables_lie_on_the_plane(tmp_path):
    pd.DataFrame({"id": [1], "centroid_y_um": [0.4], "centroid_x_um": [0.6]}).to_csv(tmp_path / "s.csv", index=False)
    assert read_points(tmp_path / "s.csv")[["z_um", "y_um", "x_um"]].values.tolist() == [[0.0, 0.4, 0.6]]
    pd.DataFrame({"x": [2.0], "y": [3.0]}).to_csv(tmp_path / "px.csv", index=False)
    table = read_points(tmp_path / "px.csv", spacing=YX, units="px")
    assert table[["z_um", "y_um", "x_um"]].values.tolist() == [[0.0, 0.30000000000000004, 0.2]]


# --- spinequant evaluate against YOLO ------------------------------------------------------------

@pytest.fixture
def result_2d(tmp_path):
    """A 2D result folder: labels_spines.tif (pixel size 0.1 µm) and spines.csv with types."""
    folder = tmp_path / "result"
    folder.mkdir()
    labels = np.zeros(SHAPE, np.uint16)
    labels[2:5, 2:6] = 7              # = the truth's rectangle (IoU 1)
    labels[4:6, 14:15] = 8            # half the truth's box (IoU 0.5)
    labels[8:10, 0:2] = 9             # nothing there in the truth
    write_tiff(folder / "labels_spines.tif", labels, YX)
    pd.DataFrame({"id": [7, 8, 9], "type": ["mushroom", "stubby", "thin"],
                  "centroid_y_um": [0.3, 0.45, 0.85], "centroid_x_um": [0.35, 1.4, 0.05]}).to_csv(
        folder / "spines.csv", index=False)
    return folder


def evaluate(capsys, *args):
    code = main(["evaluate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_labels_against_yolo_polygons_with_types(capsys, tmp_path, result_2d):
    truth = _txt(tmp_path / "truth.txt", *POLYGONS)
    out = tmp_path / "ev"
    code, text, err = evaluate(capsys, result_2d / "labels_spines.tif", truth, "--classes", "M,S,B,T,F",
                               "--out", out)
    assert code == 0, err
    scores = pd.read_csv(out / "instance_scores.csv").iloc[0]
    # truth: 3 objects; result: 3; matches at IoU >= 0.5: the rectangle (1.0) and the box (0.5)
    assert (scores["n_true"], scores["n_pred"], scores["tp"], scores["fp"], scores["fn"]) == (3, 3, 2, 1, 1)
    assert scores["mean_matched_iou"] == pytest.approx(0.75)
    types = pd.read_csv(out / "type_scores.csv").set_index("type")
    assert types.loc["mushroom", ["n_truth", "n_truth_found", "n_same_type"]].tolist() == [1, 1, 1]
    assert types.loc["thin", ["n_truth", "n_truth_found", "n_same_type", "n_pred"]].tolist() == [1, 1, 0, 1]
    assert types.loc["filopodia", ["n_truth", "n_truth_found"]].tolist() == [1, 0]
    confusion = pd.read_csv(out / "type_confusion.csv").set_index("truth_type")
    assert confusion.loc["thin", "stubby"] == 1 and confusion.loc["mushroom", "mushroom"] == 1
    assert "YOLO polygons matched object by object" in text


def test_evaluate_spines_csv_against_yolo_boxes_as_points(capsys, tmp_path, result_2d):
    # box centres in pixels (4.5, 9.5) and (0.5, 4.5) -> µm (0.45, 0.95) and (0.05, 0.45)
    truth = _txt(tmp_path / "boxes.txt", "0 0.5 0.5 0.2 0.2", "0 0.25 0.1 0.1 0.2")
    pd.DataFrame({"id": [1, 2], "centroid_y_um": [0.45, 5.0], "centroid_x_um": [1.0, 5.0]}).to_csv(
        result_2d / "found.csv", index=False)
    out = tmp_path / "ev"
    code, _, err = evaluate(capsys, result_2d / "found.csv", truth, "--max-distance-um", 0.1, "--out", out)
    assert code == 0, err
    scores = pd.read_csv(out / "point_scores.csv").iloc[0]
    assert (scores["n_true"], scores["n_pred"], scores["tp"]) == (2, 2, 1)
    assert scores["mean_distance_um"] == pytest.approx(0.05)
    # the same from the label image: its objects' centroids against the box centres
    code, _, err = evaluate(capsys, result_2d / "labels_spines.tif", truth, "--out", out)
    assert code == 0, err
    assert pd.read_csv(out / "point_scores.csv").iloc[0]["n_pred"] == 3


def test_evaluate_yolo_with_image_and_pixel_size(capsys, tmp_path):
    (tmp_path / "cell.png").write_bytes(imagecodecs.png_encode(np.ones(SHAPE, np.uint8)))
    truth = _txt(tmp_path / "boxes.txt", "0 0.5 0.5 0.2 0.2")
    pd.DataFrame({"centroid_y_um": [0.45], "centroid_x_um": [0.95]}).to_csv(tmp_path / "spines.csv", index=False)
    args = (tmp_path / "spines.csv", truth, "--image", tmp_path / "cell.png", "--out", tmp_path / "ev")
    code, _, err = evaluate(capsys, *args)
    assert code == EXIT_INPUT and "needs the pixel size" in err and "--voxel-size Y X" in err
    code, _, err = evaluate(capsys, *args, "--voxel-size", *YX)
    assert code == 0, err
    assert pd.read_csv(tmp_path / "ev" / "point_scores.csv").iloc[0]["tp"] == 1


def test_evaluate_yolo_errors(capsys, tmp_path):
    truth = _txt(tmp_path / "boxes.txt", "0 0.5 0.5 0.2 0.2")
    pd.DataFrame({"centroid_y_um": [0.45], "centroid_x_um": [0.95]}).to_csv(tmp_path / "spines.csv", index=False)
    code, _, err = evaluate(capsys, tmp_path / "spines.csv", truth, "--out", tmp_path / "ev")
    assert code == EXIT_INPUT and "does not say how large the image is" in " ".join(err.split())
    assert "--image IMAGE" in err and "Traceback" not in err
    write_tiff(tmp_path / "labels_3d.tif", np.ones((2, *SHAPE), np.uint8), (0.5, *YX))
    code, _, err = evaluate(capsys, tmp_path / "labels_3d.tif", truth, "--out", tmp_path / "ev")
    assert code == EXIT_INPUT and "YOLO labels annotate 2D images" in " ".join(err.split())
    code, _, err = evaluate(capsys, truth, tmp_path / "spines.csv", "--out", tmp_path / "ev")
    assert code == EXIT_INPUT and "give the result" in err
