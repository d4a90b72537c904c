"""Test scenes for the instance and export tests: a dendrite cylinder with spheres on it.

Everything is rasterised at a given spacing from µm geometry, so one scene can be built at
several voxel sizes. Imported by test_instances*.py and test_export*.py.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

SPACING = (0.5, 0.094, 0.094)


def grid(shape_um, spacing):
    shape = tuple(int(round(e / s)) for e, s in zip(shape_um, spacing))
    return np.ogrid[tuple(slice(0, n) for n in shape)], shape


def ellipsoid(shape_um, spacing, centre_um, radii_um):
    (z, y, x), _ = grid(shape_um, spacing)
    return sum(((c * s - c0) / r) ** 2 for c, s, c0, r in zip((z, y, x), spacing, centre_um, radii_um)) <= 1.0


def capsule(shape_um, spacing, start_um, end_um, radius_um):
    """Voxels within ``radius_um`` of the segment from ``start_um`` to ``end_um`` (a neck)."""
    (z, y, x), _ = grid(shape_um, spacing)
    p = [c * s for c, s in zip((z, y, x), spacing)]
    a, b = np.asarray(start_um, float), np.asarray(end_um, float)
    ab = b - a
    t = np.clip(sum((pi - ai) * d for pi, ai, d in zip(p, a, ab)) / float(ab @ ab), 0, 1)
    return sum((pi - ai - t * d) ** 2 for pi, ai, d in zip(p, a, ab)) <= radius_um ** 2


def cylinder_x(shape_um, spacing, centre_zy_um, radius_um):
    (z, y, x), shape = grid(shape_um, spacing)
    dz, dy = z * spacing[0] - centre_zy_um[0], y * spacing[1] - centre_zy_um[1]
    inside = dz ** 2 + dy ** 2 <= radius_um ** 2
    return np.broadcast_to(inside, shape).copy()


def dendrite_with_spines(spacing=SPACING, *, n_spines=4, head_radius_um=0.5):
    """A 1 µm-radius dendrite along x with heads on top (+y), 2.5 µm apart.

    Heads are ellipsoids stretched 1.6× in z, as a light microscope's point spread makes them.
    Returns (spine_mask, dendrite_mask, head_centres_um); heads touch the dendrite surface.
    """
    shape_um = (6.0, 8.0, 3.0 + 2.5 * n_spines)
    dendrite = cylinder_x(shape_um, spacing, (3.0, 3.0), 1.0)
    spines = np.zeros_like(dendrite)
    centres = []
    for k in range(n_spines):
        c = (3.0, 3.0 + 1.0 + head_radius_um, 2.5 + 2.5 * k)
        spines |= ellipsoid(shape_um, spacing, c, (1.6 * head_radius_um, head_radius_um, head_radius_um))
        centres.append(c)
    return spines & ~dendrite, dendrite, centres


def blurred(mask, spacing, sigma_um=0.15):
    """A smooth probability map whose 0.5 level lies near the mask boundary."""
    sigma = [sigma_um / s for s in spacing]
    return np.clip(ndi.gaussian_filter(mask.astype(np.float32), sigma), 0, 1)


def label_at(labels, point_um, spacing):
    return int(labels[tuple(int(round(p / s)) for p, s in zip(point_um, spacing))])
