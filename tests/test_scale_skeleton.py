"""Dendrite skeletons thinned tile by tile (spinequant.scale.tiled_skeleton) equal the whole-box ones."""

import numpy as np
import pytest
import zarr
from scipy import ndimage

from spinequant.boxes import grow_box
from spinequant.io import write_ome_zarr
from spinequant.morphology import dendrite_skeleton, measure_spines
from spinequant.pipeline.analyze import AnalyzeConfig
from spinequant.scale import ScaleConfig, chunked_labels
from spinequant.scale import tiled_skeleton
from spinequant.scale.measure import volume_skeleton, volume_tables
from spinequant.synth import make_phantom

SPACING = (0.5, 0.094, 0.094)
FIELDS = ("coords_um", "radius_um", "parent", "position_um", "degree", "end_extension_um")


@pytest.fixture(scope="module")
def thick():
    # Shafts of 1-1.5 µm radius (16 px): thicker than the first margin tried, so a tile's margin
    # must grow; seed 0 has three dendrites, two of them branched.
    return make_phantom("two_photon", seed=0, shape=(16, 384, 384), radius_um=(1.0, 1.5), n_dendrites=(2, 3))


def _boxes(labels):
    return {i: b for i, b in enumerate(ndimage.find_objects(labels), start=1) if b is not None}


def test_tiled_skeleton_is_the_whole_box_skeleton(thick):
    labels, sp = thick.dendrite_labels, np.array(SPACING)
    boxes = _boxes(labels)
    assert len(boxes) == 3
    limit = 80_000  # tiles of about 16 x 70 x 70 px with margins: 6-20 tiles per dendrite
    branches = 0
    for did, box in boxes.items():
        box = grow_box(box, 1, labels.shape)
        shape = tuple(s.stop - s.start for s in box)
        whole = dendrite_skeleton((labels[box] == did).astype(np.int32), sp)
        tiled = tiled_skeleton.tiled_dendrite_skeleton(labels, box, did, sp, max_voxels=limit)
        if did == 1:
            _, _, margin = tiled_skeleton._skeleton_voxels(labels, box, did, sp, shape, limit,
                                                           tiled_skeleton.FIRST_MARGIN_PX)
            assert margin > tiled_skeleton.FIRST_MARGIN_PX  # the margin grew to twice the radius
            assert len(tiled_skeleton.tile_grid(shape, tiled_skeleton._core_px(shape, limit, margin))) >= 4
        assert tiled.length_um(did) == pytest.approx(whole.length_um(1), rel=0.02)
        assert tiled.branch_points(did) == whole.branch_points(1)
        assert (tiled.parent < 0).sum() == (whole.parent < 0).sum()  # the tiles' skeletons joined
        # On these phantoms the margin makes the tiles' thinning that of the whole box exactly.
        for name in FIELDS:
            np.testing.assert_allclose(getattr(tiled, name), getattr(whole, name), atol=1e-9, err_msg=name)
        branches += whole.branch_points(1)
    assert branches == 2


def test_too_narrow_a_margin_breaks_the_skeleton(thick, monkeypatch):
    """Why the margin: tiles thinned with 4 px around them (a quarter of the radius) and no
    widening break the dendrite into pieces, so the test above checks something real."""
    labels, sp = thick.dendrite_labels, np.array(SPACING)
    box = grow_box(_boxes(labels)[1], 1, labels.shape)
    monkeypatch.setattr(tiled_skeleton, "FIRST_MARGIN_PX", 4)
    monkeypatch.setattr(tiled_skeleton.edt, "edt", lambda mask, anisotropy: np.zeros(mask.shape, np.float32))
    whole = dendrite_skeleton((labels[box] == 1).astype(np.int32), sp)
    tiled = tiled_skeleton.tiled_dendrite_skeleton(labels, box, 1, sp, max_voxels=80_000)
    assert (tiled.parent < 0).sum() > (whole.parent < 0).sum()


