"""RSDR (DeepD3 paper) on two-channel phantoms with known spine enrichment."""

import numpy as np
import pytest

from spinequant.synth import make_phantom, project_phantom
from spinequant.synth.movie import make_two_channel
from spinequant.timelapse import rsdr

SPARSE = dict(spine_density_per_um=(0.6, 1.0), n_axons=(0, 0), n_dim_dendrites=(0, 0))


@pytest.fixture(scope="module")
def phantom3d():
    return make_phantom("two_photon", seed=0, shape=(16, 128, 128), **SPARSE)


@pytest.mark.parametrize("flat", [False, True], ids=["3d", "2d"])
def test_rsdr_within_five_percent_of_the_truth(phantom3d, flat):
    ph = project_phantom(phantom3d) if flat else phantom3d
    tc = make_two_channel(ph, seed=0, psf_sigma_px=0, photons=2000)
    table = rsdr(tc.tagged, tc.structure, tc.spine_labels, tc.dendrite_labels,
                 background=tc.background_adu).set_index("id")
    relative = (table["rsdr"] / tc.true_rsdr - 1).abs()
    assert relative.max() < 0.05


def test_blur_pulls_rsdr_towards_one(phantom3d):
    ph = project_phantom(phantom3d)
    tc = make_two_channel(ph, seed=0, photons=2000)          # the preset's PSF
    table = rsdr(tc.tagged, tc.structure, tc.spine_labels, tc.dendrite_labels,
                 background=tc.background_adu).set_index("id")
    truth = tc.true_rsdr
    # enriched spines read lower, depleted ones higher: the dendrite's light mixes in
    assert (np.sign(table["rsdr"] - truth) == -np.sign(truth - 1)).mean() > 0.8
