"""What a real stack shows besides the labelled dendrites: passing axons with boutons, dim
out-of-focus dendrites, cell bodies and a smooth haze. None of it is labelled."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .canvas import Canvas
from .config import DistractorConfig, ShaftConfig, SpineConfig
from .curves import clip_to_box, direction, meander_curve
from .dendrites import MARGIN_UM, place_spines, random_dendrite, shaft_pieces
from .raster import Primitives, rasterise


def add_axons(rng: np.random.Generator, canvas: Canvas, box_um: np.ndarray, cfg: DistractorConfig) -> int:
    """Thin straight-ish axons with en-passant boutons; returns how many were drawn."""
    n = int(rng.integers(cfg.n_axons[0], cfg.n_axons[1] + 1))
    half = float(np.linalg.norm(box_um)) + MARGIN_UM
    drawn = 0
    for _ in range(n):
        r = rng.uniform(*cfg.axon_radius_um)
        u = direction(rng, max_elevation_deg=40.0)
        curve = meander_curve(rng, box_um * rng.uniform(0.1, 0.9, 3), u, (-half, half), wiggle_um=1.0,
                              radius_um=r, radius_variation=0.0, radius_limits_um=(0.02, 2.0))
        curve = clip_to_box(curve, box_um, MARGIN_UM)
        if curve is None:
            continue
        brightness = rng.uniform(*cfg.axon_brightness)
        for prims in shaft_pieces(curve):
            canvas.add_unlabelled(prims, brightness)
        arc, s = curve.arc, rng.uniform(0, cfg.bouton_spacing_um[1])
        while s < arc[-1]:
            i = int(np.searchsorted(arc, s))
            c = curve.points[min(i, len(arc) - 1)]
            rb = rng.uniform(*cfg.bouton_radius_um)
            canvas.add_unlabelled(Primitives.of([(c, c, rb, rb)]), brightness * rng.uniform(1.0, 1.5))
            s += rng.uniform(*cfg.bouton_spacing_um)
        drawn += 1
    return drawn


def add_dim_dendrites(rng: np.random.Generator, canvas: Canvas, box_um: np.ndarray,
                      cfg: DistractorConfig, shafts: ShaftConfig, spines: SpineConfig) -> int:
    """Spiny dendrites of other cells, dim because they are weakly filled or out of focus."""
    n = int(rng.integers(cfg.n_dim_dendrites[0], cfg.n_dim_dendrites[1] + 1))
    for _ in range(n):
        brightness = rng.uniform(*cfg.dim_brightness)
        for curve in random_dendrite(rng, box_um, shafts, allow_branch=False):
            for prims in shaft_pieces(curve):
                canvas.add_unlabelled(prims, brightness)
            for spine in place_spines(rng, curve, box_um, spines, min(spines.density_per_um)):
                canvas.add_unlabelled(spine.prims, brightness)
    return n


#: A cell body is placed at least this far from every labelled voxel.
SOMA_CLEARANCE_UM = 1.0


def add_somata(rng: np.random.Generator, canvas: Canvas, box_um: np.ndarray, cfg: DistractorConfig,
               *, attempts: int = 30) -> int:
    """Cell bodies (capsules: a round cone of equal radii, ``soma_radius_um`` wide and up to
    ``soma_elongation`` times as long), unlabelled and clear of the labelled dendrites and
    spines by :data:`SOMA_CLEARANCE_UM`, so the truth stays visible; they may lie partly
    outside the volume. Returns how many were drawn (a soma finds no room in a crowded volume
    after ``attempts`` draws)."""
    if cfg.n_somata[1] <= 0:
        return 0
    n = int(rng.integers(cfg.n_somata[0], cfg.n_somata[1] + 1))
    labelled = (canvas.shaft_occ > 0) | (canvas.spine_occ > 0)
    drawn = 0
    for _ in range(n):
        for _ in range(attempts):
            r = rng.uniform(*cfg.soma_radius_um)
            half = 0.5 * r * (rng.uniform(*cfg.soma_elongation) - 1.0)
            u = direction(rng, max_elevation_deg=90.0)
            c = box_um * rng.uniform(0.0, 1.0, 3)
            wide = rasterise(Primitives.of([(c - half * u, c + half * u, r + SOMA_CLEARANCE_UM,
                                             r + SOMA_CLEARANCE_UM)]), canvas.shape, canvas.spacing,
                             supersample_um=1.0)
            if wide is None or (labelled[wide.slices] & (wide.occupancy > 0)).any():
                continue
            canvas.add_unlabelled(Primitives.of([(c - half * u, c + half * u, r, r)]), rng.uniform(*cfg.soma_brightness))
            drawn += 1
            break
    return drawn


def haze(rng: np.random.Generator, shape, spacing, *, scale_um: float) -> np.ndarray:
    """A smooth positive random field with mean about 1 (float32), made on a coarse grid of
    ``scale_um / 2`` and interpolated linearly (separably, as matrix products)."""
    step = scale_um / 2
    coarse_shape = [int(np.ceil(n * s / step)) + 3 for n, s in zip(shape, spacing)]
    field = ndi.gaussian_filter(rng.standard_normal(coarse_shape), 1.0)
    field = np.clip(1 + 0.5 * field / (field.std() + 1e-12), 0, None).astype(np.float32)
    mats = [_interpolation_matrix(n, s / step, m) for n, s, m in zip(shape, spacing, coarse_shape)]
    field = field @ mats[2].T                                   # (cz, cy, nx)
    field = np.matmul(mats[1][None], field)                     # (cz, ny, nx)
    # along z each plane mixes two coarse planes: cheaper than a dense product
    out = np.empty((shape[0], *field.shape[1:]), np.float32)
    for k, row in enumerate(mats[0]):
        lo = int(np.argmax(row > 0))
        np.multiply(field[lo], row[lo], out=out[k])
        if lo + 1 < len(row) and row[lo + 1] > 0:
            out[k] += row[lo + 1] * field[lo + 1]
    return out


def _interpolation_matrix(n: int, ratio: float, m: int) -> np.ndarray:
    pos = 1 + np.arange(n) * ratio
    lo = np.floor(pos).astype(int)
    w = (pos - lo).astype(np.float32)
    mat = np.zeros((n, m), np.float32)
    mat[np.arange(n), lo] = 1 - w
    mat[np.arange(n), np.minimum(lo + 1, m - 1)] += w
    return mat
