"""Voronoi-Otsu labelling in µm and the cell table, on volumes with known answers."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from spinequant.cells import CellConfig, analyze_cells, measure_cells, summarize_cells, voronoi_otsu
from spinequant.errors import InputError
from spinequant.evaluate.cells import score_cells
from spinequant.synth import make_cell_phantom


def balls(shape, spacing, centres_um, radii_um, *, blur_um=0.5, noise=0.05, seed=0):
    """Spheres (label i = sphere i) and a blurred noisy image of them."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij"), -1)
    labels = np.zeros(shape, np.int32)
    for i, (c, r) in enumerate(zip(centres_um, radii_um), start=1):
        labels[np.sum((grid - np.asarray(c)) ** 2, axis=-1) <= r * r] = i
    image = ndi.gaussian_filter((labels > 0).astype(float), [blur_um / s for s in spacing])
    image += np.random.default_rng(seed).normal(0, noise, shape)
    return labels, (1000 * image + 100).astype(np.float32)


SPACING = (2.0, 0.5, 0.5)          # anisotropic: z steps four times the pixel size
SHAPE = (20, 80, 80)               # 40 x 40 x 40 µm


def test_separate_cells_counted_exactly_with_their_volumes():
    centres = [(10, 10, 10), (10, 30, 12), (28, 12, 30), (30, 30, 30), (20, 20, 20)]
    radii = [4.0, 5.0, 3.5, 4.5, 3.0]
    truth, image = balls(SHAPE, SPACING, centres, radii)
    labels, info = voronoi_otsu(image, SPACING, CellConfig(spot_sigma_um=2.0, outline_sigma_um=0.5))
    assert labels.max() == 5 and info["n_seeds"] == 5
    table = measure_cells(labels, SPACING)
    # each found cell is matched to its sphere, with its volume within 5 % of the labelled
    # truth (3-4 % above it: 2 µm z steps); the smoother outline of sigma 1 µm adds 11-15 %
    s = score_cells(labels, truth, spacing=SPACING)
    assert s["instances"]["f1"] == 1.0 and s["points"]["f1"] == 1.0 and s["dice"] > 0.9
    found = np.array([np.bincount(truth[labels == i]).argmax() for i in table["id"]])
    expected = measure_cells(truth, SPACING)["volume_um3"].to_numpy()[found - 1]
    np.testing.assert_allclose(table["volume_um3"], expected, rtol=0.05)
    np.testing.assert_allclose(table[["centroid_z_um", "centroid_y_um", "centroid_x_um"]],
                               np.asarray(centres, float)[found - 1], atol=0.6)


def test_touching_pair_is_split_into_two():
    # two spheres of 5 µm radius whose surfaces touch along x
    truth, image = balls(SHAPE, SPACING, [(20, 20, 14.5), (20, 20, 24.5)], [5.0, 5.0])
    assert ndi.label(truth > 0)[1] == 1   # one connected blob
    labels, _ = voronoi_otsu(image, SPACING, CellConfig(spot_sigma_um=2.0))
    assert labels.max() == 2
    s = score_cells(labels, truth, spacing=SPACING)
    assert s["instances"]["f1"] == 1.0 and s["instances"]["mean_matched_iou"] > 0.75
    # the seeded watershed of the intensity splits it too
    labels, _ = voronoi_otsu(image, SPACING, CellConfig(spot_sigma_um=2.0, split="intensity"))
    assert labels.max() == 2
    # a spot sigma as large as the cells smooths the two maxima into one: one object
    labels, _ = voronoi_otsu(image, SPACING, CellConfig(spot_sigma_um=6.0))
    assert labels.max() == 1


def test_sizes_are_in_micrometres_whatever_the_voxel():
    """The same scene sampled at two voxel sizes gives the same cells and volumes."""
    centres, radii = [(10, 10, 10), (28, 28, 26)], [4.0, 5.0]
    results = []
    for spacing, shape in (((2.0, 0.5, 0.5), (20, 80, 80)), ((1.0, 1.0, 1.0), (40, 40, 40))):
        _, image = balls(shape, spacing, centres, radii)
        labels, _ = voronoi_otsu(image, spacing, CellConfig(min_volume_um3=100))
        results.append(measure_cells(labels, spacing).sort_values("centroid_x_um"))
    assert len(results[0]) == len(results[1]) == 2
    np.testing.assert_allclose(results[0]["volume_um3"], results[1]["volume_um3"], rtol=0.12)
    # the volume threshold is in µm³: a 3 µm radius ball (113 µm³) goes at 150 µm³ at both voxel sizes
    for spacing, shape in (((2.0, 0.5, 0.5), (20, 80, 80)), ((1.0, 1.0, 1.0), (40, 40, 40))):
        _, image = balls(shape, spacing, [(10, 10, 10), (28, 28, 26)], [3.0, 5.0])
        labels, info = voronoi_otsu(image, spacing, CellConfig(min_volume_um3=150))
        assert labels.max() == 1 and info["n_removed_small"] == 1


