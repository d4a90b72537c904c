"""Spine measurements on analytic shapes with known size, at isotropic and anisotropic voxels."""

import numpy as np
import pytest
from _morphology_shapes import ball, grid, spine_on_dendrite, straight_spine

from spinequant.errors import InputError, VoxelSizeError
from spinequant.morphology import SPINE_COLUMNS, dendrite_skeleton, measure_spines

TWO_PHOTON = (0.5, 0.094, 0.094)
FINE = (0.2, 0.1, 0.1)


def _one(spine, dend, spacing, **kw):
    table = measure_spines(spine, dend, spacing, **kw)
    assert len(table) == 1
    return table.iloc[0]


@pytest.mark.parametrize("spacing", [TWO_PHOTON, FINE, (0.1, 0.05, 0.05)])
def test_mushroom_spine_matches_its_shape(spacing):
    spine, dend, truth = spine_on_dendrite(spacing, neck_length=0.8, neck_radius=0.15,
                                           head_radius=0.4)
    row = _one(spine, dend, spacing)
    assert row.length_um == pytest.approx(truth["length"], rel=0.08)
    assert abs(row.head_diameter_um - truth["head_diameter"]) <= spacing[2]
    assert row.neck_length_um == pytest.approx(truth["neck_length"], abs=0.15)
    assert row.has_neck and row.attached and row.dendrite_id == 1
    assert row.type == "mushroom" and row.type_rule.startswith("neuronstudio: head/neck > 1.1")
    base = row[["base_z_um", "base_y_um", "base_x_um"]].to_numpy(float)
    assert np.linalg.norm(base - truth["base"]) <= np.linalg.norm(spacing)
    assert row.neck_mean_diameter_um < row.head_diameter_um / 1.5


def test_same_spine_at_two_voxel_sizes_gives_the_same_micrometres():
    """Averaged over placements on the grid (one placement at 0.5 µm z steps can gain or lose
    a whole plane of the head), both voxel sizes give the same µm values."""
    columns = ["volume_um3", "length_um", "head_diameter_um", "neck_length_um", "surface_um2"]
    means = []
    for spacing in (TWO_PHOTON, FINE):
        rows = []
        for dz in np.linspace(0, spacing[0], 4, endpoint=False):
            spine, dend, _ = spine_on_dendrite(spacing, neck_length=0.9, neck_radius=0.25,
                                               head_radius=0.55, direction=(0.1, 1, 0.3),
                                               shift=(dz, 0.013, 0.029))
            rows.append(_one(spine, dend, spacing))
        assert {r.type for r in rows} == {"mushroom"}
        means.append({c: np.mean([r[c] for r in rows]) for c in columns})
    a, b = means
    assert a["volume_um3"] == pytest.approx(b["volume_um3"], rel=0.1)
    assert a["surface_um2"] == pytest.approx(b["surface_um2"], rel=0.15)
    assert a["length_um"] == pytest.approx(b["length_um"], rel=0.1)
    assert a["length_um"] == pytest.approx(2.0, rel=0.1)
    assert a["head_diameter_um"] == pytest.approx(b["head_diameter_um"], abs=0.094)
    # Where a neck meets the dendrite between two 0.5 µm planes is known to half a plane.
    assert a["neck_length_um"] == pytest.approx(b["neck_length_um"], abs=0.25)


@pytest.mark.parametrize("spacing", [TWO_PHOTON, FINE])
def test_ball_volume_surface_and_diameter(spacing):
    z, y, x = grid((4.0, 4.0, 4.0), spacing)
    labels = ball(z, y, x, (2.03, 2.01, 1.98), 0.8).astype(np.int32)
    row = _one(labels, np.zeros(labels.shape, bool), spacing)
    assert row.volume_um3 == pytest.approx(4 / 3 * np.pi * 0.8 ** 3, rel=0.08)
    # The marching-cubes mesh of a voxel mask over-reads a sphere by a few to ~20 % (staircase).
    assert 1.0 <= row.surface_um2 / (4 * np.pi * 0.8 ** 2) <= 1.25
    assert abs(row.head_diameter_um - 1.6) <= spacing[2]
    assert row.dendrite_id == 0 and not row.attached and np.isnan(row.position_um)


@pytest.mark.parametrize("spacing", [TWO_PHOTON, FINE])
def test_headless_long_protrusion_is_a_filopodium(spacing):
    spine, dend, truth = straight_spine(spacing, length=2.6, radius=0.15)
    row = _one(spine, dend, spacing)
    assert row.length_um == pytest.approx(2.6, rel=0.08)
    assert not row.has_neck
    assert row.type == "filopodia" and "length > 2 um" in row.type_rule


