"""Neural segmentation: architectures, model cards, normalisation, resampling, tiling, predict."""

import json

import numpy as np
import pytest
import torch

from spinequant.errors import InputError
from spinequant.segment.neural import ModelCard, build, load_model, predict, save_model
from spinequant.segment.neural.architectures import architecture, to_probabilities
from spinequant.segment.neural.normalise import NormaliseConfig, normalise, percentile_range
from spinequant.segment.neural.resample import (model_shape, resize, resize_window, to_input_grid,
                                               to_model_grid, window_span)
from spinequant.segment.neural.tiling import fit_tile, make_runner, sliding_window, tile_starts

TINY_2D = {"kind": "dual_unet2d", "base_filters": 4, "depth": 2, "separable": True,
           "space_to_depth": 2, "z_context": 1}
TINY_3D = {"kind": "unet3d", "base_filters": 2, "depth": 2, "aniso_stages": 1}


def _with_random_bn(net):
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("spec, shape, out", [
    ("deepd3_8", (2, 1, 64, 64), (2, 2, 64, 64)),
    (TINY_2D, (2, 3, 32, 32), (2, 2, 32, 32)),
    (TINY_3D, (1, 1, 4, 16, 16), (1, 3, 4, 16, 16)),
])
def test_architectures_output_shapes_and_probabilities(spec, shape, out):
    net = build(spec).eval()
    with torch.inference_mode():
        logits = net(torch.randn(shape))
    assert logits.shape == out
    p = to_probabilities(architecture(spec), logits)
    assert p.shape == (out[0], 2, *out[2:])
    assert float(p.min()) >= 0 and float(p.max()) <= 1


def test_deepd3_sizes_follow_base_filters():
    n = {k: sum(p.numel() for p in build(k).parameters()) for k in ("deepd3_8", "deepd3_16")}
    # Convolution weights scale with the square of the width: about 4x parameters.
    assert 3.5 < n["deepd3_16"] / n["deepd3_8"] < 4.1


def test_tile_starts_cover_the_axis():
    assert tile_starts(100, 40, 10) == [0, 30, 60]
    assert tile_starts(30, 40, 10) == [0]
    assert fit_tile(1056, 512, 32, 16) == 384           # three tiles of 384 cover 1056
    assert fit_tile(1056, 544, 32, 16) == 544           # or two of 544
    assert fit_tile(40, 512, 32, 16) == 48


def test_tiling_is_exact_for_a_pointwise_network():
    # A per-pixel function: blending must reproduce it exactly, whatever the tiling.
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(3, 70, 53)).astype(np.float32)

    def run(tiles):
        return np.stack([1 / (1 + np.exp(-tiles[:, 1])), tiles[:, 1] ** 2], axis=1)

    out = sliding_window(vol, run, tile_size=32, overlap=8, z_context=1, batch_size=5)
    assert out.shape == (2, 3, 70, 53)
    np.testing.assert_allclose(out[0], 1 / (1 + np.exp(-vol)), atol=1e-6)
    np.testing.assert_allclose(out[1], vol ** 2, atol=1e-5)


def test_tiled_prediction_matches_untiled():
    net = _with_random_bn(build(TINY_2D))
    spec = architecture(TINY_2D)
    run = make_runner(net, lambda lg: to_probabilities(spec, lg), device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(2, 96, 128)).astype(np.float32)
    whole = sliding_window(vol, run, tile_size=256, overlap=32, z_context=1, multiple=8)
    tiled = sliding_window(vol, run, tile_size=48, overlap=32, z_context=1, multiple=8, batch_size=7)
    diff = np.abs(whole - tiled)
    assert diff.mean() < 2e-3 and diff.max() < 0.03


