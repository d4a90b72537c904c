"""2D images end to end: a single plane or a maximum projection, with a (y, x) spacing."""

import json

import numpy as np
import pandas as pd
import pytest
import roifile
import tifffile
import zarr

from spinequant.io import write_tiff
from spinequant.morphology import SPINE_COLUMNS_2D, measure_dendrites, measure_spines
from spinequant.pipeline import AnalyzeConfig, analyze, analyze_folder, save_result
from spinequant.segment import semantic_maps
from spinequant.stack import Stack
from spinequant.synth import make_phantom, project_phantom

CLASSICAL = AnalyzeConfig(method="classical")


@pytest.fixture(scope="module")
def flat():
    """A confocal phantom projected along z: image, labels and truth in the plane."""
    return project_phantom(make_phantom("confocal", seed=1001, shape=(24, 160, 160)))


def test_projected_phantom_truth_is_2d(flat):
    assert flat.image.shape == flat.spine_labels.shape == (160, 160) and flat.spacing == (0.075, 0.075)
    ids = flat.spines["id"].to_numpy()
    counts = np.bincount(flat.spine_labels.ravel(), minlength=ids.max() + 1)[ids]
    assert np.allclose(flat.spines["area_um2"], counts * 0.075 ** 2)
    # Projected lengths are never longer than the spines themselves.
    assert (flat.spines["length_um"] <= flat.spines["length_um"] / np.cos(
        np.radians(flat.spines["elevation_deg"])) + 1e-9).all()


def test_measure_spines_in_the_plane(flat):
    table = measure_spines(flat.spine_labels, flat.dendrite_labels, flat.spacing, image=flat.image)
    assert list(table.columns[:len(SPINE_COLUMNS_2D)]) == SPINE_COLUMNS_2D
    assert not any(c.endswith("_z_um") or c in ("volume_um3", "surface_um2") for c in table.columns)
    j = flat.spines.merge(table, on="id", suffixes=("", "_m"))
    assert len(j) == len(flat.spines)
    assert np.allclose(j["area_um2_m"], j["area_um2"])                # exact against the labels
    assert (j["perimeter_um"] > 0).all() and (j["head_area_um2"] <= j["area_um2_m"] + 1e-12).all()
    dendrites = measure_dendrites(flat.dendrite_labels, flat.spacing, table)
    assert "area_um2" in dendrites and (dendrites["length_um"] > 5).any()
    assert dendrites["n_spines"].sum() == (table["dendrite_id"] > 0).sum()


def test_spine_geometry_of_a_drawn_spine():
    """A mushroom spine drawn in 2D on 0.05 µm pixels: from the dendrite's edge (pixel edge at
    y = 0.975 µm) to the head's far edge (2.525 µm), a neck of 7 pixels, a head 1.0 µm across."""
    y, x = np.mgrid[:80, :80] * 0.05
    dendrite = y < 1.0
    neck = (y >= 1.0) & (y < 2.0) & (np.abs(x - 2.0) <= 0.15)
    head = (y - 2.0) ** 2 + (x - 2.0) ** 2 <= 0.5 ** 2
    spine = ((neck | head) & ~dendrite).astype(int)
    t = measure_spines(spine, dendrite, (0.05, 0.05)).iloc[0]
    assert t["length_um"] == pytest.approx(1.55, abs=0.03)
    assert t["head_diameter_um"] == pytest.approx(1.0, abs=0.05)
    assert t["neck_mean_diameter_um"] == pytest.approx(0.35, abs=0.05)   # 7 pixels of 0.05 µm
    assert t["type"] == "mushroom" and t["area_um2"] == pytest.approx(spine.sum() * 0.05 ** 2)


def test_analyze_2d_finds_the_projected_spines(flat):
    result = analyze(flat.image, spacing=flat.spacing, config=CLASSICAL)
    assert result.spine_labels.shape == result.dendrite_prob.shape == flat.image.shape
    assert result.spacing == flat.spacing
    assert len(result.spines) == len(np.unique(result.spine_labels)) - 1 >= 3
    truth = flat.spines[["head_y_um", "head_x_um"]].to_numpy()
    found = result.spines[["centroid_y_um", "centroid_x_um"]].to_numpy()
    near = np.linalg.norm(found[:, None] - truth[None], axis=2).min(axis=1) < 1.0
    assert near.mean() > 0.5, near
    assert result.dendrites["density_per_um"].notna().all()


