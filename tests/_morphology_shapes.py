"""Analytic shapes rasterised at a given voxel size, for the morphology tests."""

from __future__ import annotations

import numpy as np


def grid(extent_um, spacing):
    """Voxel-centre coordinates (z, y, x) in µm of a box of ``extent_um``."""
    shape = [int(round(e / s)) for e, s in zip(extent_um, spacing)]
    return np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")


def segment_distance(z, y, x, a, b):
    """Distance of every point to the segment a-b (µm)."""
    p = np.stack([z, y, x], axis=-1)
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def ball(z, y, x, centre, radius):
    c = np.asarray(centre, float)
    return (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius ** 2


def _scene(spacing, extent, direction, dendrite_radius, x0, shift=(0, 0, 0)):
    """Grid, dendrite (cylinder along x), spine axis start and direction, and base point."""
    z, y, x = grid(extent, spacing)
    # Off the grid, so no voxel centre sits on a surface.
    zc, yc, x0 = extent[0] / 2 + 0.0371 + shift[0], 2.0213 + shift[1], x0 + shift[2]
    dend = (z - zc) ** 2 + (y - yc) ** 2 <= dendrite_radius ** 2
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    axis0 = np.array([zc, yc, x0])
    # The spine axis leaves the dendrite where its distance from the dendrite axis is the radius.
    base = axis0 + dendrite_radius / np.linalg.norm(d[:2]) * d
    return (z, y, x), dend, axis0, d, base


def spine_on_dendrite(spacing, *, neck_length, neck_radius, head_radius, direction=(0, 1, 0),
                      dendrite_radius=0.8, extent=(6.0, 8.0, 8.0), x0=4.0137, shift=(0, 0, 0)):
    """A dendrite (cylinder along x) with one spine: a neck cylinder leaving the dendrite
    surface along ``direction`` and a spherical head touching the neck's end.

    Returns spine_labels, dendrite_mask and the truth (length from the dendrite surface to the
    head's far end, head diameter, neck length). ``shift`` (µm) moves the scene on the grid.
    """
    (z, y, x), dend, axis0, d, base = _scene(spacing, extent, direction, dendrite_radius, x0, shift)
    neck_end = base + neck_length * d
    shape = segment_distance(z, y, x, axis0, neck_end) <= neck_radius
    shape |= ball(z, y, x, neck_end + head_radius * d, head_radius)
    spine = (shape & ~dend).astype(np.int32)
    truth = {"length": neck_length + 2 * head_radius, "head_diameter": 2 * head_radius,
             "neck_length": neck_length, "base": base}
    return spine, dend, truth


def straight_spine(spacing, *, length, radius, direction=(0, 1, 0), dendrite_radius=0.8,
                   extent=(6.0, 8.0, 8.0), x0=4.0137):
    """A headless cylinder (filopodium-like) of ``length`` leaving the dendrite surface."""
    (z, y, x), dend, axis0, d, base = _scene(spacing, extent, direction, dendrite_radius, x0)
    tip = base + length * d
    # Flat end: the cylinder, not a capsule, so the length is exactly ``length``.
    p = np.stack([z, y, x], -1)
    t = (p - axis0) @ d
    radial = np.linalg.norm(p - axis0 - t[..., None] * d, axis=-1)
    spine = ((radial <= radius) & (t >= 0) & (t <= (tip - axis0) @ d) & ~dend).astype(np.int32)
    return spine, dend, {"length": length, "base": base, "tip": tip}
