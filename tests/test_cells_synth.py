"""Cell phantoms: exact truth (labels agree with the table), touching clusters, presets, files."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from spinequant.errors import InputError
from spinequant.io import read_stack
from spinequant.synth import CELL_PRESETS, make_cell_phantom, write_cell_phantom



@pytest.fixture(scope="module")
def confocal():
    return make_cell_phantom("nuclei_confocal", seed=2)


def test_labels_and_table_agree(confocal):
    ph = confocal
    ids = np.unique(ph.labels[ph.labels > 0])
    assert ids.tolist() == ph.cells["id"].tolist() == list(range(1, len(ph.cells) + 1))
    counts = np.bincount(ph.labels.ravel())[1:]
    assert counts.tolist() == ph.cells["n_voxels"].tolist()
    np.testing.assert_allclose(ph.cells["volume_um3"], counts * np.prod(ph.spacing))
    centroids = np.array(ndi.center_of_mass(np.ones(ph.labels.shape), ph.labels, ids)) * ph.spacing
    np.testing.assert_allclose(ph.cells[["centroid_z_um", "centroid_y_um", "centroid_x_um"]], centroids, atol=1e-9)
    # labelled volume close to the ellipsoid's for cells inside the volume
    inside = ph.cells[~ph.cells["truncated"]]
    ratio = inside["volume_um3"] / inside["volume_analytic_um3"]
    assert len(inside) >= 3 and ratio.between(0.85, 1.15).all()
    lo, hi = CELL_PRESETS["nuclei_confocal"].diameter_um
    assert inside["equivalent_diameter_um"].between(0.9 * lo, 1.1 * hi).all()


def test_clusters_touch(confocal):
    ph = confocal
    clustered = ph.cells[ph.cells["cluster"] > 0]
    assert len(clustered) >= 2
    # every clustered cell's label touches another label of its cluster (6-connected)
    for _, row in clustered.iterrows():
        grown = ndi.binary_dilation(ph.labels == row["id"])
        neighbours = set(np.unique(ph.labels[grown])) - {0, row["id"]}
        partners = set(clustered.loc[clustered["cluster"] == row["cluster"], "id"]) - {row["id"]}
        assert neighbours & partners, f"cell {row['id']} does not touch its cluster"
    # cells that are not in a cluster touch nobody
    alone = ph.cells.loc[ph.cells["cluster"] == 0, "id"]
    for i in alone:
        grown = ndi.binary_dilation(ph.labels == i, iterations=1)
        assert set(np.unique(ph.labels[grown])) <= {0, i}


def test_same_seed_same_phantom_and_overrides():
    a = make_cell_phantom("nuclei_lightsheet", seed=4, shape=(12, 40, 40))
    b = make_cell_phantom("nuclei_lightsheet", seed=4, shape=(12, 40, 40))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.spacing == CELL_PRESETS["nuclei_lightsheet"].spacing
    c = make_cell_phantom("nuclei_lightsheet", seed=4, shape=(12, 40, 40), snr=3.0, spacing=(3, 1.5, 1.5))
    assert c.params["config"]["imaging"]["snr"] == 3.0 and c.spacing == (3.0, 1.5, 1.5)
    with pytest.raises(InputError, match="not cell phantom parameters"):
        make_cell_phantom("nuclei_confocal", spine_density_per_um=2)
    with pytest.raises(InputError, match="no cell phantom preset"):
        make_cell_phantom("two_photon")
    with pytest.raises(InputError, match="diameter_um"):
        make_cell_phantom("nuclei_confocal", diameter_um=(8.0, 4.0))


def test_lightsheet_stripes_and_falloff():
    """Light-sheet illumination: a fall-off along x by the preset's fraction, and stripes that
    are constant along x (shadows cast along the sheet's path) but vary in y."""
    from dataclasses import replace

    from spinequant.synth.cells import _illumination

    cfg = replace(CELL_PRESETS["nuclei_lightsheet"], illumination_variation=0.0)
    light = _illumination(np.random.default_rng(0), cfg)
    ratio = light[:, :, 0] / light[:, :, -1]
    np.testing.assert_allclose(ratio, 1 / (1 - cfg.illumination_falloff), rtol=1e-5)
    stripes = light[:, :, 0]
    assert stripes.max() == pytest.approx(1.0) and stripes.min() < 1 - cfg.stripe_amplitude / 2
    assert np.abs(np.diff(stripes, axis=1)).max() > 0.02   # varies across y
    flat = _illumination(np.random.default_rng(0), replace(cfg, stripe_amplitude=0.0, illumination_falloff=0.0))
    assert np.allclose(flat, 1.0)


def test_write_cell_phantom(tmp_path, confocal):
    out = write_cell_phantom(confocal, tmp_path / "ph")
    assert sorted(p.name for p in out.iterdir()) == ["image.tif", "labels_cells.tif", "params.json",
                                                     "truth_cells.csv"]
    labels = read_stack(out / "labels_cells.tif", check_values=False)
    np.testing.assert_allclose(labels.spacing, confocal.spacing)
    assert np.array_equal(labels.data, confocal.labels)
    table = pd.read_csv(out / "truth_cells.csv")
    assert len(table) == len(confocal.cells)


@pytest.mark.parametrize("preset", ["nuclei_lightsheet", "nuclei_confocal"])
def test_snr_is_met(preset):
    """Mean cell signal above background over the noise rms in cell voxels, measured on a
    noisy and a noise-free render of the same phantom: within 10 % of the asked SNR (the haze
    in the cells counts as signal here, 4-8 % of it)."""
    noisy = make_cell_phantom(preset, seed=1, snr=6.0)
    clean = make_cell_phantom(preset, seed=1, snr=6.0, noise=False)
    cells = noisy.labels > 0
    signal = (clean.image[cells].astype(float) - clean.params["imaging"]["background_adu"]).mean()
    noise = (noisy.image.astype(float) - clean.image)[cells].std()
    assert signal / noise == pytest.approx(6.0, rel=0.1)
