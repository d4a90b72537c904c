"""Readers of users' annotation files, and the `spinequant evaluate` command end to end."""

import numpy as np
import pandas as pd
import pytest
import roifile

from spinequant.cli import main
from spinequant.errors import InputError
from spinequant.evaluate.readers import detect_kind, read_labels, read_points
from spinequant.io import write_tiff
from spinequant.io.swc import write_swc

SPACING = (2.0, 0.5, 0.25)


def _xyz(table):
    return table[["z_um", "y_um", "x_um"]].to_numpy().tolist()


def test_detect_kind():
    assert detect_kind("a/labels_semantic.tif") == "semantic"
    assert detect_kind("labels_spines.tif") == "instances"
    assert detect_kind("spines.csv") == "points" and detect_kind("rois.zip") == "points"
    assert detect_kind("cells.xml") == "points" and detect_kind("d.swc") == "swc"
    assert detect_kind("labels_spines.tif", semantic=True) == "semantic"
    with pytest.raises(InputError):
        detect_kind("notes.docx")


def test_detect_kind_by_content(tmp_path):
    write_tiff(tmp_path / "labels", np.ones((2, 3, 3), np.uint8), SPACING)
    (tmp_path / "counter").write_text('<?xml version="1.0"?><CellCounter_Marker_File><Marker_Data/></CellCounter_Marker_File>')
    assert detect_kind(tmp_path / "labels") == "instances"
    assert detect_kind(tmp_path / "counter") == "points"
    assert len(read_points(tmp_path / "counter", spacing=SPACING)) == 0


