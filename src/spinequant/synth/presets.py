"""Named presets that mimic common acquisitions.

- ``two_photon``: in vivo / ex vivo two-photon stack like the DeepD3 benchmark (0.5 / 0.094 µm);
  PSF, noise level and its pixel-to-pixel correlation, background and shaft intensities were
  measured on the real sample stack (see docs/synth.md).
- ``confocal``: high-resolution confocal like Vidaurre-Gallart et al. 2022 (0.28 / 0.075 µm,
  16-bit single channel).
- ``sted``: STED / Airyscan-like, fine xy sampling (0.03 µm) and 0.2 µm z steps.
- ``low_snr``: the two-photon set-up with a quarter of the SNR, dimmer and denser.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import InputError
from .config import DistractorConfig, ImagingConfig, ShaftConfig, SpineConfig, SynthConfig

TWO_PHOTON = SynthConfig(
    name="two_photon",
    spacing=(0.5, 0.094, 0.094),
    shape=(32, 256, 256),
    shafts=ShaftConfig(n_dendrites=(1, 2), radius_um=(0.3, 0.55), max_elevation_deg=12.0,
                       steep_fraction=0.1, brightness=(0.8, 1.2)),
    spines=SpineConfig(density_per_um=(1.5, 3.0), brightness=(1.1, 2.2)),
    distractors=DistractorConfig(n_axons=(0, 2), axon_brightness=(0.15, 0.4), n_dim_dendrites=(0, 1),
                                 haze=0.01),
    # the benchmark used a 1.1 NA water objective at 1040 nm (Fernholz et al. 2024); in the
    # slice the PSF is far wider than that NA's 0.26 / 0.79 µm: FWHM measured on the sample
    imaging=ImagingConfig(psf_fwhm_um=(3.2, 0.45), two_photon=True, wavelength_um=1.04,
                          numerical_aperture=1.1, attenuation_length_um=150.0, snr=30.0,
                          signal_adu=900.0, offset_adu=138.0, dark_fraction=0.015,
                          read_noise_fraction=0.01, noise_correlation_px=1.0, dtype="uint16"),
)

CONFOCAL = SynthConfig(
    name="confocal",
    spacing=(0.28, 0.075, 0.075),
    shape=(40, 256, 256),
    imaging=ImagingConfig(numerical_aperture=1.4, wavelength_um=0.52, immersion_index=1.518,
                          attenuation_length_um=200.0, snr=20.0, signal_adu=1500.0, offset_adu=100.0,
                          dark_fraction=0.01, read_noise_fraction=0.01, dtype="uint16"),
)

STED = SynthConfig(
    name="sted",
    spacing=(0.2, 0.03, 0.03),
    shape=(32, 320, 320),
    spines=SpineConfig(density_per_um=(1.5, 3.0)),
    distractors=DistractorConfig(n_axons=(0, 2), n_dim_dendrites=(0, 1), haze=0.01),
    # photon counting: gain about 1 count per photon, no offset, no read noise
    imaging=ImagingConfig(psf_fwhm_um=(0.6, 0.07), attenuation_length_um=100.0, snr=10.0,
                          signal_adu=100.0, offset_adu=0.0, dark_fraction=0.02,
                          read_noise_fraction=0.0, dtype="uint16"),
)

LOW_SNR = replace(
    TWO_PHOTON, name="low_snr",
    spines=SpineConfig(density_per_um=(2.0, 4.0)),
    distractors=DistractorConfig(n_axons=(2, 4), haze=0.04),
    imaging=replace(TWO_PHOTON.imaging, snr=7.0, signal_adu=300.0, attenuation_length_um=60.0),
)

#: Overrides that switch on what the real two-photon sample shows and the presets leave out
#: (they stay off there so that every preset draws what it always drew):
#: ``make_phantom("two_photon", seed=s, **REALISTIC)``. Ranges from the real sample stack:
#: varicosities 1.3-2x the shaft radius, 1.5-3x brighter, 0.5-1.5 µm long; heads whose neck
#: is too faint to see.
REALISTIC: dict[str, tuple[float, float]] = {
    "varicosity_density_per_um": (0.0, 0.25),
    "faint_neck_fraction": (0.0, 0.3),
    "texture_amplitude": (0.0, 0.3),
}

PRESETS: dict[str, SynthConfig] = {c.name: c for c in (TWO_PHOTON, CONFOCAL, STED, LOW_SNR)}


def get_preset(name: str | SynthConfig) -> SynthConfig:
    """The preset called ``name`` (a :class:`SynthConfig` is returned unchanged)."""
    if isinstance(name, SynthConfig):
        return name
    if name not in PRESETS:
        raise InputError(f"There is no phantom preset '{name}'. Choose one of: {', '.join(PRESETS)}.")
    return PRESETS[name]