def test_phantom_cells_found():
    """A confocal nuclei phantom with touching clusters: almost every cell found and split."""
    ph = make_cell_phantom("nuclei_confocal", seed=7)
    result = analyze_cells(ph.image, spacing=ph.spacing)
    s = score_cells(result.labels, ph.labels, spacing=ph.spacing)
    assert s["dice"] > 0.9 and s["instances"]["f1"] >= 0.9 and s["points"]["f1"] >= 0.9
    assert (ph.cells["cluster"] > 0).sum() >= 4
    assert abs(result.summary["n_cells"] - len(ph.cells)) <= 2
    # the labelled volume of matched cells within 20 % (median)
    pairs = []
    for i in result.cells["id"]:
        t = np.bincount(ph.labels[result.labels == i]).argmax()
        if t:
            pairs.append((result.cells.loc[result.cells["id"] == i, "volume_um3"].item(),
                          ph.cells.loc[ph.cells["id"] == t, "volume_um3"].item()))
    ratio = np.median([a / b for a, b in pairs])
    assert 0.8 < ratio < 1.25


def test_measure_cells_table():
    spacing = (1.0, 0.5, 0.5)
    truth, image = balls((30, 60, 60), spacing, [(15, 15, 15)], [6.0], noise=0.0)
    # an elongated cell beside it: a box 12 x 3 x 3 µm
    truth[3:6, 40:46, 6:30] = 2
    table = measure_cells(truth, spacing, intensities={"c0": image, "c1": np.full(truth.shape, 7.0)})
    sphere, box = table.iloc[0], table.iloc[1]
    assert sphere["volume_um3"] == pytest.approx(4 / 3 * np.pi * 6**3, rel=0.03)
    assert sphere["equivalent_diameter_um"] == pytest.approx(12.0, rel=0.02)
    assert sphere["sphericity"] > 0.85 and box["sphericity"] < 0.8   # a digitised sphere: 0.89
    assert box["volume_um3"] == pytest.approx(3 * 3 * 12)
    assert table["mean_intensity_c1"].tolist() == [7.0, 7.0]
    assert sphere["max_intensity_c0"] == pytest.approx(image[truth == 1].max())
    assert not table["touches_border"].any()
    summary = summarize_cells(table, truth.shape, spacing)
    volume_mm3 = 30 * 30 * 30 * 1e-9
    assert summary["n_cells"] == 2 and summary["density_per_mm3"] == pytest.approx(2 / volume_mm3)


def test_bad_settings_and_input():
    with pytest.raises(InputError, match="split"):
        CellConfig(split="magic")
    with pytest.raises(InputError, match="spot_sigma_um"):
        CellConfig(spot_sigma_um=-1.0)
    with pytest.raises(InputError, match="spot_sigma_um"):
        CellConfig(spot_sigma_um=(1.0, 2.0))
    with pytest.raises(InputError, match="3D"):
        analyze_cells(np.ones((10, 10)), spacing=(1, 1))
    with pytest.raises(InputError):
        voronoi_otsu(np.ones((4, 8, 8)), (1, 1, 1))   # constant image


def test_flatten_evens_out_a_strong_fall_off():
    """Light falling to 30 % across x: Otsu alone loses the dim side's cells' outlines;
    divided by a 30 µm blur of itself, the volume segments as well as evenly lit."""
    ph = make_cell_phantom("nuclei_lightsheet", seed=1, illumination_falloff=0.7)
    plain, _ = voronoi_otsu(ph.image, ph.spacing)
    flat, _ = voronoi_otsu(ph.image, ph.spacing, CellConfig(flatten_sigma_um=30.0))
    d_plain = score_cells(plain, ph.labels, spacing=ph.spacing)["dice"]
    d_flat = score_cells(flat, ph.labels, spacing=ph.spacing)["dice"]
    assert d_plain < 0.85 and d_flat > 0.9


def test_no_cells_gives_an_empty_table():
    from spinequant.errors import SpinequantWarning

    img = np.random.default_rng(0).normal(100, 5, (10, 40, 40)).astype(np.float32)
    with pytest.warns(SpinequantWarning, match="barely stands out"):   # noise: flagged
        result = analyze_cells(img, spacing=(1, 0.5, 0.5), config=CellConfig(min_volume_um3=1e6))
    assert result.labels.max() == 0 and len(result.cells) == 0
    assert list(result.cells.columns[:10]) == ["id", "centroid_z_um", "centroid_y_um", "centroid_x_um", "volume_um3",
                                               "equivalent_diameter_um", "surface_um2", "sphericity", "n_voxels",
                                               "touches_border"]
    assert result.summary["n_cells"] == 0 and result.summary["density_per_mm3"] == 0.0


def test_a_volume_of_noise_is_flagged_and_a_phantom_is_not():
    """Otsu always splits a histogram, so noise alone gives "cells"; the run says that the
    foreground does not stand out (and a phantom with cells gets no such warning)."""
    import warnings

    from spinequant.errors import SpinequantWarning

    noise = np.random.default_rng(3).poisson(100, (24, 64, 64)).astype(np.uint16)
    with pytest.warns(SpinequantWarning, match="barely stands out"):
        result = analyze_cells(noise, spacing=(4.0, 2.0, 2.0))
    assert result.diagnostics["segment"]["foreground_separation"] < 3.5
    assert "no cells" in result.diagnostics["segment"]["warning"]
    ph = make_cell_phantom("nuclei_lightsheet", seed=100, shape=(24, 64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpinequantWarning)
        result = analyze_cells(ph.image, spacing=ph.spacing)
    assert result.diagnostics["segment"]["foreground_separation"] > 6 and "warning" not in result.diagnostics["segment"]
