"""Assemble a phantom: geometry -> voxels -> labels and truth table -> image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import __version__
from .canvas import Canvas
from .config import SynthConfig, with_overrides
from .dendrites import (Dendrite, add_varicosities, centrelines_swc, place_spines, random_dendrite,
                        shaft_pieces)
from .distractors import add_axons, add_dim_dendrites, add_somata, haze
from .imaging import render
from .presets import get_preset
from .spines import dim_neck

TRUTH_COLUMNS = ["id", "type", "dendrite_id", "base_z_um", "base_y_um", "base_x_um",
                 "head_z_um", "head_y_um", "head_x_um", "length_um", "head_diameter_um",
                 "neck_length_um", "neck_diameter_um", "volume_um3", "volume_analytic_um3",
                 "n_voxels", "truncated"]


@dataclass(frozen=True)
class Phantom:
    """A synthetic stack with its exact ground truth.

    Attributes
    ----------
    image : ndarray
        uint8 or uint16, (Z, Y, X).
    spacing : tuple of float
        Voxel size (z, y, x) in µm.
    semantic : ndarray
        uint8: 0 background, 1 dendrite shaft, 2 spine.
    spine_labels, dendrite_labels : ndarray
        int32 instance labels (0 = background); spine ``i`` is row ``id == i`` of ``spines``.
    spines : pandas.DataFrame
        One row per spine, columns :data:`TRUTH_COLUMNS`; ``volume_um3`` is the labelled
        volume (voxels times voxel volume), ``volume_analytic_um3`` the model's own.
    centrelines : pandas.DataFrame
        SWC table (µm) of the labelled dendrites, with an extra ``dendrite_id`` column.
    params : dict
        The full configuration, the seed and derived imaging numbers.
    """

    image: np.ndarray
    spacing: tuple[float, float, float]
    semantic: np.ndarray
    spine_labels: np.ndarray
    dendrite_labels: np.ndarray
    spines: pd.DataFrame
    centrelines: pd.DataFrame
    params: dict


def make_phantom(preset: str | SynthConfig = "two_photon", *, seed: int = 0, shape=None,
                 **overrides) -> Phantom:
    """Make a synthetic spiny-dendrite stack with exact ground truth.

    Parameters
    ----------
    preset : str or SynthConfig
        ``"two_photon"``, ``"confocal"``, ``"sted"``, ``"low_snr"`` or a configuration.
    seed : int
        Same seed, same phantom (bit for bit).
    shape : tuple of 3 int, optional
        (Z, Y, X) voxels; default the preset's.
    **overrides
        Any configuration field by name, e.g. ``spacing=(0.4, 0.1, 0.1)``, ``snr=8``,
        ``spine_density_per_um=(3, 3)``, ``n_axons=(0, 0)``, ``haze=0``, ``noise=False``.

    Examples
    --------
    >>> from spinequant.synth import make_phantom
    >>> ph = make_phantom("two_photon", seed=1, shape=(16, 96, 96))
    >>> ph.image.shape, ph.image.dtype.name
    ((16, 96, 96), 'uint16')
    """
    config = get_preset(preset)
    if shape is not None:
        overrides["shape"] = shape
    config = with_overrides(config, **overrides)
    rng_geometry, rng_distractors, rng_noise, rng_variation = random_streams(seed)
    box_um = (np.asarray(config.shape) - 1) * np.asarray(config.spacing)
    dendrites, spines, variation = _labelled_geometry(rng_geometry, rng_variation, config, box_um)
    phantom, _ = draw_phantom(config, seed, dendrites, spines, variation, rng_geometry=rng_geometry,
                              rng_variation=rng_variation, rng_distractors=rng_distractors, rng_noise=rng_noise)
    return phantom


def random_streams(seed: int) -> tuple[np.random.Generator, ...]:
    """The phantom's four random streams: geometry, distractors, noise, variation."""
    # the fourth stream (varicosities, faint necks, texture) leaves the other three as they were
    # without those features, so switching them on changes nothing else in the phantom
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))


