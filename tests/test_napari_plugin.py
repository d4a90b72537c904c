"""The napari plugin driven through its widgets with pytest-qt, in offscreen Qt.

The viewer is napari's ViewerModel (layers, dims, camera, mouse callbacks) without a
rendering canvas: offscreen Qt has no OpenGL context here. Screenshots of the real viewer are
in docs/napari.md (made under Xvfb).
"""

import os
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
napari = pytest.importorskip("napari", reason="the napari extra is not installed: pip install 'spinequant[napari]'")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed (the test extra)")

import spinequant as sq  # noqa: E402
from napari.components import ViewerModel  # noqa: E402
from napari.layers import Layer  # noqa: E402
from spinequant.data import sample_stack  # noqa: E402
from spinequant.io import read_stack  # noqa: E402
from spinequant.morphology import dendrite_skeleton  # noqa: E402
from spinequant.napari._correct import EDIT_POINTS, SPLIT_LINE  # noqa: E402
from spinequant.napari._layers import CENTRELINES, HEADS, SPINES  # noqa: E402
from spinequant.napari._reader import get_reader  # noqa: E402
from spinequant.napari._sample import sample_data  # noqa: E402
from spinequant.napari._widget import SpinesWidget  # noqa: E402
from spinequant.pipeline.analyze import model_calibration  # noqa: E402


@pytest.fixture(scope="module")
def sample_result():
    return sq.analyze(sample_stack())


@pytest.fixture
def viewer_with_sample():
    viewer = ViewerModel()
    for data, meta, kind in sample_data():
        viewer.add_layer(Layer.create(data, meta, kind))
    return viewer


def make_widget(qtbot, viewer):
    widget = SpinesWidget(viewer)
    qtbot.addWidget(widget)
    return widget


