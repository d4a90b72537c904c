"""Parameters of a synthetic phantom: one frozen dataclass per part, all in µm.

A :class:`SynthConfig` holds the voxel grid and four parts (shafts, spines, distractors,
imaging). :func:`with_overrides` replaces fields by name without the caller having to know
which part a field belongs to, so ``make_phantom(snr=5, spine_density_per_um=3)`` works.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import InputError
from ..validate import check_spacing


@dataclass(frozen=True)
class ShaftConfig:
    """Dendritic shafts: tubes along smooth 3D curves."""

    n_dendrites: tuple[int, int] = (1, 2)  #: range (inclusive) of labelled dendrites
    radius_um: tuple[float, float] = (0.3, 0.65)  #: mean radius range of a shaft
    radius_variation: float = 0.15  #: relative smooth variation of the radius along a shaft
    max_elevation_deg: float = 25.0  #: largest angle of a shaft to the xy plane
    steep_fraction: float = 0.15  #: fraction of shafts that may run at any angle, up to along z
    wiggle_um: float = 0.8  #: amplitude of the smooth meander
    branch_probability: float = 0.3  #: chance that a shaft carries one side branch
    radius_limits_um: tuple[float, float] = (0.3, 1.5)  #: hard limits of the local radius
    brightness: tuple[float, float] = (0.75, 1.25)  #: relative fluorophore fill per dendrite
    # Varicosities: short bright swellings of the shaft, labelled as shaft. Off by default so
    # that the presets draw what they always drew; (0.0, 0.25) matches the real sample.
    varicosity_density_per_um: tuple[float, float] = (0.0, 0.0)  #: swellings per µm, range per dendrite
    varicosity_swelling: tuple[float, float] = (1.2, 2.0)  #: peak radius / local shaft radius
    varicosity_length_um: tuple[float, float] = (0.5, 1.5)  #: length of centreline a swelling spans
    varicosity_brightness: tuple[float, float] = (1.3, 3.0)  #: peak fill / the dendrite's fill
    # Texture: fine multiplicative variation of the fill along a shaft (labels unchanged).
    # Off by default; (0.0, 0.3) matches the real sample.
    texture_amplitude: tuple[float, float] = (0.0, 0.0)  #: peak relative change, range per shaft
    texture_scale_um: tuple[float, float] = (1.0, 3.0)  #: wavelengths of the variation


@dataclass(frozen=True)
class SpineConfig:
    """Spines on the labelled shafts; sizes are drawn per type (see :mod:`.spines`)."""

    density_per_um: tuple[float, float] = (1.0, 2.0)  #: spines per µm of shaft, range per dendrite
    type_fractions: tuple[tuple[str, float], ...] = (
        ("thin", 0.55), ("mushroom", 0.25), ("stubby", 0.15), ("filopodia", 0.05))
    touching_fraction: float = 0.1  #: fraction of spines given a neighbour that touches them
    max_tilt_deg: float = 35.0  #: largest tilt of a spine from the shaft normal
    size_scale: float = 1.0  #: scales every spine length and diameter
    brightness: tuple[float, float] = (0.9, 1.4)  #: fill relative to the parent shaft
    # Detached-looking heads: necks filled far more weakly than their heads (labels unchanged).
    # Off by default; (0.0, 0.3) matches the real sample.
    faint_neck_fraction: tuple[float, float] = (0.0, 0.0)  #: range per phantom, of thin/mushroom spines
    faint_neck_brightness: tuple[float, float] = (0.05, 0.3)  #: neck fill relative to its head


@dataclass(frozen=True)
class DistractorConfig:
    """Structures that are imaged but not labelled."""

    n_axons: tuple[int, int] = (0, 2)
    axon_radius_um: tuple[float, float] = (0.08, 0.18)
    bouton_spacing_um: tuple[float, float] = (3.0, 8.0)
    bouton_radius_um: tuple[float, float] = (0.25, 0.45)
    axon_brightness: tuple[float, float] = (0.25, 0.7)
    n_dim_dendrites: tuple[int, int] = (0, 2)
    dim_brightness: tuple[float, float] = (0.08, 0.25)
    # Cell bodies, off in the presets: drawn from the fourth random stream, so switching them
    # on leaves the rest of the phantom as it was.
    n_somata: tuple[int, int] = (0, 0)  #: unlabelled cell bodies, range per phantom
    soma_radius_um: tuple[float, float] = (4.0, 8.0)  #: radius of the round part
    soma_elongation: tuple[float, float] = (1.0, 1.6)  #: length over width
    soma_brightness: tuple[float, float] = (0.5, 1.5)  #: fill relative to the labelled shafts
    haze: float = 0.015  #: mean out-of-focus background, relative to the mean shaft signal
    haze_scale_um: float = 6.0  #: spatial scale of the haze


@dataclass(frozen=True)
class ImagingConfig:
    """Microscope and detector. Intensities are in detector units (ADU)."""

    psf_fwhm_um: tuple[float, float] | None = None  #: (z, xy) FWHM; None = from NA below
    numerical_aperture: float = 1.0
    wavelength_um: float = 0.52  #: emission (one-photon) or excitation (two-photon) wavelength
    immersion_index: float = 1.33
    two_photon: bool = False
    attenuation_length_um: float = 150.0  #: depth over which the signal falls to 1/e
    snr: float = 30.0  #: mean shaft signal over noise rms in shaft voxels (see docs)
    signal_adu: float = 900.0  #: mean shaft signal above background
    offset_adu: float = 150.0  #: detector offset (dark level)
    dark_fraction: float = 0.05  #: background photons, relative to the mean shaft photons
    read_noise_fraction: float = 0.02  #: Gaussian read noise (photons), relative to the same
    noise_correlation_px: float = 0.0  #: xy Gaussian smoothing of the noise (scanner bandwidth)
    saturation_adu: float | None = None  #: clip level; None = top of the data type
    dtype: str = "uint16"
    noise: bool = True  #: False renders the expected (noise-free) image
    membrane: bool = False  #: membrane labelling instead of a cytosolic fill
    membrane_thickness_um: float = 0.08


@dataclass(frozen=True)
class SynthConfig:
    """Everything :func:`~spinequant.synth.make_phantom` needs besides the seed."""

    name: str = "custom"
    spacing: tuple[float, float, float] = (0.5, 0.094, 0.094)  #: voxel size (z, y, x) in µm
    shape: tuple[int, int, int] = (32, 256, 256)
    supersample_um: float = 0.06  #: sample step used inside boundary voxels
    shafts: ShaftConfig = field(default_factory=ShaftConfig)
    spines: SpineConfig = field(default_factory=SpineConfig)
    distractors: DistractorConfig = field(default_factory=DistractorConfig)
    imaging: ImagingConfig = field(default_factory=ImagingConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_PARTS = ("shafts", "spines", "distractors", "imaging")
# Names by which a user may override a field of a part, e.g. spine_density_per_um.
_ALIASES = {"spine_density_per_um": ("spines", "density_per_um"),
            "snr": ("imaging", "snr"), "dtype": ("imaging", "dtype")}


def with_overrides(config: SynthConfig, **overrides) -> SynthConfig:
    """Return ``config`` with fields replaced by name (top-level, ``part__field`` or a
    field name unique to one part)."""
    top, parts = {}, {p: {} for p in _PARTS}
    for key, value in overrides.items():
        part, name = _locate(key)
        if part is None:
            top[name] = value
        else:
            parts[part][name] = value
    if "spacing" in top:
        top["spacing"] = check_spacing(top["spacing"], where="the phantom")
    if "shape" in top:
        top["shape"] = _check_shape(top["shape"])
    for part, fields in parts.items():
        if fields:
            top[part] = dataclasses.replace(getattr(config, part), **fields)
    return check_config(dataclasses.replace(config, **top))


def check_config(config: SynthConfig) -> SynthConfig:
    """Raise :class:`InputError` for values a phantom cannot be made with."""
    problems = []
    for part in _PARTS:
        for f in dataclasses.fields(getattr(config, part)):
            v = getattr(getattr(config, part), f.name)
            if f.name == "psf_fwhm_um":  # a pair (z, xy), not a range
                if v is not None and not min(v) > 0:
                    problems.append(f"psf_fwhm_um={v} must be two positive widths (z, xy)")
            elif isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
                if v[0] > v[1] or v[0] < 0:
                    problems.append(f"{f.name}={v} must be a range (low, high) with 0 <= low <= high")
    img = config.imaging
    for name in ("snr", "signal_adu", "attenuation_length_um", "numerical_aperture", "wavelength_um"):
        if not getattr(img, name) > 0:
            problems.append(f"{name}={getattr(img, name)} must be positive")
    if config.shafts.varicosity_swelling[0] < 1:
        problems.append(f"varicosity_swelling={config.shafts.varicosity_swelling} must be at least 1 "
                        f"(a swelling is wider than the shaft)")
    if config.distractors.soma_elongation[0] < 1 or not config.distractors.soma_radius_um[0] > 0:
        problems.append(f"soma_radius_um={config.distractors.soma_radius_um} must be positive and "
                        f"soma_elongation={config.distractors.soma_elongation} at least 1 (length over width)")
    if config.spines.faint_neck_fraction[1] > 1:
        problems.append(f"faint_neck_fraction={config.spines.faint_neck_fraction} must lie in [0, 1]")
    if not config.supersample_um > 0:
        problems.append(f"supersample_um={config.supersample_um} must be positive")
    from .spines import SPINE_TYPES  # here: spines imports the geometry helpers

    fractions = config.spines.type_fractions
    unknown = [k for k, _ in fractions if k not in SPINE_TYPES]
    if unknown or sum(v for _, v in fractions) <= 0 or min(v for _, v in fractions) < 0:
        problems.append(f"type_fractions={fractions} must give non-negative fractions of "
                        f"{', '.join(SPINE_TYPES)} that do not all vanish")
    if problems:
        raise InputError("The phantom cannot be made: " + "; ".join(problems) + ".")
    return config


def _locate(key: str) -> tuple[str | None, str]:
    if key in _ALIASES:
        return _ALIASES[key]
    if "__" in key:
        part, name = key.split("__", 1)
        if part in _PARTS and name in _field_names(part):
            return part, name
    if key in {f.name for f in dataclasses.fields(SynthConfig)} - set(_PARTS):
        return None, key
    owners = [p for p in _PARTS if key in _field_names(p)]
    if len(owners) == 1:
        return owners[0], key
    valid = sorted({*_ALIASES, "spacing", "shape", "supersample_um", "name",
                    *(f"{p}__{n}" for p in _PARTS for n in _field_names(p))})
    what = "belongs to several parts" if owners else "is not a phantom parameter"
    raise InputError(f"'{key}' {what}. Use one of: {', '.join(valid)}.")


def _field_names(part: str) -> set[str]:
    cls = {"shafts": ShaftConfig, "spines": SpineConfig, "distractors": DistractorConfig,
           "imaging": ImagingConfig}[part]
    return {f.name for f in dataclasses.fields(cls)}


def _check_shape(shape) -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or min(out) < 4:
        raise InputError(f"The phantom shape {shape!r} must be three whole numbers (Z Y X), each "
                         f"at least 4, for example (32, 256, 256).")
    return out
