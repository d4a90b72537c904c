"""The learnt spine confidence: its tree file, its features, and how analyze keeps spines by it."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile

import spinequant as sq
from spinequant.errors import InputError
from spinequant.morphology.dendrites import recount_spines
from spinequant.pipeline.analyze import AnalyzeConfig, model_calibration, resolve_config
from spinequant.pipeline.spine_confidence import FEATURES, confidence_features, keep_confident
from spinequant.segment.neural.card import resolve
from spinequant.segment.neural.tree_ensemble import TreeEnsemble
from spinequant.synth import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("confocal", seed=1001)


@pytest.fixture(scope="module")
def result(phantom):
    return sq.analyze(phantom.image, spacing=phantom.spacing, config=AnalyzeConfig(method="lean2d_real", report=False))


def test_tree_file_round_trip_and_missing_values(tmp_path):
    # two trees on two features: x0 <= 1 (NaN left) then x1 <= 0 (NaN right); a stump on x1
    t = TreeEnsemble(
        features=("a", "b"), baseline=-0.5, roots=np.array([0, 5]),
        feature=np.array([0, 1, 0, 0, 0, 1, 0, 0]), threshold=np.array([1.0, 0.0, 0, 0, 0, 2.0, 0, 0]),
        left=np.array([1, 3, 0, 0, 0, 1, 0, 0]), right=np.array([2, 4, 0, 0, 0, 2, 0, 0]),
        missing_left=np.array([1, 0, 0, 0, 0, 1, 0, 0], bool),
        is_leaf=np.array([0, 0, 1, 1, 1, 0, 1, 1], bool), value=np.array([0, 0, 3.0, 1.0, -1.0, 0, 0.5, -0.5]))
    x = np.array([[0.0, -1.0], [0.0, 1.0], [2.0, 5.0], [np.nan, np.nan], [0.5, np.nan]])
    # by hand: row 0 -> leaf 3 (+1) and stump left (+0.5); row 1 -> leaf 4 (-1), left (+0.5);
    # row 2 -> leaf 2 (+3), right (-0.5); row 3 -> NaN left, NaN right -> leaf 4 (-1), left (+0.5)
    expected = -0.5 + np.array([1.5, -0.5, 2.5, -0.5, -0.5])
    np.testing.assert_allclose(t.decision(x), expected)
    t.save(tmp_path / "t.safetensors")
    loaded = TreeEnsemble.load(tmp_path / "t.safetensors")
    assert loaded.features == ("a", "b")
    np.testing.assert_allclose(loaded.predict_proba(x), 1 / (1 + np.exp(-expected)))


def test_the_shipped_trees_walked_both_ways_give_the_same_leaves():
    trees = TreeEnsemble.load(resolve("lean2d_real")[0].with_name(model_calibration("lean2d_real")["file"]))
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (300, len(FEATURES))) * rng.choice([0.1, 1, 10], len(FEATURES))
    x[rng.random(x.shape) < 0.1] = np.nan
    np.testing.assert_array_equal(trees._leaves_all_trees(x), trees._leaves_by_tree(x))
    p = trees.predict_proba(x)
    assert 0 < p.min() and p.max() < 1 and np.ptp(p) > 0.1
    np.testing.assert_array_equal(trees.decision(x[:10]), trees.decision(x)[:10])   # either walk, same sums


def test_features_do_not_depend_on_the_images_intensity_units(result):
    spines = result.spines
    scores = np.linspace(0.9, 0.1, len(spines))
    a = confidence_features(spines, scores, result.image, result.dendrite_labels, result.spacing)
    brighter = spines.copy()
    cols = [c for c in spines if c.endswith("_intensity")]
    brighter[cols] = brighter[cols] * 16.0 + 100.0          # a 12-bit camera with an offset
    b = confidence_features(brighter, scores, result.image.astype(np.float32) * 16.0 + 100.0,
                            result.dendrite_labels, result.spacing)
    assert list(a.columns) == list(FEATURES) and len(a) == len(spines) > 10
    same = [c for c in FEATURES if c != "image_p99_over_p50"]    # a ratio of raw levels
    np.testing.assert_allclose(a[same].to_numpy(float), b[same].to_numpy(float), rtol=1e-4, atol=1e-4)
    assert a["dendrite_rel_brightest"].max() == pytest.approx(1.0)
    assert a["peak_rel_max"].max() == pytest.approx(1.0)


def test_keep_confident_drops_relabels_in_place_and_renumbers():
    labels = np.zeros((1, 10, 40), np.int32)
    for i in range(1, 5):
        labels[0, 2:5, 8 * i:8 * i + 3] = i
    table = pd.DataFrame({"id": [1, 2, 3, 4], "dendrite_id": 1, "head_z_um": 0.0, "head_y_um": 0.3,
                          "head_x_um": [0.8, 1.6, 2.4, 3.2], "nn_distance_um": 0.8})
    kept, out, dropped = keep_confident(table, labels, np.array([0.9, 0.2, 0.5, 0.8]), 0.4)
    assert dropped == 1 and out is labels                    # no second label image
    assert kept["id"].tolist() == [1, 2, 3] and kept["confidence"].tolist() == [0.9, 0.5, 0.8]
    assert np.unique(out).tolist() == [0, 1, 2, 3]
    assert (out[0, 3, 16:19] == 0).all() and (out[0, 3, 24:27] == 2).all() and (out[0, 3, 32:35] == 3).all()
    np.testing.assert_allclose(kept["nn_distance_um"], [1.6, 0.8, 0.8])


def test_recount_spines_after_some_were_dropped():
    dendrites = pd.DataFrame({"dendrite_id": [1, 2], "length_um": [10.0, 4.0], "n_spines": [5, 1],
                              "density_per_um": [0.5, 0.25], "fraction_thin": [0.2, 1.0],
                              "fraction_mushroom": [0.8, 0.0], "fraction_stubby": 0.0,
                              "fraction_branched": 0.0, "fraction_filopodia": 0.0})
    spines = pd.DataFrame({"dendrite_id": [1, 1, 1], "type": ["thin", "mushroom", "mushroom"]})
    out = recount_spines(dendrites, spines)
    assert out["n_spines"].tolist() == [3, 0]
    assert out["density_per_um"].tolist() == [0.3, 0.0]
    assert out.loc[0, "fraction_mushroom"] == pytest.approx(2 / 3) and np.isnan(out.loc[1, "fraction_thin"])


def test_analyze_keeps_the_spines_the_learnt_confidence_accepts(phantom, result):
    calibration = model_calibration("lean2d_real")
    assert calibration["method"] == "trees"
    config = result.config
    assert config.instances.head_threshold == calibration["candidate_floor"]
    assert (result.spines["confidence"] >= config.min_confidence).all()
    assert result.spines["id"].tolist() == list(range(1, len(result.spines) + 1))
    assert np.unique(result.spine_labels[result.spine_labels > 0]).tolist() == result.spines["id"].tolist()
    assert result.diagnostics["below_min_confidence"] > 0
    assert result.dendrites["n_spines"].sum() == len(result.spines)
    everything = sq.analyze(phantom.image, spacing=phantom.spacing,
                            config=dataclasses.replace(config, min_confidence=1e-9))
    assert len(everything.spines) == len(result.spines) + result.diagnostics["below_min_confidence"]
    # the head map alone: the calibrated peak, its own threshold, no second look
    head_map = resolve_config(AnalyzeConfig(method="lean2d_real", confidence="head_map"))
    assert head_map.instances.head_threshold > calibration["candidate_floor"]
    assert head_map.min_confidence == calibration["head_map"]["min_confidence"]


def test_the_candidates_are_made_with_the_instance_settings_the_trees_were_fitted_on(monkeypatch):
    # a card's candidate_instances (scripts/train_spine_confidence.py --relax) apply to the
    # default instance settings of a run with the learnt confidence, not to a run's own
    import importlib

    analyze_module = importlib.import_module("spinequant.pipeline.analyze")     # (the package exports a function of that name)
    calibration = {**model_calibration("lean2d_real"), "candidate_instances": {"min_volume_um3": 0.0}}
    monkeypatch.setattr(analyze_module, "model_calibration", lambda method, confidence="auto": calibration)
    config = resolve_config(AnalyzeConfig(method="lean2d_real"))
    assert config.instances.min_volume_um3 == 0.0 and config.instances.head_threshold == calibration["candidate_floor"]
    own = dataclasses.replace(analyze_module.default_instance_config("lean2d_real"), min_volume_um3=0.05)
    config = resolve_config(AnalyzeConfig(method="lean2d_real", instances=own))
    assert config.instances.min_volume_um3 == 0.05 and config.instances.head_threshold == calibration["candidate_floor"]


def test_candidates_of_2d_images_may_be_made_with_their_own_settings(monkeypatch, tmp_path):
    # candidate_instances_2d (train_spine_confidence.py --relax-2d) apply to 2D images only,
    # in analyze, in a batch (which still skips a finished 2D image) and in what run.json records
    import importlib

    from spinequant.pipeline.batch import analyze_folder

    analyze_module = importlib.import_module("spinequant.pipeline.analyze")
    calibration = {**model_calibration("lean2d_real"), "candidate_instances": {"noise_volume_um3": 0.0},
                   "candidate_instances_2d": {"max_distance_to_dendrite_um": 1000.0}}
    monkeypatch.setattr(analyze_module, "model_calibration", lambda method, confidence="auto": calibration)
    flat, plane = (resolve_config(AnalyzeConfig(method="lean2d_real"), ndim=n).instances for n in (3, 2))
    assert flat.noise_volume_um3 == plane.noise_volume_um3 == 0.0
    assert flat.max_distance_to_dendrite_um == analyze_module.default_instance_config("lean2d_real").max_distance_to_dendrite_um
    assert plane.max_distance_to_dendrite_um == 1000.0
    phantom = make_phantom("two_photon", seed=3, shape=(8, 96, 96))
    image = phantom.image.max(0)
    assert sq.analyze(image, spacing=phantom.spacing[1:], config=AnalyzeConfig(method="lean2d_real", report=False)
                      ).config.instances == plane
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "projection.tif", image)
    config = AnalyzeConfig(method="lean2d_real", report=False, export_meshes=False, export_roi=False)
    for status in ("done", "skipped"):
        summary = analyze_folder(folder, tmp_path / "out", voxel_size=phantom.spacing[1:], config=config)
        assert summary["status"].tolist() == [status]
    recorded = json.loads((tmp_path / "out" / "projection" / "run.json").read_text())["config"]["instances"]
    assert recorded["max_distance_to_dendrite_um"] == 1000.0


def test_a_damaged_confidence_model_is_refused(phantom, tmp_path):
    card, weights = resolve("lean2d_real")
    calibration = model_calibration("lean2d_real")
    for path in (card, weights, card.with_name(calibration["file"])):
        shutil.copy(path, tmp_path / path.name)
    trees = tmp_path / calibration["file"]
    data = bytearray(trees.read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])          # a flipped value: the file is damaged
    trees.write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged or was replaced"):
        sq.analyze(phantom.image, spacing=phantom.spacing,
                   config=AnalyzeConfig(method=str(tmp_path / card.name), report=False, engine="torch"))
