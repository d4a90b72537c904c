"""The spine table against the exact truth of a two-photon phantom (0.094/0.5 µm voxels)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from spinequant.morphology import MorphologyConfig, classify_spines, measure_spines
from spinequant.synth import make_phantom

_spec = importlib.util.spec_from_file_location(
    "measure_accuracy", Path(__file__).parents[1] / "benchmarks" / "measure_accuracy.py")
accuracy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(accuracy)


@pytest.fixture(scope="module")
def joined():
    ph = make_phantom("two_photon", seed=0)
    table = measure_spines(ph.spine_labels, ph.dendrite_labels, ph.spacing)
    assert len(table) == len(ph.spines)
    j = ph.spines.merge(table, on="id", suffixes=("", "_m"))
    return j[~j["truncated"]], ph.spacing


def test_volume_and_length_match_truth(joined):
    j, _ = joined
    assert np.allclose(j["volume_um3_m"], j["volume_um3"])  # labelled volume, exact
    rel = ((j["length_um_m"] - j["length_um"]) / j["length_um"]).abs()
    assert rel.median() < 0.15


def test_head_diameters_within_one_xy_voxel(joined):
    j, spacing = joined
    headed = j[j["type"] != "filopodia"]
    err = (headed["head_diameter_um_m"] - headed["head_diameter_um"]).abs()
    assert err.median() <= spacing[2]
    mush = headed[headed["type"] == "mushroom"]
    assert len(mush) >= 10
    assert (mush["head_diameter_um_m"] - mush["head_diameter_um"]).abs().median() <= spacing[2] / 2


def test_risher_types_agree_on_unambiguous_spines(joined):
    j, spacing = joined
    cfg = MorphologyConfig(rule_set="risher")
    sure = accuracy.unambiguous(j, cfg, spacing[2])
    assert sure.sum() >= 50
    measured, _ = classify_spines(
        j.assign(length_um=j["length_um_m"], head_diameter_um=j["head_diameter_um_m"]), config=cfg)
    assert (np.asarray(measured)[sure] == j.loc[sure, "type"].to_numpy()).mean() >= 0.9
