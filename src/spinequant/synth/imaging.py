"""The imaging model: fluorophore density -> detector counts.

1. Depth attenuation ``exp(-z / attenuation_length)`` (z = depth below the first plane).
2. Blur by a Gaussian approximation of the point-spread function. Without an explicit FWHM it
   follows from the numerical aperture: one-photon confocal, lateral 0.51 λ/NA and axial
   0.88 λ / (n - sqrt(n² - NA²)); two-photon (Zipfel, Williams & Webb 2003, Nat Biotechnol
   21:1369; NA > 0.7), 1/e radii ω_xy = 0.325 λ / (√2 NA^0.91), ω_z = 0.532 λ / √2 /
   (n - sqrt(n² - NA²)) of the squared intensity, FWHM = ω √(2 ln 2).
3. Photons: ``λ = P (blurred + haze) + dark``; Poisson shot noise plus Gaussian read noise.
   The photon scale ``P`` is solved so that the *signal-to-noise ratio* is the one asked for:
   SNR = mean expected signal above background in shaft voxels / rms noise in those voxels.
4. Optional xy smoothing of the noise (a scanner's bandwidth makes neighbouring pixels
   correlated, as in the real two-photon sample), detector gain and offset, saturation,
   rounding to uint8 / uint16.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from .config import ImagingConfig
from .parallel import blur, shot_and_read_noise

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
TRUNCATE = 3.0


def psf_fwhm_um(cfg: ImagingConfig) -> tuple[float, float]:
    """(axial, lateral) FWHM of the PSF in µm."""
    if cfg.psf_fwhm_um is not None:
        return float(cfg.psf_fwhm_um[0]), float(cfg.psf_fwhm_um[1])
    na, lam, n = cfg.numerical_aperture, cfg.wavelength_um, cfg.immersion_index
    if not 0 < na < n:
        raise InputError(f"The numerical aperture {na} must be positive and below the immersion "
                         f"index {n}; give numerical_aperture= or psf_fwhm_um=(z, xy).")
    depth_term = n - np.sqrt(n**2 - na**2)
    if cfg.two_photon:
        w_xy = 0.325 * lam / (np.sqrt(2) * na**0.91)
        w_z = 0.532 * lam / np.sqrt(2) / depth_term
        return float(w_z * np.sqrt(2 * np.log(2))), float(w_xy * np.sqrt(2 * np.log(2)))
    return float(0.88 * lam / depth_term), float(0.51 * lam / na)


def noise_variance_factor(sigma_px: float) -> float:
    """Fraction of white-noise variance left after xy Gaussian smoothing of ``sigma_px``."""
    if sigma_px <= 0:
        return 1.0
    delta = np.zeros((1, 41, 41))
    delta[0, 20, 20] = 1.0
    kernel = ndi.gaussian_filter(delta, (0, sigma_px, sigma_px), truncate=TRUNCATE)
    return float((kernel**2).sum())


def photon_scale(snr: float, k2: float, background_rel: float, read_rel: float) -> float:
    """Mean shaft signal in photons that gives ``snr`` (see module docstring).

    With signal s, background b·s and read noise r·s photons, the noise variance is
    k²(s(1 + b) + r²s²); solving SNR = s / sqrt(noise variance) for s.
    """
    a = snr**2 * k2
    if a * read_rel**2 >= 1:
        raise InputError(f"An SNR of {snr:g} cannot be reached with read noise at "
                         f"{read_rel:g} of the signal; lower the SNR or read_noise_fraction.")
    return a * (1 + background_rel) / (1 - a * read_rel**2)


def render(density: np.ndarray, haze: np.ndarray | None, shaft_mask: np.ndarray, spacing,
           cfg: ImagingConfig, rng: np.random.Generator, *, haze_amplitude: float = 0.0
           ) -> tuple[np.ndarray, dict]:
    """Image (``cfg.dtype``) of a fluorophore ``density``; also the numbers that made it.

    ``haze`` (mean about 1) is added with ``haze_amplitude`` times the mean shaft signal.
    ``density`` and ``haze`` are scaled in place.
    """
    spacing = np.asarray(spacing, float)
    depth = np.arange(density.shape[0]) * spacing[0]
    att = np.exp(-depth / cfg.attenuation_length_um).astype(np.float32)[:, None, None]
    fz, fxy = psf_fwhm_um(cfg)
    c = cfg.noise_correlation_px
    # the noise smoothing blurs the signal as well: fold it into the PSF
    sigma = (fz / FWHM_PER_SIGMA / spacing[0],
             np.hypot(fxy / FWHM_PER_SIGMA / spacing[1], c), np.hypot(fxy / FWHM_PER_SIGMA / spacing[2], c))
    density *= att  # the caller's array: made for this
    signal = blur(density, sigma, truncate=TRUNCATE)
    fm = float(signal[shaft_mask].mean()) if shaft_mask.any() else float(signal.max() or 1.0)
    if haze is not None and haze_amplitude > 0:
        haze *= att * np.float32(haze_amplitude * fm)  # the caller's array: made for this
        haze_rel = float(haze[shaft_mask].mean()) / fm if shaft_mask.any() else 0.0
        signal += haze
    else:
        haze_rel = 0.0
    k2 = noise_variance_factor(c)
    s = photon_scale(cfg.snr, k2, cfg.dark_fraction + haze_rel, cfg.read_noise_fraction)
    scale = s / fm          # photons per unit density
    gain = cfg.signal_adu / s
    dark = cfg.dark_fraction * s
    if cfg.noise:
        # noise in photons, from the expected photon count of every voxel
        noise = shot_and_read_noise(signal, scale, dark, cfg.read_noise_fraction * s, rng)
        if c > 0:
            noise = blur(noise, (0, c, c), truncate=TRUNCATE)
    expected = signal
    expected *= np.float32(gain * scale)
    expected += np.float32(cfg.offset_adu + gain * dark)
    if cfg.noise:
        noise *= np.float32(gain)
        expected += noise
    info = {"psf_fwhm_um": [fz, fxy], "psf_sigma_px": [float(v) for v in sigma],
            "photons_per_shaft_voxel": s, "gain_adu_per_photon": gain,
            "background_adu": cfg.offset_adu + gain * dark, "noise_variance_factor": k2}
    return quantise(expected, cfg), info


def quantise(values: np.ndarray, cfg: ImagingConfig) -> np.ndarray:
    dtype = np.dtype(cfg.dtype)
    if dtype not in (np.uint8, np.uint16):
        raise InputError(f"The phantom data type must be 'uint8' or 'uint16', not '{cfg.dtype}'.")
    top = np.iinfo(dtype).max
    sat = top if cfg.saturation_adu is None else min(top, cfg.saturation_adu)
    np.clip(values, 0, sat, out=values)
    np.rint(values, out=values)
    return values.astype(dtype)
