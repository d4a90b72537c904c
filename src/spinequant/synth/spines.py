"""Spine geometry: the four types, their size distributions and exact model volumes.

Sizes are drawn from log-normal distributions (median, geometric SD) clipped to the range
reported for each type in serial-section electron microscopy of hippocampal CA1 and
neocortical spines (Harris, Jensen & Tsao 1992, J Neurosci 12:2685; Arellano et al. 2007,
Front Neurosci 1:131) and, for filopodia, time-lapse light microscopy (Ziv & Smith 1996,
Neuron 17:91). The type definitions follow Peters & Kaiserman-Abramof (1970): stubby = no
neck, thin = long thin neck with a small head, mushroom = head of 0.5 µm or more on a
short neck, filopodia = long and headless. Every length is in µm.

Models (``d`` = unit direction from the base point ``p`` on the shaft surface):

- thin / mushroom: a cylindrical neck of radius ``rn`` from ``p`` to the head centre ``c``,
  path length ``neck_length + R``, bent once half way by up to 30°, and a spherical head of
  radius ``R`` at ``c``;
- stubby: a sphere of radius ``R`` whose centre sits ``h`` above the surface (0 < h < R);
- filopodia: a cylinder of radius ``r`` with a hemispherical tip, ``length`` from ``p``.

Each neck also reaches ``rn`` into the shaft so that no gap opens at a curved surface; that
part lies inside the shaft, which wins in the labels. The analytic volume counts what lies
above the tangent plane of the shaft at ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .curves import cross, rotate_towards
from .raster import Primitives, segment_points

SPINE_TYPES = ("stubby", "thin", "mushroom", "filopodia")
MAX_BEND_DEG = 30.0

#: (median, geometric SD, min, max) per size, µm. Literature ranges, see module docstring.
SIZE_DISTRIBUTIONS = {
    "thin": {"neck_length_um": (0.9, 1.4, 0.4, 2.0), "neck_diameter_um": (0.1, 1.3, 0.05, 0.2),
             "head_diameter_um": (0.42, 1.2, 0.3, 0.6)},
    "mushroom": {"neck_length_um": (0.5, 1.4, 0.2, 1.2), "neck_diameter_um": (0.18, 1.3, 0.1, 0.3),
                 "head_diameter_um": (0.7, 1.25, 0.5, 1.2)},
    "stubby": {"head_diameter_um": (0.6, 1.25, 0.4, 1.0)},
    "filopodia": {"length_um": (2.5, 1.4, 1.5, 5.0), "neck_diameter_um": (0.15, 1.3, 0.08, 0.25)},
}


@dataclass
class Spine:
    """One spine: truth values (µm) and the primitives that draw it."""

    type: str
    base: np.ndarray
    head: np.ndarray
    direction: np.ndarray
    length_um: float
    head_diameter_um: float
    neck_length_um: float
    neck_diameter_um: float
    volume_analytic_um3: float
    prims: Primitives
    axis: np.ndarray  #: points along the axis, kept in the labels even when thinner than a voxel
    brightness: float = 1.0
    dendrite_id: int = 0


def draw_size(rng: np.random.Generator, spec: tuple[float, float, float, float], scale: float) -> float:
    median, gsd, lo, hi = spec
    return float(np.clip(median * gsd ** rng.standard_normal(), lo, hi) * scale)


def make_spine(rng: np.random.Generator, kind: str, base: np.ndarray, d: np.ndarray, *,
               size_scale: float = 1.0, step_um: float = 0.05) -> Spine:
    """Draw the sizes of a spine of type ``kind`` at surface point ``base`` pointing along ``d``."""
    sizes = {k: draw_size(rng, v, size_scale) for k, v in SIZE_DISTRIBUTIONS[kind].items()}
    if kind in ("thin", "mushroom"):
        ln, rn, r = sizes["neck_length_um"], sizes["neck_diameter_um"] / 2, sizes["head_diameter_um"] / 2
        rn = min(rn, 0.8 * r)
        # the neck bends once, half way, by up to MAX_BEND_DEG
        half = (ln + r) / 2
        mid = base + half * d
        c = mid + half * rotate_towards(d, np.radians(rng.uniform(0, MAX_BEND_DEG)), rng)
        prims = Primitives.of([(base - rn * d, mid, rn, rn), (mid, c, rn, rn), (c, c, r, r)])
        axis = np.concatenate([segment_points(base, mid, step_um), segment_points(mid, c, step_um)])
        return Spine(kind, base, c, d, ln + 2 * r, 2 * r, ln, 2 * rn, necked_volume(rn, ln + r, r),
                     prims, axis)
    if kind == "stubby":
        r = sizes["head_diameter_um"] / 2
        h = r * rng.uniform(0.25, 0.6)
        c = base + h * d
        prims = Primitives.of([(c, c, r, r)])
        return Spine(kind, base, c, d, h + r, 2 * r, 0.0, 0.0, cap_volume(r, h),
                     prims, segment_points(base, c + 0.5 * r * d, step_um))
    if kind == "filopodia":
        length, r = sizes["length_um"], sizes["neck_diameter_um"] / 2
        tip = base + length * d
        end = tip - r * d
        prims = Primitives.of([(base - r * d, end, r, r)])
        volume = np.pi * r**2 * (length - r) + 2 / 3 * np.pi * r**3
        return Spine(kind, base, tip, d, length, 0.0, length, 2 * r, float(volume),
                     prims, segment_points(base, tip, step_um))
    raise ValueError(f"unknown spine type {kind!r}")


def dim_neck(spine: Spine, factor: float) -> None:
    """Fill the neck of a thin or mushroom spine at ``factor`` times the fill of its head, so
    that the head looks detached from the shaft; its labels do not change."""
    if spine.type not in ("thin", "mushroom"):
        raise ValueError(f"a {spine.type} spine has no neck to dim")
    neck = spine.brightness * factor
    values = np.array([neck, neck, spine.brightness])  # cones: neck, bent neck, head
    spine.prims = replace(spine.prims, va=values, vb=values.copy())


def necked_volume(rn: float, lc: float, r: float) -> float:
    """Volume of a cylinder (radius ``rn``, length ``lc`` ending at the centre of a sphere
    of radius ``r >= rn``, ``lc >= r``) united with that sphere."""
    h0 = np.sqrt(r**2 - rn**2)
    overlap = np.pi * rn**2 * h0 + np.pi * (r**2 * (r - h0) - (r**3 - h0**3) / 3)
    return float(4 / 3 * np.pi * r**3 + np.pi * rn**2 * lc - overlap)


def cap_volume(r: float, h: float) -> float:
    """Volume of a sphere of radius ``r`` above a plane ``h`` below its centre."""
    cap = r + h
    return float(np.pi * cap**2 * (3 * r - cap) / 3)


def spine_direction(rng: np.random.Generator, normal: np.ndarray, tangent: np.ndarray,
                    max_tilt_deg: float) -> np.ndarray:
    """``normal`` tilted by a random angle up to ``max_tilt_deg`` in a random direction."""
    side = cross(tangent, normal)
    phi = rng.uniform(0, 2 * np.pi)
    w = np.cos(phi) * tangent + np.sin(phi) * side
    w /= np.linalg.norm(w)
    tilt = np.radians(max_tilt_deg) * np.sqrt(rng.uniform())
    return np.cos(tilt) * normal + np.sin(tilt) * w


def draw_types(rng: np.random.Generator, n: int, fractions) -> list[str]:
    names = [k for k, _ in fractions]
    p = np.array([v for _, v in fractions], float)
    return list(rng.choice(names, size=n, p=p / p.sum()))
