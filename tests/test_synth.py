"""Phantoms: exact truth, determinism, files."""

from __future__ import annotations

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.synth import SPINE_TYPES, TRUTH_COLUMNS, make_phantom, write_phantom

SMALL = (16, 96, 128)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("two_photon", seed=2, shape=SMALL, spine_density_per_um=(3.0, 3.0))


def test_arrays_have_the_agreed_types(phantom):
    assert phantom.image.shape == SMALL and phantom.image.dtype == np.uint16
    assert phantom.semantic.dtype == np.uint8 and set(np.unique(phantom.semantic)) <= {0, 1, 2}
    assert phantom.spine_labels.dtype == np.int32 and phantom.dendrite_labels.dtype == np.int32
    assert list(phantom.spines.columns) == TRUTH_COLUMNS
    assert phantom.spacing == (0.5, 0.094, 0.094)


def test_semantic_is_derived_from_the_instances(phantom):
    assert np.array_equal(phantom.semantic == 2, phantom.spine_labels > 0)
    assert np.array_equal(phantom.semantic == 1, phantom.dendrite_labels > 0)
    # the shaft wins: no voxel is both
    assert not np.any((phantom.spine_labels > 0) & (phantom.dendrite_labels > 0))


def test_label_volumes_match_the_table_exactly(phantom):
    table = phantom.spines
    assert len(table) > 10
    assert list(table["id"]) == list(range(1, len(table) + 1))
    counts = np.bincount(phantom.spine_labels.ravel(), minlength=len(table) + 1)[1:]
    assert len(counts) == len(table) and np.all(counts > 0)
    assert np.array_equal(counts, table["n_voxels"].to_numpy())
    voxel = np.prod(phantom.spacing)
    np.testing.assert_allclose(table["volume_um3"], counts * voxel, rtol=1e-9)
    assert set(table["type"]) <= set(SPINE_TYPES)


def test_voxel_volume_is_close_to_the_model_volume(phantom):
    t = phantom.spines[~phantom.spines["truncated"]]
    # summed over spines the rasterisation errors largely cancel
    assert t["volume_um3"].sum() == pytest.approx(t["volume_analytic_um3"].sum(), rel=0.25)


def test_spine_geometry_follows_its_type(phantom):
    t = phantom.spines
    base = t[["base_z_um", "base_y_um", "base_x_um"]].to_numpy()
    head = t[["head_z_um", "head_y_um", "head_x_um"]].to_numpy()
    d = np.linalg.norm(head - base, axis=1)
    necked = t["type"].isin(["thin", "mushroom"]).to_numpy()
    path = (t["neck_length_um"] + t["head_diameter_um"] / 2).to_numpy()
    # the neck bends once by at most 30°: the chord is between cos(15°) and 1 times the path
    assert np.all(d[necked] <= path[necked] + 1e-9)
    assert np.all(d[necked] >= np.cos(np.radians(15)) * path[necked] - 1e-9)
    assert (t.loc[t["type"] == "mushroom", "head_diameter_um"] >= 0.5).all()
    assert (t.loc[t["type"] == "stubby", "neck_length_um"] == 0).all()
    assert (t.loc[t["type"] == "filopodia", "head_diameter_um"] == 0).all()


def test_same_seed_same_phantom_other_seed_other_phantom(phantom):
    again = make_phantom("two_photon", seed=2, shape=SMALL, spine_density_per_um=(3.0, 3.0))
    assert np.array_equal(again.image, phantom.image)
    assert np.array_equal(again.spine_labels, phantom.spine_labels)
    assert again.spines.equals(phantom.spines)
    other = make_phantom("two_photon", seed=3, shape=SMALL, spine_density_per_um=(3.0, 3.0))
    assert not np.array_equal(other.image, phantom.image)


def test_written_files_are_identical_for_the_same_seed(phantom, tmp_path):
    a = write_phantom(phantom, tmp_path / "a")
    b = write_phantom(make_phantom("two_photon", seed=2, shape=SMALL, spine_density_per_um=(3.0, 3.0)),
                      tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(["image.tif", "labels_semantic.tif", "labels_spines.tif",
                            "labels_dendrites.tif", "truth_spines.csv", "dendrites.swc", "params.json"])
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_unknown_parameter_or_preset_is_an_input_error():
    with pytest.raises(InputError, match="not a phantom parameter"):
        make_phantom("two_photon", shape=SMALL, spine_densty=2)
    with pytest.raises(InputError, match="no phantom preset"):
        make_phantom("widefield", shape=SMALL)


def test_each_spine_volume_is_its_model_volume_at_fine_voxels():
    ph = make_phantom("confocal", seed=3, shape=(24, 128, 128), spine_density_per_um=(3, 3),
                      touching_fraction=0.0)
    t = ph.spines[~ph.spines["truncated"]]
    ratio = (t["volume_um3"] / t["volume_analytic_um3"]).to_numpy()
    assert len(t) > 30
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    # the rest lose voxels where they cross another dendrite or spine (shaft wins, fuller wins)
    assert np.mean(np.abs(ratio - 1) < 0.35) > 0.75


def test_centrelines_run_inside_their_dendrite_labels(phantom):
    c = phantom.centrelines
    assert len(c) > 20 and set(c["type"]) == {3}
    idx = np.rint(c[["z", "y", "x"]].to_numpy() / phantom.spacing).astype(int)
    labels = phantom.dendrite_labels[tuple(idx.T)]
    # where two dendrites cross, the one filling a voxel more owns it
    assert np.mean(labels == c["dendrite_id"].to_numpy()) > 0.95
    parents = c.loc[c["parent"] > 0, "parent"]
    assert parents.isin(c["id"]).all()


@pytest.mark.parametrize("bad", [dict(snr=0), dict(n_dendrites=(3, 1)), dict(supersample_um=0),
                                 dict(type_fractions=(("giant", 1.0),))])
def test_impossible_values_are_input_errors(bad):
    with pytest.raises(InputError, match="cannot be made"):
        make_phantom("two_photon", shape=SMALL, **bad)
