"""Smooth 3D centrelines with a radius, sampled densely by arc length (µm, z y x)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEP_UM = 0.25  #: sampling step along a centreline


@dataclass(frozen=True)
class Curve:
    """A centreline: ``points`` (n, 3) in µm (z, y, x), ``radii`` (n,), arc length ``arc`` (n,)."""

    points: np.ndarray
    radii: np.ndarray

    @property
    def arc(self) -> np.ndarray:
        seg = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(seg)])

    @property
    def length_um(self) -> float:
        return float(self.arc[-1]) if len(self.points) > 1 else 0.0

    @property
    def tangents(self) -> np.ndarray:
        t = np.gradient(self.points, axis=0) if len(self.points) > 1 else np.array([[0.0, 0.0, 1.0]])
        return t / np.linalg.norm(t, axis=1, keepdims=True)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cross product of 3-vectors (np.cross is slow for single vectors)."""
    return np.stack([u[..., 1] * v[..., 2] - u[..., 2] * v[..., 1],
                     u[..., 2] * v[..., 0] - u[..., 0] * v[..., 2],
                     u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]], axis=-1)


def perpendicular_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``u`` (shape (..., 3)) and to each other."""
    ref = np.where(np.abs(u[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    n1 = unit(cross(u, ref))
    return n1, cross(u, n1)


def direction(rng: np.random.Generator, *, max_elevation_deg: float) -> np.ndarray:
    """Random unit vector (z, y, x) whose angle to the xy plane is at most ``max_elevation_deg``."""
    azimuth = rng.uniform(0, 2 * np.pi)
    # uniform on the sphere restricted to |elevation| <= max: uniform in sin(elevation)
    s = np.sin(np.radians(min(max_elevation_deg, 90.0)))
    sin_e = rng.uniform(-s, s)
    cos_e = np.sqrt(1 - sin_e**2)
    return np.array([sin_e, cos_e * np.sin(azimuth), cos_e * np.cos(azimuth)])


def smooth_profile(rng: np.random.Generator, s: np.ndarray, *, wavelengths: tuple[float, float],
                   n_modes: int = 3) -> np.ndarray:
    """A smooth random function of ``s`` with zero mean and unit-order amplitude."""
    out = np.zeros_like(s, dtype=float)
    for _ in range(n_modes):
        lam = rng.uniform(*wavelengths)
        out += np.sin(2 * np.pi * s / lam + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(n_modes / 2)


def meander_curve(rng: np.random.Generator, start: np.ndarray, u: np.ndarray, s_range: tuple[float, float],
                  *, wiggle_um: float, radius_um: float, radius_variation: float,
                  radius_limits_um: tuple[float, float]) -> Curve:
    """A curve through ``start`` along ``u`` with a smooth perpendicular meander."""
    s = np.arange(s_range[0], s_range[1] + STEP_UM / 2, STEP_UM)
    n1, n2 = perpendicular_basis(u)
    a = wiggle_um * smooth_profile(rng, s, wavelengths=(15.0, 40.0), n_modes=2)
    b = wiggle_um * smooth_profile(rng, s, wavelengths=(15.0, 40.0), n_modes=2)
    # anchor the meander at the start point so a branch leaves its parent exactly there
    i0 = int(np.argmin(np.abs(s)))
    a, b = a - a[i0], b - b[i0]
    pts = start + s[:, None] * u + a[:, None] * n1 + b[:, None] * n2
    # slow taper plus short swellings, as along real shafts
    r = radius_um * (1 + radius_variation * 0.7 * (smooth_profile(rng, s, wavelengths=(8.0, 30.0))
                                                    + smooth_profile(rng, s, wavelengths=(1.5, 4.0))))
    return Curve(pts, np.clip(r, *radius_limits_um))


def clip_to_box(curve: Curve, box_um: np.ndarray, margin_um: float) -> Curve | None:
    """The longest run of ``curve`` inside the box [-margin, box + margin]; None if none."""
    inside = np.all((curve.points >= -margin_um) & (curve.points <= box_um + margin_um), axis=1)
    if not inside.any():
        return None
    edges = np.diff(np.concatenate([[0], inside.astype(int), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    k = int(np.argmax(stops - starts))
    sl = slice(starts[k], stops[k])
    if stops[k] - starts[k] < 4:
        return None
    return Curve(curve.points[sl], curve.radii[sl])


def resample(curve: Curve, step_um: float) -> Curve:
    """Points of ``curve`` about ``step_um`` apart (keeps both ends)."""
    arc = curve.arc
    n = max(2, int(np.ceil(arc[-1] / step_um)) + 1)
    t = np.linspace(0, arc[-1], n)
    pts = np.stack([np.interp(t, arc, curve.points[:, k]) for k in range(3)], axis=1)
    return Curve(pts, np.interp(t, arc, curve.radii))


def rotate_towards(u: np.ndarray, angle_rad: float, rng: np.random.Generator) -> np.ndarray:
    """``u`` turned by ``angle_rad`` towards a random perpendicular direction."""
    n1, n2 = perpendicular_basis(u)
    phi = rng.uniform(0, 2 * np.pi)
    w = np.cos(phi) * n1 + np.sin(phi) * n2
    return unit(np.cos(angle_rad) * u + np.sin(angle_rad) * w)
