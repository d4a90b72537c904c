"""Labelled dendrites: shafts (with side branches) and the spines along them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..io.swc import SWC_COLUMNS, SWC_DENDRITE
from .clearance import Occupied, placed_clear
from .config import ShaftConfig, SpineConfig
from .curves import (Curve, clip_to_box, direction, meander_curve, perpendicular_basis, resample,
                     rotate_towards, smooth_profile)
from .raster import Primitives
from .spines import Spine, draw_types, make_spine, spine_direction

#: Shafts are drawn in pieces of this many 1-µm segments (one bounding box each).
SEGMENTS_PER_PIECE = 3
MARGIN_UM = 2.0


#: Step of the shaft cones when the shaft carries a texture (finer than its 1 µm wavelengths);
#: the 1 µm cones are split along their own lines, so the solid and its labels stay the same.
TEXTURE_STEP_UM = 0.25
#: Centreline step of the cones that draw a varicosity (fine enough for a 0.5 µm swelling).
VARICOSITY_STEP_UM = 0.1


@dataclass
class Dendrite:
    """A labelled dendrite: its id, centrelines (main shaft first) and fill brightness.

    ``curves`` carry the true radius, swellings included; ``shaft_curves`` (when set) are the
    same centrelines without the swellings, drawn as the plain shaft, and ``swellings`` the
    cones that add each varicosity to it.
    """

    id: int
    curves: list[Curve] = field(default_factory=list)
    brightness: float = 1.0
    shaft_curves: list[Curve] | None = None
    swellings: list[Primitives] = field(default_factory=list)


def add_varicosities(rng: np.random.Generator, dend: Dendrite, cfg: ShaftConfig) -> int:
    """Give ``dend`` varicosities: local swellings of the shaft radius that are also brighter
    (a raised-cosine bump in radius and fill along the centreline), at a density drawn from
    ``cfg.varicosity_density_per_um``. They belong to the shaft. Returns how many were made."""
    density = rng.uniform(*cfg.varicosity_density_per_um)
    base_curves, swollen, made = dend.curves, [], 0
    for curve in base_curves:
        arc = curve.arc
        n = rng.poisson(density * curve.length_um)
        bumps = [(rng.uniform(0, arc[-1]), rng.uniform(*cfg.varicosity_length_um),
                  rng.uniform(*cfg.varicosity_swelling), rng.uniform(*cfg.varicosity_brightness))
                 for _ in range(n)]
        swollen.append(Curve(curve.points, curve.radii * _swelling(arc, bumps)))
        for centre, length, widen, brighter in bumps:
            dend.swellings.append(_varicosity_cones(curve, centre, length, widen, brighter, dend.brightness))
        made += n
    if made:
        dend.shaft_curves, dend.curves = base_curves, swollen
    return made


def _bump(s: np.ndarray, centre: float, length: float) -> np.ndarray:
    """Raised cosine: 1 at ``centre``, falling smoothly to 0 at ``centre ± length / 2``."""
    x = np.clip((s - centre) / length, -0.5, 0.5)
    return 0.5 * (1 + np.cos(2 * np.pi * x))


def _swelling(arc: np.ndarray, bumps) -> np.ndarray:
    """Radius factor along the curve: the largest of the swellings at each point."""
    factor = np.ones_like(arc)
    for centre, length, widen, _ in bumps:
        np.maximum(factor, 1 + (widen - 1) * _bump(arc, centre, length), out=factor)
    return factor


def _varicosity_cones(curve: Curve, centre: float, length: float, widen: float, brighter: float,
                      fill: float) -> Primitives:
    """Cones along ``curve`` over the swelling, radius and fill (``fill`` times up to
    ``brighter``) following the bump."""
    arc = curve.arc
    s = np.clip(np.arange(centre - length / 2, centre + length / 2 + VARICOSITY_STEP_UM / 2,
                          VARICOSITY_STEP_UM), 0, arc[-1])
    s = np.unique(s)
    if len(s) < 2:
        s = np.array([max(0.0, s[0] - VARICOSITY_STEP_UM), min(arc[-1], s[0] + VARICOSITY_STEP_UM)])
    pts = np.stack([np.interp(s, arc, curve.points[:, k]) for k in range(3)], axis=1)
    bump = _bump(s, centre, length)
    radii = np.interp(s, arc, curve.radii) * (1 + (widen - 1) * bump)
    values = fill * (1 + (brighter - 1) * bump)
    segs = [(pts[j], pts[j + 1], radii[j], radii[j + 1]) for j in range(len(s) - 1)]
    return Primitives.of(segs, [(values[j], values[j + 1]) for j in range(len(s) - 1)])


def random_dendrite(rng: np.random.Generator, box_um: np.ndarray, cfg: ShaftConfig, *,
                    radius_um: float | None = None, allow_branch: bool = True) -> list[Curve]:
    """Centrelines of one dendrite crossing the box (main shaft, then an optional branch)."""
    steep = rng.uniform() < cfg.steep_fraction
    u = direction(rng, max_elevation_deg=90.0 if steep else cfg.max_elevation_deg)
    start = box_um * rng.uniform(0.3, 0.7, 3)
    half = float(np.linalg.norm(box_um)) + MARGIN_UM
    r = radius_um if radius_um is not None else rng.uniform(*cfg.radius_um)
    kw = dict(wiggle_um=cfg.wiggle_um, radius_variation=cfg.radius_variation,
              radius_limits_um=cfg.radius_limits_um)
    main = clip_to_box(meander_curve(rng, start, u, (-half, half), radius_um=r, **kw), box_um, MARGIN_UM)
    if main is None:
        return []
    curves = [main]
    if allow_branch and rng.uniform() < cfg.branch_probability and len(main.points) > 20:
        i = int(rng.integers(len(main.points) // 5, 4 * len(main.points) // 5))
        v = rotate_towards(main.tangents[i], np.radians(rng.uniform(30, 70)), rng)
        branch = meander_curve(rng, main.points[i], v, (0.0, rng.uniform(10, 30)),
                               radius_um=max(cfg.radius_limits_um[0], 0.7 * main.radii[i]), **kw)
        branch = clip_to_box(branch, box_um, MARGIN_UM)
        if branch is not None:
            curves.append(branch)
    return curves


def shaft_pieces(curve: Curve, *, rng: np.random.Generator | None = None,
                 brightness: float = 1.0, texture: np.random.Generator | None = None,
                 cfg: ShaftConfig | None = None) -> list[Primitives]:
    """The shaft as round cones between points 1 µm apart, grouped in small pieces. With
    ``rng`` the fill varies smoothly along the shaft around ``brightness`` (cytosolic volume
    and expression differ along real shafts); without, the canvas gives one brightness.
    With ``texture`` (a generator) and ``cfg``, a finer variation of amplitude
    ``cfg.texture_amplitude`` and wavelengths ``cfg.texture_scale_um`` multiplies the fill,
    drawn on cones :data:`TEXTURE_STEP_UM` apart."""
    textured = rng is not None and texture is not None and cfg is not None
    c = resample(curve, 1.0)
    per_piece = SEGMENTS_PER_PIECE
    if textured:  # the same cones, each split in parts along its own line: same solid
        split = int(round(1.0 / TEXTURE_STEP_UM))
        c = _split_cones(c, split)
        per_piece *= split  # pieces of about 3 µm either way
    n = len(c.points) - 1
    segs = [(c.points[j], c.points[j + 1], c.radii[j], c.radii[j + 1]) for j in range(n)]
    if rng is None:
        return [Primitives.of(segs[k:k + per_piece]) for k in range(0, n, per_piece)]
    b = brightness * (1 + 0.25 * smooth_profile(rng, c.arc, wavelengths=(6.0, 25.0)))
    if textured:
        b = b * shaft_texture(texture, c.arc, cfg)
    vals = [(b[j], b[j + 1]) for j in range(n)]
    return [Primitives.of(segs[k:k + per_piece], vals[k:k + per_piece]) for k in range(0, n, per_piece)]


def _split_cones(c: Curve, parts: int) -> Curve:
    """``c`` with ``parts - 1`` points inserted evenly (linearly) between neighbours."""
    t = np.arange(parts) / parts
    pts = c.points[:-1, None, :] + t[None, :, None] * np.diff(c.points, axis=0)[:, None, :]
    radii = c.radii[:-1, None] + t[None, :] * np.diff(c.radii)[:, None]
    return Curve(np.vstack([pts.reshape(-1, 3), c.points[-1:]]), np.concatenate([radii.ravel(), c.radii[-1:]]))


def shaft_texture(rng: np.random.Generator, arc: np.ndarray, cfg: ShaftConfig) -> np.ndarray:
    """Fill factor along a shaft: 1 plus a smooth random profile (wavelengths
    ``cfg.texture_scale_um``) scaled so that its largest excursion is the amplitude drawn
    from ``cfg.texture_amplitude``."""
    amplitude = rng.uniform(*cfg.texture_amplitude)
    profile = smooth_profile(rng, arc, wavelengths=cfg.texture_scale_um, n_modes=4)
    return 1 + amplitude * profile / max(float(np.abs(profile).max()), 1e-12)


def place_spines(rng: np.random.Generator, curve: Curve, box_um: np.ndarray, cfg: SpineConfig,
                 density_per_um: float, occupied: list[Spine] = ()) -> list[Spine]:
    """Spines at random positions (a Poisson process along the shaft) and random angles
    around it; a fraction get a neighbour right beside them that touches them. None passes
    through another, nor through the ``occupied`` spines placed before (see
    :mod:`.clearance`)."""
    inside = np.all((curve.points >= 0) & (curve.points <= box_um), axis=1)
    arc = curve.arc
    step = np.diff(arc, prepend=arc[0])
    inside_arc = np.cumsum(step * inside)  # arc length counted only inside the volume
    # touching neighbours are extra spines: draw fewer primary ones so the mean density holds
    n = rng.poisson(density_per_um * float(inside_arc[-1]) / (1 + cfg.touching_fraction))
    positions = np.interp(np.sort(rng.uniform(0, inside_arc[-1], size=n)), inside_arc, arc)
    tangents = curve.tangents
    placed = Occupied(occupied)
    spines = []

    def keep(drawn):
        spine, turn = placed_clear(drawn[0], placed, *drawn[1:]) if drawn is not None else (None, 0.0)
        if spine is not None:
            placed.add(spine)
            spines.append(spine)
        return spine, turn

    for s, kind in zip(positions, draw_types(rng, len(positions), cfg.type_fractions)):
        theta = rng.uniform(0, 2 * np.pi)
        drawn = _spine_at(rng, curve, tangents, arc, s, theta, kind, cfg)
        if drawn is None:
            continue
        spine, turn = keep(drawn)
        if rng.uniform() < cfg.touching_fraction:
            first = spine if spine is not None else drawn[0]
            gap = 0.5 * first.head_diameter_um + rng.uniform(0.15, 0.4)
            kind2 = draw_types(rng, 1, cfg.type_fractions)[0]
            keep(_spine_at(rng, curve, tangents, arc, s + gap * rng.choice([-1, 1]),
                           theta + turn + rng.normal(0, 0.2), kind2, cfg, towards=first.direction))
    return [sp for sp in spines if np.all((sp.base >= 0) & (sp.base <= box_um))]


def _spine_at(rng, curve, tangents, arc, s, theta, kind, cfg, towards=None):
    """A spine drawn at arc length ``s`` and angle ``theta`` around the shaft, with the
    point of the centreline it stands on and the shaft's direction there; None off the curve."""
    if not 0 <= s <= arc[-1]:
        return None
    i = int(np.clip(np.searchsorted(arc, s), 0, len(arc) - 1))
    t = tangents[i]
    n1, n2 = perpendicular_basis(t)
    normal = np.cos(theta) * n1 + np.sin(theta) * n2
    base = curve.points[i] + curve.radii[i] * normal
    d = spine_direction(rng, normal, t, cfg.max_tilt_deg)
    if towards is not None:  # a touching neighbour leans like the spine it touches
        d = d + towards
        d /= np.linalg.norm(d)
    spine = make_spine(rng, kind, base, d, size_scale=cfg.size_scale)
    spine.brightness = rng.uniform(*cfg.brightness)
    return spine, curve.points[i], t