def test_a_window_on_the_whole_volume_tile_grid_gets_the_whole_volume_values():
    # A network that sees zero padding at its tiles' edges: the maps depend on where the
    # tiles fall. A window told where it lies in the volume (grid=) runs the volume's tiles.
    net = _with_random_bn(build(TINY_2D))
    spec = architecture(TINY_2D)
    run = make_runner(net, lambda lg: to_probabilities(spec, lg), device=torch.device("cpu"))
    vol = np.random.default_rng(0).normal(size=(2, 150, 131)).astype(np.float32)
    kw = dict(tile_size=48, overlap=16, z_context=1, multiple=8)
    whole = sliding_window(vol, run, **kw)
    t = fit_tile(150 + 16, 48, 16, 8)                  # the tiles the whole volume uses
    own_diff = []
    for (y0, y1), (x0, x1) in [((40, 150), (0, 131)), ((10, 140), (10, 121)), ((0, 77), (60, 131))]:
        part = sliding_window(vol[:, y0:y1, x0:x1], run, grid=((y0, x0), (150, 131)), **kw)
        core = (slice(None), slice(None), slice(y0 + t if y0 else 0, y1 - t if y1 < 150 else 150),
                slice(x0 + t if x0 else 0, x1 - t if x1 < 131 else 131))
        inner = (slice(None), slice(None), slice(core[2].start - y0, core[2].stop - y0),
                 slice(core[3].start - x0, core[3].stop - x0))
        assert part[inner].size > 0
        np.testing.assert_allclose(part[inner], whole[core], atol=1e-6)
        own = sliding_window(vol[:, y0:y1, x0:x1], run, **kw)   # its own tiles: not the same
        own_diff.append(np.abs(own[inner] - whole[core]).max())
    assert max(own_diff) > 2e-5
    assert np.array_equal(sliding_window(vol, run, grid=((0, 0), (150, 131)), **kw), whole)