def test_importing_spinequant_loads_no_napari_or_qt():
    code = ("import sys, spinequant, spinequant.edit, spinequant.edit.load; "
            "bad = [m for m in ('napari', 'qtpy', 'PyQt5') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_manifest_is_valid_and_found():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("spinequant")
    contrib = manifest.contributions
    assert [w.display_name for w in contrib.widgets] == ["Spines"]
    assert contrib.readers[0].accepts_directories
    assert contrib.sample_data[0].key == "sample"
    for command in contrib.commands:          # every command's python_name resolves
        assert callable(_resolve(command.python_name))


def _resolve(python_name):
    import importlib

    module, name = python_name.split(":")
    return getattr(importlib.import_module(module), name)


def test_run_widget_analyses_the_sample_in_a_worker(qtbot, viewer_with_sample, sample_result):
    viewer = viewer_with_sample
    widget = make_widget(qtbot, viewer)
    run = widget.run_panel
    assert run.layer_box.currentText() == "spinequant sample"
    assert run.voxel.text() == "0.5 0.094 0.094"            # from the layer's scale
    run.min_confidence.setValue(model_calibration("lean2d_real")["min_confidence"])   # the API's default
    with qtbot.waitSignal(run.run_button.clicked):
        run.run_button.click()
    assert not run.run_button.isEnabled()                  # running in a worker: the event loop is free
    qtbot.waitUntil(lambda: run.run_button.isEnabled(), timeout=120_000)
    assert run.progress.value() == run.progress.maximum()
    assert widget.session is not None, run.status.text()
    spines = widget.session.spines
    pd.testing.assert_frame_equal(spines, sample_result.spines)    # the API's table, same settings
    for name in (SPINES, "dendrites", HEADS, CENTRELINES, "spine map", "dendrite map"):
        assert tuple(viewer.layers[name].scale) == (0.5, 0.094, 0.094)
    heads = viewer.layers[HEADS]
    assert list(heads.features.columns) == list(spines.columns) and len(heads.data) == len(spines)
    np.testing.assert_allclose(heads.data[0] * 0.094, spines[["head_z_um", "head_y_um", "head_x_um"]].iloc[0]
                               * np.array([0.094 / 0.5, 1, 1]))
    assert viewer.layers[CENTRELINES].shape_type[0] == "path"
    assert (viewer.layers[SPINES].data == sample_result.spine_labels).all()
    assert "image" not in viewer.layers                     # the analysed layer is not added again


def _pause_at(relay_signal, when):
    """Hold the worker thread in its progress report once ``when(*args)`` is true, until the
    returned ``release`` is set; ``reached`` is set once it waits there. (A click on Cancel
    then lands at a known point of the run, whatever the machine's speed.)"""
    import threading

    from qtpy.QtCore import Qt

    reached, release = threading.Event(), threading.Event()

    def hold(*args):
        if when(*args) and not reached.is_set():
            reached.set()
            release.wait(30)

    relay_signal.connect(hold, Qt.ConnectionType.DirectConnection)
    return reached, release


def test_run_asks_for_a_missing_voxel_size_and_cancels_mid_segment(qtbot):
    import time

    viewer = ViewerModel()
    viewer.add_image(np.asarray(sample_stack().data), name="no scale")
    widget = make_widget(qtbot, viewer)
    run = widget.run_panel
    assert run.voxel.text() == "" and "no voxel size" in run.status.text()
    run.run()
    assert run.worker is None and "voxel size" in run.status.text()
    run.voxel.setText("0.5 0.094 0.094")
    before = [(layer, layer.data) for layer in viewer.layers]
    reached, release = _pause_at(run._relay.stage, lambda stage, fraction: stage == "segment" and fraction > 0.2)
    run.run()
    qtbot.waitUntil(reached.is_set, timeout=120_000)
    run.cancel()                        # a click on Cancel while the network is a fifth through
    clicked = time.perf_counter()
    with qtbot.waitSignal(run.worker.finished, timeout=60_000):
        release.set()
    assert time.perf_counter() - clicked < 0.5              # stopped at the next batch of tiles
    assert run.cancelled_at[0] == "segment" and 0.2 < run.cancelled_at[1] < 0.5
    assert run.status.text().startswith("Cancelled during segment") and widget.session is None
    assert [(layer, layer.data) for layer in viewer.layers] == before      # the viewer is as it was
    assert run.run_button.isEnabled() and not run.cancel_button.isEnabled()


def test_stage_settings_are_form_fields_checked_by_the_configs(qtbot, viewer_with_sample, tmp_path):
    import json

    from spinequant.config import config_to_dict
    from spinequant.morphology import MorphologyConfig

    widget = make_widget(qtbot, viewer_with_sample)
    run = widget.run_panel
    assert set(run.stage_forms) == {"classical", "instances", "morphology"}
    morphology = run.stage_forms["morphology"]
    assert morphology.editors["neck_ratio"].text() == "1.1"             # the config's defaults
    # The method's own instance settings are shown (and locked) until unticked.
    assert run.stage_forms["instances"].raw_values()["method"] == "heads"
    from spinequant.pipeline.analyze import resolve_config

    resolved = resolve_config(sq.AnalyzeConfig(min_confidence=0.6)).instances
    run.min_confidence.setValue(0.6)                  # the head threshold calibrated for 0.6
    assert run.stage_forms["instances"].value() == resolved
    # The head map alone scores the spines: its calibrated head threshold, not the candidate floor.
    assert run.stage_forms["instances"].value().head_threshold == resolved.head_threshold == 0.05
    run.confidence.setCurrentText("head_map")
    by_peak = resolve_config(sq.AnalyzeConfig(min_confidence=0.6, confidence="head_map")).instances
    assert by_peak.head_threshold > 0.05 and run.stage_forms["instances"].value() == by_peak
    assert run.config().confidence == "head_map"
    run.confidence.setCurrentText("auto")
    run.min_confidence.setValue(-0.05)
    run.method.setCurrentText("classical")
    assert run.stage_forms["instances"].raw_values()["method"] == "components"
    assert not run.stage_forms["instances"].isEnabled() and run.config().instances is None
    # A bad value: the config's own message under the field, and no run.
    morphology.editors["neck_ratio"].setText("-1")
    morphology.editors["neck_ratio"].editingFinished.emit()
    with pytest.raises(sq.errors.InputError) as expected:
        MorphologyConfig(neck_ratio=-1.0)
    assert morphology.errors["neck_ratio"].text() == str(expected.value)
    assert not morphology.errors["neck_ratio"].isHidden()
    run.run()
    assert run.worker is None and run.status.text() == str(expected.value)
    morphology.editors["neck_ratio"].setText("1.3")
    morphology.editors["rule_set"].setText("risher")
    classical = run.stage_forms["classical"]
    classical.editors["smooth_sigma_um"].setText("0.3 0.1 0.1")
    classical.editors["threshold"].setText("0.25")
    config = run.config()
    assert config.morphology.neck_ratio == 1.3 and config.morphology.rule_set == "risher"
    assert config.classical.smooth_sigma_um == (0.3, 0.1, 0.1) and config.classical.threshold == 0.25
    assert morphology.errors["neck_ratio"].isHidden()
    # A run.json's config fills the fields, instance settings and export choices included.
    saved = sq.AnalyzeConfig.from_dict({"method": "lean2d", "confidence": "head_map", "morphology": {"rule_set": "risher", "thin_ratio": 3.0},
                                        "instances": {"method": "components", "threshold": 0.2},
                                        "export_meshes": False, "orientations": 4})
    (tmp_path / "run.json").write_text(json.dumps({"config": config_to_dict(saved)}))
    run.load_settings(tmp_path / "run.json")
    assert run.stage_forms["morphology"].editors["thin_ratio"].text() == "3"
    assert run.stage_forms["instances"].isEnabled() and run.config() == saved
    assert run.confidence.currentText() == "head_map" and run.orientations.currentText() == "4"
    (tmp_path / "bad.json").write_text(json.dumps({"config": {"morphology": {"neck_ratio": "wide"}}}))
    assert run.load_settings(tmp_path / "bad.json") is None and "neck_ratio" in run.status.text()


def test_inspect_table_is_linked_both_ways(qtbot, viewer_with_sample, sample_result):
    viewer = viewer_with_sample
    widget = make_widget(qtbot, viewer)
    widget.show_result(sample_result, with_image=False)
    table = widget.inspect_panel.table
    assert table.rowCount() == len(sample_result.spines)
    table.sortItems(list(sample_result.spines.columns).index("volume_um3"))     # sortable
    table.selectRow(0)                                                          # a row click centres the view
    sid = widget.inspect_panel.selected_ids()[0]
    assert sid == int(sample_result.spines.sort_values("volume_um3")["id"].iloc[0])
    head = sample_result.spines.set_index("id").loc[sid, ["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    np.testing.assert_allclose(camera.center[-2:], head[-2:], atol=1e-6)
    assert viewer.dims.point[0] == pytest.approx(head[0], abs=0.5)
    assert viewer.layers[SPINES].selected_label == sid
    # A click on another spine in the viewer selects its row.
    other = int(sample_result.spines["id"].iloc[-1])
    voxel = np.argwhere(sample_result.spine_labels == other)[0]
    viewer.dims.set_point(0, voxel[0] * 0.5)
    widget._on_click(viewer, types.SimpleNamespace(position=tuple(voxel * np.array([0.5, 0.094, 0.094]))))
    assert widget.inspect_panel.selected_ids() == [other]
    # Colour by a column: every spine's label and head get its colour.
    widget.inspect_panel.colour_box.setCurrentText("volume_um3")
    colours = viewer.layers[HEADS].face_color
    assert len(colours) == len(sample_result.spines) and len({tuple(c) for c in colours.round(3)}) > 5
    assert "density" in widget.inspect_panel.summary.text()


def test_correct_delete_merge_split_add_retype_undo_save(qtbot, viewer_with_sample, sample_result, tmp_path):
    viewer = viewer_with_sample
    widget = make_widget(qtbot, viewer)
    widget.show_result(sample_result, with_image=False)
    correct, inspect = widget.correct_panel, widget.inspect_panel
    n = len(sample_result.spines)
    inspect.select_ids([1])
    assert correct.delete() == [1] and inspect.table.rowCount() == n - 1
    inspect.select_ids([2, 3])
    assert correct.merge() == [2, 3] and inspect.table.rowCount() == n - 2
    assert not (viewer.layers[SPINES].data == 3).any()
    # Split spine 4 with two points placed at its ends.
    vox = np.argwhere(widget.session.spine_labels == 4)
    correct.place_points()
    viewer.layers[EDIT_POINTS].data = np.array([vox[vox[:, 1].argmin()], vox[vox[:, 1].argmax()]], float)
    pieces = correct.split()
    assert len(pieces) == 2 and inspect.table.rowCount() == n - 1 and not len(viewer.layers[EDIT_POINTS].data)
    # Split spine 5 with a line across the middle of its y extent.
    vox = np.argwhere(widget.session.spine_labels == 5)
    y = int(np.median(vox[:, 1])); x0, x1 = vox[:, 2].min() - 2, vox[:, 2].max() + 2
    correct.draw_line()
    viewer.layers[SPLIT_LINE].add_lines(np.array([[vox[0, 0], y, x0], [vox[0, 0], y, x1]], float))
    assert len(correct.split()) >= 2 and inspect.table.rowCount() == n
    # Add a spine where the spine map is high and nothing is labelled yet.
    free = (widget.session.spine_labels == 0) & (sample_result.dendrite_labels == 0) & (sample_result.spine_prob > 0.5)
    correct.place_points()
    viewer.layers[EDIT_POINTS].data = np.argwhere(free)[:1].astype(float)
    added = correct.add()
    assert len(added) == 1 and inspect.table.rowCount() == n + 1
    inspect.select_ids([6])
    correct.type_box.setCurrentText("stubby")
    correct.set_type()
    assert widget.session.spines.set_index("id").loc[6, "type"] == "stubby"
    # Paint: a brush stroke on the labels layer is taken in by itself (spine 8 grows by a
    # voxel); erasing spine 7 and applying removes it.
    layer = viewer.layers[SPINES]
    edge = np.argwhere(widget.session.spine_labels == 8)[0]
    target = next(tuple(edge + d) for d in np.eye(3, dtype=int) * -1 if widget.session.spine_labels[tuple(edge + d)] == 0)
    layer.brush_size = 1
    layer.paint(target, 8)
    qtbot.waitUntil(lambda: widget.session.spine_labels[target] == 8, timeout=10_000)
    assert widget.session.log[-1]["edit"] == "paint"
    painted = np.asarray(layer.data).copy()
    painted[painted == 7] = 0
    layer.data = painted
    assert correct.apply_paint() == [7] and inspect.table.rowCount() == n
    assert correct.undo() == "paint" and correct.undo() == "paint" and inspect.table.rowCount() == n + 1
    assert (layer.data == 7).any() and widget.session.spine_labels[target] == 0
    # Re-attach spine 9 to the (only) dendrite: recorded, the table unchanged otherwise.
    inspect.select_ids([9])
    correct.dendrite_box.setValue(1)
    assert correct.reattach() == [9] and widget.session.log[-1]["edit"] == "reattach"
    correct.undo()
    # Save through the widget (worker) and compare with the API on the saved labels.
    worker = correct.save(tmp_path / "edited")
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert "Saved" in correct.status.text(), correct.status.text()
    out = tmp_path / "edited"
    saved = pd.read_csv(out / "spines.csv")
    labels = np.asarray(read_stack(out / "labels_spines.tif").data).reshape(sample_result.spine_labels.shape)
    assert (labels == widget.session.spine_labels).all()
    skeleton = dendrite_skeleton(sample_result.dendrite_labels, sample_result.spacing,
                                 config=sample_result.config.morphology)
    api = sq.measure_spines(labels, sample_result.dendrite_labels, sample_result.spacing, image=sample_result.image,
                            config=sample_result.config.morphology, skeleton=skeleton)
    api.loc[api["id"] == 6, ["type", "type_rule"]] = ["stubby", "set by hand"]
    pd.testing.assert_frame_equal(saved.drop(columns="confidence"), api, check_dtype=False, rtol=1e-9)
    import json

    edits = [e["edit"] for e in json.loads((out / "run.json").read_text())["edited"]["edits"]]
    assert edits == ["delete", "merge", "split", "split", "add", "retype"]
    # The saved folder opens again with the reader, and as training data.
    layers = get_reader(str(out))(str(out))
    names = {meta["name"]: (data, meta) for data, meta, _ in layers}
    assert {"image", SPINES, "dendrites", HEADS, CENTRELINES} <= set(names)
    assert len(names[HEADS][1]["features"]) == len(saved)
    assert (names[SPINES][0] == labels).all()
    zarr_layers = get_reader(str(out / "results.ome.zarr"))(str(out / "results.ome.zarr"))
    assert sorted(m["name"] for _, m, k in zarr_layers if k == "labels") == ["dendrites", "semantic", "spines"]
    assert get_reader(str(tmp_path)) is None
    # ... and in the widget, to correct further: the edits go on from the saved state.
    reopened = make_widget(qtbot, ViewerModel())
    reopened.run_panel.open_result(str(out))
    pd.testing.assert_frame_equal(reopened.session.spines, saved)
    assert reopened.correct_panel.grow_in.currentText() == "image"      # a folder keeps no spine map
    assert reopened.session.delete([int(saved["id"].iloc[0])]) and len(reopened.session.spines) == len(saved) - 1
    worker = correct.save_training(tmp_path / "train" / "sample")
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    from spinequant.groundtruth.layout import read_training_stack

    image, spacing, spine_labels, _ = read_training_stack(tmp_path / "train" / "sample")
    assert tuple(spacing) == (0.5, 0.094, 0.094) and (spine_labels == labels).all()
    # Fine-tune on it from the Train tab (two tiny epochs) in a worker; Run then uses the model.
    trainer = widget.train_panel
    assert trainer.data_dir.text() == str(tmp_path / "train")
    trainer.model_dir.setText(str(tmp_path / "model"))
    trainer.epochs.setValue(2), trainer.steps.setValue(1), trainer.batch.setValue(2)
    worker = trainer.start()
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    assert "Model written" in trainer.status.text(), trainer.status.text()
    assert [m["epoch"] for m in trainer.epochs_done] == [1, 2]                 # per-epoch progress
    assert trainer.history.text().count("validation loss") == 2
    assert trainer.progress.value() == trainer.progress.maximum() == 2
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert widget.run_panel.method.currentText() == str(tmp_path / "model")
    # Cancel midway, in the first epoch: it stops after the running step, and writes no model.
    trainer.model_dir.setText(str(tmp_path / "cancelled"))
    trainer.epochs.setValue(2), trainer.steps.setValue(3)
    reached, release = _pause_at(trainer._relay.step, lambda epoch, step, metrics: (epoch, step) == (1, 1))
    worker = trainer.start()
    qtbot.waitUntil(reached.is_set, timeout=300_000)
    trainer.cancel()
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        release.set()
    assert trainer.status.text() == "Cancelled; no epoch had finished: no model was written.", trainer.status.text()
    assert trainer.progress.value() == 1 and not (tmp_path / "cancelled" / "model.json").exists()
