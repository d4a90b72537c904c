"""Chunked network maps with every tile run once (spinequant.scale.tile_maps): each of the
volume's tiles is run by one block, the blocks' sums are added and divided, and the maps are
the in-memory ones, whatever the order the blocks run in, on one process or two workers, and
after a run stopped half way."""

import os
import signal

import numpy as np
import pytest
import zarr

from spinequant.scale import block_grid, volume_levels
from spinequant.scale.execute import BlockRunner
from spinequant.scale.maps import MAPS, PARTNER, open_maps
from spinequant.scale.stack_heads import partner_of
from spinequant.scale.tile_maps import (TILE_SUMS, blend_block_maps, run_tile_maps, tile_plan,
                                        write_tile_sums)
from spinequant.segment import segment_maps
from spinequant.synth import make_phantom

METHOD = "lean2d_real"


@pytest.fixture(scope="module")
def image():
    return make_phantom("two_photon", seed=1, shape=(4, 800, 736)).image


@pytest.fixture(scope="module")
def reference(image, tmp_path_factory):
    """Every block's maps at 0.094 µm, blocks in order (read, never changed, by the tests)."""
    root = tmp_path_factory.mktemp("tiles") / "ref.zarr"
    return (*_maps(image, (0.5, 0.094, 0.094), root), root)


def _maps(image, spacing, root, chunk=128, order=1, support=None):
    """Every block's tile sums, then every block's maps, blocks taken in ``order`` (1, -1)."""
    blocks = block_grid(image.shape, chunk_px=chunk, halo=0)
    levels = volume_levels(image, spacing, blocks, method=METHOD)[0]
    group = open_maps(root, image.shape, chunk_px=chunk, heads=True, fingerprint={"test": 1}, partner=True)
    plan = tile_plan(image.shape, spacing, METHOD, blocks)
    tiles = [write_tile_sums(image, plan, b, root, method=METHOD, levels=levels, engine="onnx")["tiles"]
             for b in blocks[::order]]
    partner = partner_of(image, spacing, METHOD, levels, "onnx")      # the 3D head network
    for b in blocks[::order]:
        blend_block_maps(plan, b, group, support=support, partner=partner)
    return group, plan, tiles, levels


@pytest.mark.parametrize("pixel_um", [0.094, 0.12])
def test_each_tile_runs_once_and_the_maps_are_the_in_memory_maps(image, pixel_um, reference, tmp_path):
    spacing = (0.5, pixel_um, pixel_um)            # 0.12 µm: resampled to the model's 0.094 µm and back
    if pixel_um == 0.094:
        group, plan, tiles, _, root = reference
    else:
        root = tmp_path / "a.zarr"
        group, plan, tiles, _ = _maps(image, spacing, root)
    owned = [(y, x) for ys, xs in plan.owned.values() for y in ys for x in xs]
    assert sorted(owned) == [(y, x) for y in range(len(plan.tiles.y.starts)) for x in range(len(plan.tiles.x.starts))]
    assert sum(tiles) == plan.n_tiles == len(owned) * plan.tiles.model_shape[0]
    assert len([t for t in tiles if t]) >= 12               # spread over (at least) 4 x 3 of the 7 x 6 blocks
    whole = segment_maps(image, spacing=spacing, method=METHOD, engine="onnx")
    for name, attr in (*zip(MAPS, MAPS), (PARTNER, "partner_heads")):
        diff = np.abs(np.asarray(group[name][...], np.float32) - getattr(whole, attr).astype(np.float32))
        # the sums are added in another order (and resampled window by window): at most one
        # float16 step (0.0005 near 1) apart, and that on a few voxels in a million (measured:
        # none at 0.094 µm, 1.7e-6 of them at 0.12 µm)
        assert diff.max() <= 0.0005, name
        assert np.mean(diff > 1e-4) < 1e-5, name
    assert not [p for p in (root / TILE_SUMS).iterdir() if p.name != "done"]   # pieces deleted
    other, *_ = _maps(image, spacing, tmp_path / "b.zarr", order=-1)
    for name in (*MAPS, PARTNER):                                      # any order of blocks: the same bits
        assert np.array_equal(group[name][...], other[name][...]), name


