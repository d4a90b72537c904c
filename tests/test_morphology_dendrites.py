"""Dendrite centrelines and the per-dendrite table on cylinders and a Y with known lengths."""

import numpy as np
import pandas as pd
import pytest
from _morphology_shapes import grid, segment_distance

from spinequant.io.swc import read_swc, write_swc
from spinequant.morphology import dendrite_centrelines, dendrite_skeleton, measure_dendrites

R = 0.6


def _y_shape(spacing):
    z, y, x = grid((4.0, 12.0, 20.0), spacing)
    a, b = np.array([2.0137, 6.0213, 1.0]), np.array([2.0137, 6.0213, 10.0])
    c1, c2 = np.array([2.0137, 2.0, 18.0]), np.array([2.0137, 10.0, 18.0])
    mask = ((segment_distance(z, y, x, a, b) <= R) | (segment_distance(z, y, x, b, c1) <= R)
            | (segment_distance(z, y, x, b, c2) <= R))
    # Centreline of the union of three capsules: three segments plus a cap at each free end.
    length = np.linalg.norm(b - a) + np.linalg.norm(c1 - b) + np.linalg.norm(c2 - b) + 3 * R
    return mask, length


@pytest.mark.parametrize("spacing", [(0.5, 0.094, 0.094), (0.2, 0.1, 0.1)])
def test_cylinder_length_and_radius(spacing):
    z, y, x = grid((4.0, 4.0, 12.0), spacing)
    # A flat-ended cylinder from x = 1 to x = 11 (10 µm), slightly tilted in y.
    a, b = np.array([2.013, 1.8, 1.0]), np.array([2.013, 2.3, 11.0])
    axis = (b - a) / np.linalg.norm(b - a)
    p = np.stack([z, y, x], -1) - a
    t = p @ axis
    mask = (np.linalg.norm(p - t[..., None] * axis, axis=-1) <= R) & (t >= 0) & (t <= np.linalg.norm(b - a))
    table = measure_dendrites(mask, spacing)
    assert len(table) == 1
    row = table.iloc[0]
    assert row.length_um == pytest.approx(np.linalg.norm(b - a), rel=0.03)
    assert row.mean_radius_um == pytest.approx(R, abs=0.05)
    assert row.n_branch_points == 0
    # One placement of a 1.2 µm thick tube on 0.5 µm planes gains ~10 % volume (3 planes).
    assert row.volume_um3 == pytest.approx(np.pi * R ** 2 * np.linalg.norm(b - a), rel=0.15)


@pytest.mark.parametrize("spacing", [(0.3, 0.1, 0.1), (0.5, 0.094, 0.094)])
def test_branched_dendrite_has_one_branch_point(spacing):
    mask, length = _y_shape(spacing)
    row = measure_dendrites(mask, spacing).iloc[0]
    assert row.n_branch_points == 1
    assert row.length_um == pytest.approx(length, rel=0.04)


def test_path_position_of_points_along_a_branched_dendrite():
    spacing = (0.3, 0.1, 0.1)
    mask, _ = _y_shape(spacing)
    skel = dendrite_skeleton(mask, spacing)
    # From the start (the trunk's free end at x = 1 - R) along the trunk, then up a branch.
    trunk = skel.position_of([(2.0, 6.0, 5.0), (2.0, 6.0, 9.0)])
    assert trunk[1] - trunk[0] == pytest.approx(4.0, abs=0.15)
    assert trunk[0] == pytest.approx(5.0 - (1.0 - R), abs=0.3)
    fork = np.array([2.0137, 6.0213, 10.0])
    tip = np.array([2.0137, 2.0, 18.0])
    on_branch = fork + 0.5 * (tip - fork)
    expected = (10.0 - (1.0 - R)) + 0.5 * np.linalg.norm(tip - fork)
    assert skel.position_of(on_branch)[0] == pytest.approx(expected, rel=0.04)
    assert np.isnan(dendrite_skeleton(np.zeros((3, 5, 5), bool), spacing).position_of((0, 0, 0))[0])


def test_centrelines_are_a_valid_swc_tree(tmp_path):
    spacing = (0.3, 0.1, 0.1)
    mask, length = _y_shape(spacing)
    swc = dendrite_centrelines(mask, spacing)
    assert (swc["type"] == 3).all()
    assert (swc["parent"] == -1).sum() == 1
    ids = swc["id"].to_numpy()
    assert set(swc["parent"]) - {-1} <= set(ids)
    position = dict(zip(ids, range(len(ids))))
    assert all(position[p] < position[i] for i, p in zip(ids, swc["parent"]) if p != -1)
    # The tree starts at the free end nearest the image's top-left corner (x = 1, y = 6).
    root = swc[swc["parent"] == -1].iloc[0]
    assert root.x == pytest.approx(1.0, abs=0.8) and root.y == pytest.approx(6.0, abs=0.3)
    assert swc["radius"].median() == pytest.approx(R, abs=0.06)
    back = read_swc(write_swc(tmp_path / "d.swc", swc))
    assert np.allclose(back[["x", "y", "z"]], swc[["x", "y", "z"]], atol=1e-3)
    # Summed edges plus the end caps give the dendrite's length.
    xyz = swc.set_index("id")[["x", "y", "z"]]
    child = swc[swc["parent"] != -1]
    edges = np.linalg.norm(xyz.loc[child["id"]].to_numpy() - xyz.loc[child["parent"]].to_numpy(), axis=1)
    skel = dendrite_skeleton(mask, spacing)
    assert edges.sum() + skel.end_extension_um.sum() == pytest.approx(skel.length_um(1), rel=1e-6)


def test_spine_counts_density_and_type_fractions():
    spacing = (0.2, 0.1, 0.1)
    z, y, x = grid((3.0, 3.0, 12.0), spacing)
    labels = np.zeros(z.shape, np.int32)
    labels[(z - 1.5) ** 2 + (y - 1.5) ** 2 <= 0.25] = 1
    labels[:, :, 70:] = np.where(labels[:, :, 70:] == 1, 2, 0)  # two dendrites: x < 7, x >= 7
    labels[:, :, 68:70] = 0
    spines = pd.DataFrame({"dendrite_id": [1, 1, 1, 2], "type": ["thin", "thin", "mushroom", "stubby"]})
    table = measure_dendrites(labels, spacing, spines).set_index("dendrite_id")
    assert table.loc[1, "n_spines"] == 3 and table.loc[2, "n_spines"] == 1
    assert table.loc[1, "fraction_thin"] == pytest.approx(2 / 3)
    assert table.loc[1, "fraction_filopodia"] == 0
    assert table.loc[1, "density_per_um"] == pytest.approx(3 / table.loc[1, "length_um"])
    assert table.loc[1, "length_um"] == pytest.approx(6.8, abs=0.25)
    assert table.loc[2, "length_um"] == pytest.approx(5.0, abs=0.25)


def test_no_dendrite_gives_empty_tables():
    empty = np.zeros((3, 10, 10), bool)
    assert len(measure_dendrites(empty, (0.5, 0.1, 0.1))) == 0
    assert len(dendrite_centrelines(empty, (0.5, 0.1, 0.1))) == 0
