"""The imaging model's parts against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from spinequant.synth import ImagingConfig
from spinequant.synth.imaging import noise_variance_factor, photon_scale, psf_fwhm_um
from spinequant.synth.parallel import blur, shot_and_read_noise


def test_threaded_blur_equals_the_plain_gaussian_filter():
    a = np.random.default_rng(0).random((20, 60, 70)).astype(np.float32)
    expected = ndi.gaussian_filter(a, (2.0, 1.5, 0.0), truncate=3.0, output=np.float32)
    assert np.array_equal(blur(a, (2.0, 1.5, 0.0), truncate=3.0), expected)


def test_shot_noise_has_poisson_variance_and_read_noise_adds():
    lam = np.full((16, 100, 100), 2.0, np.float32)
    noise = shot_and_read_noise(lam, 1.5, 0.5, 0.0, np.random.default_rng(1))  # λ = 3.5
    assert noise.mean() == pytest.approx(0.0, abs=0.01)
    assert noise.var() == pytest.approx(3.5, rel=0.02)
    noisier = shot_and_read_noise(lam, 1.5, 0.5, 2.0, np.random.default_rng(1))
    assert noisier.var() == pytest.approx(3.5 + 4.0, rel=0.02)
    again = shot_and_read_noise(lam, 1.5, 0.5, 2.0, np.random.default_rng(1))
    assert np.array_equal(noisier, again)


def test_photon_scale_solves_the_snr_equation():
    snr, k2, b, r = 12.0, 0.3, 0.05, 0.02
    s = photon_scale(snr, k2, b, r)
    assert s / np.sqrt(k2 * (s * (1 + b) + (r * s) ** 2)) == pytest.approx(snr, rel=1e-9)


def test_noise_variance_factor_of_gaussian_smoothing():
    assert noise_variance_factor(0.0) == 1.0
    # continuous limit 1 / (4 π σ²) for a 2D Gaussian of σ pixels
    assert noise_variance_factor(2.0) == pytest.approx(1 / (4 * np.pi * 4.0), rel=0.05)


def test_psf_from_numerical_aperture():
    z, xy = psf_fwhm_um(ImagingConfig(numerical_aperture=1.4, wavelength_um=0.52, immersion_index=1.518))
    assert xy == pytest.approx(0.51 * 0.52 / 1.4)
    assert z == pytest.approx(0.88 * 0.52 / (1.518 - np.sqrt(1.518**2 - 1.4**2)))
    z2, xy2 = psf_fwhm_um(ImagingConfig(numerical_aperture=1.0, wavelength_um=0.92, two_photon=True))
    assert xy2 == pytest.approx(0.325 * 0.92 / np.sqrt(2) * np.sqrt(2 * np.log(2)))
    assert z2 == pytest.approx(0.532 * 0.92 / np.sqrt(2) / (1.33 - np.sqrt(1.33**2 - 1.0)) * np.sqrt(2 * np.log(2)))


def test_the_image_does_not_depend_on_the_number_of_threads(monkeypatch):
    from spinequant.synth import make_phantom, parallel

    kw = dict(seed=6, shape=(12, 64, 64))
    monkeypatch.setattr(parallel, "WORKERS", 1)
    one = make_phantom("two_photon", **kw).image
    monkeypatch.setattr(parallel, "WORKERS", 3)
    assert np.array_equal(make_phantom("two_photon", **kw).image, one)
