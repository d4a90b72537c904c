"""The result folder: tables, label TIFFs, OME-Zarr, ImageJ ROI set, meshes and SWC read back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import roifile
import trimesh
import zarr
from test_instances_shapes import SPACING, dendrite_with_spines, ellipsoid

from spinequant.errors import InputError
from spinequant.export import export_results, has_parquet, semantic_labels, spine_rois
from spinequant.export.meshes import object_meshes
from spinequant.instances import spine_instances
from spinequant.io import open_stack, read_stack
from spinequant.io.swc import read_swc


@pytest.fixture(scope="module")
def scene():
    spines, dendrite, _ = dendrite_with_spines(n_spines=3)
    result = spine_instances(spines, dendrite, spacing=SPACING)
    table = pd.DataFrame({"id": [1, 2, 3], "volume_um3": [0.5, 0.25, 0.125],
                          "type": ["thin", "stubby", "mushroom"]})
    dend_table = pd.DataFrame({"dendrite_id": [1], "length_um": [10.5]})
    swc = pd.DataFrame({"id": [1, 2], "type": [3, 3], "x": [0.0, 10.5], "y": [3.0, 3.0], "z": [3.0, 3.0],
                        "radius": [1.0, 1.0], "parent": [-1, 1]})
    image = (result.spine_labels > 0).astype(np.uint16) * 200 + (result.dendrite_labels > 0) * 100
    return result, table, dend_table, swc, image


@pytest.fixture(scope="module")
def folder(scene, tmp_path_factory):
    result, table, dend_table, swc, image = scene
    out = tmp_path_factory.mktemp("results")
    written = export_results(out, spacing=SPACING, spines=table, dendrites=dend_table,
                             spine_labels=result.spine_labels, dendrite_labels=result.dendrite_labels,
                             centrelines=swc, image=image, mesh_formats=("stl", "ply", "obj"),
                             metadata={"config": result.config.to_dict()})
    return out, written


def test_folder_holds_every_file_and_nothing_half_written(folder):
    out, written = folder
    names = {p.name for p in out.iterdir()}
    assert {"spines.csv", "dendrites.csv", "labels_spines.tif", "labels_dendrites.tif", "labels_semantic.tif",
            "results.ome.zarr", "spines_roi.zip", "meshes", "dendrites.swc", "metadata.json"} <= names
    assert not [n for n in names if "partial" in n]
    assert ("spines.parquet" in names) == has_parquet()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["spacing_um_zyx"] == list(SPACING) and meta["config"]["noise_distance_um"] == 3.0
    assert "spines_roi.zip" in meta["files"]["roi"]


def test_tables_read_back(folder, scene):
    out, _ = folder
    pd.testing.assert_frame_equal(pd.read_csv(out / "spines.csv"), scene[1])
    pd.testing.assert_frame_equal(pd.read_csv(out / "dendrites.csv"), scene[2])
    if has_parquet():
        pd.testing.assert_frame_equal(pd.read_parquet(out / "spines.parquet"), scene[1])


def test_label_tiffs_keep_values_and_spacing(folder, scene):
    out, _ = folder
    result = scene[0]
    spines = read_stack(out / "labels_spines.tif")
    assert spines.spacing == pytest.approx(SPACING)
    assert np.array_equal(spines.data, result.spine_labels)
    semantic = read_stack(out / "labels_semantic.tif").data
    assert set(np.unique(semantic)) == {0, 1, 2}
    assert np.array_equal(semantic == 2, result.spine_labels > 0)
    assert np.array_equal(semantic == 1, (result.dendrite_labels > 0) & (result.spine_labels == 0))


def test_ome_zarr_has_image_and_labels_with_scale(folder, scene):
    out, _ = folder
    stack = open_stack(out / "results.ome.zarr")
    assert stack.spacing == pytest.approx(SPACING)
    assert np.array_equal(np.asarray(stack.data).squeeze(), scene[4])
    root = zarr.open_group(str(out / "results.ome.zarr"), mode="r")
    assert list(root["labels"].attrs["labels"]) == ["spines", "dendrites", "semantic"]
    assert np.array_equal(root["labels/spines/0"][...], scene[0].spine_labels)


def test_roi_set_has_one_named_polygon_per_spine_per_plane(folder, scene):
    out, _ = folder
    labels = scene[0].spine_labels
    rois = roifile.roiread(out / "spines_roi.zip")
    expected = sorted(f"spine-{i:04d}-z{z + 1:03d}" for i in range(1, labels.max() + 1)
                      for z in np.flatnonzero((labels == i).any(axis=(1, 2))))
    assert sorted(r.name for r in rois) == expected
    for roi in rois:
        index, z = int(roi.name[6:10]), int(roi.name[12:15]) - 1
        assert roi.roitype == roifile.ROI_TYPE.POLYGON
        assert roi.position == z + 1 and roi.z_position == 0  # stack position, 1-based as in Fiji
        xy = roi.coordinates()
        plane = labels[z] == index
        # Shoelace area of the outline vs the pixel count of the spine in that plane.
        area = 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1)))
        assert area == pytest.approx(plane.sum(), rel=0.2, abs=2)
        # ImageJ pixel (col, row) covers [col, col + 1): outline centre = pixel centre + 0.5.
        rows, cols = np.nonzero(plane)
        assert xy.mean(axis=0) == pytest.approx([cols.mean() + 0.5, rows.mean() + 0.5], abs=1.0)


def test_roi_outline_of_a_known_square():
    labels = np.zeros((3, 10, 12), np.int32)
    labels[1, 2:6, 3:9] = 7           # 4 rows x 6 columns on slice 2 (Fiji numbering)
    (roi,) = spine_rois(labels)
    assert roi.name == "spine-0007-z002"
    xy = roi.coordinates()
    assert xy[:, 0].min() == pytest.approx(3.0) and xy[:, 0].max() == pytest.approx(9.0)
    assert xy[:, 1].min() == pytest.approx(2.0) and xy[:, 1].max() == pytest.approx(6.0)


def test_meshes_are_closed_in_um_and_match_voxel_volume(folder, scene):
    out, written = folder
    labels = scene[0].spine_labels
    n = labels.max()
    assert len(written["meshes"]) == 3 * (n + scene[0].dendrite_labels.max())
    for fmt in ("stl", "ply", "obj"):
        mesh = trimesh.load(out / "meshes" / f"spine-0001.{fmt}", force="mesh")
        assert mesh.is_watertight
        voxels = (labels == 1).sum() * np.prod(SPACING)
        assert mesh.volume == pytest.approx(voxels, rel=0.15)
        zyx = np.argwhere(labels == 1) * SPACING
        # Vertices are (x, y, z) µm; the surface lies within half a voxel of the voxel centres.
        assert np.all(mesh.bounds[0] >= zyx.min(0)[::-1] - np.array(SPACING)[::-1])
        assert np.all(mesh.bounds[1] <= zyx.max(0)[::-1] + np.array(SPACING)[::-1])


def test_mesh_volume_is_the_same_at_two_spacings():
    volumes = []
    for spacing in (SPACING, (0.1, 0.1, 0.1)):
        blob = ellipsoid((5, 3, 3), spacing, (2.5, 1.5, 1.5), (1.5, 0.8, 0.8)).astype(np.int32)
        volumes.append(object_meshes(blob, spacing)[1].volume)
    assert volumes[0] == pytest.approx(volumes[1], rel=0.12)
    assert volumes[1] == pytest.approx(4 / 3 * np.pi * 1.5 * 0.8 * 0.8, rel=0.1)


def test_swc_round_trip(folder, scene):
    out, _ = folder
    back = read_swc(out / "dendrites.swc")
    pd.testing.assert_frame_equal(back, scene[3], check_dtype=False)


def test_semantic_labels_and_errors(tmp_path):
    spines = np.zeros((2, 3, 3), np.int32); spines[0, 0, 0] = 5
    dendrites = np.ones((2, 3, 3), np.int32)
    sem = semantic_labels(spines, dendrites)
    assert sem.dtype == np.uint8 and sem[0, 0, 0] == 2 and sem[1, 1, 1] == 1
    with pytest.raises(InputError, match="formats"):
        export_results(tmp_path, spacing=SPACING, formats=("pdf",))
    with pytest.raises(InputError, match="shape"):
        export_results(tmp_path, spacing=SPACING, spine_labels=spines, dendrite_labels=dendrites[:1])
    with pytest.raises(InputError, match="not supported"):
        export_results(tmp_path, spacing=SPACING, spine_labels=spines, dendrite_labels=dendrites,
                       formats=("meshes",), mesh_formats=("fbx",))


def test_only_the_asked_formats_are_written(tmp_path, scene):
    result = scene[0]
    export_results(tmp_path, spacing=SPACING, spine_labels=result.spine_labels,
                   dendrite_labels=result.dendrite_labels, formats=("roi", "tables"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json", "spines_roi.zip"]
    written = export_results(tmp_path, spacing=SPACING, spine_labels=result.spine_labels, formats=("meshes",))
    assert sorted(p.name for p in written["meshes"]) == ["spine-0001.stl", "spine-0002.stl", "spine-0003.stl"]


def test_interrupted_write_leaves_old_file_and_no_partial(tmp_path, scene, monkeypatch):
    table = scene[1]
    export_results(tmp_path, spacing=SPACING, spines=table, formats=("tables",))
    before = (tmp_path / "spines.csv").read_text()

    def broken_to_csv(self, path, **kwargs):
        with open(path, "w") as fh:
            fh.write("id,volu")          # half a file, then the disk "fills up"
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError):
        export_results(tmp_path, spacing=SPACING, spines=table.iloc[:1], formats=("tables",))
    assert (tmp_path / "spines.csv").read_text() == before
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_rerun_with_fewer_objects_leaves_no_stale_meshes(tmp_path):
    from spinequant.export import export_results

    labels = np.zeros((4, 20, 20), np.int32)
    labels[1:3, 2:6, 2:6] = 1
    labels[1:3, 10:14, 10:14] = 2
    export_results(tmp_path, spacing=(0.5, 0.1, 0.1), spine_labels=labels, formats=("meshes",))
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == ["spine-0001.stl", "spine-0002.stl"]
    labels[labels == 2] = 0
    export_results(tmp_path, spacing=(0.5, 0.1, 0.1), spine_labels=labels, formats=("meshes",))
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == ["spine-0001.stl"]


def test_report_labels_never_overlap():
    """Spine ids in the overview are moved apart (with a leader line) where spines crowd."""
    import numpy as np

    from spinequant.report.figures import label_positions

    rng = np.random.default_rng(3)
    anchors = np.concatenate([rng.normal(5, 0.3, (12, 2)), rng.uniform(0, 30, (20, 2))])
    box = (0.8, 0.4)
    spots = np.array(label_positions(anchors, box))
    for i in range(len(spots)):
        for j in range(i):
            dx, dy = np.abs(spots[i] - spots[j])
            assert dx >= box[0] - 1e-9 or dy >= box[1] - 1e-9, (i, j)
    far = np.linalg.norm(spots - anchors, axis=1)
    assert (far[12:] == 0).mean() > 0.7      # spread-out spines keep their labels on them


def test_report_draws_the_grey_image_as_matplotlib_would():
    """The overview's image is coloured a band of rows at a time (no float64 RGBA copy of the
    whole projection); drawn, it gives the same pixels as imshow with the grey colour map,
    values outside the display range included: shrunk, slightly enlarged (matplotlib colours,
    then resamples) and much enlarged (it resamples the values, then colours), integer and
    float images."""
    from spinequant.report.figures import _figure, _grey_rgba

    rng = np.random.default_rng(0)
    lo, hi = 300.0, 3500.0
    for shape, inches, dtype in (((150, 90), (3, 4), np.uint16), ((20, 30), (6, 4), np.uint16),
                                 ((300, 500), (2, 2), np.float32)):
        image = (rng.random(shape) * 4000).astype(dtype)
        extent = (0, shape[1] * 0.1, shape[0] * 0.1, 0)
        pixels = []
        for drawn in (image, _grey_rgba(image, lo, hi, rows=7)):
            fig, ax = _figure(figsize=inches)
            if drawn.ndim == 2:
                ax.imshow(drawn, cmap="gray", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
            else:
                ax.imshow(drawn, extent=extent, interpolation="nearest")
            fig.canvas.draw()
            pixels.append(np.asarray(fig.canvas.buffer_rgba()).copy())
        assert np.array_equal(*pixels) and len(np.unique(pixels[0][..., 0])) > 100, shape


def test_swc_maps_each_tree_to_its_dendrite(tmp_path):
    """dendrites.swc: one tree per dendrite, named (dendrite_id of dendrites.csv) with its nodes and root."""
    import numpy as np

    from spinequant.io.swc import read_swc
    from spinequant.pipeline import AnalyzeConfig, analyze, save_result
    from spinequant.synth import make_phantom

    ph = make_phantom("confocal", seed=0)           # two dendrites (seed 7 has one, and a 0.8 µm fragment)
    result = analyze(ph.image, spacing=ph.spacing, config=AnalyzeConfig(method="classical", export_meshes=False,
                                                                         report=False))
    save_result(result, tmp_path / "r")
    text = (tmp_path / "r" / "dendrites.swc").read_text()
    trees = read_swc(tmp_path / "r" / "dendrites.swc")
    roots = trees[trees["parent"] == -1]["id"].tolist()
    named = [line for line in text.splitlines() if line.startswith("# dendrite ")]
    assert len(named) == len(roots) == len(result.dendrites) == 2
    for line, did in zip(named, sorted(result.dendrites["dendrite_id"])):
        first, last = (int(v) for v in line.split("nodes ")[1].split(",")[0].split("-"))
        root = int(line.rsplit("root ", 1)[1])
        assert line.startswith(f"# dendrite {did}:") and root in roots and first <= root <= last
        assert np.all(trees[(trees.id >= first) & (trees.id <= last)]["parent"].isin([-1, *range(first, last + 1)]))
