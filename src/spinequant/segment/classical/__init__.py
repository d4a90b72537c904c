"""Training-free dendrite / spine segmentation (rule-based).

Steps: anisotropic Gaussian denoising, background removal, foreground by a histogram-chosen
hysteresis threshold, then shaft vs protrusion: the shaft is rebuilt from its centreline
and a robust local radius (:mod:`.shaft`), the rest of the foreground is protrusions. The result has the form the neural models give: two maps in [0, 1], dendrite
and spine, with 0.5 at the decided boundary and higher values where the signal is stronger.

A 2D image (a single plane or a projection) goes through the same steps in the plane; the
steps about z (the measured z elongation, the trim to a fraction of the peak along z, the
shaft's z stretch) do not apply, and ``min_object_um3`` is compared as an area
(:func:`~spinequant.instances.planar_area_um2`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cc3d
import numpy as np
from scipy import ndimage as ndi

from ...config import check_fields
from ...errors import InputError
from ...instances.config import planar_area_um2
from ...validate import check_spacing
from .preprocess import auto_threshold, denoise, noise_level, subtract_background
from .shaft import outside_distance, shaft_mask

__all__ = ["ClassicalConfig", "segment_classical", "ClassicalDiagnostics"]


#: Rules that choose the foreground threshold (see :func:`.preprocess.auto_threshold`).
THRESHOLD_RULES = ("auto", "otsu", "triangle", "li", "noise")


@dataclass(frozen=True)
class ClassicalConfig:
    """Parameters of the classical segmentation (all lengths in µm).

    smooth_sigma_um : Gaussian denoising sigma (z, y, x).
    background_scale_um : background is what remains after an opening this wide (wider than
        any dendrite with its spines).
    threshold : ``"auto"``, ``"otsu"``, ``"triangle"``, ``"li"``, ``"noise"``, or a number
        (in intensity units above background) for the high threshold.
    k_noise_high, k_noise_low : lowest thresholds allowed, in units of the background noise.
    low_fraction : the low hysteresis threshold, as a fraction of the high one above
        background (never below ``k_noise_low`` noise levels); voxels above it are foreground
        when connected to voxels above the high one, which keeps dim necks attached.
    local_fraction : a voxel is foreground only where it reaches this fraction of the
        brightest signal within ``local_window_um`` (half maximum is where a blurred edge
        lies), which trims the out-of-focus glow around bright structures while dim spines
        keep their own, lower, reference.
    local_window_um : half-width (µm) in y/x of that neighbourhood.
    z_local_fraction : the same along z alone, within ``local_window_um`` times the measured
        z elongation: the microscope smears every structure along z, so its own peak along z
        is the reference that trims the smear.
    min_object_um3 : foreground fragments smaller than this are dropped.
    max_spine_length_um : skeleton side branches up to this long (µm) are protrusions.
    shaft_min_length_um : centreline pieces shorter than this are not dendrite.
    radius_window_um : the shaft radius is the median inscribed radius along this much
        centreline on either side, which ignores the bulges that spines make.
    radius_margin : the shaft is the union of balls of this many times that radius.
    min_protrusion_um : pieces outside the rebuilt shaft that reach less than this far from
        it are the shaft's own rough surface, not spines.
    shaft_grid_um : the shaft is computed on a grid about this coarse in y/x (speed); its
        boundary is then refined on the full grid.
    z_elongation : how many times longer than wide the microscope blurs a thin structure in
        z; shapes are compared in a space where z is shrunk by this factor, so the opening
        ball has the point-spread function's shape. ``"auto"`` measures it from the
        foreground (chord lengths along z and in the plane).
    """

    smooth_sigma_um: tuple[float, float, float] = (0.25, 0.1, 0.1)
    background_scale_um: float = 10.0
    threshold: str | float = "auto"
    k_noise_high: float = 6.0
    k_noise_low: float = 3.0
    low_fraction: float = 0.5
    local_fraction: float = 0.3
    local_window_um: float = 0.5
    z_local_fraction: float = 0.6
    min_object_um3: float = 0.02
    max_spine_length_um: float = 4.0
    shaft_min_length_um: float = 3.0
    radius_window_um: float = 1.5
    radius_margin: float = 1.2
    min_protrusion_um: float = 0.3
    shaft_grid_um: float = 0.18
    z_elongation: str | float = "auto"

    def __post_init__(self):
        fraction = (0, 1, False, False)
        check_fields(self, choices={"threshold": THRESHOLD_RULES, "z_elongation": ("auto",)},
                     ranges={**dict.fromkeys(("low_fraction", "local_fraction", "z_local_fraction"), fraction),
                             **dict.fromkeys(("background_scale_um", "local_window_um", "radius_window_um",
                                              "radius_margin", "shaft_grid_um", "z_elongation"),
                                             (0, None, True, False))})


@dataclass(frozen=True)
class ClassicalDiagnostics:
    """Numbers the classical method chose from the data, saved with each run."""

    background: float
    noise: float
    threshold_low: float
    threshold_high: float
    threshold_rule: str
    z_elongation: float
    foreground_fraction: float
    shaft_fraction: float


@dataclass(frozen=True)
class ClassicalLevels:
    """The numbers :func:`segment_classical` chooses from the whole image: background and
    noise of the background-subtracted signal, the hysteresis thresholds and the z elongation
    of the candidate foreground and of the trimmed one. A block-wise run
    (:mod:`spinequant.scale`) chooses them once for the whole volume and passes them to every
    block."""

    background: float
    noise: float
    threshold_low: float
    threshold_high: float
    threshold_rule: str
    candidate_z_elongation: float = 1.0
    z_elongation: float = 1.0


def classical_signal(image: np.ndarray, *, spacing, config: ClassicalConfig | None = None) -> np.ndarray:
    """The denoised, background-subtracted image that the thresholds are chosen on (float32)."""
    config = config or ClassicalConfig()
    image = np.asarray(image)
    sigma = np.broadcast_to(config.smooth_sigma_um, 3)[3 - image.ndim:]
    smoothed = denoise(image, spacing=spacing, sigma_um=sigma)
    return subtract_background(smoothed, spacing=spacing, scale_um=config.background_scale_um)


def classical_thresholds(values: np.ndarray, config: ClassicalConfig | None = None, *,
                         threshold_values: np.ndarray | None = None) -> ClassicalLevels:
    """Background, noise and hysteresis thresholds from signal ``values`` (any shape, or a
    sample of them; ``threshold_values``, if given, is the sample the automatic threshold is
    chosen on); the elongations are left at 1."""
    config = config or ClassicalConfig()
    background, noise = noise_level(values)
    values = values if threshold_values is None else threshold_values
    if isinstance(config.threshold, (int, float)):
        high, rule = background + float(config.threshold), "user"
    else:
        high, rule = auto_threshold(values, background=background, noise=noise,
                                    k_noise=config.k_noise_high, method=config.threshold)
    low = max(background + config.k_noise_low * noise, background + config.low_fraction * (high - background))
    return ClassicalLevels(float(background), float(noise), float(min(low, high)), float(high), rule)


def classical_candidate(signal: np.ndarray, levels: ClassicalLevels) -> np.ndarray:
    """Hysteresis mask of ``signal`` between the two thresholds of ``levels``."""
    return _hysteresis(signal, levels.threshold_low, levels.threshold_high)


def classical_foreground(signal, candidate, *, spacing, levels: ClassicalLevels,
                         config: ClassicalConfig | None = None) -> np.ndarray:
    """The candidate trimmed to the local fractions of the brightest signal near it, with the
    fragments under ``min_object_um3`` dropped."""
    config = config or ClassicalConfig()
    planar = signal.ndim == 2
    foreground = _local_trim(signal, candidate, levels.background, spacing, levels.candidate_z_elongation, config)
    return _drop_small(foreground, spacing, config.min_object_um3 if not planar
                       else planar_area_um2(config.min_object_um3))


def segment_classical(image: np.ndarray, *, spacing, config: ClassicalConfig | None = None,
                      return_diagnostics: bool = False, levels: ClassicalLevels | None = None,
                      progress=None):
    """Dendrite and spine probability-like maps for a 3D stack or a 2D image, without
    training data.

    Parameters
    ----------
    image : (Z, Y, X) array, or (Y, X) for a single plane or a projection
    spacing : (z, y, x) voxel size in µm, or (y, x) for a 2D image
    config : ClassicalConfig, optional
    return_diagnostics : also return a :class:`ClassicalDiagnostics`
    levels : ClassicalLevels, optional
        Thresholds and elongations to use instead of choosing them from ``image`` (a block of
        a larger volume gets the whole volume's).
    progress : callable, optional
        Called with the fraction of the work done after each step (denoising, foreground,
        shaft, maps); it may raise :class:`~spinequant.errors.Cancelled` to stop.

    Returns
    -------
    dendrite_prob, spine_prob : float32 arrays of ``image``'s shape in [0, 1]
    """
    config = config or ClassicalConfig()
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise InputError(f"segment_classical needs a 3D (Z, Y, X) stack or a 2D (Y, X) image; got "
                         f"{image.ndim} dimensions.")
    spacing = check_spacing(spacing, ndim=image.ndim)
    planar = image.ndim == 2
    report = progress or (lambda fraction: None)
    signal = classical_signal(image, spacing=spacing, config=config)
    report(0.3)
    given = levels is not None
    if not given:
        levels = classical_thresholds(signal, config)
    candidate = classical_candidate(signal, levels)
    auto = config.z_elongation == "auto" and not planar
    if not given:
        elongation = (1.0 if planar else estimate_z_elongation(candidate, spacing) if auto
                      else float(config.z_elongation))
        levels = replace(levels, candidate_z_elongation=elongation, z_elongation=elongation)
    foreground = classical_foreground(signal, candidate, spacing=spacing, levels=levels, config=config)
    # The trimmed foreground is less smeared than the candidate: measure its own elongation.
    if auto and not given:
        levels = replace(levels, z_elongation=estimate_z_elongation(foreground, spacing))
    elongation, low, high = levels.z_elongation, levels.threshold_low, levels.threshold_high
    shape_spacing = spacing if planar else (spacing[0] / elongation, spacing[1], spacing[2])
    report(0.5)
    shaft, distance_at = _shaft_on_grid(foreground, shape_spacing, config)
    spine = _protrusions(foreground & ~shaft, distance_at, config.min_protrusion_um)
    shaft = foreground & ~spine
    report(0.8)
    dendrite_prob = _confidence_map(signal, shaft, low, high)
    spine_prob = _confidence_map(signal, spine, low, high)
    report(1.0)
    if not return_diagnostics:
        return dendrite_prob, spine_prob
    diag = ClassicalDiagnostics(
        background=levels.background, noise=levels.noise, threshold_low=float(low),
        threshold_high=float(high), threshold_rule=levels.threshold_rule, z_elongation=float(elongation),
        foreground_fraction=float(foreground.mean()), shaft_fraction=float(shaft.mean()),
    )
    return dendrite_prob, spine_prob, diag


def chord_counts(mask: np.ndarray, region: tuple | None = None) -> np.ndarray:
    """Foreground voxels and runs along z, y and x: ``[total, runs_z, runs_y, runs_x]``.

    ``region`` (a tuple of slices) counts only the voxels and run starts inside it, judging
    each start by its neighbour in ``mask``; the counts of regions that tile a volume add up
    to the volume's, so :func:`elongation_from_counts` of their sum estimates a volume's
    elongation block by block (each block's mask computed with a halo around its region).
    """
    region = region or (slice(None),) * mask.ndim
    runs = []
    for axis in range(3):
        starts = mask.copy()
        ahead = (slice(None),) * axis + (slice(1, None),)
        behind = (slice(None),) * axis + (slice(None, -1),)
        starts[ahead] &= ~mask[behind]
        runs.append(np.count_nonzero(starts[region]))
    return np.array([np.count_nonzero(mask[region]), *runs], dtype=np.int64)


def elongation_from_counts(counts, spacing, n_planes: int, *, limits=(1.0, 5.0)) -> float:
    """:func:`estimate_z_elongation` from :func:`chord_counts` (summed over blocks)."""
    total = counts[0]
    chords = [total / runs * s if runs else np.nan for runs, s in zip(counts[1:], spacing)]
    z, y, x = chords
    if not np.isfinite(z) or not np.isfinite(min(y, x)) or n_planes < 3:
        return 1.0
    return float(np.clip(z / min(y, x), *limits))


def estimate_z_elongation(mask: np.ndarray, spacing, *, limits=(1.0, 5.0)) -> float:
    """How much longer (µm) the foreground's chords are along z than across y/x.

    Dendrites mostly run within the focal plane, so their chords in y or x (the shorter of
    the two) measure their width, and their chords along z the width stretched by the
    point-spread function.
    """
    return elongation_from_counts(chord_counts(mask), spacing, mask.shape[0], limits=limits)


def _protrusions(candidates: np.ndarray, distance_at, min_um: float) -> np.ndarray:
    """Keep the candidate components that reach at least ``min_um`` from the shaft."""
    labels, n = cc3d.connected_components(candidates, connectivity=26, return_N=True)
    if n == 0:
        return candidates
    points = np.nonzero(labels)
    reach = np.zeros(n + 1, dtype=np.float32)
    np.maximum.at(reach, labels[points], distance_at(points))
    keep = reach >= min_um
    keep[0] = False
    return keep[labels]


def _hysteresis(signal: np.ndarray, low: float, high: float) -> np.ndarray:
    """Voxels above ``low`` connected (26-neighbourhood) to a voxel above ``high``."""
    labels = cc3d.connected_components(signal > low, connectivity=26)
    seeds = np.unique(labels[signal > high])
    keep = np.zeros(int(labels.max()) + 1, dtype=bool)
    keep[seeds] = True
    keep[0] = False
    return keep[labels]


def _drop_small(mask: np.ndarray, spacing, min_um3: float) -> np.ndarray:
    """Drop fragments smaller than ``min_um3`` (µm³; µm² for a 2D mask)."""
    min_voxels = int(np.ceil(min_um3 / float(np.prod(spacing))))
    return cc3d.dust(mask, threshold=min_voxels, connectivity=26) if min_voxels > 1 else mask


def _local_trim(signal, candidate, background, spacing, elongation, config) -> np.ndarray:
    """Candidate voxels that reach the local fractions of the brightest signal near them.

    The neighbourhood maxima are taken on a grid pooled 2 x 2 in y/x (a max over 2 x 2
    pixels loses nothing a maximum over 11 x 11 needs) and read only at candidate voxels,
    which are a few per cent of a stack. A 2D image has the in-plane rule only.
    """
    planar = signal.ndim == 2
    if planar:
        signal, candidate, spacing = signal[None], candidate[None], (1.0, *spacing)
    pool = 2 if min(signal.shape[1:]) >= 4 else 1
    pad = [(0, 0)] + [(0, (-n) % pool) for n in signal.shape[1:]]
    pooled = np.pad(signal, pad, mode="edge") if any(p[1] for p in pad) else signal
    z, y, x = pooled.shape
    pooled = pooled.reshape(z, y // pool, pool, x // pool, pool).max(axis=(2, 4)) - background
    cz, cy, cx = np.nonzero(candidate)
    value = signal[cz, cy, cx] - background
    keep = np.ones(value.shape, dtype=bool)
    rules = [(config.local_fraction, (0.0, config.local_window_um, config.local_window_um))]
    if not planar:
        rules.append((config.z_local_fraction, (config.local_window_um * elongation, 0.0, 0.0)))
    for fraction, window in rules:
        grid = (spacing[0], spacing[1] * pool, spacing[2] * pool)
        size = tuple(2 * int(round(w / g)) + 1 for w, g in zip(window, grid))
        reference = ndi.maximum_filter(pooled, size=size, mode="nearest")
        keep &= value >= fraction * reference[cz, cy // pool, cx // pool]
    out = np.zeros(candidate.shape, dtype=bool)
    out[cz[keep], cy[keep], cx[keep]] = True
    return out[0] if planar else out


def _confidence_map(signal, mask, low: float, high: float) -> np.ndarray:
    """0.5 at the low threshold rising to 1 at the high one, inside ``mask``; 0 outside."""
    out = np.zeros(mask.shape, dtype=np.float32)
    index = np.nonzero(mask)
    out[index] = 0.5 + 0.5 * np.clip((signal[index] - low) / max(high - low, 1e-6), 0.0, 1.0)
    return out


def _shaft_on_grid(foreground: np.ndarray, spacing, config: ClassicalConfig):
    """Shaft mask on the full grid, and a function giving the distance (µm) from the shaft.

    The shaft is computed on a grid about ``shaft_grid_um`` coarse, taken back to the full
    grid cell by cell and kept inside the full-resolution foreground; distances are read from
    the coarse grid at the voxels asked for.
    """
    factors = tuple(max(1, int(round(config.shaft_grid_um / s))) for s in spacing)
    coarse = _block_any_majority(foreground, factors)
    coarse_spacing = tuple(s * f for s, f in zip(spacing, factors))
    shaft, _, _ = shaft_mask(coarse, spacing=coarse_spacing,
                             max_spine_length_um=config.max_spine_length_um,
                             min_length_um=config.shaft_min_length_um,
                             radius_window_um=config.radius_window_um,
                             radius_margin=config.radius_margin)
    distance = outside_distance(shaft, coarse_spacing)
    index = np.ix_(*(np.minimum(np.arange(n) // f, c - 1) for n, f, c in zip(foreground.shape, factors, shaft.shape)))

    def distance_at(points) -> np.ndarray:
        return distance[tuple(np.minimum(p // f, c - 1) for p, f, c in zip(points, factors, shaft.shape))]

    return shaft[index] & foreground, distance_at


def _block_any_majority(mask: np.ndarray, factors) -> np.ndarray:
    """Downsample a mask by whole blocks: a block is set when at least half its voxels are."""
    if all(f == 1 for f in factors):
        return mask
    pad = [(0, (-n) % f) for n, f in zip(mask.shape, factors)]
    m = np.pad(mask, pad) if any(p[1] for p in pad) else mask
    shape = []
    for n, f in zip(m.shape, factors):
        shape += [n // f, f]
    counts = m.view(np.uint8).reshape(shape).sum(axis=tuple(range(1, 2 * mask.ndim, 2)), dtype=np.uint16)
    return 2 * counts >= int(np.prod(factors))