def test_thin_and_stubby_spines():
    spacing = (0.1, 0.05, 0.05)
    thin, dend, truth = spine_on_dendrite(spacing, neck_length=1.0, neck_radius=0.08,
                                          head_radius=0.15, extent=(4.0, 6.0, 6.0))
    row = _one(thin, dend, spacing)
    assert row.type == "thin" and "head < 0.35 um" in row.type_rule
    assert row.length_um == pytest.approx(truth["length"], rel=0.08)

    stub, dend, _ = spine_on_dendrite(spacing, neck_length=0.0, neck_radius=0.3,
                                      head_radius=0.35, extent=(4.0, 6.0, 6.0))
    row = _one(stub, dend, spacing)
    assert row.type == "stubby" and not row.has_neck and row.neck_length_um == 0
    assert np.isnan(row.neck_min_diameter_um)


def test_detached_head_reports_gap_to_dendrite():
    spacing = FINE
    z, y, x = grid((6.0, 8.0, 8.0), spacing)
    dend = (z - 3.03) ** 2 + (y - 2.02) ** 2 <= 0.8 ** 2
    head = ball(z, y, x, (3.03, 2.02 + 0.8 + 0.6 + 0.4, 4.0), 0.4).astype(np.int32)
    row = _one(head, dend, spacing)
    assert not row.attached and row.dendrite_id == 1
    assert row.tip_distance_um == pytest.approx(0.6 + 0.8, abs=0.15)
    # The spine still starts at the dendrite's surface: its length spans the gap.
    assert row.length_um == pytest.approx(0.6 + 0.8, abs=0.15)


@pytest.mark.parametrize("spacing", [TWO_PHOTON, FINE])
def test_mushroom_whose_neck_the_mask_lost_keeps_its_length(spacing):
    # A network's map often leaves a faint neck out: the head alone, off the dendrite.
    spine, dend, truth = spine_on_dendrite(spacing, neck_length=0.8, neck_radius=0.15,
                                           head_radius=0.4)
    z, y, x = grid((6.0, 8.0, 8.0), spacing)
    head_only = spine * (y >= truth["base"][1] + 0.8)
    row = _one(head_only, dend, spacing)
    assert not row.attached
    assert row.length_um == pytest.approx(truth["length"], rel=0.12)


def test_position_along_dendrite_and_nearest_neighbour():
    spacing = FINE
    z, y, x = grid((4.0, 5.0, 12.0), spacing)
    dend = (z - 2.03) ** 2 + (y - 2.02) ** 2 <= 0.7 ** 2
    labels = np.zeros(z.shape, np.int32)
    for k, xs in enumerate((3.0, 7.5), start=1):
        labels[ball(z, y, x, (2.03, 2.02 + 0.7 + 0.35, xs), 0.4) & ~dend] = k
    table = measure_spines(labels, dend, spacing)
    assert table.position_um[1] - table.position_um[0] == pytest.approx(4.5, abs=0.15)
    # The dendrite starts at x = 0: the first spine sits about 3 µm along it.
    assert table.position_um[0] == pytest.approx(3.0, abs=0.2)
    assert table.nn_distance_um.tolist() == pytest.approx([4.5, 4.5], abs=0.1)


def test_intensity_of_spine_head_and_neck_per_channel():
    spacing = (0.1, 0.05, 0.05)
    spine, dend, truth = spine_on_dendrite(spacing, neck_length=0.8, neck_radius=0.1,
                                           head_radius=0.3, extent=(4.0, 6.0, 6.0))
    z, y, x = grid((4.0, 6.0, 6.0), spacing)
    head_zone = y > truth["base"][1] + 0.8  # beyond the neck
    image = np.where(head_zone, 100.0, 10.0)
    two = np.stack([image, 2 * image])
    row = _one(spine, dend, spacing, image=two)
    assert row.neck_length_um == pytest.approx(0.8, abs=0.05)
    assert row.head_mean_intensity_c0 == pytest.approx(100, rel=0.1)
    assert row.neck_mean_intensity_c0 == pytest.approx(10, rel=0.3)
    assert row.spine_max_intensity_c1 == 200
    voxel = np.prod(spacing)
    assert row.spine_integrated_intensity_c0 == pytest.approx(image[spine > 0].sum() * voxel)
    one = _one(spine, dend, spacing, image=image)
    assert one.spine_mean_intensity == pytest.approx(row.spine_mean_intensity_c0)


def test_columns_and_empty_input():
    empty = measure_spines(np.zeros((3, 8, 8), np.int32), np.zeros((3, 8, 8), bool), TWO_PHOTON)
    assert list(empty.columns) == SPINE_COLUMNS and len(empty) == 0


