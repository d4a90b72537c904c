"""The 3D head network (heads3d_real) that joins lean2d_real's head map on stacks."""

import dataclasses

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.segment import segment_maps
from spinequant.segment.neural import specs
from spinequant.segment.neural.card import read_card
from spinequant.segment.neural.predict import predict
from spinequant.segment.neural.stack_heads import check_partner, join_heads, stack_heads_model, stack_heads_models
from spinequant.synth import make_phantom


def test_heads3d_architecture_keeps_the_tile_shape_and_its_geometry():
    torch = pytest.importorskip("torch")
    from spinequant.segment.neural.architectures import build

    spec = {"kind": "heads3d", "filters": [4, 8, 16], "space_to_depth": 4}
    assert (specs.multiple_of(spec), specs.z_multiple_of(spec), specs.n_outputs(spec)) == (16, 2, 1)
    assert specs.is_3d(spec) and not specs.is_3d("lean2d")
    net = build(spec).eval()
    x = torch.zeros((2, 1, 4, 32, 48))
    x[0, 0, 1, 5, 7] = 1.0
    with torch.no_grad():
        out = net(x)
    assert out.shape == (2, 1, 4, 32, 48)
    # one voxel changed changes the map (its pixels are folded into channels and back)
    assert not torch.equal(out[0], out[1])


def test_the_shipped_pair_names_a_heads3d_partner_normalised_alike():
    card = read_card("lean2d_real")
    name, weight = stack_heads_model(card)
    partner = read_card(name)
    assert (name, weight) == ("heads3d_real", 0.5)
    assert partner.architecture["kind"] == "heads3d"
    check_partner(card, partner)
    assert partner.onnx["weights_sha256"] == partner.sha256            # the export is of these weights
    assert partner.onnx["max_difference_vs_torch"] < 1e-4


def test_bad_stack_heads_entries_are_refused_with_what_is_wrong():
    card = read_card("lean2d_real")
    with pytest.raises(InputError, match="invalid stack_heads"):
        stack_heads_model(dataclasses.replace(card, stack_heads={"model": "heads3d_real", "weight": 0}))
    with pytest.raises(InputError, match="not a heads3d one"):
        check_partner(card, read_card("lean2d"))
    partner = read_card("heads3d_real")
    other = dataclasses.replace(partner, normalisation={**partner.normalisation, "upper_percentile": 99.0})
    with pytest.raises(InputError, match="normalised unlike"):
        check_partner(card, other)
    assert stack_heads_model(dataclasses.replace(card, stack_heads={})) is None


def test_a_finer_z_partner_takes_only_stacks_whose_z_step_is_at_most_its_limit():
    card = read_card("lean2d_real")
    entry = {"model": "heads3d_real", "weight": 0.5,
             "finer_z": {"model": "heads3d_fine", "weight": 0.4, "max_z_step_um": 0.375}}
    both = dataclasses.replace(card, stack_heads=entry)
    assert stack_heads_model(both, (0.28, 0.075, 0.075)) == ("heads3d_fine", 0.4)
    assert stack_heads_model(both, (0.375, 0.1, 0.1)) == ("heads3d_fine", 0.4)
    assert stack_heads_model(both, (0.5, 0.094, 0.094)) == ("heads3d_real", 0.5)
    assert stack_heads_model(both) == ("heads3d_real", 0.5)          # no spacing: the entry's own
    assert stack_heads_models(both) == ["heads3d_real", "heads3d_fine"]
    bad = dataclasses.replace(card, stack_heads={**entry, "finer_z": {"model": "heads3d_fine", "weight": 0.4}})
    with pytest.raises(InputError, match="max_z_step_um"):
        stack_heads_model(bad, (0.2, 0.03, 0.03))


def test_join_heads_is_the_weighted_mean_and_keeps_only_what_is_read():
    rng = np.random.default_rng(0)
    h3, h2, spine = (rng.random((10, 6, 5)).astype(np.float16) for _ in range(3))
    want = 0.25 * h3.astype(np.float32) + 0.75 * h2.astype(np.float32)
    out = join_heads(h3.copy(), h2, 0.25)
    np.testing.assert_allclose(out.astype(np.float32), want, atol=1e-3)
    # with a support: the mean only where spine objects read the 2D maps, 0 elsewhere
    support = (0.5, 0.4)
    keep = (spine >= 0.5) | (h2 >= 0.4)
    out = join_heads(h3.copy(), h2, 0.25, spine=spine, head_support=support)
    np.testing.assert_allclose(out.astype(np.float32), np.where(keep, want, 0.0), atol=1e-3)
    assert 0 < keep.mean() < 1


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("two_photon", seed=4, shape=(24, 192, 192))