def test_spine_positions_on_the_tiled_skeleton(thick):
    labels, sp = thick.dendrite_labels, np.array(SPACING)
    boxes = _boxes(labels)
    whole = volume_skeleton(labels, sp, boxes, config=None)
    tiled = volume_skeleton(labels, sp, boxes, config=None, skeleton_max_voxels=80_000)
    assert len(tiled.label) == len(whole.label)
    a = measure_spines(thick.spine_labels, labels, sp, skeleton=whole)
    b = measure_spines(thick.spine_labels, labels, sp, skeleton=tiled)
    assert len(a) == len(b) > 100
    np.testing.assert_allclose(b["position_um"], a["position_um"], atol=1e-6)
    assert (b["dendrite_id"] == a["dendrite_id"]).all()


def test_chunked_tables_with_tiled_skeletons(tmp_path):
    phantom = make_phantom("two_photon", seed=0, shape=(16, 256, 384))
    path = tmp_path / "stack.ome.zarr"
    write_ome_zarr(path, phantom.image, SPACING)
    volume = zarr.open_group(str(path), mode="r")["0"]
    config = AnalyzeConfig(method="classical", export_meshes=False, export_roi=False, report=False)
    ch = chunked_labels(volume, SPACING, tmp_path / "work", config=config, scale=ScaleConfig(chunk_px=128))
    args = (ch["spine_labels"], ch["dendrite_labels"], volume, SPACING)
    kw = dict(blocks=ch["object_blocks"], objects=ch["objects"], spine_offsets=ch["spine_offsets"],
              dendrite_boxes=ch["dendrite_boxes"], dendrite_voxels=ch["dendrite_voxels"],
              config=ch["config"].morphology)
    largest = max(int(np.prod([s.stop - s.start for s in b])) for b in ch["dendrite_boxes"].values())
    spines, dendrites, skeleton, _ = volume_tables(*args, **kw)
    spines_t, dendrites_t, skeleton_t, _ = volume_tables(*args, **kw, skeleton_max_voxels=largest // 8)
    assert len(spines_t) == len(spines) > 20
    assert len(dendrites_t) == len(dendrites) >= 1
    assert dendrites_t["length_um"].to_numpy() == pytest.approx(dendrites["length_um"].to_numpy(), rel=0.02)
    np.testing.assert_allclose(spines_t["position_um"], spines["position_um"], atol=0.05)


def test_tiled_skeleton_through_a_soma():
    """A cell body 3 µm in radius (32 px) on branched dendrites: the margin grows to twice
    that, and the skeleton through it is still the whole-box one."""
    sp = np.array(SPACING)
    z, y, x = np.ogrid[:20, :320, :320]
    zu, yu, xu = (z - 10) * sp[0], (y - 160) * sp[1], (x - 160) * sp[2]
    mask = (zu ** 2 + yu ** 2 + xu ** 2) <= 3.0 ** 2                       # soma
    mask |= (zu ** 2 + xu ** 2 <= 1.0) & (y >= 8) & (y < 312)              # a dendrite through it
    mask |= (zu ** 2 + (yu - xu) ** 2 / 2 <= 0.8 ** 2) & (x >= 160) & (x < 300)  # a diagonal branch
    labels = mask.astype(np.int32)
    box = grow_box(_boxes(labels)[1], 1, labels.shape)
    whole = dendrite_skeleton(labels[box], sp)
    tiled = tiled_skeleton.tiled_dendrite_skeleton(labels, box, 1, sp, max_voxels=100_000)
    shape = tuple(s.stop - s.start for s in box)
    _, _, margin = tiled_skeleton._skeleton_voxels(labels, box, 1, sp, shape, 100_000, tiled_skeleton.FIRST_MARGIN_PX)
    assert margin >= 2 * 3.0 / sp[1]
    assert whole.branch_points(1) >= 1
    for name in FIELDS:
        np.testing.assert_allclose(getattr(tiled, name), getattr(whole, name), atol=1e-9, err_msg=name)
