"""Varicosities and faint necks: what they add to the image and how the truth labels them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from spinequant.errors import InputError
from spinequant.synth import make_phantom

QUIET = dict(haze=0.0, n_axons=(0, 0), n_dim_dendrites=(0, 0), noise=False)


def pieces(labels: np.ndarray, label: int) -> int:
    return ndi.label(labels == label, np.ones((3, 3, 3)))[1]


def test_varicosities_are_brighter_swellings_labelled_as_their_shaft():
    kw = dict(seed=2, shape=(16, 128, 128), spine_density_per_um=(0, 0), **QUIET)
    plain = make_phantom("two_photon", **kw)
    swollen = make_phantom("two_photon", varicosity_density_per_um=(0.5, 0.5), **kw)
    assert plain.params["n_varicosities"] == 0 and swollen.params["n_varicosities"] >= 3
    added = (swollen.dendrite_labels > 0) & (plain.dendrite_labels == 0)
    assert added.sum() > 200
    assert not np.any((plain.dendrite_labels > 0) & (swollen.dendrite_labels == 0))
    # shaft, never spine, and the dendrite that swells
    assert np.all(swollen.semantic[added] == 1) and not np.any(swollen.semantic == 2)
    nearest = ndi.distance_transform_edt(plain.dendrite_labels == 0, sampling=plain.spacing,
                                         return_distances=False, return_indices=True)
    owner = plain.dendrite_labels[tuple(i[added] for i in nearest)]
    assert np.mean(swollen.dendrite_labels[added] == owner) > 0.98
    # the shaft stays in one piece through its swellings
    for label in range(1, plain.dendrite_labels.max() + 1):
        assert pieces(swollen.dendrite_labels, label) <= pieces(plain.dendrite_labels, label)
    # brighter as well as wider
    assert swollen.image[added].mean() > 1.3 * plain.image[added].mean()
    top = np.percentile(swollen.image[swollen.semantic == 1], 99)
    assert top > 1.15 * np.percentile(plain.image[plain.semantic == 1], 99)


def test_varicosities_leave_the_spines_as_bright_as_without_them():
    # the image's brightness is set by the shaft without its swellings: until session 41 it was
    # the whole shaft's, and swellings made every spine of this phantom half as bright
    kw = dict(seed=4, shape=(16, 256, 256), spine_density_per_um=(2, 2), **QUIET)
    plain = make_phantom("two_photon", **kw)
    swollen = make_phantom("two_photon", varicosity_density_per_um=(0.2, 0.2), **kw)
    assert swollen.params["n_varicosities"] >= 3
    # spine voxels of both, beyond the PSF's reach (2.5 µm) from every voxel a swelling added
    far = ndi.distance_transform_edt(swollen.dendrite_labels == plain.dendrite_labels, sampling=plain.spacing) > 2.5
    spines = (plain.spine_labels > 0) & (swollen.spine_labels > 0) & far
    assert spines.sum() > 100
    ratio = swollen.image[spines].astype(float).mean() / plain.image[spines].astype(float).mean()
    assert 0.95 < ratio < 1.05


def test_spines_on_a_varicosity_start_at_its_surface_and_stay_spines():
    kw = dict(seed=3, shape=(16, 128, 128), spine_density_per_um=(3, 3), **QUIET)
    swollen = make_phantom("two_photon", varicosity_density_per_um=(0.5, 0.5), **kw)
    table = swollen.spines
    assert swollen.params["n_varicosities"] >= 3 and len(table) > 20
    # every base lies on the shaft surface: within a voxel diagonal of a shaft voxel
    shaft_dist = ndi.distance_transform_edt(swollen.dendrite_labels == 0, sampling=swollen.spacing)
    base = np.rint(table[["base_z_um", "base_y_um", "base_x_um"]].to_numpy() / swollen.spacing).astype(int)
    base = np.clip(base, 0, np.asarray(swollen.image.shape) - 1)
    assert np.mean(shaft_dist[tuple(base.T)] <= np.linalg.norm(swollen.spacing)) > 0.9
    assert not np.any((swollen.spine_labels > 0) & (swollen.dendrite_labels > 0))


def test_faint_necks_dim_the_image_but_leave_the_truth_unchanged():
    kw = dict(seed=3, shape=(16, 96, 96), spine_density_per_um=(3, 3), **QUIET)
    plain = make_phantom("confocal", **kw)
    faint = make_phantom("confocal", faint_neck_fraction=(1.0, 1.0), faint_neck_brightness=(0.1, 0.1), **kw)
    for name in ("semantic", "spine_labels", "dendrite_labels"):
        assert np.array_equal(getattr(plain, name), getattr(faint, name)), name
    assert plain.spines.equals(faint.spines)  # head centres, types, volumes: all the same
    necked = plain.spines.loc[plain.spines["type"].isin(["thin", "mushroom"]), "id"].to_numpy()
    assert len(necked) > 5 and faint.params["n_faint_necks"] >= len(necked)
    # neck voxels: labelled voxels of a necked spine clear of its head
    coords = np.stack(np.indices(plain.image.shape), axis=-1) * np.asarray(plain.spacing)
    neck = np.zeros(plain.image.shape, bool)
    for row in plain.spines[plain.spines["id"].isin(necked)].itertuples():
        mine = plain.spine_labels == row.id
        far = np.linalg.norm(coords[mine] - [row.head_z_um, row.head_y_um, row.head_x_um], axis=1)
        neck[mine] = far > row.head_diameter_um / 2 + 0.2
    offset = plain.params["config"]["imaging"]["offset_adu"]
    signal_plain, signal_faint = (ph.image[neck].astype(float) - offset for ph in (plain, faint))
    assert neck.sum() > 50 and signal_faint.mean() < 0.7 * signal_plain.mean()
    # the heads keep their brightness: the brightest voxel of each head barely changes
    peaks = ndi.maximum(plain.image, plain.spine_labels, necked)
    peaks_faint = ndi.maximum(faint.image, plain.spine_labels, necked)
    assert np.median(np.asarray(peaks_faint) / np.asarray(peaks)) > 0.8


def test_presets_leave_them_off_and_overrides_check_them():
    ph = make_phantom("two_photon", seed=1, shape=(8, 48, 48))
    assert ph.params["n_varicosities"] == 0 and ph.params["n_faint_necks"] == 0
    with pytest.raises(InputError, match="varicosity_swelling"):
        make_phantom("two_photon", shape=(8, 48, 48), varicosity_swelling=(0.8, 1.5))
    with pytest.raises(InputError, match="faint_neck_fraction"):
        make_phantom("two_photon", shape=(8, 48, 48), faint_neck_fraction=(0.5, 1.5))


def test_shaft_texture_varies_the_fill_along_the_shaft_not_the_labels():
    kw = dict(seed=4, shape=(16, 128, 128), spine_density_per_um=(0, 0), **QUIET)
    plain = make_phantom("confocal", **kw)
    textured = make_phantom("confocal", texture_amplitude=(0.3, 0.3), texture_scale_um=(1.0, 3.0), **kw)
    # the same solid on finer cones: a few boundary voxels at most change
    assert (plain.semantic != textured.semantic).sum() <= 0.005 * (plain.semantic > 0).sum()
    # brightness along the centrelines: the texture adds variation on a 1-3 µm scale
    centre = np.rint(plain.centrelines[["z", "y", "x"]].to_numpy() / plain.spacing).astype(int)
    centre = centre[np.all((centre >= 0) & (centre < plain.image.shape), axis=1)]
    along = [ph.image[tuple(centre.T)].astype(float) for ph in (plain, textured)]
    assert len(centre) > 15
    assert np.std(along[1] / along[0]) > 0.05
    assert not np.array_equal(plain.image, textured.image)


def test_realistic_overrides_switch_everything_on():
    from spinequant.synth import REALISTIC

    ph = make_phantom("two_photon", seed=5, shape=(16, 128, 128), **{**REALISTIC,
                      "varicosity_density_per_um": (0.25, 0.25), "faint_neck_fraction": (0.3, 0.3)})
    assert ph.params["n_varicosities"] > 0 and ph.params["n_faint_necks"] > 0
    assert ph.params["config"]["shafts"]["texture_amplitude"] == REALISTIC["texture_amplitude"]


def test_cell_bodies_are_unlabelled_bright_blobs_clear_of_the_truth():
    from spinequant.synth.distractors import SOMA_CLEARANCE_UM

    kw = dict(seed=3, shape=(24, 256, 256), **QUIET)
    plain = make_phantom("two_photon", **kw)
    soma = make_phantom("two_photon", n_somata=(1, 1), soma_radius_um=(3.0, 3.0), **kw)
    assert plain.params["n_somata"] == 0 and soma.params["n_somata"] == 1
    # the truth is the same, and so is everything else but the cell body (its own random stream)
    assert np.array_equal(plain.semantic, soma.semantic) and np.array_equal(plain.spine_labels, soma.spine_labels)
    added = soma.image.astype(int) - plain.image.astype(int)
    brighter = added > 1                                          # 1 ADU: the blur's rounding
    assert added.min() >= -1
    # one blob about the size asked for (a 3 µm ball, blurred by the PSF) ...
    blob = ndi.label(brighter)[0]
    sizes = np.bincount(blob.ravel())[1:]
    volume = sizes.max() * np.prod(soma.spacing)
    assert 0.5 * 4 / 3 * np.pi * 3.0 ** 3 < volume < 3 * 4 / 3 * np.pi * 4.0 ** 3
    # ... whose solid part keeps clear of the labelled voxels
    core = soma.image.astype(float) - plain.image > 0.5 * (soma.image.max() - plain.image.min())
    gap = ndi.distance_transform_edt(soma.semantic == 0, sampling=soma.spacing)[core]
    assert core.sum() > 1000 and gap.min() > 0.5 * SOMA_CLEARANCE_UM
    with pytest.raises(InputError, match="soma_elongation"):
        make_phantom("two_photon", shape=(8, 48, 48), soma_elongation=(0.5, 1.0))