def test_stacks_get_the_joined_head_map_and_record_the_partner(phantom):
    spacing = phantom.spacing
    maps = segment_maps(phantom.image, spacing=spacing, method="lean2d_real", engine="onnx")
    diag = maps.diagnostics["stack_heads"]
    assert diag["model"] == "heads3d_real" and diag["model_sha256"] == read_card("heads3d_real").sha256
    assert diag["engine"] == "onnx"
    _, _, h2 = predict(phantom.image, spacing=spacing, model="lean2d_real", engine="onnx", dtype=np.float16)
    (h3,) = predict(phantom.image, spacing=spacing, model="heads3d_real", engine="onnx", dtype=np.float16)
    want = 0.5 * h2.astype(np.float32) + 0.5 * h3.astype(np.float32)
    np.testing.assert_allclose(maps.heads.astype(np.float32), want, atol=1e-3)
    # the 3D map is no copy of the 2D one: the mean moves the map where spines are
    assert np.abs(h3.astype(np.float32) - h2.astype(np.float32)).max() > 0.2


def test_2d_images_keep_the_2d_head_map(phantom):
    plane = phantom.image.max(axis=0)
    maps = segment_maps(plane, spacing=phantom.spacing[1:], method="lean2d_real", engine="onnx")
    assert "stack_heads" not in maps.diagnostics
    _, _, h2 = predict(plane[None], spacing=(0.5, *phantom.spacing[1:]), model="lean2d_real", engine="onnx")
    np.testing.assert_array_equal(maps.heads, h2[0])


def test_the_3d_head_network_is_no_method_of_its_own(phantom):
    with pytest.raises(InputError, match="joins a 2D model's head map"):
        segment_maps(phantom.image, spacing=phantom.spacing, method="heads3d_real")


def test_block_maps_are_reused_only_with_the_same_weights_of_both_networks():
    from spinequant.scale.maps import map_fingerprint

    lean = map_fingerprint((4, 64, 64), (0.5, 0.1, 0.1), "lean2d_real", (0.0, 1.0), 64, 0, "onnx")
    # every 3D partner's, the one for finer z steps too
    assert lean["weights"] == [read_card(m).sha256 for m in ("lean2d_real", "heads3d_real", "heads3d_fine_real")]
    assert map_fingerprint((4, 64, 64), (0.5, 0.1, 0.1), "lean2d", (0.0, 1.0), 64, 0, "onnx")["weights"] == [
        read_card("lean2d").sha256]


def test_only_the_3d_tiles_that_reach_a_read_voxel_run_and_those_voxels_keep_their_values():
    """A 3D network's tiles that cover no wanted voxel are skipped; every voxel all of whose
    tiles run gets the value of a run with every tile (phantom with the spines in one corner)."""
    from spinequant.segment.neural.tiling import sliding_window

    rng = np.random.default_rng(1)
    volume = rng.random((20, 160, 160)).astype(np.float32)
    calls = []

    def run(tiles):
        calls.append(len(tiles))
        return np.stack([t.mean(axis=(1, 2, 3), keepdims=True) + 0 * t for t in tiles])   # a tile's mean

    kw = dict(n_out=1, tile_size=64, overlap=16, tile_depth=8, batch_size=1)
    full = sliding_window(volume, run, **kw)[0]
    n_full = len(calls)
    calls.clear()
    corner = (slice(0, 6), slice(0, 40), slice(0, 40))
    wanted = lambda z, y, x: z[0] < 6 and y[0] < 40 and x[0] < 40   # noqa: E731  (tiles touching the corner)
    part = sliding_window(volume, run, wanted=wanted, **kw)[0]
    assert 0 < len(calls) < n_full / 4
    np.testing.assert_allclose(part[corner], full[corner], rtol=1e-6)
    # A map kept only where asked (plane by plane, 3D): those voxels as before, 0 elsewhere.
    keep = volume > 0.7
    kept = sliding_window(volume, run, sparse=(0, lambda planes, z: keep[z]), **kw)[0]
    np.testing.assert_array_equal(kept, np.where(keep, full, 0.0))
    half16 = sliding_window(volume, run, sparse=(0, lambda planes, z: keep[z]), dtype=np.float16, **kw)[0]
    np.testing.assert_array_equal(half16, np.where(keep, full.astype(np.float16), 0))


def test_the_3d_map_is_kept_only_where_it_is_joined_and_the_joined_map_is_unchanged(phantom):
    from spinequant.segment.neural.stack_heads import _read_planes, joined_head_map

    card = read_card("lean2d_real")
    dend, spine, h2 = predict(phantom.image, spacing=phantom.spacing, model="lean2d_real", engine="onnx",
                              dtype=np.float16)
    support = (0.25, 0.05)
    read = _read_planes(spine, h2, support, slice(None))
    assert 0.001 < read.mean() < 0.5
    (h3,) = predict(phantom.image, spacing=phantom.spacing, model="heads3d_real", engine="onnx", dtype=np.float16)
    seen = {}

    def predict_and_keep(*args, **kw):
        seen["out"] = predict(*args, **kw)
        return seen["out"]

    joined, alone, _ = joined_head_map(phantom.image, h2, spacing=phantom.spacing, card=card,
                                       predict=predict_and_keep, engine="onnx", levels=None, spine=spine,
                                       head_support=support)
    (kept,) = seen["out"]
    np.testing.assert_array_equal(kept, np.where(read, h3, 0))     # all its tiles ran where read
    assert alone is kept                                            # the partner's map, handed on
    np.testing.assert_array_equal(joined, join_heads(h3.copy(), h2, 0.5, spine=spine, head_support=support))