def test_resize_is_torch_linear_interpolation_without_torch():
    from torch.nn import functional as F

    rng = np.random.default_rng(2)
    vol = rng.random((4, 70, 53)).astype(np.float32)
    t = torch.from_numpy(vol)
    plane_wise = F.interpolate(t[:, None], size=(91, 38), mode="bilinear", align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(resize(vol, (4, 91, 38)), plane_wise, atol=2e-5)
    trilinear = F.interpolate(t[None, None], size=(7, 40, 66), mode="trilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(resize(vol, (7, 40, 66)), trilinear, atol=2e-5)
    maps = rng.random((2, 4, 70, 53)).astype(np.float16)     # channels first, float16 maps
    assert resize(maps, (4, 35, 20)).shape == (2, 4, 35, 20)


def test_resize_window_is_the_whole_volume_resampled():
    vol = np.random.default_rng(1).normal(size=(3, 60, 47)).astype(np.float32)
    for out in [(3, 83, 61), (3, 41, 30), (5, 60, 47)]:
        whole = resize(vol, out)
        for y0, y1, x0, x1 in [(0, 60, 0, 47), (13, 60, 0, 30), (7, 41, 11, 47)]:
            span = [window_span(n, m, a, b) for n, m, a, b in zip(vol.shape, out, (0, y0, x0), (3, y1, x1))]
            part = resize_window(vol[:, y0:y1, x0:x1], vol.shape, out, (0, y0, x0), span)
            np.testing.assert_allclose(part, whole[tuple(slice(a, b) for a, b in span)], atol=1e-4)


def test_tiling_3d_blocks_cover_the_stack():
    net = _with_random_bn(build(TINY_3D))
    spec = architecture(TINY_3D)
    run = make_runner(net, lambda lg: to_probabilities(spec, lg), device=torch.device("cpu"))
    vol = np.random.default_rng(0).normal(size=(11, 40, 36)).astype(np.float32)
    out = sliding_window(vol, run, tile_size=16, overlap=8, tile_depth=4, multiple=4, z_multiple=2)
    assert out.shape == (2, 11, 40, 36)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_normalise_maps_percentiles_and_ignores_outliers():
    img = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    cfg = NormaliseConfig(lower_percentile=0, upper_percentile=100)
    out = normalise(img, cfg)
    assert out.dtype == np.float32 and out.min() == -1 and out.max() == 1
    hot = img.copy()
    hot[0, 0, 0] = 1e9                                      # one hot pixel
    lo, hi = percentile_range(hot, NormaliseConfig(1, 99))
    assert hi < 1000 and lo == pytest.approx(np.percentile(hot, 1))
    assert normalise(hot, NormaliseConfig(1, 99)).max() == 3.0      # clipped


def test_resample_round_trip_and_shapes():
    assert model_shape((10, 100, 100), (0.5, 0.1, 0.1), (1.0, 0.2, 0.2)) == (5, 50, 50)
    assert model_shape((10, 100, 100), (0.5, 0.1, 0.1), (None, 0.102, 0.2)) == (10, 100, 50)
    z, y, x = np.meshgrid(np.linspace(0, 1, 12), np.linspace(0, 1, 40), np.linspace(0, 1, 50), indexing="ij")
    vol = np.sin(3 * x + 2 * y + z).astype(np.float32)
    fine = to_model_grid(vol, (0.5, 0.1, 0.1), (0.25, 0.05, 0.05))
    assert fine.shape == (24, 80, 100)
    back = to_input_grid(fine[None], vol.shape)[0]
    assert back.shape == vol.shape
    assert np.abs(back - vol)[2:-2, 2:-2, 2:-2].max() < 0.02


def _saved(tmp_path, spec=TINY_2D, voxel=(0.5, 0.1, 0.1)):
    net = _with_random_bn(build(spec))
    card = save_model(net, ModelCard(name="tiny", architecture=architecture(spec), voxel_size_um=voxel,
                                     tile_size=64, tile_overlap=16, tile_depth=4), tmp_path / "tiny")
    return net, card


def test_card_round_trip_and_hash(tmp_path):
    net, card = _saved(tmp_path)
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert len(saved["sha256"]) == 64 and saved["voxel_size_um"] == [0.5, 0.1, 0.1]
    loaded, card2 = load_model(tmp_path / "tiny.json")
    assert card2 == card
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(net(x), loaded(x))
    assert load_model(tmp_path)[1] == card                  # a folder with one model


def test_card_rejects_tampered_weights(tmp_path):
    _saved(tmp_path)
    w = tmp_path / "tiny.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256"):
        load_model(tmp_path / "tiny.json")


def test_unknown_model_name_is_an_input_error():
    with pytest.raises(InputError, match="No model"):
        load_model("no-such-model")


def test_predict_returns_maps_on_the_input_grid(tmp_path):
    _saved(tmp_path, voxel=(0.5, 0.1, 0.1))
    img = np.random.default_rng(0).integers(0, 4000, (5, 50, 61)).astype(np.uint16)
    # Input at a coarser voxel size: resampled to the model's and back.
    dend, spine = predict(img, spacing=(1.0, 0.15, 0.15), model=tmp_path / "tiny.json", batch_size=3)
    for m in (dend, spine):
        assert m.shape == img.shape and m.dtype == np.float16        # the default: half the memory
        assert m.min() >= 0 and m.max() <= 1
    threads = torch.get_num_threads()
    again, _ = predict(img, spacing=(1.0, 0.15, 0.15), model=tmp_path / "tiny.json", threads=1,
                       dtype=np.float32)
    assert again.dtype == np.float32 and torch.get_num_threads() == threads
    # float16 is the float32 map rounded: at most half a float16 step (2**-12 below 1).
    np.testing.assert_allclose(dend.astype(np.float32), again, atol=2.5e-4, rtol=0)


def test_float16_maps_are_the_float32_maps_rounded_plane_by_plane():
    # 2D network, no resampling: each plane is finished (weighted mean, clipped) in float32
    # and stored as float16 as soon as its tiles are in; the same numbers as the float32 run.
    net = _with_random_bn(build(TINY_2D))
    spec = architecture(TINY_2D)
    run = make_runner(net, lambda lg: to_probabilities(spec, lg), device=torch.device("cpu"))
    vol = np.random.default_rng(3).normal(size=(4, 70, 90)).astype(np.float32)
    kw = dict(tile_size=48, overlap=16, z_context=1, multiple=8, batch_size=5, as_list=True)
    full = sliding_window(vol, run, **kw)
    half = sliding_window(vol, run, dtype=np.float16, clip=True, **kw)
    for f, h in zip(full, half):
        assert h.dtype == np.float16 and f.dtype == np.float32
        np.testing.assert_array_equal(h, np.clip(f, 0, 1).astype(np.float16))


def test_predict_3d_model(tmp_path):
    _saved(tmp_path, spec=TINY_3D, voxel=(0.3, 0.1, 0.1))
    img = np.random.default_rng(0).normal(size=(6, 30, 20)).astype(np.float32)
    dend, spine = predict(img, spacing=(0.3, 0.1, 0.1), model=tmp_path / "tiny.json")
    assert dend.shape == img.shape and dend.dtype == np.float16
    assert np.all(dend.astype(np.float32) + spine <= 1 + 1e-3)   # softmax classes (float16 rounding)


def test_predict_rejects_2d_input(tmp_path):
    _saved(tmp_path)
    with pytest.raises(InputError, match="3D"):
        predict(np.ones((10, 10)), spacing=(1, 1, 1), model=tmp_path / "tiny.json")


def test_shipped_default_model_segments_a_phantom():
    from spinequant.synth import make_phantom

    ph = make_phantom("confocal", seed=5, shape=(24, 128, 128))
    dend, spine, heads = predict(ph.image, spacing=ph.spacing)   # default shipped model, hash checked

    def iou(pred, truth):
        return (pred & truth).sum() / (pred | truth).sum()

    assert iou(dend > 0.5, ph.semantic == 1) > 0.55
    assert iou(spine > 0.5, ph.semantic == 2) > 0.3
    # the head map peaks at the true heads: most true head centres lie on a strong response
    centres = np.round(ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy() / ph.spacing).astype(int)
    centres = centres[(centres >= 0).all(axis=1) & (centres < ph.image.shape).all(axis=1)]
    assert np.mean(heads[tuple(centres.T)] > 0.3) > 0.5


def test_shipped_model_cards_say_what_they_are_for_and_how_they_measure():
    """Intended use, limitations (what it learnt from) and benchmark results with the command
    and the spine-object settings behind them."""
    from spinequant.segment.neural.card import read_card

    for name in ("lean2d_real", "lean2d"):
        card = read_card(name)
        assert len(card.intended_use) > 50 and "phantoms" in card.limitations
        for bench in ("real2d", "phantoms"):
            assert card.benchmarks[bench]["command"].startswith("python benchmarks/")
        assert card.benchmarks["spine_objects"]["method"] in ("heads", "components")
        assert "held_out_phantoms" not in card.validation


def test_reflected_margins_equal_numpy_symmetric_padding():
    """Tiles are cut from the volume with reflected margins read on the fly; they must equal
    the same boxes of ``np.pad(mode="symmetric")``, also for margins wider than the volume
    (one plane with two planes of z context on each side)."""
    from spinequant.segment.neural.tiling import _Reflected

    rng = np.random.default_rng(0)
    for shape, pads in [((1, 7, 5), ((2, 2), (3, 9), (4, 4))), ((6, 20, 17), ((1, 1), (8, 20), (8, 3)))]:
        vol = rng.integers(0, 1000, shape).astype(np.uint16)
        padded = np.pad(vol, pads, mode="symmetric")
        lazy = _Reflected(vol, pads)
        assert lazy.shape == padded.shape
        for _ in range(50):
            size = [int(rng.integers(1, n + 1)) for n in padded.shape]
            start = [int(rng.integers(0, n - k + 1)) for n, k in zip(padded.shape, size)]
            box = tuple(slice(s, s + k) for s, k in zip(start, size))
            assert np.array_equal(lazy.cut(start, size), padded[box])


def test_tiles_normalised_one_batch_at_a_time_equal_a_normalised_copy():
    """``prepare`` (the elementwise normalisation, per batch of tiles) gives the maps of the
    network run on a normalised float32 copy of the stack."""
    rng = np.random.default_rng(1)
    vol = rng.integers(0, 4000, (3, 70, 90)).astype(np.uint16)
    run = lambda t: 1 / (1 + np.exp(-t[:, 1:2] * 0.7 - 0.1 * t[:, :1]))
    cfg = {"lower_percentile": 1.0, "upper_percentile": 99.5}
    kw = dict(n_out=1, tile_size=32, overlap=8, z_context=1, batch_size=3)
    copy = sliding_window(normalise(vol, cfg), run, **kw)
    batched = sliding_window(vol, run, prepare=lambda t: normalise(t, cfg, value_range=(1.0, 3000.0)), **kw)
    assert not np.array_equal(copy, batched)          # a different range shows
    lo_hi = percentile_range(vol, cfg)
    batched = sliding_window(vol, run, prepare=lambda t: normalise(t, cfg, value_range=lo_hi), **kw)
    assert np.array_equal(copy, batched)