def centrelines_swc(dendrites: list[Dendrite], box_um: np.ndarray, *, step_um: float = 0.5) -> pd.DataFrame:
    """SWC table of the labelled dendrites inside the volume (µm); branches join their
    parent at the nearest node."""
    rows = []
    for dend in dendrites:
        first_ids: list[np.ndarray] = []
        first_pts: list[np.ndarray] = []
        for k, curve in enumerate(dend.curves):
            c = resample(curve, step_um)
            inside = np.all((c.points >= 0) & (c.points <= box_um), axis=1)
            prev = -1
            if k > 0 and len(first_pts[0]) and inside[0]:
                dist = np.linalg.norm(first_pts[0] - c.points[0], axis=1)
                prev = int(first_ids[0][np.argmin(dist)])
            ids = []
            for p, r, ok in zip(c.points, c.radii, inside):
                if not ok:
                    prev = -1
                    ids.append(-1)
                    continue
                node = len(rows) + 1
                rows.append((node, SWC_DENDRITE, p[2], p[1], p[0], r, prev, dend.id))
                prev = node
                ids.append(node)
            ids = np.array(ids)
            first_ids.append(ids[ids > 0])
            first_pts.append(c.points[ids > 0])
    table = pd.DataFrame(rows, columns=[*SWC_COLUMNS, "dendrite_id"])
    return table.astype({"id": np.int64, "type": np.int64, "parent": np.int64, "dendrite_id": np.int64})