def test_bad_input_says_what_is_wrong():
    labels = np.zeros((3, 8, 8), np.int32)
    with pytest.raises(InputError, match="shape"):
        measure_spines(labels, np.zeros((3, 8, 9), bool), TWO_PHOTON)
    with pytest.raises(InputError, match="integer labels"):
        measure_spines(labels + 0.5, labels > 0, TWO_PHOTON)
    with pytest.raises(VoxelSizeError):
        measure_spines(labels, labels > 0, (0.5, 0.1))
    with pytest.raises(InputError, match="rule set"):
        measure_spines(labels, labels > 0, TWO_PHOTON, config={"rule_set": "imaris"})
    with pytest.raises(InputError, match="image has shape"):
        measure_spines(labels, labels > 0, TWO_PHOTON, image=np.zeros((3, 8, 7)))


def test_mushroom_pointing_along_z_with_its_neck_between_planes():
    # Neck 0.25 µm long at 0.5 µm z steps: its length is not resolved, but the waist where
    # the spine meets the dendrite is; a clear waist (head > 1.5 x waist) still makes a neck.
    spacing = (0.5, 0.094, 0.094)
    spine, dend, truth = spine_on_dendrite(spacing, neck_length=0.25, neck_radius=0.12,
                                           head_radius=0.45, direction=(1, 0, 0), extent=(6.0, 6.0, 8.0))
    row = _one(spine, dend, spacing)
    assert row.type == "mushroom", row.type_rule
    assert row.has_neck and row.neck_min_diameter_um < 0.6 * row.head_diameter_um


@pytest.mark.parametrize("ndim", [3, 2])
def test_spine_row_keys_are_the_columns(ndim):
    # The table is built from these dicts with columns=spine_columns(ndim): a key that is
    # misspelt or missing would silently give a column of NaN.
    from spinequant.morphology._spine_geometry import SpineGeometry
    from spinequant.morphology.spines import spine_columns, spine_row

    sp = np.array([0.5, 0.1, 0.1][3 - ndim:])
    dend = np.zeros((5, 20, 20)[3 - ndim:], dtype=bool)
    dend[..., 2:4, :] = True
    skeleton = dendrite_skeleton(dend, sp)
    point = np.ones(ndim)
    g = SpineGeometry(attached=True, dendrite_id=1, base_um=point, tip_um=point, head_um=point,
                      centroid_um=point, volume_um3=1.0, surface_um2=1.0, length_um=1.0,
                      tip_distance_um=1.0, head_diameter_um=0.5, neck_length_um=0.5,
                      neck_min_diameter_um=0.2, neck_mean_diameter_um=0.2, head_neck_ratio=2.5, n_heads=1,
                      head_mask=np.ones((2,) * ndim, bool), neck_mask=np.zeros((2,) * ndim, bool))
    row = spine_row(7, g, skeleton, sp, neck_ratio=1.1, at_edge=False)
    assert list(row) == spine_columns(ndim)
    assert row["id"] == 7 and row["has_neck"] and row["dendrite_id"] == 1


def test_distances_to_the_dendrite_from_the_near_box_are_those_of_the_search_box(monkeypatch):
    """Each spine's distance map is first made in a box 2 µm around it and taken only where it
    is exact; spines farther out (detached heads, long ones) fall back to the 5 µm search box.
    Either way the distances are those of the search box, also at the volume's edges."""
    import edt

    from spinequant.boxes import box_within, grow_box
    from spinequant.morphology import spines as module
    from scipy import ndimage

    rng = np.random.default_rng(4)
    sp = np.array(TWO_PHOTON)
    shape = (20, 160, 400)
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]] * sp[:, None, None, None]
    dend = (z - 4.0) ** 2 + (y - 6.0) ** 2 <= 0.8 ** 2
    labels = np.zeros(shape, np.int32)
    centres = [(4.0, 6.0 + side * gap, cx) for cx in np.arange(1.0, 37.0, 2.2)
               for side, gap in [(rng.choice([-1, 1]), rng.uniform(1.0, 4.5))]]
    centres += [(0.2, 14.9, 20.0), (9.7, 6.0, 37.5)]          # cut by the volume's faces
    for k, c in enumerate(centres, start=1):
        ball = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 0.35 ** 2
        labels[ball & ~dend] = k
    calls, real = [], module._distance_in
    monkeypatch.setattr(module, "_distance_in", lambda *a: calls.append(a[0].size) or real(*a))
    search = np.ceil(module.DENDRITE_SEARCH_UM / sp).astype(int)
    for box in ndimage.find_objects(labels):
        wide, box = grow_box(box, search, shape), grow_box(box, 1, shape)
        region = (dend[wide] == 0) | (labels[wide] > 0)
        expected = edt.edt(region.view(np.uint8), anisotropy=tuple(sp))[box_within(box, wide)]
        np.testing.assert_array_equal(module._dendrite_distance(labels, dend, wide, box, tuple(sp)), expected)
    n = len(centres)
    assert n < len(calls) < 2 * n          # most from the near box; the far ones fell back