def test_csv_in_um_pixels_and_spines_csv(tmp_path):
    p = tmp_path / "um.csv"
    pd.DataFrame({"x_um": [1.0], "y_um": [2.0], "z_um": [3.0]}).to_csv(p, index=False)
    assert _xyz(read_points(p)) == [[3.0, 2.0, 1.0]]
    p = tmp_path / "px.csv"
    pd.DataFrame({"x": [4], "y": [2], "z": [1]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="µm or pixels"):
        read_points(p)
    with pytest.raises(InputError, match="voxel size"):
        read_points(p, units="px")
    assert _xyz(read_points(p, units="px", spacing=SPACING)) == [[2.0, 1.0, 1.0]]
    assert _xyz(read_points(p, units="um")) == [[1.0, 2.0, 4.0]]
    p = tmp_path / "fiji.csv"     # Fiji Results: X, Y in pixels, Slice 1-based
    pd.DataFrame({" ": [1], "X": [4], "Y": [2], "Slice": [2]}).to_csv(p, index=False)
    assert _xyz(read_points(p, units="px", spacing=SPACING)) == [[2.0, 1.0, 1.0]]
    p = tmp_path / "spines.csv"
    pd.DataFrame({"id": [1], "centroid_z_um": [1.0], "centroid_y_um": [2.0], "centroid_x_um": [3.0],
                  "head_z_um": [4.0], "head_y_um": [5.0], "head_x_um": [6.0]}).to_csv(p, index=False)
    assert _xyz(read_points(p)) == [[1.0, 2.0, 3.0]]
    assert _xyz(read_points(p, point="head")) == [[4.0, 5.0, 6.0]]
    p = tmp_path / "raters.csv"
    pd.DataFrame({"rater": ["a", "b"], "x_um": [0, 1], "y_um": [0, 0], "z_um": [0, 0]}).to_csv(p, index=False)
    assert read_points(p)["rater"].tolist() == ["a", "b"]
    p = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(p, index=False)
    with pytest.raises(InputError, match="coordinate columns"):
        read_points(p)


def test_imagej_roi_set(tmp_path):
    multi = roifile.ImagejRoi.frompoints(np.array([[4.0, 2.0], [8.0, 6.0]]), name="pts")
    multi.roitype = roifile.ROI_TYPE.POINT
    multi.counter_positions = np.array([1, 3], np.uint32)      # slices 1 and 3
    multi.counters = np.zeros(2, np.uint8)                     # (written only with counters)
    single = roifile.ImagejRoi.frompoints(np.array([[1.0, 1.0]]), name="one", position=1)
    single.roitype = roifile.ROI_TYPE.POINT                      # stored as slice 2
    square = roifile.ImagejRoi.frompoints(np.array([[0, 0], [4, 0], [4, 4], [0, 4]]), name="sq", z=2)
    square.roitype = roifile.ROI_TYPE.POLYGON                    # z 0-based 2 -> slice 3
    path = tmp_path / "rois.zip"
    roifile.roiwrite(path, [multi, single, square])
    t = read_points(path, spacing=SPACING)
    assert _xyz(t) == [[0.0, 1.0, 1.0], [4.0, 3.0, 2.0], [2.0, 0.5, 0.25], [4.0, 1.0, 0.5]]
    with pytest.raises(InputError, match="voxel size"):
        read_points(path)


def test_cellcounter_xml(tmp_path):
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<CellCounter_Marker_File><Image_Properties><Image_Filename>s.tif</Image_Filename></Image_Properties>
<Marker_Data><Current_Type>1</Current_Type>
<Marker_Type><Type>1</Type><Marker><MarkerX>4</MarkerX><MarkerY>2</MarkerY><MarkerZ>1</MarkerZ></Marker>
<Marker><MarkerX>8</MarkerX><MarkerY>0</MarkerY><MarkerZ>3</MarkerZ></Marker></Marker_Type>
<Marker_Type><Type>2</Type></Marker_Type>
</Marker_Data></CellCounter_Marker_File>"""
    path = tmp_path / "counts.xml"
    path.write_text(xml)
    assert _xyz(read_points(path, spacing=SPACING)) == [[0.0, 1.0, 1.0], [4.0, 0.0, 2.0]]
    (tmp_path / "other.xml").write_text("<root/>")
    with pytest.raises(InputError, match="Cell Counter"):
        read_points(tmp_path / "other.xml", spacing=SPACING)


def test_swc_points_and_labels(tmp_path):
    nodes = pd.DataFrame({"id": [1, 2], "type": [3, 3], "x": [1.0, 2.0], "y": [3.0, 3.0],
                          "z": [0.5, 0.5], "radius": [0.3, 0.3], "parent": [-1, 1]})
    write_swc(tmp_path / "d.swc", nodes)
    assert _xyz(read_points(tmp_path / "d.swc")) == [[0.5, 3.0, 1.0], [0.5, 3.0, 2.0]]
    labels = np.zeros((3, 4, 5), np.uint16)
    labels[1, 2, 3] = 7
    write_tiff(tmp_path / "l.tif", labels, SPACING)
    data, spacing = read_labels(tmp_path / "l.tif")
    assert data[1, 2, 3] == 7 and data.sum() == 7
    assert spacing == pytest.approx(SPACING)


def _labels_pair(tmp_path):
    truth = np.zeros((2, 6, 20), np.uint16)
    truth[:, 1:3, 0:10] = 1
    truth[:, 1:3, 12:16] = 2
    pred = np.zeros_like(truth)
    pred[:, 1:3, 0:10] = 5          # exact match of object 1
    pred[:, 1:3, 12:14] = 6         # half of object 2: IoU 0.5
    pred[:, 4:6, 0:3] = 9           # a false positive
    write_tiff(tmp_path / "truth.tif", truth, SPACING)
    write_tiff(tmp_path / "pred.tif", pred, SPACING)


def test_cli_instances(tmp_path, capsys):
    _labels_pair(tmp_path)
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path / "pred.tif"), str(tmp_path / "truth.tif"),
                 "--iou-threshold", "0.6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "instance scores" in printed
    scores = pd.read_csv(out / "instance_scores.csv")
    assert scores[["tp", "fp", "fn"]].values.tolist() == [[1, 2, 1]]
    curve = pd.read_csv(out / "instance_curve.csv").set_index("iou_threshold")
    assert curve.loc[0.5, "tp"] == 2 and curve.loc[0.6, "tp"] == 1
    assert curve.loc[0.5, "f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 0))
    assert (out / "f1_vs_iou.png").stat().st_size > 1000
    assert (out / "evaluation_settings.json").exists()
    assert not list(out.glob(".*partial*"))


def test_cli_semantic_with_band(tmp_path):
    truth = np.zeros((1, 1, 12), np.uint8)
    truth[0, 0, 0:2] = 1
    truth[0, 0, 2] = 2
    pred = truth.copy()
    pred[0, 0, 11] = 2               # far from the dendrite: outside a 1 µm band
    write_tiff(tmp_path / "t_semantic.tif", truth, SPACING)
    write_tiff(tmp_path / "p_semantic.tif", pred, SPACING)
    out = tmp_path / "o"
    assert main(["evaluate", str(tmp_path / "p_semantic.tif"), str(tmp_path / "t_semantic.tif"),
                 "--out", str(out)]) == 0
    t = pd.read_csv(out / "semantic_scores.csv").set_index("class")
    assert t.loc["spine", "precision"] == 0.5
    assert main(["evaluate", str(tmp_path / "p_semantic.tif"), str(tmp_path / "t_semantic.tif"),
                 "--band-um", "1.0", "--out", str(out)]) == 0
    t = pd.read_csv(out / "semantic_scores.csv").set_index("class")
    assert t.loc["spine", "precision"] == 1.0


def test_cli_points_three_raters(tmp_path, capsys):
    raters = {"A": [(5, 10, 10), (5, 20, 20), (0, 40, 40)], "B": [(5.5, 10.2, 10), (6, 20.3, 20)],
              "C": [(4.5, 9.9, 10.1), (10, 30, 30)]}
    paths = []
    for name, pts in raters.items():
        p = tmp_path / f"{name}.csv"
        pd.DataFrame(pts, columns=["z_um", "y_um", "x_um"]).to_csv(p, index=False)
        paths.append(str(p))
    method = tmp_path / "spines.csv"
    pd.DataFrame({"id": [1, 2, 3], "centroid_z_um": [5, 10, 100], "centroid_y_um": [10, 30, 100],
                  "centroid_x_um": [10, 30.2, 100]}).to_csv(method, index=False)
    out = tmp_path / "r"
    assert main(["evaluate", str(method), *paths, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "inter-rater reliability 58.3" in printed
    per = pd.read_csv(out / "rater_recall.csv")
    np.testing.assert_allclose(per["method_recall"], [1 / 3, 1 / 2, 1])
    pts = pd.read_csv(out / "point_scores.csv")
    assert pts["tp"].tolist() == [1, 1, 2]
    assert (out / "rater_matrix.png").exists() and (out / "rater_clusters.csv").exists()


def test_cli_labels_against_points_needs_spacing(tmp_path, capsys):
    labels = np.zeros((3, 7, 9), np.uint8)
    labels[1, 1:3, 1:3] = 1
    import tifffile
    tifffile.imwrite(tmp_path / "pred.tif", labels, photometric="minisblack")  # no voxel size
    pd.DataFrame({"z_um": [2.0], "y_um": [0.75], "x_um": [0.375]}).to_csv(tmp_path / "t.csv", index=False)
    assert main(["evaluate", str(tmp_path / "pred.tif"), str(tmp_path / "t.csv"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "voxel size" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "pred.tif"), str(tmp_path / "t.csv"), "--voxel-size", *map(str, SPACING),
                 "--out", str(tmp_path / "o")]) == 0
    assert pd.read_csv(tmp_path / "o" / "point_scores.csv")["f1"].tolist() == [1.0]


def test_swc_mask_and_dendrite_option(tmp_path):
    from spinequant.evaluate import swc_to_mask

    nodes = pd.DataFrame({"id": [1, 2], "type": [3, 3], "x": [1.0, 2.0], "y": [1.0, 1.0],
                          "z": [2.0, 2.0], "radius": [0.5, 0.5], "parent": [-1, 1]})
    mask = swc_to_mask(nodes, shape=(3, 5, 12), spacing=SPACING)
    # z plane 1 only (2 µm), y rows 1..3 (0.5 .. 1.5 µm), x columns 2..10 (0.5 .. 2.5 µm)
    assert mask.any(axis=(1, 2)).tolist() == [False, True, False]
    assert np.flatnonzero(mask[1].any(axis=1)).tolist() == [1, 2, 3]
    assert np.flatnonzero(mask[1, 2]).tolist() == list(range(2, 11))
    assert np.flatnonzero(mask[1, 1]).tolist() == [4, 5, 6, 7, 8]   # a capsule: rounded ends
    thin = swc_to_mask(nodes.assign(radius=0.0), shape=(3, 5, 12), spacing=SPACING)
    assert np.flatnonzero(thin).size == 5 and thin[1, 2, 4:9].all()
    write_swc(tmp_path / "d.swc", nodes)
    truth = np.zeros((3, 5, 12), np.uint8)
    truth[1, 2, 4:9] = 1
    truth[1, 3, 6] = 2
    pred = truth.copy()
    pred[1, 0, 0] = 2                      # 0.71 µm from the nearest dendrite voxel
    write_tiff(tmp_path / "t_semantic.tif", truth, SPACING)
    write_tiff(tmp_path / "p_semantic.tif", pred, SPACING)
    out = tmp_path / "o"
    args = ["evaluate", str(tmp_path / "p_semantic.tif"), str(tmp_path / "t_semantic.tif"), "--out", str(out)]
    assert main(args + ["--band-um", "0.2", "--dendrite", str(tmp_path / "d.swc")]) == 0
    assert pd.read_csv(out / "semantic_scores.csv").set_index("class").loc["spine", "precision"] == 1.0
    assert main(args + ["--band-um", "2", "--dendrite", str(tmp_path / "d.swc")]) == 0
    assert pd.read_csv(out / "semantic_scores.csv").set_index("class").loc["spine", "precision"] == 0.5


def test_cli_binary_masks_of_three_raters(tmp_path, capsys):
    # DeepD3's benchmark gives each rater's spines as a binary mask
    base = np.zeros((2, 6, 20), np.uint8)
    u, v, w = base.copy(), base.copy(), base.copy()
    u[:, 1:3, 0:10] = 1
    u[:, 1:3, 12:16] = 1
    v[:, 1:3, 2:10] = 1
    w[:, 1:3, 0:8] = 1
    pred = base.copy()
    pred[:, 1:3, 0:10] = 1
    for name, m in (("u", u), ("v", v), ("w", w), ("pred", pred)):
        write_tiff(tmp_path / f"{name}.tif", m, SPACING)
    out = tmp_path / "o"
    assert main(["evaluate", str(tmp_path / "pred.tif"), *(str(tmp_path / f"{n}.tif") for n in "uvw"),
                 "--out", str(out)]) == 0
    assert "binary mask" in capsys.readouterr().out
    inst = pd.read_csv(out / "instance_scores.csv").set_index("truth")
    assert inst.loc["u", "n_true"] == 2 and inst.loc["u", "tp"] == 1 and inst.loc["u", "fn"] == 1
    fg = pd.read_csv(out / "foreground_scores.csv").set_index("truth")
    # intersection = x 2..7 (12 voxels per plane pair -> 24), union = x 0..9 and 12..15
    assert fg.loc["intersection", "iou"] == pytest.approx(24 / 40)
    assert fg.loc["union", "iou"] == pytest.approx(40 / 56)
    assert (out / "f1_vs_iou_3.png").exists()


def test_cli_one_csv_with_rater_column_and_empty_prediction(tmp_path):
    rows = [("A", 5, 10, 10), ("A", 5, 20, 20), ("A", 0, 40, 40), ("B", 5.5, 10.2, 10), ("B", 6, 20.3, 20),
            ("C", 4.5, 9.9, 10.1), ("C", 10, 30, 30)]
    pd.DataFrame(rows, columns=["rater", "z_um", "y_um", "x_um"]).to_csv(tmp_path / "all.csv", index=False)
    pd.DataFrame(columns=["z_um", "y_um", "x_um"]).to_csv(tmp_path / "none.csv", index=False)
    out = tmp_path / "o"
    assert main(["evaluate", str(tmp_path / "none.csv"), str(tmp_path / "all.csv"), "--out", str(out)]) == 0
    m = pd.read_csv(out / "rater_matrix.csv").set_index("rater")
    assert m.loc["A", "B"] == pytest.approx(2 / 3) and m.loc["A", "method"] == 0.0
    pts = pd.read_csv(out / "point_scores.csv")
    assert pts["truth"].tolist() == ["A", "B", "C"] and pts["f1"].tolist() == [0.0, 0.0, 0.0]
    empty = np.zeros((2, 6, 20), np.uint8)
    write_tiff(tmp_path / "empty.tif", empty, SPACING)
    assert main(["evaluate", str(tmp_path / "empty.tif"), str(tmp_path / "empty.tif"), "--out", str(out)]) == 0
    curve = pd.read_csv(out / "instance_curve.csv")
    assert curve["f1"].tolist() == [1.0] * 9


def test_cli_instances_spine_detection_rule(tmp_path):
    """Masks that differ only in extent (a rater outlines wider) are the same spines by the
    README's rule (centres within 1 µm or IoU >= 0.3), though their voxel IoU is below 0.5."""
    truth = np.zeros((5, 40, 40), np.uint16)
    pred = np.zeros_like(truth)
    for k, (y, x) in enumerate([(8, 8), (8, 30), (30, 20)], start=1):
        truth[2, y - 1:y + 2, x - 1:x + 2] = k
        pred[1:4, y - 3:y + 4, x - 3:x + 4] = 10 + k   # same centre, 16x the voxels
    pred[2, 20:23, 2:5] = 99                          # a false spine
    write_tiff(tmp_path / "truth.tif", truth, SPACING)
    write_tiff(tmp_path / "pred.tif", pred, SPACING)
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path / "pred.tif"), str(tmp_path / "truth.tif"), "--out", str(out)]) == 0
    assert pd.read_csv(out / "instance_scores.csv")["tp"].tolist() == [0]
    spines = pd.read_csv(out / "spine_detection.csv").iloc[0]
    assert (spines["tp"], spines["fp"], spines["fn"]) == (3, 1, 0)
    assert spines["max_distance_um"] == 1.0 and spines["min_iou"] == 0.3