def test_the_3d_tiles_that_reach_no_read_voxel_of_a_core_are_skipped(image, tmp_path, monkeypatch):
    import importlib

    predict_module = importlib.import_module("spinequant.segment.neural.predict")
    real = predict_module.sliding_window
    tiles_3d = []

    def counting(volume, run, **kw):
        if kw.get("tile_depth", 1) > 1:
            def counted(tiles):
                tiles_3d.append(len(tiles))
                return run(tiles)
            return real(volume, counted, **kw)
        return real(volume, run, **kw)

    monkeypatch.setattr(predict_module, "sliding_window", counting)
    spacing = (0.5, 0.094, 0.094)
    heads_read = (0.25, 0.05)
    group, *_ = _maps(image, spacing, tmp_path / "all.zarr")
    every = sum(tiles_3d)
    tiles_3d.clear()
    kept, *_ = _maps(image, spacing, tmp_path / "kept.zarr", support={"dendrite": 0.0, "spine_or_head": heads_read})
    assert 0 < sum(tiles_3d) < 0.8 * every
    # where spine objects read the head map its joined value is the one every tile gives, and
    # the in-memory one with the same support (which also skips tiles), 0 elsewhere
    whole = segment_maps(image, spacing=spacing, method=METHOD, engine="onnx", head_support=heads_read)
    heads, all_tiles = (np.asarray(g["heads"][...], np.float32) for g in (kept, group))
    read = (np.asarray(kept["spine"][...], np.float32) >= np.float16(heads_read[0])) | (heads > 0)
    assert 0.001 < read.mean() < 0.9
    assert np.array_equal(heads[read], all_tiles[read])
    memory = whole.heads.astype(np.float32)
    objects_read = (np.asarray(kept["spine"][...], np.float32) >= np.float16(heads_read[0])) | \
        (np.maximum(heads, memory) >= np.float16(heads_read[1]))
    assert np.abs(heads - memory)[objects_read].max() <= 0.0005


def test_maps_on_two_workers_and_after_a_stop_are_the_same(image, reference, tmp_path):
    pytest.importorskip("distributed")
    spacing = (0.5, 0.094, 0.094)
    ref, plan, _, levels, _ = reference
    # two workers; one is killed (SIGKILL) while busy once a block's maps are done
    group = open_maps(tmp_path / "w2.zarr", image.shape, chunk_px=128, heads=True, fingerprint={"test": 1},
                      partner=True)
    with BlockRunner(workers=2) as runner:
        pids = runner.client.run(os.getpid)
        killed = []

        def kill_a_busy_worker(stage, done, total):
            busy = [w for w, keys in runner.client.processing().items() if keys]
            if done == 1 and busy and not killed:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])

        ran = run_tile_maps(runner, image, spacing, plan, group, method=METHOD, levels=levels, engine="onnx",
                            progress=kill_a_busy_worker)
    assert killed and sum(r["tiles"] for r in ran["tile_sums"]) <= plan.n_tiles
    for name in (*MAPS, PARTNER):
        assert np.array_equal(ref[name][...], group[name][...]), name
    # stopped (as the command line stops on a signal) once two blocks' maps are done, then run again
    group = open_maps(tmp_path / "stop.zarr", image.shape, chunk_px=128, heads=True, fingerprint={"test": 1},
                      partner=True)

    def stop(stage, done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tile_maps(BlockRunner(), image, spacing, plan, group, method=METHOD, levels=levels, engine="onnx",
                      progress=stop)
    ran = run_tile_maps(BlockRunner(), image, spacing, plan, group, method=METHOD, levels=levels, engine="onnx")
    assert ran["resumed"] == 2 and len(ran["blend"]) == len(plan.blocks) - 2
    assert 0 < sum(r["tiles"] for r in ran["tile_sums"]) < plan.n_tiles     # finished tile sums are kept
    for name in (*MAPS, PARTNER):
        assert np.array_equal(ref[name][...], group[name][...]), name
