"""Presets honour voxel size, SNR and spine density; CLI; other outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.io import read_stack
from spinequant.synth import PRESETS, make_phantom

QUIET = dict(haze=0.0, n_axons=(0, 0), n_dim_dendrites=(0, 0))


def shaft_length_um(centrelines) -> float:
    pts = centrelines.set_index("id")[["x", "y", "z"]]
    child = centrelines[centrelines["parent"] > 0]
    return float(np.linalg.norm(pts.loc[child["id"]].to_numpy() - pts.loc[child["parent"]].to_numpy(),
                                axis=1).sum())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_voxel_size_type_and_file_scale(name, tmp_path):
    from spinequant.synth import write_phantom

    ph = make_phantom(name, seed=1, shape=(12, 64, 64))
    assert ph.spacing == PRESETS[name].spacing
    assert ph.image.dtype == np.dtype(PRESETS[name].imaging.dtype)
    write_phantom(ph, tmp_path / name)
    back = read_stack(tmp_path / name / "image.tif")
    np.testing.assert_allclose(back.spacing, ph.spacing, rtol=1e-5)
    assert np.array_equal(back.data, ph.image)


@pytest.mark.parametrize("snr", [5.0, 25.0])
def test_measured_snr_is_the_one_asked_for(snr):
    # enough shaft voxels that the (pixel-correlated) noise is measured to a few per cent
    kw = dict(seed=4, shape=(16, 160, 160), snr=snr, n_dendrites=(2, 2), **QUIET)
    noisy = make_phantom("two_photon", **kw)
    clean = make_phantom("two_photon", noise=False, **kw)
    shaft = clean.semantic == 1
    assert shaft.sum() > 500
    background = np.median(clean.image[clean.image <= clean.image.min() + 1])
    signal = clean.image[shaft].astype(float).mean() - background
    noise = (noisy.image.astype(float) - clean.image)[shaft].std()
    assert signal / noise == pytest.approx(snr, rel=0.1)
    assert signal == pytest.approx(PRESETS["two_photon"].imaging.signal_adu, rel=0.05)


def test_spine_density_is_the_one_asked_for():
    n, length = 0, 0.0
    for seed in (7, 8, 9):
        ph = make_phantom("two_photon", seed=seed, shape=(16, 256, 256), spine_density_per_um=(2.5, 2.5),
                          n_dendrites=(2, 2), **QUIET)
        n += len(ph.spines)
        length += shaft_length_um(ph.centrelines)
    # ~300 spines: Poisson spread about 6 %, plus the few that vanish inside the shaft
    assert n / length == pytest.approx(2.5, rel=0.2)


def test_spines_point_in_every_direction_including_along_z():
    ph = make_phantom("two_photon", seed=3, shape=(24, 128, 128), spine_density_per_um=(4, 4), **QUIET)
    t = ph.spines
    d = t[["head_z_um", "head_y_um", "head_x_um"]].to_numpy() - t[["base_z_um", "base_y_um", "base_x_um"]].to_numpy()
    dz = np.abs(d[:, 0]) / np.linalg.norm(d, axis=1)
    assert (dz > 0.8).sum() >= 3 and (dz < 0.3).sum() >= 3
    assert set(t["type"]) == {"stubby", "thin", "mushroom", "filopodia"} or len(t) < 40


def test_distractors_are_not_labelled():
    kw = dict(seed=5, shape=(16, 96, 96), noise=False, haze=0.0)
    plain = make_phantom("two_photon", n_axons=(0, 0), n_dim_dendrites=(0, 0), **kw)
    busy = make_phantom("two_photon", n_axons=(3, 3), n_dim_dendrites=(2, 2), **kw)
    assert np.array_equal(plain.semantic, busy.semantic)
    assert np.array_equal(plain.spine_labels, busy.spine_labels)
    assert (busy.image.astype(int) - plain.image).sum() > 0


def test_saturation_and_uint8():
    ph = make_phantom("confocal", seed=1, shape=(12, 64, 64), saturation_adu=100, dtype="uint8",
                      signal_adu=80, offset_adu=5, **QUIET)
    assert ph.image.dtype == np.uint8 and ph.image.max() == 100


def run_cli(argv) -> int:
    # only this subcommand, so that the test does not depend on the others
    import argparse

    from spinequant.cli import synth

    parser = argparse.ArgumentParser()
    synth.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_one_folder_per_phantom(tmp_path, capsys):
    assert run_cli(["synth", "--preset", "sted", "--n", "2", "--seed", "3", "--out", str(tmp_path),
                    "--shape", "8", "48", "48"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phantom_000", "phantom_001"]
    assert "seed 4" in capsys.readouterr().out
    with pytest.raises(InputError, match="--n"):
        run_cli(["synth", "--out", str(tmp_path), "--n", "0"])


def test_cli_overrides_voxel_size_snr_and_density(tmp_path):
    assert run_cli(["synth", "--out", str(tmp_path), "--shape", "8", "48", "48", "--voxel-size",
                    "0.4", "0.1", "0.1", "--snr", "9", "--spine-density", "3", "3"]) == 0
    params = json.loads((tmp_path / "phantom_000" / "params.json").read_text())
    assert params["config"]["spacing"] == [0.4, 0.1, 0.1]
    assert params["config"]["imaging"]["snr"] == 9
    assert params["config"]["spines"]["density_per_um"] == [3, 3]
