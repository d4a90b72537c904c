"""Imaging sessions of the same dendrites days apart, with known spine dynamics and motion.

One world of dendrites and spines (µm) is drawn with the phantom generator
(:func:`~spinequant.synth.phantom.draw_phantom`, so the drawing and the imaging model are the
phantom's own) once per session, after three changes:

- **dynamics**: between sessions each spine is lost with probability ``loss_fraction``;
  new spines (drawn along the same shafts, at least ``min_gap_um`` from every other) appear,
  on average ``gain_fraction`` times the spines present; every spine's size (about its base
  point) follows a log-normal random walk of ``size_sigma`` per interval;
- **motion**: session ``k`` sees the world through a known transform: a small rotation about
  z (``rotation_deg``) and tilt about y and x (``tilt_deg``), a stretch of each lateral axis
  (``stretch``), a translation of several µm laterally (``drift_um``) and a little in z
  (``drift_z_um``), and a smooth bend (a sine-shaped lateral displacement of up to
  ``bend_um``). Session 0 is the reference frame: the world moved by the padding only;
- **noise**: each session its own photon and read noise.

Truth: each session's :class:`~spinequant.synth.Phantom` (labels, spine table) with extra
columns ``track_id`` (persistent over sessions), ``size_factor`` and ``ref_base_*_um`` (the
spine's base point in session 0's frame); :attr:`SessionSeries.tracks` (one row per track
and session where it lives or was just lost) and the transforms (:class:`SessionWarp`).

>>> from spinequant.synth.sessions import make_sessions
>>> s = make_sessions("two_photon", n_sessions=2, seed=0, shape=(12, 96, 96))
>>> len(s.phantoms), "track_id" in s.phantoms[1].spines
(2, True)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from .._json import to_json
from ..config import check_fields
from ..errors import InputError
from ..timelapse.tracking import inside_volume
from .canvas import Canvas
from .config import SynthConfig, with_overrides
from .curves import Curve
from .dendrites import Dendrite, place_spines
from .phantom import Phantom, _labelled_geometry, draw_phantom, random_streams
from .presets import get_preset
from .raster import Primitives
from .writer import write_phantom

TRACK_COLUMNS = ["session", "day", "track_id", "id", "dendrite_id", "event", "visible", "inside",
                 "inside_prev", "size_factor", "ref_base_z_um", "ref_base_y_um", "ref_base_x_um"]


@dataclass(frozen=True)
class SessionConfig:
    """How the sessions differ (see the module docstring); lengths in µm, angles in degrees."""

    n_sessions: int = 4
    days: tuple[float, ...] | None = None       #: session days; default 0, 4, 8, ...
    drift_um: tuple[float, float] = (2.0, 5.0)  #: lateral translation, drawn per session
    drift_z_um: float = 1.0
    rotation_deg: float = 3.0
    tilt_deg: float = 1.0
    stretch: float = 0.02
    bend_um: float = 0.5
    loss_fraction: float = 0.1
    gain_fraction: float = 0.1
    size_sigma: float = 0.15
    min_gap_um: float = 0.8
    #: a spine counts as inside a session's view when its base is this far from the edges
    edge_margin_um: float = 1.0

    def __post_init__(self):
        check_fields(self, ranges={"n_sessions": (1, None, False, False),
                                   "loss_fraction": (0, 1, False, False), "gain_fraction": (0, 1, False, False)})
        if self.days is not None and len(self.days) != self.n_sessions:
            raise InputError(f"{len(self.days)} session days given for {self.n_sessions} sessions; give "
                             f"one day per session.")
        if self.days is not None and np.any(np.diff(self.days) <= 0):
            raise InputError(f"The session days {list(self.days)} must increase.")
        if self.drift_um[0] > self.drift_um[1]:
            raise InputError(f"drift_um {self.drift_um} must be (low, high).")

    def session_days(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self.days) if self.days is not None else \
            tuple(4.0 * k for k in range(self.n_sessions))


@dataclass(frozen=True)
class SessionWarp:
    """World (µm) to session frame (µm): ``p' = matrix (p - centre) + centre + offset + bend(p)``
    with ``bend(p) = amplitude · direction · (sin(2π (p - centre)·wave / wavelength + phase) - sin(phase))``."""

    matrix: np.ndarray
    centre: np.ndarray
    offset: np.ndarray
    bend_amplitude_um: float = 0.0
    bend_direction: np.ndarray = field(default_factory=lambda: np.zeros(3))
    bend_wave: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))
    bend_wavelength_um: float = 1.0
    bend_phase: float = 0.0

    def __call__(self, points) -> np.ndarray:
        p = np.asarray(points, float)
        rel = p - self.centre
        out = rel @ self.matrix.T + self.centre + self.offset
        if self.bend_amplitude_um:
            arg = 2 * np.pi * (rel @ self.bend_wave) / self.bend_wavelength_um + self.bend_phase
            out = out + self.bend_amplitude_um * (np.sin(arg) - np.sin(self.bend_phase))[..., None] * self.bend_direction
        return out

    def affine(self) -> np.ndarray:
        """The 4 x 4 homogeneous matrix (µm, z y x) of the transform without the bend."""
        m = np.eye(4)
        m[:3, :3] = self.matrix
        m[:3, 3] = self.centre + self.offset - self.matrix @ self.centre
        return m

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() if isinstance(v, np.ndarray) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SessionSeries:
    """Sessions of the same dendrites with exact truth (see the module docstring).

    ``tracks``: one row per session and track alive in it or lost since the session before
    (columns :data:`TRACK_COLUMNS`): ``event`` is ``initial`` (session 0), ``stable``,
    ``gained`` or ``lost``; ``id`` the spine's label in that session (0 when it has no voxel
    there or is lost); ``visible`` whether it has voxels; ``inside`` whether its base lies at
    least ``edge_margin_um`` inside that session's volume; ``ref_base_*_um`` its base point in
    session 0's frame. ``affine_to_first`` (per session): 4 x 4 µm matrix taking a point of
    the session's frame to session 0's, without the bend (which is at most ``bend_um``).
    """

    phantoms: tuple[Phantom, ...]
    days: tuple[float, ...]
    tracks: pd.DataFrame
    warps: tuple[SessionWarp, ...]
    affine_to_first: tuple[np.ndarray, ...]
    params: dict


def _rotation(angles_deg) -> np.ndarray:
    """Rotation about z (in the yx plane), then about y and x, for small angles (z, y, x order)."""
    az, ay, ax = np.radians(angles_deg)
    rz = np.array([[1, 0, 0], [0, np.cos(az), -np.sin(az)], [0, np.sin(az), np.cos(az)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rx = np.array([[np.cos(ax), -np.sin(ax), 0], [np.sin(ax), np.cos(ax), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _draw_warp(rng: np.random.Generator, cfg: SessionConfig, centre: np.ndarray, pad: np.ndarray,
               extent_um: float) -> SessionWarp:
    angle = rng.uniform(0, 2 * np.pi)
    lateral = rng.uniform(*cfg.drift_um)
    shift = np.array([rng.uniform(-cfg.drift_z_um, cfg.drift_z_um), lateral * np.sin(angle), lateral * np.cos(angle)])
    rot = _rotation([rng.uniform(-cfg.rotation_deg, cfg.rotation_deg),
                     rng.uniform(-cfg.tilt_deg, cfg.tilt_deg), rng.uniform(-cfg.tilt_deg, cfg.tilt_deg)])
    stretch = np.diag([1.0, 1 + rng.uniform(-cfg.stretch, cfg.stretch), 1 + rng.uniform(-cfg.stretch, cfg.stretch)])
    phi = rng.uniform(0, 2 * np.pi)
    wave = np.array([0.0, np.sin(phi), np.cos(phi)])
    return SessionWarp(matrix=rot @ stretch, centre=centre, offset=shift - pad,
                       bend_amplitude_um=float(rng.uniform(0.5, 1.0) * cfg.bend_um),
                       bend_direction=np.array([0.0, np.cos(phi), -np.sin(phi)]), bend_wave=wave,
                       bend_wavelength_um=2.0 * extent_um, bend_phase=float(rng.uniform(0, 2 * np.pi)))


def _warp_prims(prims: Primitives, warp) -> Primitives:
    return replace(prims, a=warp(prims.a), b=warp(prims.b))


def _scaled_spine(sp, factor: float):
    """A copy of spine ``sp`` scaled by ``factor`` about its base point."""
    def scale(p):
        return sp.base + factor * (np.asarray(p) - sp.base)
    prims = replace(sp.prims, a=scale(sp.prims.a), b=scale(sp.prims.b), ra=sp.prims.ra * factor,
                    rb=sp.prims.rb * factor)
    return replace(sp, head=scale(sp.head), prims=prims, axis=scale(sp.axis), length_um=sp.length_um * factor,
                   head_diameter_um=sp.head_diameter_um * factor, neck_length_um=sp.neck_length_um * factor,
                   neck_diameter_um=sp.neck_diameter_um * factor,
                   volume_analytic_um3=sp.volume_analytic_um3 * factor**3)


def _warped_spine(sp, warp):
    return replace(sp, base=warp(sp.base), head=warp(sp.head), prims=_warp_prims(sp.prims, warp),
                   axis=warp(sp.axis))


def _warped_dendrite(dend: Dendrite, warp) -> Dendrite:
    def curves(cs):
        return None if cs is None else [Curve(warp(c.points), c.radii) for c in cs]
    return Dendrite(dend.id, curves(dend.curves), dend.brightness, curves(dend.shaft_curves),
                    [_warp_prims(p, warp) for p in dend.swellings])


class _WarpedCanvas(Canvas):
    """A canvas that moves unlabelled solids (the distractors, drawn in world µm) into the session."""

    def __init__(self, *args, warp, **kwargs):
        super().__init__(*args, **kwargs)
        self._warp = warp

    def add_unlabelled(self, prims: Primitives, brightness: float = 1.0) -> None:
        super().add_unlabelled(_warp_prims(prims, self._warp), brightness)


def _new_spine_pool(rng, dendrites, existing, world_box, config: SynthConfig, min_gap_um: float,
                    wanted: int, max_rounds: int = 30) -> list:
    """At least ``wanted`` spines (when there is room) that may appear later, along the same
    shafts, each at least ``min_gap_um`` from every other spine; drawn in rounds."""
    bases = [sp.base for sp in existing]
    pool = []
    density = float(np.mean(config.spines.density_per_um))
    for _ in range(max_rounds):
        for dend in dendrites:
            for curve in dend.curves:
                for sp in place_spines(rng, curve, world_box, config.spines, density,
                                       [*existing, *pool]):
                    if bases and np.min(np.linalg.norm(np.asarray(bases) - sp.base, axis=1)) < min_gap_um:
                        continue
                    sp.dendrite_id = dend.id
                    sp.brightness *= dend.brightness
                    bases.append(sp.base)
                    pool.append(sp)
        if len(pool) >= wanted:
            break
    order = rng.permutation(len(pool))
    return [pool[i] for i in order]


def _dynamics(rng, n_initial: int, pool_size: int, cfg: SessionConfig):
    """Per session: the alive track indices (0-based into initial + pool) and size factors."""
    alive = [list(range(n_initial))]
    size = np.ones(n_initial + pool_size)
    sizes = [size.copy()]
    next_new = n_initial
    for _ in range(1, cfg.n_sessions):
        prev = alive[-1]
        kept = [t for t in prev if rng.uniform() >= cfg.loss_fraction]
        n_gain = min(int(rng.poisson(cfg.gain_fraction * len(prev))), n_initial + pool_size - next_new)
        gained = list(range(next_new, next_new + n_gain))
        next_new += n_gain
        size = size * np.exp(rng.normal(0.0, cfg.size_sigma, len(size)))
        size = np.clip(size, 0.6, 1.6)
        alive.append(kept + gained)
        sizes.append(size.copy())
    return alive, sizes


def make_sessions(preset: str | SynthConfig = "two_photon", *, n_sessions: int | None = None, seed: int = 0,
                  shape=None, sessions: SessionConfig | None = None, **overrides) -> SessionSeries:
    """Imaging sessions of the same spiny dendrites with known dynamics and motion.

    Parameters
    ----------
    preset, shape, **overrides
        As :func:`~spinequant.synth.make_phantom`; ``shape`` is each session's volume.
    n_sessions : int, optional
        Overrides ``sessions.n_sessions``.
    seed : int
        Same seed, same series.
    sessions : SessionConfig
        Dynamics and motion (see the module docstring).
    """
    cfg = sessions or SessionConfig()
    if n_sessions is not None:
        cfg = replace(cfg, n_sessions=int(n_sessions), days=None if cfg.days is None or len(cfg.days) != n_sessions
                      else cfg.days)
    config = get_preset(preset)
    if shape is not None:
        overrides["shape"] = shape
    config = with_overrides(config, **overrides)
    spacing = np.asarray(config.spacing, float)
    box_um = (np.asarray(config.shape) - 1) * spacing
    extent = float(np.hypot(box_um[1], box_um[2]))
    pad_xy = cfg.drift_um[1] + cfg.bend_um + np.radians(cfg.rotation_deg) * extent / 2 + 2.0
    pad = np.array([cfg.drift_z_um + np.radians(cfg.tilt_deg) * extent / 2 + 0.5, pad_xy, pad_xy])
    world_box = box_um + 2 * pad
    centre = world_box / 2
    seq = np.random.SeedSequence([int(seed), 16])
    rng_dyn, rng_motion, *rng_noise = (np.random.default_rng(s) for s in seq.spawn(2 + cfg.n_sessions))

    rg, _, _, rv = random_streams(seed)
    dendrites, initial, variation = _labelled_geometry(rg, rv, config, world_box)
    wanted = int(np.ceil(3 * cfg.gain_fraction * len(initial) * (cfg.n_sessions - 1))) + 5
    pool = _new_spine_pool(rng_dyn, dendrites, initial, world_box, config, cfg.min_gap_um, wanted)
    alive, sizes = _dynamics(rng_dyn, len(initial), len(pool), cfg)
    warps = [SessionWarp(matrix=np.eye(3), centre=centre, offset=-pad)]
    warps += [_draw_warp(rng_motion, cfg, centre, pad, extent) for _ in range(1, cfg.n_sessions)]
    days = cfg.session_days()

    phantoms = []
    for k in range(cfg.n_sessions):
        # the same streams every session: the same shafts, distractors and spine shapes
        rg, rd, _, rv = random_streams(seed)
        dendrites, initial, _ = _labelled_geometry(rg, rv, config, world_box)
        everyone = initial + pool
        warp = warps[k]
        spines = [_warped_spine(_scaled_spine(everyone[t], sizes[k][t]), warp) for t in alive[k]]
        canvas = _WarpedCanvas(config.shape, config.spacing, supersample_um=config.supersample_um,
                               membrane_um=config.imaging.membrane_thickness_um if config.imaging.membrane else None,
                               warp=warp)
        phantom, kept = draw_phantom(config, seed, [_warped_dendrite(d, warp) for d in dendrites], spines,
                                     variation, rng_geometry=rg, rng_variation=rv, rng_distractors=rd,
                                     rng_noise=rng_noise[k], canvas=canvas, distractor_box_um=world_box)
        table = phantom.spines.copy()
        track_idx = np.asarray(alive[k], int)[kept] if len(kept) else np.zeros(0, int)
        table.insert(1, "track_id", track_idx + 1)
        table["size_factor"] = sizes[k][track_idx]
        ref = warps[0](np.array([everyone[t].base for t in track_idx]).reshape(-1, 3))
        for j, axis in enumerate("zyx"):
            table[f"ref_base_{axis}_um"] = ref[:, j]
        params = {**phantom.params, "session": k, "day": days[k], "sessions": to_json(asdict(cfg))}
        phantoms.append(replace(phantom, spines=table, params=params))
    world_bases = np.array([sp.base for sp in initial + pool])
    tracks = _track_table(phantoms, alive, sizes, warps, world_bases, days, box_um, cfg.edge_margin_um)
    to_first = tuple(warps[0].affine() @ np.linalg.inv(w.affine()) if k else np.eye(4) for k, w in enumerate(warps))
    return SessionSeries(phantoms=tuple(phantoms), days=days, tracks=tracks, warps=tuple(warps),
                         affine_to_first=to_first,
                         params={"preset": config.name, "seed": int(seed), "sessions": to_json(asdict(cfg)),
                                 "pad_um": pad.tolist(), "n_tracks": int(len(initial) + len(pool)),
                                 "n_initial": len(initial)})


def _track_table(phantoms, alive, sizes, warps, world_bases, days, box_um, margin_um) -> pd.DataFrame:
    rows = []
    for k, phantom in enumerate(phantoms):
        labels = dict(zip(phantom.spines["track_id"] - 1, phantom.spines["id"]))
        dend = dict(zip(phantom.spines["track_id"] - 1, phantom.spines["dendrite_id"]))
        prev = set(alive[k - 1]) if k else set()
        now = set(alive[k])
        listed = sorted(now | (prev - now))
        inside = inside_volume(warps[k](world_bases[listed]), box_um, margin_um) if listed else []
        inside_prev = inside_volume(warps[k - 1](world_bases[listed]), box_um, margin_um) if listed and k else \
            np.zeros(len(listed), bool)
        ref = warps[0](world_bases[listed]) if listed else np.zeros((0, 3))
        for j, t in enumerate(listed):
            event = "lost" if t not in now else ("initial" if k == 0 else "stable" if t in prev else "gained")
            label = int(labels.get(t, 0)) if event != "lost" else 0
            rows.append((k, days[k], t + 1, label, int(dend.get(t, 0)), event, label > 0, bool(inside[j]),
                         bool(inside_prev[j]), float(sizes[k][t]), *ref[j]))
    return pd.DataFrame(rows, columns=TRACK_COLUMNS)


def write_sessions(series: SessionSeries, out_dir: str | os.PathLike) -> Path:
    """Write every session as a phantom folder (``session_00`` ...; see
    :func:`~spinequant.synth.write_phantom`), ``truth_tracks.csv`` and ``transforms.json`` (the
    true world-to-session transforms and each session's affine to session 0, µm)."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True) as tmp:
        tmp = Path(tmp)
        tmp.mkdir()
        for k, phantom in enumerate(series.phantoms):
            write_phantom(phantom, tmp / f"session_{k:02d}")
        series.tracks.to_csv(tmp / "truth_tracks.csv", index=False, float_format="%.5f")
        record = {"days": list(series.days), "params": series.params,
                  "sessions": [{"session": k, "day": d, "world_to_session": w.to_dict(),
                                "affine_to_first_um": a.tolist()}
                               for k, (d, w, a) in enumerate(zip(series.days, series.warps, series.affine_to_first))]}
        (tmp / "transforms.json").write_text(json.dumps(to_json(record), indent=1) + "\n", encoding="utf-8")
    return out_dir


def project_sessions(series: SessionSeries) -> list[Phantom]:
    """Every session's maximum projection along z (:func:`~spinequant.synth.project_phantom`):
    2D sessions with exact 2D truth, the spine table keeping ``track_id`` and the reference
    base in the plane (``ref_base_y_um``, ``ref_base_x_um``)."""
    from .projection import project_phantom

    out = []
    for phantom in series.phantoms:
        flat = project_phantom(phantom)
        extra = phantom.spines.set_index("id")[["track_id", "ref_base_y_um", "ref_base_x_um"]]
        spines = flat.spines.join(extra, on="id")
        out.append(replace(flat, spines=spines))
    return out