def draw_phantom(config: SynthConfig, seed: int, dendrites: list[Dendrite], spines: list, variation: dict, *,
                 rng_geometry: np.random.Generator, rng_variation: np.random.Generator,
                 rng_distractors: np.random.Generator, rng_noise: np.random.Generator,
                 canvas: Canvas | None = None, distractor_box_um=None) -> tuple[Phantom, np.ndarray]:
    """Draw ``dendrites`` and ``spines`` (µm, in the image's frame), the distractors and the
    image; also the indices (0-based, into ``spines``) of the spines that got voxels, in the
    order of the truth table's rows. ``canvas`` may be a :class:`Canvas` that moves what it
    draws unlabelled (the session phantoms' distractors, drawn in ``distractor_box_um``)."""
    shape, spacing = config.shape, config.spacing
    box_um = (np.asarray(shape) - 1) * np.asarray(spacing)
    img_cfg = config.imaging
    if canvas is None:
        canvas = Canvas(shape, spacing, supersample_um=config.supersample_um,
                        membrane_um=img_cfg.membrane_thickness_um if img_cfg.membrane else None)
    for dend in dendrites:
        for curve in dend.shaft_curves or dend.curves:
            texture = rng_variation if config.shafts.texture_amplitude[1] > 0 else None
            for prims in shaft_pieces(curve, rng=rng_geometry, brightness=dend.brightness,
                                      texture=texture, cfg=config.shafts):
                canvas.add_shaft(prims, dend.id)
        for prims in dend.swellings:
            canvas.add_swelling(prims, dend.id)
    for i, sp in enumerate(spines, start=1):
        canvas.add_spine(sp.prims, i, sp.brightness, sp.axis)

    dcfg = config.distractors
    outer_box = box_um if distractor_box_um is None else np.asarray(distractor_box_um, float)
    n_axons = add_axons(rng_distractors, canvas, outer_box, dcfg)
    n_dim = add_dim_dendrites(rng_distractors, canvas, outer_box, dcfg, config.shafts, config.spines)
    n_somata = add_somata(rng_variation, canvas, outer_box, dcfg)
    shaft_labels, spine_labels = canvas.labels()
    spine_labels, table, kept = _truth_table(spine_labels, spines, spacing, shape)
    from ..export.labels import semantic_labels  # here: the export package loads every writer

    semantic = semantic_labels(spine_labels, shaft_labels)

    hz = None
    if dcfg.haze > 0:
        hz = haze(rng_distractors, shape, spacing, scale_um=dcfg.haze_scale_um)
    density = canvas.density
    # The brightness (and so the SNR) is set by the shaft without its varicosities: swellings
    # added to a phantom leave the rest of it, spines included, as bright as before.
    shaft = semantic == 1
    if canvas.swelling is not None and np.any(shaft & ~canvas.swelling):
        shaft &= ~canvas.swelling
    del canvas
    image, imaging_info = render(density, hz, shaft, spacing, img_cfg, rng_noise,
                                 haze_amplitude=dcfg.haze)
    params = {"spinequant_version": __version__, "seed": int(seed), "config": config.to_dict(),
              "imaging": imaging_info, "n_dendrites": len(dendrites), "n_axons": n_axons,
              "n_dim_dendrites": n_dim, "n_somata": n_somata, "n_spines": len(table), **variation}
    phantom = Phantom(image=image, spacing=tuple(spacing), semantic=semantic, spine_labels=spine_labels,
                      dendrite_labels=shaft_labels, spines=table,
                      centrelines=centrelines_swc(dendrites, box_um), params=params)
    return phantom, kept - 1


def _labelled_geometry(rng: np.random.Generator, rng_variation: np.random.Generator,
                       config: SynthConfig, box_um: np.ndarray):
    """Dendrites, spines and the counts of varicosities and faint necks. ``rng_variation``
    draws only those two, so the rest is the same with them on or off."""
    dendrites, spines = [], []
    scfg = config.spines
    faint_fraction = rng_variation.uniform(*scfg.faint_neck_fraction)
    n_varicosities = n_faint = 0
    lo, hi = config.shafts.n_dendrites
    for _ in range(int(rng.integers(lo, hi + 1))):
        curves = random_dendrite(rng, box_um, config.shafts)
        if not curves:
            continue
        dend = Dendrite(len(dendrites) + 1, curves, rng.uniform(*config.shafts.brightness))
        dendrites.append(dend)
        n_varicosities += add_varicosities(rng_variation, dend, config.shafts)
        density = rng.uniform(*scfg.density_per_um)
        for curve in dend.curves:  # on the swollen surface where there are varicosities
            for sp in place_spines(rng, curve, box_um, scfg, density, spines):
                sp.dendrite_id = dend.id
                sp.brightness *= dend.brightness
                if sp.type in ("thin", "mushroom") and rng_variation.uniform() < faint_fraction:
                    dim_neck(sp, rng_variation.uniform(*scfg.faint_neck_brightness))
                    n_faint += 1
                spines.append(sp)
    return dendrites, spines, {"n_varicosities": n_varicosities, "n_faint_necks": n_faint}


def _truth_table(spine_labels: np.ndarray, spines: list, spacing, shape
                 ) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Drop spines that ended up with no voxel, number the rest 1..N, and tabulate them; also
    the kept spines' 1-based indices into ``spines``."""
    fg = spine_labels > 0
    counts = np.bincount(spine_labels[fg], minlength=len(spines) + 1)
    kept = np.flatnonzero(counts[1:]) + 1
    lut = np.zeros(len(spines) + 1, np.int32)
    lut[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    if len(kept) < len(spines):
        spine_labels[fg] = lut[spine_labels[fg]]
    voxel_um3 = float(np.prod(spacing))
    box_um = (np.asarray(shape) - 1) * np.asarray(spacing)
    rows = []
    for new_id, old in enumerate(kept, start=1):
        sp = spines[old - 1]
        lo, hi = sp.prims.bounds()
        rows.append((new_id, sp.type, sp.dendrite_id, *sp.base, *sp.head, sp.length_um,
                     sp.head_diameter_um, sp.neck_length_um, sp.neck_diameter_um,
                     counts[old] * voxel_um3, sp.volume_analytic_um3, int(counts[old]),
                     bool(np.any(lo < 0) or np.any(hi > box_um))))
    table = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    table = table.astype({"id": np.int64, "dendrite_id": np.int64, "n_voxels": np.int64, "truncated": bool})
    return spine_labels, table, kept
