"""Rasterisation and the closed-form model volumes against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from spinequant.synth.raster import Primitives, axis_voxels, rasterise
from spinequant.synth.spines import cap_volume, make_spine, necked_volume

SPACING = (0.5, 0.094, 0.094)
SHAPE = (20, 80, 80)
CENTRE = np.array([4.6, 3.7, 3.8])


def test_sphere_occupancy_integrates_to_its_volume():
    r = 1.0
    occ = rasterise(Primitives.of([(CENTRE, CENTRE, r, r)]), SHAPE, SPACING).occupancy
    voxel = np.prod(SPACING)
    assert occ.sum() * voxel == pytest.approx(4 / 3 * np.pi * r**3, rel=0.02)
    # the voxels at least half inside hold about the volume too
    assert (occ >= 0.5).sum() * voxel == pytest.approx(4 / 3 * np.pi * r**3, rel=0.08)


def test_neck_thinner_than_a_voxel_keeps_its_volume_in_the_occupancy():
    r, length = 0.05, 4.0
    a, b = CENTRE - [0, 0, length / 2], CENTRE + [0, 0, length / 2]
    occ = rasterise(Primitives.of([(a, b, r, r)]), SHAPE, SPACING).occupancy
    expected = np.pi * r**2 * length + 4 / 3 * np.pi * r**3
    assert occ.sum() * np.prod(SPACING) == pytest.approx(expected, rel=0.25)


def test_box_outside_the_volume_draws_nothing():
    far = np.array([100.0, 100.0, 100.0])
    assert rasterise(Primitives.of([(far, far, 1.0, 1.0)]), SHAPE, SPACING) is None


def test_membrane_is_a_shell():
    r = 1.0
    _, occ, mem, _ = rasterise(Primitives.of([(CENTRE, CENTRE, r, r)]), SHAPE, SPACING, membrane_um=0.1)
    shell = 4 / 3 * np.pi * (r**3 - (r - 0.1) ** 3)
    assert mem.sum() * np.prod(SPACING) == pytest.approx(shell, rel=0.05)
    assert mem.max() < 1.0 and occ.max() == 1.0


def test_closed_form_volumes():
    # a sphere sitting on the plane through its centre: half a sphere
    assert cap_volume(1.0, 0.0) == pytest.approx(2 / 3 * np.pi)
    assert cap_volume(1.0, 1.0) == pytest.approx(4 / 3 * np.pi)
    # a vanishing neck leaves the head alone
    assert necked_volume(1e-9, 2.0, 0.5) == pytest.approx(4 / 3 * np.pi * 0.125)
    # neck volume outside the head: cylinder of length lc minus the part inside the sphere
    rn, lc, r = 0.1, 1.5, 0.4
    fine = np.linspace(0, lc, 200001)
    inside = np.clip(r**2 - fine**2, 0, None)
    outside_area = np.pi * (rn**2 - np.minimum(rn**2, inside))
    expected = 4 / 3 * np.pi * r**3 + np.trapezoid(outside_area, fine)
    assert necked_volume(rn, lc, r) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kind", ["thin", "mushroom", "stubby", "filopodia"])
def test_spine_models_rasterise_to_their_volume_on_a_flat_surface(kind):
    rng = np.random.default_rng(5)
    base = CENTRE - [0, 0, 1.5]
    spine = make_spine(rng, kind, base, np.array([0.0, 0.0, 1.0]))
    sl, occ, _, _ = rasterise(spine.prims, SHAPE, SPACING, supersample_um=0.03)
    # keep what lies beyond the plane x = base_x (the "shaft" side is cut away)
    x = np.arange(sl[2].start, sl[2].stop) * SPACING[2]
    weight = np.clip((x - base[2]) / SPACING[2] + 0.5, 0, 1)
    volume = (occ * weight).sum() * np.prod(SPACING)
    assert volume == pytest.approx(spine.volume_analytic_um3, rel=0.12)


def test_brightness_is_interpolated_along_a_cone():
    a, b = CENTRE - [0, 0, 2.0], CENTRE + [0, 0, 2.0]
    r = rasterise(Primitives.of([(a, b, 0.5, 0.5)], [(1.0, 3.0)]), SHAPE, SPACING)
    x = np.arange(r.slices[2].start, r.slices[2].stop) * SPACING[2]
    row = r.value[r.occupancy.shape[0] // 2, r.occupancy.shape[1] // 2]
    inside = (x > a[2]) & (x < b[2])
    np.testing.assert_allclose(row[inside], 1.0 + 2.0 * (x[inside] - a[2]) / 4.0, atol=1e-5)


def test_axis_voxels_form_an_unbroken_line_at_any_voxel_size():
    a, b = np.array([1.0, 1.0, 1.0]), np.array([2.3, 3.1, 2.9])
    for spacing in [(0.5, 0.094, 0.094), (0.2, 0.03, 0.03)]:
        idx = np.stack(axis_voxels(np.stack([a, b]), (100, 200, 200), spacing), axis=1)
        order = idx[np.argsort(idx @ [1, 1, 1], kind="stable")]
        steps = np.abs(np.diff(order, axis=0)).max(axis=1)
        assert steps.max() == 1  # each voxel touches the next
