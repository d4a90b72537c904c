"""Spine objects from masks and probability maps, on shapes with known geometry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_instances_shapes import SPACING, blurred, capsule, dendrite_with_spines, ellipsoid, label_at

from spinequant.errors import InputError
from spinequant.instances import InstanceConfig, InstanceResult, spine_instances

NO_FILTERS = dict(min_volume_um3=0.0, max_volume_um3=np.inf, max_distance_to_dendrite_um=None)


def test_mask_gives_one_label_per_sphere_with_exact_voxels():
    spines, dendrite, centres = dendrite_with_spines()
    result = spine_instances(spines, dendrite, spacing=SPACING)
    assert isinstance(result, InstanceResult)
    assert result.spine_labels.dtype == np.int32 and result.dendrite_labels.dtype == np.int32
    assert result.n_spines == 4 and result.n_dendrites == 1
    ids = [label_at(result.spine_labels, c, SPACING) for c in centres]
    assert sorted(ids) == [1, 2, 3, 4]
    # From a mask, each spine is exactly its sphere (minus the dendrite).
    assert np.array_equal(result.spine_labels > 0, spines)
    assert np.array_equal(result.dendrite_labels > 0, dendrite)


def test_sphere_volume_matches_geometry_within_rasterisation_error():
    # An isolated ellipsoid long in z (so it spans several 0.5 µm planes): V = 4/3 π abc.
    radii = (1.5, 0.6, 0.6)
    blob = ellipsoid((6, 4, 4), SPACING, (3, 2, 2), radii)
    result = spine_instances(blob, None, spacing=SPACING, config=InstanceConfig(**NO_FILTERS))
    assert result.n_spines == 1
    volume = (result.spine_labels == 1).sum() * np.prod(SPACING)
    assert volume == pytest.approx(4 / 3 * np.pi * np.prod(radii), rel=0.1)


@pytest.mark.parametrize("spacing", [SPACING, (0.3, 0.1, 0.1), (0.2, 0.2, 0.2)])
@pytest.mark.parametrize("source", ["mask", "probability"])
def test_two_touching_spheres_are_split(spacing, source):
    a, b = (3.0, 4.0, 3.55), (3.0, 4.0, 4.45)  # radius 0.5 µm, centres 0.9 µm apart: they overlap
    pair = ellipsoid((6, 8, 8), spacing, a, (0.5,) * 3) | ellipsoid((6, 8, 8), spacing, b, (0.5,) * 3)
    data = pair if source == "mask" else blurred(pair, spacing)
    result = spine_instances(data, None, spacing=spacing, config=InstanceConfig(**NO_FILTERS))
    labels = result.spine_labels
    assert result.n_spines == 2
    assert {label_at(labels, a, spacing), label_at(labels, b, spacing)} == {1, 2}
    sizes = np.bincount(labels.ravel())[1:]
    assert abs(sizes[0] - sizes[1]) <= 0.2 * sizes.max()


def test_without_splitting_touching_spheres_stay_one_object():
    pair = (ellipsoid((6, 8, 8), SPACING, (3, 4, 3.55), (0.5,) * 3)
            | ellipsoid((6, 8, 8), SPACING, (3, 4, 4.45), (0.5,) * 3))
    cfg = InstanceConfig(split_by="none", **NO_FILTERS)
    assert spine_instances(pair, None, spacing=SPACING, config=cfg).n_spines == 1


def test_one_elongated_spine_is_not_split():
    # A 2 µm long spine (neck + head) along y: one object, one label.
    neck = capsule((6, 6, 4), SPACING, (3, 1.5, 2), (3, 3.5, 2), 0.15)
    head = ellipsoid((6, 6, 4), SPACING, (3, 3.5, 2), (0.5, 0.5, 0.5))
    result = spine_instances(neck | head, None, spacing=SPACING, config=InstanceConfig(**NO_FILTERS))
    assert result.n_spines == 1


@pytest.mark.parametrize("spacing", [SPACING, (0.25, 0.1, 0.1)])
def test_blurred_probability_recovers_each_spine(spacing):
    spines, dendrite, centres = dendrite_with_spines(spacing, n_spines=5)
    for method in ("floodfill", "components"):
        result = spine_instances(blurred(spines, spacing), blurred(dendrite, spacing), spacing=spacing,
                                 config=InstanceConfig(method=method))
        assert result.n_spines == 5, method
        assert sorted(label_at(result.spine_labels, c, spacing) for c in centres) == [1, 2, 3, 4, 5]
        # The 0.5 level of a symmetric blur lies on the true surface: volumes within 25 %.
        found = np.bincount(result.spine_labels.ravel())[1:]
        true = spines.sum() / 5
        assert np.all(np.abs(found - true) <= 0.25 * true), (method, found, true)


def test_noise_rule_eq12_removes_small_far_blobs_only():
    spines, dendrite, _ = dendrite_with_spines(n_spines=2)
    shape_um = (6.0, 8.0, 8.0)
    vox = np.prod(SPACING)
    noise = np.zeros_like(spines)
    far_small = (3, 7.5, 7.0)      # 3.5 µm from the dendrite surface, 3 voxels = 0.013 µm³ < V_s
    near_small = (3, 4.4, 7.0)     # 0.4 µm from the dendrite surface, same size
    far_big = (3, 7.3, 1.0)        # far, but 0.5 µm wide: larger than V_s
    for z, y, x in (far_small, near_small):
        iz, iy, ix = (int(round(c / s)) for c, s in zip((z, y, x), SPACING))
        noise[iz, iy, ix:ix + 3] = True
    big = ellipsoid(shape_um, SPACING, far_big, (0.5, 0.25, 0.25))
    assert big.sum() * vox > 0.024
    data = spines | noise | big
    cfg = InstanceConfig(**NO_FILTERS)
    result = spine_instances(data, dendrite, spacing=SPACING, config=cfg)
    assert result.removed["spine_noise"] == 1
    assert label_at(result.spine_labels, far_small, SPACING) == 0
    assert label_at(result.spine_labels, near_small, SPACING) > 0
    assert label_at(result.spine_labels, far_big, SPACING) > 0
    assert result.n_spines == 2 + 2
    # With a larger D the far blob is close enough to stay.
    cfg = dataclasses.replace(cfg, noise_distance_um=4.5)
    assert spine_instances(data, dendrite, spacing=SPACING, config=cfg).n_spines == 5
    cfg = dataclasses.replace(cfg, noise_rule=False)
    assert spine_instances(data, dendrite, spacing=SPACING, config=cfg).n_spines == 5


def test_volume_planes_and_dendrite_distance_filters():
    spines, dendrite, _ = dendrite_with_spines(n_spines=1)
    vox = np.prod(SPACING)
    extra = np.zeros_like(spines)
    extra[6, 66:70, 20:24] = True      # one plane, 16 voxels, 2.3 µm above the dendrite axis → 1.3 µm gap
    data = spines | extra
    base = InstanceConfig(**NO_FILTERS)
    assert spine_instances(data, dendrite, spacing=SPACING, config=base).n_spines == 2
    cfg = dataclasses.replace(base, min_planes=2)
    r = spine_instances(data, dendrite, spacing=SPACING, config=cfg)
    assert r.n_spines == 1 and r.removed["min_planes"] == 1
    cfg = dataclasses.replace(base, min_volume_um3=17 * vox)
    r = spine_instances(data, dendrite, spacing=SPACING, config=cfg)
    assert r.n_spines == 1 and r.removed["volume"] == 1
    cfg = dataclasses.replace(base, max_volume_um3=17 * vox)
    r = spine_instances(data, dendrite, spacing=SPACING, config=cfg)
    assert r.n_spines == 1 and label_at(r.spine_labels, (3.0, 6.3, 2.0), SPACING) == 1
    gap = (66 - 1) * SPACING[1] - (3.0 + 1.0)  # nearest extra voxel centre to nearest dendrite voxel
    for limit, n in ((gap - 0.15, 1), (gap + 0.15, 2)):
        cfg = dataclasses.replace(base, max_distance_to_dendrite_um=limit)
        assert spine_instances(data, dendrite, spacing=SPACING, config=cfg).n_spines == n, limit


def test_small_dendrite_fragments_are_removed():
    spines, dendrite, _ = dendrite_with_spines(n_spines=1)
    fragment = np.zeros_like(dendrite)
    fragment[2, 75:80, 20:30] = True   # 50 voxels = 0.22 µm³ < 0.44 µm³
    result = spine_instances(spines, dendrite | fragment, spacing=SPACING)
    assert result.n_dendrites == 1 and result.removed["dendrite_fragments"] == 1
    assert not result.dendrite_labels[fragment].any()
    cfg = InstanceConfig(min_dendrite_volume_um3=0.1, noise_rule=False)
    assert spine_instances(spines, dendrite | fragment, spacing=SPACING, config=cfg).n_dendrites == 2


def test_same_scene_at_two_spacings_gives_same_objects():
    counts = []
    for spacing in (SPACING, (0.25, 0.047, 0.047)):
        spines, dendrite, centres = dendrite_with_spines(spacing, n_spines=3)
        result = spine_instances(spines, dendrite, spacing=spacing)
        volumes = np.bincount(result.spine_labels.ravel())[1:] * np.prod(spacing)
        counts.append((result.n_spines, volumes))
    assert counts[0][0] == counts[1][0] == 3
    np.testing.assert_allclose(counts[0][1], counts[1][1], rtol=0.2)


def test_config_is_a_frozen_dict_convertible_dataclass():
    cfg = InstanceConfig()
    d = dataclasses.asdict(cfg)
    assert d["noise_distance_um"] == 3.0 and d["noise_dendrite_volume_um3"] == 0.16
    assert d["noise_volume_um3"] == 0.024
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.threshold = 0.3


@pytest.mark.parametrize("bad, message", [
    (dict(spine=np.zeros((2, 3, 4, 4))), "3D"),
    (dict(spine=np.full((3, 4, 4), 2.0)), "[0, 1]"),
    (dict(spine=np.full((3, 4, 4), np.nan)), "NaN"),
    (dict(dendrite=np.zeros((3, 5, 4))), "same stack"),
    (dict(spacing=None), "voxel size"),
])
def test_bad_input_raises_input_error(bad, message):
    args = dict(spine=np.zeros((3, 4, 4), np.float32), dendrite=np.zeros((3, 4, 4), np.float32),
                spacing=SPACING, config=None) | bad
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spine_instances(args["spine"], args["dendrite"], spacing=args["spacing"], config=args["config"])


@pytest.mark.parametrize("bad, message", [
    (dict(method="magic"), "method"),
    (dict(min_volume_um3=2, max_volume_um3=1), "min_volume_um3"),
    (dict(peak_fraction=1.0), "peak_fraction"),
])
def test_bad_config_is_refused_when_made(bad, message):
    """Before any segmentation runs: the config itself refuses the setting."""
    with pytest.raises(InputError, match=message):
        InstanceConfig(**bad)


def test_flood_fill_respects_distance_to_seed_and_drop():
    from spinequant.instances import seeded_flood_fill

    spacing = (0.5, 0.1, 0.1)
    bar = np.zeros((3, 5, 60), np.float32)
    bar[1, 2, :] = 0.9
    bar[1, 2, 30] = 0.95                  # the brightest voxel seeds first, in the middle
    labels = seeded_flood_fill(bar, spacing=spacing, max_distance_to_seed_um=1.0)
    first = np.flatnonzero(labels[1, 2] == 1)
    assert first.min() == 20 and first.max() == 40      # 1.0 µm = 10 voxels either side
    # The rest seeds more objects, in raster order among equal values: 0-10, 11-19, 41-51, 52-59.
    assert labels.max() == 5 and (labels[1, 2] > 0).all()
    assert [int((labels == i).sum()) for i in range(1, 6)] == [21, 11, 9, 11, 8]
    blob = np.zeros((3, 9, 9), np.float32)
    blob[1, 2:7, 2:7] = 0.6
    blob[1, 4, 4] = 1.0
    assert (seeded_flood_fill(blob, spacing=spacing, max_drop=0.5) == 1).sum() == 25
    tight = seeded_flood_fill(blob, spacing=spacing, max_drop=0.2)
    assert (tight == 1).sum() == 1 and tight.max() == 1   # 0.6 voxels are below the seed threshold
    assert seeded_flood_fill(blob, spacing=spacing, growth_threshold=0.7).sum() == 1


def test_split_by_probability_cuts_at_the_dip():
    from spinequant.instances import split_touching

    prob = np.zeros((3, 5, 30), np.float32)
    prob[1, 1:4, 2:28] = 0.7
    prob[1, 1:4, 5:10] = 0.95
    prob[1, 1:4, 20:25] = 0.95
    labels = (prob > 0).astype(np.int32)
    parts = split_touching(labels, spacing=(0.5, 0.1, 0.1), by="probability", spine_prob=prob,
                           min_depth=0.1, min_distance_um=0.5)
    assert parts.max() == 2 and parts[1, 2, 7] != parts[1, 2, 22]
    assert set(np.unique(parts[1, 2, 2:28])) == {1, 2}
    # Peaks closer than min_distance_um are one seed.
    assert split_touching(labels, spacing=(0.5, 0.1, 0.1), by="probability", spine_prob=prob,
                          min_depth=0.1, min_distance_um=2.0).max() == 1
    with pytest.raises(InputError, match="probability map"):
        split_touching(labels, spacing=(0.5, 0.1, 0.1), by="probability")


def test_noise_filter_on_dendrite_fragments_directly():
    from spinequant.instances import noise_filter

    dendrite = np.zeros((10, 60, 60), np.int32)
    dendrite[4:6, 5:10, :] = 1                           # big shaft
    dendrite[5, 50, 30] = 2                              # one voxel, 4 µm away: removed
    dendrite[5, 14, 30] = 3                              # one voxel, 0.5 µm away: kept
    kept, n = noise_filter(dendrite, dendrite, spacing=(0.5, 0.1, 0.1))
    assert n == 1 and kept.max() == 2 and kept[5, 50, 30] == 0 and kept[5, 14, 30] > 0


def test_empty_maps_give_no_objects():
    zeros = np.zeros((4, 20, 20), np.float32)
    result = spine_instances(zeros, zeros, spacing=SPACING)
    assert result.n_spines == 0 and result.n_dendrites == 0
    assert result.spine_labels.shape == zeros.shape and result.spine_labels.dtype == np.int32


def test_auto_method_uses_components_for_masks_and_flood_fill_for_probabilities():
    # A 4 µm filopodium-like bar: longer than max_distance_to_seed_um (2 µm) from any seed.
    bar = np.zeros((3, 10, 60), bool)
    bar[1, 4:7, 8:51] = True
    cfg = InstanceConfig(**NO_FILTERS)
    assert spine_instances(bar, None, spacing=(0.5, 0.094, 0.094), config=cfg).n_spines == 1
    flood = dataclasses.replace(cfg, method="floodfill")
    assert spine_instances(bar, None, spacing=(0.5, 0.094, 0.094), config=flood).n_spines == 2


def test_dendrite_pieces_joined_by_a_spine_are_one_dendrite():
    # A shaft cut in two by a blob the map calls spine (a swelling, or a spine along z).
    dend = np.zeros((6, 30, 60), np.float32)
    dend[2:4, 12:16, :25] = 1
    dend[2:4, 12:16, 33:] = 1
    spine = np.zeros_like(dend)
    spine[1:5, 10:18, 25:33] = 1
    far = np.zeros_like(dend)
    far[2:4, 26:29, 5:50] = 1                                    # a separate dendrite
    d = np.maximum(dend, far)
    joined = spine_instances(spine, d, spacing=(0.5, 0.1, 0.1))
    kept = spine_instances(spine, d, spacing=(0.5, 0.1, 0.1),
                           config=InstanceConfig(join_dendrites_through_spines=False))
    assert kept.n_dendrites == 3 and joined.n_dendrites == 2
    assert joined.n_spines == kept.n_spines == 1
    labels = joined.dendrite_labels
    assert labels[3, 13, 0] == labels[3, 13, 59] != labels[3, 27, 20]


def test_peak_fraction_gives_back_the_outline_of_a_faint_low_thresholded_spine():
    # A dim spine (peak probability 0.4, like a network's thin spines) next to a bright one,
    # both blurred wider than their shapes: found at 0.1, each is outlined by its skirt.
    radii = (1.0, 0.4, 0.4)
    bright = ellipsoid((6, 4, 8), SPACING, (3, 2, 2), radii)
    dim = ellipsoid((6, 4, 8), SPACING, (3, 2, 6), radii)
    prob = blurred(bright, SPACING, 0.3) + 0.4 * blurred(dim, SPACING, 0.3)
    found = dict(method="components", threshold=0.1, **NO_FILTERS)
    loose = spine_instances(prob, None, spacing=SPACING, config=InstanceConfig(**found))
    tight = spine_instances(prob, None, spacing=SPACING, config=InstanceConfig(peak_fraction=0.5, **found))
    assert loose.n_spines == tight.n_spines == 2
    true_volume = 4 / 3 * np.pi * np.prod(radii)
    def volume(labels, centre):
        return (labels == label_at(labels, centre, SPACING)).sum() * np.prod(SPACING)

    assert volume(loose.spine_labels, (3, 2, 2)) > 2 * true_volume
    for c in ((3, 2, 2), (3, 2, 6)):                # each cut at half its own peak
        assert volume(tight.spine_labels, c) == pytest.approx(true_volume, rel=0.15)
    # A mask has no peak to trim to: the setting leaves it alone.
    as_mask = spine_instances(bright, None, spacing=SPACING, config=InstanceConfig(peak_fraction=0.5, **NO_FILTERS))
    assert np.array_equal(as_mask.spine_labels > 0, bright)


def test_dendrite_pieces_joined_along_a_chain_of_touching_spines():
    from spinequant.instances.filters import join_through_spines
    d = np.zeros((1, 4, 12), np.int32)
    d[0, 1, :3], d[0, 1, 9:], d[0, 3, 4:8] = 1, 2, 3   # piece 3 touches no spine
    s = np.zeros_like(d)
    s[0, 1, 3:6], s[0, 1, 6:9] = 1, 2                  # two spines, touching each other
    out = join_through_spines(d, s, connectivity=6)
    assert out[0, 1, 0] == out[0, 1, 11] == 1 and out[0, 3, 5] == 2
    # Without the second spine the chain is broken.
    apart = join_through_spines(d, np.where(s == 2, 0, s), connectivity=6)
    assert (apart[0, 1, 0], apart[0, 1, 11], apart[0, 3, 5]) == (1, 2, 3)


@pytest.mark.parametrize("shape,spacing", [((40, 60), (0.1, 0.1)), ((6, 40, 60), (0.5, 0.1, 0.1))])
def test_a_distance_limit_wider_than_the_image_costs_one_transform(monkeypatch, shape, spacing):
    """Objects whose box widened by the limit is the whole image share one distance transform
    (a 2D image with 200 candidates and a 1000 µm limit made 200 whole-image transforms), and
    give what each object's own box gives."""
    import edt as edt_module

    from spinequant.instances import _objects

    rng = np.random.default_rng(2)
    labels = np.zeros(shape, np.int32)
    for k in range(1, 13):
        at = tuple(int(rng.integers(0, n - 2)) for n in shape)
        labels[tuple(slice(a, a + 2) for a in at)] = k
    objects = _objects.Objects.of(labels)
    mask = np.zeros(shape, bool)
    mask[..., 28:31, :] = True
    mask[labels > 0] = False
    ids = objects.ids
    calls = []
    real = edt_module.edt
    monkeypatch.setattr(_objects.edt, "edt", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    near = _objects.near_mask(objects, ids, mask, spacing, 1000.0)
    assert near.all() and len(calls) == 1
    assert not _objects.near_mask(objects, ids, np.zeros(shape, bool), spacing, 1000.0).any()
    expected = [_objects.near_mask(objects, [i], mask, spacing, 1.5)[0] for i in ids]   # boxes of their own
    np.testing.assert_array_equal(_objects.near_mask(objects, ids, mask, spacing, 1.5), expected)
    assert 0 < sum(expected) < len(ids)
