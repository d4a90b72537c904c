"""Time-lapse phantoms with exact truth: calcium movies and a tagged second channel.

A movie is made from a phantom's labels (2D, e.g. :func:`~spinequant.synth.project_phantom`,
or 3D): every spine and every dendrite is a compartment with a uniform resting fluorophore
density; each compartment's density is multiplied by ``1 + ΔF/F0(t)`` with its own known
trace; the compartments are blurred with the phantom's point-spread function, the frame is
moved rigidly by a known sub-pixel shift, and shot (Poisson) and read (Gaussian) noise are
added. The truth is the fluorophore's ΔF/F0 in each compartment, which a measurement inside
an ROI sees mixed with the blur of its neighbours (the dendrite, other spines): that mixing,
the noise and the motion are what a trace extraction has to get past.

Conventions: ``shifts_um[t]`` is the displacement of frame ``t``'s content against the
labels (a structure at ``x`` µm in the labels is at ``x + shifts_um[t]`` in frame ``t``),
one value per spatial axis, in µm.

>>> from spinequant.synth import make_phantom, project_phantom
>>> from spinequant.synth.movie import make_movie
>>> ph = project_phantom(make_phantom("two_photon", seed=0, shape=(8, 64, 64)))
>>> mv = make_movie(ph, n_frames=20, seed=0)
>>> mv.frames.shape, mv.spine_dff.shape[1] == int(ph.spine_labels.max())
((20, 64, 64), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import InputError
from .phantom import Phantom


@dataclass(frozen=True)
class Movie:
    """A synthetic calcium movie with its exact truth.

    Attributes
    ----------
    frames : ndarray
        uint16, (T, Y, X) or (T, Z, Y, X), detector counts (ADU).
    spacing : tuple of float
        Pixel (voxel) size in µm per spatial axis.
    frame_rate_hz : float
        Frames per second.
    spine_labels, dendrite_labels : ndarray
        The ROIs the truth refers to (unmoved), as in the phantom.
    spine_dff, dendrite_dff : pandas.DataFrame
        True ΔF/F0 per frame: one column per spine (``1`` .. ``N``) or dendrite id.
    shifts_um : ndarray
        (T, ndim) true displacement of each frame's content, µm (see the module docstring).
    resting : ndarray
        float32, the noise-free, unmoved frame at rest (ΔF/F0 = 0), in ADU: the structural
        image the labels belong to.
    background_adu : float
        The detector offset plus dark counts in ADU (what an ROI with no dye would read).
    params : dict
        Everything that made the movie.
    """

    frames: np.ndarray
    spacing: tuple[float, ...]
    frame_rate_hz: float
    spine_labels: np.ndarray
    dendrite_labels: np.ndarray
    spine_dff: pd.DataFrame
    dendrite_dff: pd.DataFrame
    shifts_um: np.ndarray
    resting: np.ndarray
    background_adu: float
    params: dict


def transient_kernel(t_s: np.ndarray, rise_s: float, decay_s: float) -> np.ndarray:
    """A calcium transient of peak 1 at times ``t_s`` after its onset (0 before it):
    ``(1 - exp(-t / rise)) · exp(-t / decay)`` scaled to a maximum of 1."""
    t = np.asarray(t_s, float)
    shape = np.where(t > 0, (1 - np.exp(-np.maximum(t, 0) / rise_s)) * np.exp(-np.maximum(t, 0) / decay_s), 0.0)
    t_peak = rise_s * np.log1p(decay_s / rise_s)
    peak = (1 - np.exp(-t_peak / rise_s)) * np.exp(-t_peak / decay_s)
    return shape / peak


def calcium_traces(rng: np.random.Generator, n: int, n_frames: int, frame_rate_hz: float, *,
                   rate_hz=(0.05, 0.2), amplitude=(0.5, 2.0), rise_s: float = 0.05,
                   decay_s=(0.3, 1.0), quiet_frames: int = 20) -> tuple[np.ndarray, pd.DataFrame]:
    """``n`` random ΔF/F0 traces (T, n) and the table of their events.

    Each trace has its own event rate, mean amplitude and decay time drawn from the ranges;
    events are Poisson in time (at least one per trace), each with an amplitude of the
    trace's mean times a log-normal factor (σ = 0.3); none starts in the first
    ``quiet_frames`` frames, which are therefore a clean baseline.
    """
    t = np.arange(n_frames) / frame_rate_hz
    start = quiet_frames / frame_rate_hz
    duration = max(t[-1] - start, 1e-9) if n_frames else 0.0
    traces = np.zeros((n_frames, n))
    events = []
    for i in range(n):
        rate, mean_amp = rng.uniform(*rate_hz), rng.uniform(*amplitude)
        decay = rng.uniform(*decay_s)
        k = max(1, int(rng.poisson(rate * duration)))
        for onset in np.sort(rng.uniform(start, start + duration * 0.9, k)):
            amp = mean_amp * float(rng.lognormal(0.0, 0.3))
            traces[:, i] += amp * transient_kernel(t - onset, rise_s, decay)
            events.append((i, float(onset), amp, decay))
    return traces, pd.DataFrame(events, columns=["index", "onset_s", "amplitude", "decay_s"])


def rigid_motion(rng: np.random.Generator, n_frames: int, ndim: int, *, jitter_um: float = 0.3,
                 drift_um: float = 0.5, axial_fraction: float = 0.0) -> np.ndarray:
    """(T, ndim) shifts in µm: a linear drift of total ``drift_um`` in a random direction plus
    Gaussian jitter of ``jitter_um`` per axis; in 3D the z axis moves ``axial_fraction`` as much."""
    direction = rng.normal(size=ndim)
    if ndim == 3:
        direction[0] *= axial_fraction
    direction /= max(np.linalg.norm(direction), 1e-12)
    ramp = np.linspace(-0.5, 0.5, n_frames)[:, None] * drift_um * direction[None, :]
    jitter = rng.normal(0.0, jitter_um, size=(n_frames, ndim))
    if ndim == 3:
        jitter[:, 0] *= axial_fraction
    return ramp + jitter


def compartment_images(spine_labels: np.ndarray, dendrite_labels: np.ndarray, brightness: np.ndarray,
                       sigma_px) -> np.ndarray:
    """(K, *shape) float32: compartment ``k``'s resting density (uniform ``brightness[k]`` in
    its label) blurred by the PSF; spines first (1..N), then dendrites (1..M)."""
    n_spines, n_dend = int(spine_labels.max()), int(dendrite_labels.max())
    out = np.zeros((n_spines + n_dend, *spine_labels.shape), np.float32)
    for k in range(n_spines + n_dend):
        labels, ident = (spine_labels, k + 1) if k < n_spines else (dendrite_labels, k - n_spines + 1)
        mask = labels == ident
        if k >= n_spines:
            mask &= spine_labels == 0   # where a spine covers a dendrite (a projection), the spine
        out[k] = ndi.gaussian_filter(mask.astype(np.float32) * np.float32(brightness[k]), sigma_px, truncate=3.0)
    return out


def make_movie(phantom: Phantom, *, n_frames: int = 200, frame_rate_hz: float = 10.0, seed: int = 0,
               jitter_um: float = 0.3, drift_um: float = 0.5, photons: float = 30.0,
               read_noise_photons: float = 2.0, gain_adu: float = 10.0, offset_adu: float = 100.0,
               background_photons: float = 2.0, spine_brightness=(0.6, 1.2),
               spine_rate_hz=(0.05, 0.2), dendrite_rate_hz=(0.02, 0.06), amplitude=(0.5, 2.0),
               dendrite_amplitude=(0.3, 1.0), quiet_frames: int = 20, psf_sigma_px=None) -> Movie:
    """A calcium movie of ``phantom``'s spines and dendrites with known ΔF/F0 and motion.

    Parameters
    ----------
    phantom : Phantom
        2D (from :func:`~spinequant.synth.project_phantom`) or 3D; its labels are the
        compartments, its spacing the movie's.
    n_frames, frame_rate_hz : int, float
        Length and rate of the movie.
    seed : int
        Same seed, same movie.
    jitter_um, drift_um : float
        Rigid motion: Gaussian jitter per axis and a linear drift over the movie (µm); in 3D
        z moves a fifth as much (see :func:`rigid_motion`).
    photons : float
        Resting photons per pixel in the dendrite (dendrite brightness 1) before blur;
        Poisson noise follows from it, plus ``read_noise_photons`` Gaussian read noise and
        ``background_photons`` of dark/background counts in every pixel.
    gain_adu, offset_adu : float
        ADU per photon and the detector offset.
    spine_brightness : (float, float)
        Resting density of each spine relative to the dendrite, drawn per spine.
    spine_rate_hz, dendrite_rate_hz, amplitude, dendrite_amplitude : (float, float)
        Event rates and mean event ΔF/F0, drawn per compartment (see :func:`calcium_traces`).
    quiet_frames : int
        The first frames hold no event onset (a clean baseline).
    psf_sigma_px : sequence of float, optional
        Gaussian PSF σ per spatial axis in pixels; default the phantom's own (its params).

    Returns
    -------
    Movie
    """
    spine_labels = np.asarray(phantom.spine_labels)
    dendrite_labels = np.asarray(phantom.dendrite_labels)
    ndim = spine_labels.ndim
    spacing = tuple(float(s) for s in phantom.spacing)
    if n_frames < 2 or frame_rate_hz <= 0:
        raise InputError(f"A movie needs at least 2 frames and a positive frame rate (got {n_frames}, {frame_rate_hz}).")
    if psf_sigma_px is None:
        psf_sigma_px = phantom.params.get("imaging", {}).get("psf_sigma_px", [1.0] * 3)[-ndim:]
    rng_traces, rng_motion, rng_noise, rng_bright = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))
    n_spines, n_dend = int(spine_labels.max()), int(dendrite_labels.max())
    brightness = np.concatenate([rng_bright.uniform(*spine_brightness, n_spines), np.ones(n_dend)])
    spine_dff, spine_events = calcium_traces(rng_traces, n_spines, n_frames, frame_rate_hz, rate_hz=spine_rate_hz,
                                             amplitude=amplitude, quiet_frames=quiet_frames)
    dend_dff, dend_events = calcium_traces(rng_traces, n_dend, n_frames, frame_rate_hz, rate_hz=dendrite_rate_hz,
                                           amplitude=dendrite_amplitude, quiet_frames=quiet_frames)
    shifts_um = rigid_motion(rng_motion, n_frames, ndim, jitter_um=jitter_um, drift_um=drift_um, axial_fraction=0.2)
    parts = compartment_images(spine_labels, dendrite_labels, brightness, psf_sigma_px)
    resting_photons = parts.sum(axis=0) * np.float32(photons) + np.float32(background_photons)
    dff = np.concatenate([spine_dff, dend_dff], axis=1).astype(np.float32)
    flat = parts.reshape(len(parts), -1) * np.float32(photons)
    frames = np.empty((n_frames, *spine_labels.shape), np.uint16)
    shift_px = shifts_um / np.asarray(spacing)
    for t in range(n_frames):
        expected = resting_photons + (dff[t] @ flat).reshape(spine_labels.shape)
        moved = ndi.shift(expected, shift_px[t], order=3, mode="nearest", prefilter=True)
        counts = rng_noise.poisson(np.maximum(moved, 0)).astype(np.float32)
        counts += rng_noise.normal(0.0, read_noise_photons, counts.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(counts * gain_adu + offset_adu), 0, 65535).astype(np.uint16)
    background_adu = offset_adu + gain_adu * background_photons
    params = {"seed": int(seed), "n_frames": n_frames, "frame_rate_hz": frame_rate_hz, "jitter_um": jitter_um,
              "drift_um": drift_um, "photons": photons, "read_noise_photons": read_noise_photons,
              "gain_adu": gain_adu, "offset_adu": offset_adu, "background_photons": background_photons,
              "psf_sigma_px": [float(s) for s in psf_sigma_px], "quiet_frames": quiet_frames,
              "spine_brightness": brightness[:n_spines].tolist(),
              "spine_events": spine_events.to_dict("list"), "dendrite_events": dend_events.to_dict("list")}
    return Movie(frames=frames, spacing=spacing, frame_rate_hz=float(frame_rate_hz), spine_labels=spine_labels,
                 dendrite_labels=dendrite_labels,
                 spine_dff=pd.DataFrame(spine_dff, columns=range(1, n_spines + 1)),
                 dendrite_dff=pd.DataFrame(dend_dff, columns=range(1, n_dend + 1)),
                 shifts_um=shifts_um, resting=resting_photons * np.float32(gain_adu) + np.float32(offset_adu),
                 background_adu=float(background_adu), params=params)


@dataclass(frozen=True)
class TwoChannel:
    """A structural and a tagged channel of the same cell with known spine enrichment.

    ``true_rsdr`` (index: spine id) is the ratio of the tagged to the structural dye density
    in each spine over that in the dendrites: the RSDR an exact measurement would give.
    ``background_adu`` is the counts of a pixel without dye, per channel (structure, tagged).
    """

    structure: np.ndarray
    tagged: np.ndarray
    spacing: tuple[float, ...]
    spine_labels: np.ndarray
    dendrite_labels: np.ndarray
    true_rsdr: pd.Series
    background_adu: tuple[float, float]
    params: dict


def make_two_channel(phantom: Phantom, *, enrichment=(0.5, 3.0), seed: int = 0, photons: float = 200.0,
                     tagged_fraction: float = 0.3, gain_adu: float = 10.0, offset_adu: float = 100.0,
                     psf_sigma_px=None) -> TwoChannel:
    """A structural channel and a tagged channel whose spine/dendrite ratio is known.

    The structural dye fills every compartment with a density drawn as in :func:`make_movie`;
    the tagged protein has ``tagged_fraction`` of that density in the dendrites and
    ``tagged_fraction`` x an enrichment factor drawn per spine from ``enrichment`` in each
    spine. Both channels are blurred with the PSF (``psf_sigma_px``; default the phantom's,
    ``0`` for none) and get Poisson noise at ``photons`` per pixel of dendrite.
    """
    spine_labels = np.asarray(phantom.spine_labels)
    dendrite_labels = np.asarray(phantom.dendrite_labels)
    ndim = spine_labels.ndim
    if psf_sigma_px is None:
        psf_sigma_px = phantom.params.get("imaging", {}).get("psf_sigma_px", [1.0] * 3)[-ndim:]
    rng_bright, rng_ratio, rng_noise = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(3))
    n_spines, n_dend = int(spine_labels.max()), int(dendrite_labels.max())
    structure_density = np.concatenate([rng_bright.uniform(0.6, 1.2, n_spines), np.ones(n_dend)])
    factors = rng_ratio.uniform(*enrichment, n_spines)
    tagged_density = structure_density * tagged_fraction * np.concatenate([factors, np.ones(n_dend)])
    images = []
    for density in (structure_density, tagged_density):
        parts = compartment_images(spine_labels, dendrite_labels, density, psf_sigma_px)
        expected = parts.sum(axis=0) * np.float32(photons)
        counts = rng_noise.poisson(expected).astype(np.float32)
        images.append(np.clip(np.rint(counts * gain_adu + offset_adu), 0, 65535).astype(np.uint16))
    params = {"seed": int(seed), "enrichment": list(enrichment), "photons": photons,
              "tagged_fraction": tagged_fraction, "psf_sigma_px": [float(s) for s in np.atleast_1d(psf_sigma_px)]}
    return TwoChannel(structure=images[0], tagged=images[1], spacing=tuple(float(s) for s in phantom.spacing),
                      spine_labels=spine_labels, dendrite_labels=dendrite_labels,
                      true_rsdr=pd.Series(factors, index=pd.RangeIndex(1, n_spines + 1, name="id"), name="rsdr"),
                      background_adu=(offset_adu, offset_adu), params=params)
