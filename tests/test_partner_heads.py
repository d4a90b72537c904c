"""The 3D partner's own peaks as heads (spinequant.instances.heads.partner_heads)."""

import dataclasses

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.evaluate.detection import match_spine_objects
from spinequant.instances import InstanceConfig, spine_instances
from spinequant.instances.heads import head_map_support, head_peaks, partner_heads
from spinequant.pipeline.analyze import AnalyzeConfig, analyze, resolve_config
from spinequant.synth import make_phantom

SPACING = (0.5, 0.094, 0.094)


def _gauss(shape, centre, sigma):
    grid = np.indices(shape, dtype=np.float32)
    return np.exp(-sum((g - c) ** 2 / (2.0 * s ** 2) for g, c, s in zip(grid, centre, sigma)))


@pytest.fixture()
def maps():
    """Two heads 3 µm above one another: the joined map makes one broad peak between them,
    the partner's map a peak at each."""
    shape = (16, 48, 48)
    joined = (0.8 * _gauss(shape, (7.2, 24, 24), (4.0, 3.0, 3.0))).astype(np.float32)
    partner = (0.95 * np.maximum(_gauss(shape, (4, 24, 24), (1.0, 3.0, 3.0)),
                                 _gauss(shape, (11, 24, 24), (1.0, 3.0, 3.0)))).astype(np.float32)
    spine = np.where(joined > 0.2, 0.6, 0.0).astype(np.float32)
    return joined, partner, spine


def _peaks(joined, spine, config):
    return head_peaks(joined, SPACING, threshold=config.head_threshold, min_distance_um=config.head_min_distance_um)


def test_the_partners_own_peaks_are_added_where_the_joined_map_has_one(maps):
    joined, partner, spine = maps
    config = InstanceConfig(method="heads")
    peaks, values = _peaks(joined, spine, config)
    assert peaks.tolist() == [[7, 24, 24]]
    kw = dict(threshold=0.5, head_threshold=config.head_threshold, min_distance_um=config.head_min_distance_um,
              support=head_map_support(config))
    got, got_values = partner_heads(peaks, values, joined, partner, spine, SPACING, **kw)
    assert sorted(map(tuple, got.tolist())) == sorted([tuple(peaks[0]), (4, 24, 24), (11, 24, 24)])
    assert np.all(np.diff(got_values) <= 0)                          # strongest first
    assert np.allclose(got_values, joined[tuple(got.T)])
    # not on the shaft: a partner peak inside the dendrite mask is a swelling's, not a head's
    shaft = np.zeros(joined.shape, bool)
    shaft[10:13, 20:28, 20:28] = True
    got, _ = partner_heads(peaks, values, joined, partner, spine, SPACING, dendrite_mask=shaft, **kw)
    assert sorted(map(tuple, got.tolist())) == sorted([tuple(peaks[0]), (4, 24, 24)])
    # only where the joined map reaches the head threshold
    low = np.where(np.arange(16)[:, None, None] >= 10, 0.1 * joined, joined).astype(np.float32)
    got, _ = partner_heads(peaks, values, low, partner, spine, SPACING, **kw)
    assert (11, 24, 24) not in map(tuple, got.tolist())
    # only where the spine objects read the maps: a partner peak outside the support is not seen
    outside = partner.copy()
    outside[:, :, :] = 0
    outside[4, 24, 24] = 0.9
    got, _ = partner_heads(peaks, values, joined, outside, np.zeros_like(spine), SPACING,
                           **{**kw, "support": (0.1, 0.9)})
    assert got.tolist() == peaks.tolist()
    # a partner peak within the joined peaks' spacing adds nothing
    near = (0.95 * _gauss(joined.shape, tuple(peaks[0]), (1.0, 3.0, 3.0))).astype(np.float32)
    got, _ = partner_heads(peaks, values, joined, near, spine, SPACING, **kw)
    assert got.tolist() == peaks.tolist()


def test_spine_instances_seed_an_object_at_each_partner_head(maps):
    joined, partner, spine = maps
    config = InstanceConfig(method="heads", threshold=0.1, peak_fraction=0.5, min_volume_um3=0.0, min_planes=1)
    with_partner = spine_instances(spine, spacing=SPACING, config=config, head_prob=joined, partner_head_prob=partner)
    without = spine_instances(spine, spacing=SPACING, config=config, head_prob=joined)
    off = spine_instances(spine, spacing=SPACING, config=dataclasses.replace(config, head_partner_threshold=0.0),
                          head_prob=joined, partner_head_prob=partner)
    assert without.n_spines == off.n_spines == 1
    assert with_partner.n_spines == 3
    with pytest.raises(InputError, match="partner's head map has shape"):
        spine_instances(spine, spacing=SPACING, config=config, head_prob=joined, partner_head_prob=partner[1:])


def test_the_partners_heads_find_more_true_spines_than_false_ones_on_two_photon_phantoms():
    """Two-photon's PSF merges heads above one another in the joined map; the 3D partner
    parts some of them (docs/real_data.md, "The 3D partner's own heads": +0.02 F1 on
    thirteen phantoms). Measured here: +6 true spines and +1 false one on these two."""
    gained = {"tp": 0, "pred": 0}
    base = resolve_config(AnalyzeConfig(method="lean2d_real", report=False))
    for seed in (0, 1):
        ph = make_phantom("two_photon", seed=seed, shape=(16, 256, 256))
        for sign, threshold in ((1, base.instances.head_partner_threshold), (-1, 0.0)):
            config = dataclasses.replace(base, instances=dataclasses.replace(base.instances,
                                                                             head_partner_threshold=threshold))
            result = analyze(ph.image, spacing=ph.spacing, config=config, keep_maps=False)
            det = match_spine_objects(result.spine_labels, ph.spine_labels, spacing=ph.spacing)
            gained["tp"] += sign * det["tp"]
            gained["pred"] += sign * det["n_pred"]
    false = gained["pred"] - gained["tp"]
    assert gained["tp"] >= 4 and gained["tp"] >= 3 * false