def test_one_pixel_size_however_it_was_computed_gives_one_result(flat):
    """0.12 µm typed, read from a float32 (0.119999997) or computed as 0.9 / 7.5
    (0.12000000000000001) is one pixel size: the same spines, measured alike. Grid distances
    tie exactly at such sizes, and the last bit used to decide the ties (before, the float32
    size moved heads, bases and tips of most spines, and analyze found 22 spines instead of 23)."""
    sizes = (0.12, float(np.float32(0.12)), 0.9 / 7.5)
    assert len(set(sizes)) == 3
    tables = [measure_spines(flat.spine_labels, flat.dendrite_labels, (s, s), image=flat.image) for s in sizes]
    for other in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], other)
    config = AnalyzeConfig(method="lean2d_real", report=False)
    results = [analyze(flat.image, spacing=(s, s), config=config) for s in sizes[:2]]
    assert results[0].spacing == results[1].spacing == (0.12, 0.12)
    pd.testing.assert_frame_equal(results[0].spines, results[1].spines)


def test_network_sees_the_plane_as_its_own_z_context(flat):
    """2D maps = the middle plane of a stack of three copies at the model's own z step."""
    from spinequant.segment.neural import predict
    from spinequant.segment.neural.card import read_card

    plane = flat.image[:64, :64]
    dend, spine, diag = semantic_maps(plane, spacing=flat.spacing, method="lean2d", engine="torch")
    assert dend.shape == spine.shape == plane.shape and diag["model_name"]
    z = read_card("lean2d").voxel_size_um[0]
    d3, s3 = predict(np.stack([plane] * 3), spacing=(z, *flat.spacing), model="lean2d", engine="torch")
    assert np.allclose(dend, d3[1], atol=1e-3) and np.allclose(spine, s3[1], atol=1e-3)


def test_2d_results_folder(flat, tmp_path):
    result = analyze(Stack(flat.image, spacing=flat.spacing, axes="YX"), config=CLASSICAL)
    out = save_result(result, tmp_path / "r")
    n = len(result.spines)
    run = json.loads((out / "run.json").read_text())
    assert run["input"]["spacing_um"] == list(flat.spacing) and "image_2d" in run
    assert not (out / "meshes").exists()
    assert "no meshes" in run["image_2d"]
    with tifffile.TiffFile(out / "labels_spines.tif") as tf:
        labels = tf.asarray()
        x_res = tf.pages[0].tags["XResolution"].value
        assert "spacing" not in tf.imagej_metadata                      # no invented z step
    assert labels.shape == flat.image.shape and labels.max() == n
    assert x_res[1] / x_res[0] == pytest.approx(0.075)
    rois = roifile.roiread(out / "spines_roi.zip")
    names = {r.name.split("-")[1] for r in rois}
    assert len(names) == n and all(r.name.count("-") in (1, 2) for r in rois)
    root = zarr.open_group(str(out / "results.ome.zarr"), mode="r")
    ms = root["labels/spines"].attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == list(flat.spacing)
    assert np.array_equal(root["labels/spines/0"][...], labels)
    swc = np.loadtxt(out / "dendrites.swc", comments="#", ndmin=2)
    assert len(swc) and np.all(swc[:, 4] == 0)                              # z column
    spines = pd.read_csv(out / "spines.csv")
    assert "area_um2" in spines and "volume_um3" not in spines and len(spines) == n
    html = (out / "report.html").read_text()
    assert "(y, x)" in html and (out / "overview.png").stat().st_size > 0


def test_report_of_a_single_plane_stack(flat, tmp_path):
    result = analyze(flat.image[None], spacing=(0.5, *flat.spacing), config=CLASSICAL)
    assert result.spine_labels.ndim == 3
    out = save_result(result, tmp_path / "one_plane")
    assert (out / "report.html").exists() and (out / "overview.png").exists()


def test_folder_mixing_2d_and_3d_files(flat, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    stack = make_phantom("confocal", seed=1002, shape=(16, 96, 96))
    write_tiff(folder / "plane.tif", flat.image, flat.spacing)
    write_tiff(folder / "stack.tif", stack.image, stack.spacing)
    summary = analyze_folder(folder, tmp_path / "out", config=AnalyzeConfig(method="classical",
                                                                             export_meshes=False))
    assert dict(zip(summary["stack"], summary["status"])) == {"plane.tif": "done", "stack.tif": "done"}
    plane_run = json.loads((tmp_path / "out" / "plane" / "run.json").read_text())
    stack_run = json.loads((tmp_path / "out" / "stack" / "run.json").read_text())
    assert plane_run["input"]["spacing_um"] == list(flat.spacing)
    assert stack_run["input"]["spacing_um"] == list(stack.spacing)
    assert "area_um2" in pd.read_csv(tmp_path / "out" / "plane" / "spines.csv")
    assert "volume_um3" in pd.read_csv(tmp_path / "out" / "stack" / "spines.csv")
    assert {"median_area_um2", "median_volume_um3"} <= set(summary.columns)
