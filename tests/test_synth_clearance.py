"""Phantom spines never pass through each other; those that would are turned about the shaft."""

from __future__ import annotations

import numpy as np
import pytest

from spinequant.synth import make_phantom
from spinequant.synth.clearance import Occupied, _turned, placed_clear
from spinequant.synth.config import SpineConfig
from spinequant.synth.curves import Curve
from spinequant.synth.dendrites import place_spines
from spinequant.synth.spines import make_spine


def _straight_shaft(length_um=20.0, radius_um=0.5):
    z = np.linspace(0.0, length_um, 201)
    points = np.stack([z, np.full_like(z, 5.0), np.full_like(z, 5.0)], axis=1)
    return Curve(points, np.full(len(z), radius_um))


def _mushroom(rng, base, d):
    return make_spine(rng, "mushroom", np.asarray(base, float), np.asarray(d, float))


def _heads_intersect(spines) -> int:
    heads = [(s.head, s.head_diameter_um / 2) for s in spines if s.head_diameter_um > 0]
    return sum(np.linalg.norm(c1 - c2) < r1 + r2 - 1e-6
               for i, (c1, r1) in enumerate(heads) for c2, r2 in heads[i + 1:])


def test_an_overlapping_spine_is_turned_by_the_smallest_angle_that_clears():
    rng = np.random.default_rng(0)
    first = _mushroom(rng, [10.0, 5.5, 5.0], [0.0, 1.0, 0.0])
    occupied = Occupied([first])
    # the same spine again, a little further along the shaft: its head passes through the first
    second = _mushroom(np.random.default_rng(0), [10.2, 5.5, 5.0], [0.0, 1.0, 0.0])
    assert occupied.overlaps(second)
    centre, axis = np.array([10.2, 5.0, 5.0]), np.array([1.0, 0.0, 0.0])
    turned, angle = placed_clear(second, occupied, centre, axis)
    assert turned is not None and 0 < abs(angle) <= np.pi
    assert not occupied.overlaps(turned)
    # still on the shaft's surface, the same shape, and one 15-degree step less would not clear
    assert np.linalg.norm(turned.base[1:] - centre[1:]) == pytest.approx(0.5)
    assert np.linalg.norm(turned.head - turned.base) == pytest.approx(np.linalg.norm(second.head - second.base))
    if abs(angle) > np.radians(15):
        smaller = _turned(second, centre, axis, angle - np.sign(angle) * np.radians(15))
        assert occupied.overlaps(smaller)


def test_a_clear_spine_is_kept_as_drawn_and_touching_is_allowed():
    rng = np.random.default_rng(1)
    first = _mushroom(rng, [10.0, 5.5, 5.0], [0.0, 1.0, 0.0])
    r = first.head_diameter_um / 2
    # a copy moved along the shaft so that the heads just touch (2r apart) is not an overlap
    touching = _mushroom(np.random.default_rng(1), [10.0 + 2 * r + 0.03, 5.5, 5.0], [0.0, 1.0, 0.0])
    kept, angle = placed_clear(touching, Occupied([first]), np.array([10.0, 5.0, 5.0]), np.array([1.0, 0, 0]))
    assert kept is touching and angle == 0.0


def test_dense_spines_along_a_shaft_do_not_intersect():
    curve = _straight_shaft()
    cfg = SpineConfig(touching_fraction=0.5, type_fractions=(("mushroom", 0.7), ("stubby", 0.3)))
    box = np.array([20.0, 10.0, 10.0])
    spines = place_spines(np.random.default_rng(3), curve, box, cfg, density_per_um=3.0)
    assert len(spines) > 40  # turning, not dropping: the density holds
    assert _heads_intersect(spines) == 0
    occupied = Occupied()
    for sp in spines:
        assert not occupied.overlaps(sp)
        occupied.add(sp)


@pytest.mark.parametrize("preset", ["sted", "two_photon"])
def test_no_phantom_head_passes_through_another(preset):
    """Before the rule, 20 of the STED benchmark phantoms' 104 heads and 33 of two-photon's
    230 intersected another head."""
    ph = make_phantom(preset, seed=1001)
    t = ph.spines
    c = t[["head_z_um", "head_y_um", "head_x_um"]].to_numpy()
    r = t["head_diameter_um"].to_numpy() / 2
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert not np.any((d < r[:, None] + r[None] - 0.02) & (r[:, None] > 0) & (r[None] > 0))
