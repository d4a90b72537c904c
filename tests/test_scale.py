"""Chunked analysis (spinequant.scale): block maps, stitched objects, the same answer as in memory."""

import json

import numpy as np
import pytest

from spinequant.cli import main
from spinequant.errors import InputError
from spinequant.evaluate.detection import match_spine_objects
from spinequant.io import write_ome_zarr
from spinequant.pipeline.analyze import AnalyzeConfig, analyze
from spinequant.scale import (ScaleConfig, analyze_chunked, block_grid, halo_px, maps_halo_um,
                              receptive_field_px, volume_levels, write_block_maps)
from spinequant.scale.blocks import window_align
from spinequant.scale.maps import map_fingerprint, open_maps
from spinequant.scale.objects import UnionFind, touching_pairs
from spinequant.segment import segment_maps
from spinequant.synth import make_phantom

SPACING = (0.5, 0.094, 0.094)
#: With the network, the float16 maps differ from the float32 in-memory ones by up to 0.00024
#: everywhere, so every spine's confidence (a mean of the spine map) moves by about that, and
#: the few voxels that cross the dendrite threshold (6 of 4.2 million on this phantom) move
#: the skeleton of a whole 100 µm dendrite, hence every position along it, by ~0.005 µm: these
#: two columns are held to the tolerances below but not to "95 % equal".
FLOAT16_SPREAD = ("position_um", "confidence")
#: Matched spines agree within: the maps are stored as float16 (0.0005 steps), which moves a
#: few voxels across the 0.1 threshold of the network's spine map; the classical shaft, found
#: from a skeleton of the window, can give a few voxels at a spine's base to the shaft or back
#: (22 of 4.2 million voxels on this phantom: 0.04 µm³ in one spine).
#: (22 of 4.2 million voxels on this phantom: 0.04 µm³ and 0.38 µm of geodesic length in one
#: spine). So: at least 95 % of the matched spines equal (to 1e-6), and all within these.
#: The learnt confidence is a sum of tree leaves: a feature moved across a split by the float16
#: maps changes it in a step (0.0026 at most here).
TOLERANCE = {"volume_um3": 0.05, "length_um": 0.4, "position_um": 0.05, "head_diameter_um": 0.05,
             "confidence": 0.01}

@pytest.fixture(scope="module")
def phantom():
    # 512 px wide: with 128-px blocks the classical windows (core + halo) are smaller than the
    # volume, so a halo too narrow would show; the network's (304-px halo) are at the border
    # blocks (432 px), and test_neural_inference checks windows well inside a volume.
    return make_phantom("two_photon", seed=0, shape=(16, 512, 512))


@pytest.fixture(scope="module")
def whole_maps(phantom):
    """The network's maps of the whole phantom in memory (read, never changed, by the tests)."""
    return segment_maps(phantom.image, spacing=SPACING, method="lean2d_real")


@pytest.fixture(scope="module")
def in_memory_run(phantom):
    """``analyze`` of the whole phantom in memory by ``method``, each made once for the module."""
    runs = {}

    def run(method):
        if method not in runs:
            config = AnalyzeConfig(method=method, export_meshes=False, export_roi=False, report=False)
            runs[method] = analyze(phantom.image, spacing=SPACING, config=config)
        return runs[method]
    return run


@pytest.fixture(scope="module")
def zarr_stack(phantom, tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "stack.ome.zarr"
    write_ome_zarr(path, phantom.image, SPACING)
    return path


def test_block_grid_tiles_the_volume():
    blocks = block_grid((4, 300, 200), chunk_px=96, halo=32)
    cover = np.zeros((300, 200), int)
    for b in blocks:
        cover[b.core] += 1
        assert all(w.start <= c.start and c.stop <= w.stop for c, w in zip(b.core, b.window))
    assert (cover == 1).all()
    assert halo_px(10.34, SPACING) == 112      # 110 px, aligned to 16
    with pytest.raises(InputError):
        block_grid((300, 200), chunk_px=96, halo=0)
    with pytest.raises(InputError):
        ScaleConfig(chunk_px=8)


def test_receptive_field_and_maps_halo_of_the_default_model():
    assert receptive_field_px({"kind": "dual_unet2d", "depth": 3, "space_to_depth": 2}) == 220
    # a block runs the whole volume's 288-px tiles inside its window: one tile (+2 px) of halo
    assert maps_halo_um("lean2d_real") == pytest.approx(290 * 0.094)
    assert halo_px(maps_halo_um("lean2d_real"), SPACING) == 304


@pytest.mark.parametrize("method", ["classical", "lean2d_real"])
def test_block_maps_equal_the_whole_volume_maps(method, phantom, tmp_path):
    image = phantom.image
    whole = segment_maps(image, spacing=SPACING, method=method)
    blocks = block_grid(image.shape, chunk_px=128, halo=halo_px(maps_halo_um(method), SPACING),
                        align=window_align(method, SPACING))
    levels = volume_levels(image, SPACING, blocks, method=method)[0]
    group = open_maps(tmp_path / "maps.zarr", image.shape, chunk_px=128, heads=whole.heads is not None,
                      fingerprint=map_fingerprint(image.shape, SPACING, method, levels, 128, 0, "test"),
                      partner=whole.partner_heads is not None)
    for block in blocks:
        write_block_maps(image, SPACING, block, group, method=method, levels=levels)
    assert (whole.partner_heads is not None) == (method != "classical")      # the network names a 3D partner
    for name, attr in (("dendrite",) * 2, ("spine",) * 2, ("heads",) * 2, ("partner", "partner_heads")):
        if getattr(whole, attr) is not None:
            diff = np.abs(np.asarray(group[name][...], np.float32) - getattr(whole, attr))
            # float16 storage: steps of 0.0005 near 1; the classical shaft (a skeleton of the
            # window) gives a few voxels at spine bases to the other map
            assert np.mean(diff > 1e-3) < 1e-5, name


def test_maps_stored_where_the_objects_read_them_give_the_same_objects(phantom, whole_maps):
    from spinequant.instances import InstanceConfig, spine_instances
    from spinequant.instances.pipeline import map_support
    from spinequant.scale.maps import MAP_DTYPE, keep_support

    whole = whole_maps
    full = {name: getattr(whole, attr).astype(MAP_DTYPE)
            for name, attr in (("dendrite",) * 2, ("spine",) * 2, ("heads",) * 2, ("partner", "partner_heads"))}
    # the network's default and a learnt confidence's low candidate floor
    for config in (InstanceConfig(), InstanceConfig(threshold=0.05, head_threshold=0.05)):
        support = map_support(config, heads=True)
        kept = {name: m.copy() for name, m in full.items()}
        keep_support(kept, support)
        inside = (full["spine"] >= support["spine_or_head"][0]) | (full["heads"] >= support["spine_or_head"][1])
        for name in ("spine", "heads", "partner"):
            assert np.array_equal(kept[name][inside], full[name][inside]) and not kept[name][~inside].any()
        shaft = full["dendrite"] >= support["dendrite"]
        assert np.array_equal(kept["dendrite"][shaft], full["dendrite"][shaft]) and not kept["dendrite"][~shaft].any()
        # most of the stack is background: stored as 0 there
        assert min(np.mean(kept[name] == 0) for name in kept) > 0.9 > np.mean(full["dendrite"] == 0)
        ref, got = (spine_instances(m["spine"], m["dendrite"], spacing=SPACING, config=config, head_prob=m["heads"],
                                    image=phantom.image, partner_head_prob=m["partner"]) for m in (full, kept))
        assert ref.spine_labels.max() > 20
        assert np.array_equal(ref.spine_labels, got.spine_labels)
        assert np.array_equal(ref.dendrite_labels, got.dendrite_labels)
        assert np.array_equal(ref.scores, got.scores)
    # without a head map only the dendrite map is thinned
    assert map_support(InstanceConfig(), heads=False) == {"dendrite": 0.99 * InstanceConfig().dendrite_threshold}


def test_block_objects_read_the_stored_maps_as_the_in_memory_objects_read_them(phantom, whole_maps, tmp_path):
    """The stored float16 maps are compared with the thresholds as float16, as in memory: a
    spine-map value that is the float16 of the threshold passes it in both runs."""
    import zarr

    from spinequant.instances import spine_instances
    from spinequant.scale.maps import MAP_DTYPE
    from spinequant.scale.objects import block_objects

    maps = {name: getattr(whole_maps, attr).astype(MAP_DTYPE)
            for name, attr in (("dendrite",) * 2, ("spine",) * 2, ("heads",) * 2, ("partner", "partner_heads"))}
    from spinequant.pipeline.analyze import resolve_config

    config = resolve_config(AnalyzeConfig(method="lean2d_real")).instances      # threshold 0.1
    # the rims of the spines at the threshold's float16 value, as rounding puts some there
    rim = (maps["spine"] >= 0.08) & (maps["spine"] < 0.12)
    maps["spine"][rim] = np.float16(config.threshold)
    assert float(np.float16(config.threshold)) < config.threshold and rim.sum() > 1000
    group = zarr.open_group(str(tmp_path / "maps.zarr"), mode="w", zarr_format=2)
    for name, data in maps.items():
        group.create_array(name, data=data, chunks=(16, 256, 256))
    (block,) = block_grid(phantom.image.shape, chunk_px=512, halo=0)
    got = block_objects(group, phantom.image, SPACING, block, config=config, shape=phantom.image.shape)
    ref = spine_instances(maps["spine"], maps["dendrite"], spacing=SPACING, config=config, head_prob=maps["heads"],
                          image=phantom.image, partner_head_prob=maps["partner"])
    assert got.spines.max() == ref.spine_labels.max() > 20
    assert np.array_equal(got.spines > 0, ref.spine_labels > 0)
    assert np.array_equal(got.dendrites, ref.dendrite_labels)
    # as float32 the rims fall below the threshold: other objects (what chunked runs read before)
    as32 = spine_instances(*(maps[n].astype(np.float32) for n in ("spine", "dendrite")), spacing=SPACING,
                           config=config, head_prob=maps["heads"].astype(np.float32), image=phantom.image)
    assert not np.array_equal(as32.spine_labels > 0, ref.spine_labels > 0)


def test_maps_are_made_again_when_the_objects_read_them_elsewhere(zarr_stack, tmp_path):
    from spinequant.instances import InstanceConfig

    def blocks_resumed(dendrite_threshold):
        config = AnalyzeConfig(method="classical", instances=InstanceConfig(dendrite_threshold=dendrite_threshold),
                               export_meshes=False, export_roi=False, report=False)
        result = analyze_chunked(zarr_stack, tmp_path / "out", config=config, chunk_px=256)
        return result.diagnostics["chunked"]["blocks_resumed"]

    assert blocks_resumed(0.5) == 0
    assert blocks_resumed(0.5) == 4
    assert blocks_resumed(0.4) == 0          # maps stored as 0 below 0.495 cannot serve a threshold of 0.4


def test_union_find_joins_labels_touching_across_a_face():
    a = np.zeros((3, 5), int); b = np.zeros((3, 5), int)
    a[1, 2] = 4; b[2, 3] = 7; b[0, 0] = 9               # 7 touches 4 diagonally; 9 touches nothing
    assert touching_pairs(a, b) == {(4, 7)}
    uf = UnionFind(10)
    uf.union(7, 4)
    assert uf.find(7) == uf.find(4) == 4 and uf.find(9) == 9


@pytest.mark.parametrize("method", ["classical", "lean2d_real"])
def test_chunked_run_gives_the_same_spines(method, in_memory_run, zarr_stack, tmp_path, monkeypatch):
    import spinequant.scale.measure as measure

    config = AnalyzeConfig(method=method, export_meshes=False, export_roi=False, report=False)
    ref = in_memory_run(method)
    out = tmp_path / "out"
    # the classical run is measured block by block as a volume above the whole-export size
    # (its dendrite skeletons tile by tile: boxes above 20,000 voxels); the network's is
    # written whole and measured as in memory
    scale = (ScaleConfig(skeleton_max_voxels=20_000, whole_export_max_voxels=0) if method == "classical"
             else None)
    tiled = []
    spy = measure.tiled_dendrite_skeleton
    monkeypatch.setattr(measure, "tiled_dendrite_skeleton", lambda *a, **k: tiled.append(1) or spy(*a, **k))
    ch = analyze_chunked(zarr_stack, out, config=config, chunk_px=128, scale=scale)
    assert bool(tiled) == (method == "classical")
    assert ch.diagnostics["chunked"]["blocks"] == 16
    assert len(ch.spines) == len(ref.spines) > 20
    assert len(ch.dendrites) == len(ref.dendrites)
    match = match_spine_objects(np.asarray(ch.spine_labels[...]), ref.spine_labels, spacing=SPACING,
                                max_distance_um=0.3, min_iou=0.9)
    assert match["tp"] == len(ref.spines)
    a, b = ref.spines.set_index("id"), ch.spines.set_index("id")
    true_ids, pred_ids = zip(*match["pairs"])
    for column, tol in TOLERANCE.items():
        x, y = a.loc[list(true_ids), column].to_numpy(float), b.loc[list(pred_ids), column].to_numpy(float)
        assert np.array_equal(np.isnan(x), np.isnan(y)), column
        diff = np.abs(x - y)[~np.isnan(x)]
        assert diff.max(initial=0) <= tol, column
        if method != "classical" and column in FLOAT16_SPREAD:
            continue
        assert diff.size == 0 or np.mean(diff <= 1e-6) >= 0.95, column
    run = json.loads((out / "run.json").read_text())
    assert run["input"]["chunked"]["chunk_px"] == 128 and run["counts"]["spines"] == len(ref.spines)
    assert (out / "spines.csv").exists() and (out / "results.ome.zarr").exists()


def test_a_volume_above_the_whole_export_size_keeps_the_learnt_confidence(in_memory_run, zarr_stack, tmp_path):
    # such a run never holds the image or labels: the confidence's image statistics are
    # streamed, the dropped candidates removed from the Zarr labels block by block and the kept
    # spines measured again block by block (docs/scale.md) -- the in-memory run's spines
    config = AnalyzeConfig(method="lean2d_real", export_meshes=False, export_roi=False, report=False)
    ref = in_memory_run("lean2d_real")
    out = tmp_path / "out"
    ch = analyze_chunked(zarr_stack, out, config=config, chunk_px=128,
                         scale=ScaleConfig(whole_export_max_voxels=0))
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["confidence"] == "auto" and not run["diagnostics"]["warnings"]
    assert run["diagnostics"]["below_min_confidence"] == ref.diagnostics["below_min_confidence"] > 0
    assert len(ch.spines) == len(ref.spines) > 20 and list(ch.spines["id"]) == list(range(1, len(ref.spines) + 1))
    labels = np.asarray(ch.spine_labels[...])
    assert set(np.unique(labels)) == set(range(len(ref.spines) + 1))          # relabelled 1..K, none left over
    match = match_spine_objects(labels, ref.spine_labels, spacing=SPACING, max_distance_um=0.3, min_iou=0.9)
    assert match["tp"] == len(ref.spines)
    a, b = ref.spines.set_index("id"), ch.spines.set_index("id")
    true_ids, pred_ids = zip(*match["pairs"])
    for column, tol in {**TOLERANCE, "nn_distance_um": 0.05}.items():
        x, y = a.loc[list(true_ids), column].to_numpy(float), b.loc[list(pred_ids), column].to_numpy(float)
        assert np.array_equal(np.isnan(x), np.isnan(y)), column
        assert np.abs(x - y)[~np.isnan(x)].max(initial=0) <= tol, column
    assert ch.dendrites["n_spines"].sum() == len(ref.spines)


@pytest.mark.parametrize("tile_voxels", [None, 6 * 256 * 256])      # one tile; 3 x 2 tiles, cut at the edges
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_streamed_image_statistics_equal_the_in_memory_ones(dtype, tile_voxels, monkeypatch):
    import spinequant.scale.maps as maps
    from spinequant.pipeline.spine_confidence import image_statistics
    from spinequant.scale.confidence import streamed_statistics

    if tile_voxels:
        monkeypatch.setattr(maps, "TILE_VOXELS", tile_voxels)
    rng = np.random.default_rng(0)
    image = (rng.gamma(2.0, 300.0, (6, 600, 300)) if dtype is np.float32 else rng.integers(0, 4000, (6, 600, 300))
             ).astype(dtype)
    assert len(list(maps.tiles(image.shape))) == (6 if tile_voxels else 1)
    labels = np.zeros(image.shape, np.uint32)
    labels[:, 100:300, 10:30], labels[1:4, 400:560, 50:80] = 1, 3           # dendrite 2 has no voxels
    import spinequant.pipeline.spine_confidence as sc
    small = 10_000                                                           # a strided sample, as in a large volume
    old = sc.PERCENTILE_SAMPLE
    try:
        import spinequant.scale.confidence as scc
        sc.PERCENTILE_SAMPLE = scc.PERCENTILE_SAMPLE = small
        ref, got = image_statistics(image, labels), streamed_statistics(image, labels)
    finally:
        sc.PERCENTILE_SAMPLE = scc.PERCENTILE_SAMPLE = old
    assert (got.p50, got.p99, got.shaft, got.size) == (ref.p50, ref.p99, ref.shaft, ref.size)
    np.testing.assert_array_equal(got.dendrite_ids, [1, 3])
    np.testing.assert_array_equal(got.dendrite_ids, ref.dendrite_ids)
    np.testing.assert_array_equal(got.dendrite_voxels, ref.dendrite_voxels)
    np.testing.assert_allclose(got.dendrite_means, ref.dendrite_means, rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 700, 530), (1, 257, 1000), (5, 300, 256)])
@pytest.mark.parametrize("k", [1, 7, 256, 1000, 10 ** 6])
def test_strided_sample_read_by_tiles_takes_the_in_memory_voxels(shape, k, monkeypatch):
    # every k-th voxel of the flattened volume, wherever the tiles cut its rows
    import spinequant.scale.maps as maps

    monkeypatch.setattr(maps, "TILE_VOXELS", shape[0] * 256 * 256)                # 256-px tiles
    volume = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    n = -(-volume.size // k)
    got = maps.strided_sample(volume, max_n=n)
    assert len(list(maps.tiles(shape))) > 1
    np.testing.assert_array_equal(np.sort(got), volume.reshape(-1)[::max(1, -(-volume.size // n))])


def test_network_levels_read_by_tiles_leave_out_the_same_cell_body_as_in_memory(monkeypatch):
    """A cell body in the volume: the levels and cell bodies of a chunked run (tile by tile)
    are the in-memory ones, with the body left out (levels near those of the same phantom
    without it)."""
    import spinequant.scale.maps as maps
    import spinequant.segment.neural.bodies as bodies
    from spinequant.segment.neural.bodies import levels_and_bodies
    from spinequant.segment.neural.normalise import NormaliseConfig, percentile_range
    from spinequant.synth import make_phantom

    monkeypatch.setattr(maps, "TILE_VOXELS", 24 * 256 * 256)                     # 256-px tiles
    config = NormaliseConfig(body_radius_um=2.5)
    kw = dict(seed=1001, shape=(24, 600, 530))                  # 7.6 M voxels: every 2nd sampled
    plain, soma = make_phantom("two_photon", **kw), make_phantom("two_photon", n_somata=(1, 1), **kw)
    assert soma.params["n_somata"] == 1 and len(list(maps.tiles(soma.image.shape))) > 1
    whole = percentile_range(soma.image, config)
    in_memory, found = levels_and_bodies(soma.image, config, spacing=soma.spacing)
    tiled, found_by_tiles = maps.network_levels(soma.image, soma.spacing, config)
    assert tiled == in_memory
    np.testing.assert_array_equal(found_by_tiles.bodies, found.bodies)
    np.testing.assert_array_equal(found_by_tiles.halo, found.halo)
    assert found.summary(soma.spacing)["found"] == 1
    reference, none = levels_and_bodies(plain.image, config, spacing=plain.spacing)
    assert none is None and reference == percentile_range(plain.image, config)   # no body: as before
    assert whole[1] > 2 * reference[1] and abs(in_memory[1] / reference[1] - 1) < 0.1
    assert maps.network_levels(plain.image, plain.spacing, config) == (reference, None)
    plane = soma.image[12:13]                       # one plane (a 2D image): levels as before
    assert levels_and_bodies(plane, config, spacing=soma.spacing) == (percentile_range(plane, config), None)
    monkeypatch.setattr(bodies, "BODY_MAX_BINS", 24 * 150 * 133 - 1)          # too large to search
    assert maps.network_levels(soma.image, soma.spacing, config) == (whole, None)
    assert levels_and_bodies(soma.image, config, spacing=soma.spacing) == (whole, None)


def test_base_values_read_by_tiles_equal_the_whole_volume_ones():
    import pandas as pd
    import zarr

    from spinequant.pipeline.spine_confidence import smoothed_at
    from spinequant.scale.confidence import tiled_base_values

    rng = np.random.default_rng(1)
    image = rng.gamma(2.0, 300.0, (7, 120, 90)).astype(np.float32)
    stored = zarr.create_array(store={}, shape=image.shape, chunks=(4, 32, 32), dtype=np.float32)
    stored[...] = image
    spacing = np.array([0.8, 0.1, 0.1])
    points = np.column_stack([rng.integers(0, n, 60) for n in image.shape]).astype(float)
    points[:6] = [[0, 0, 0], [6, 119, 89], [0, 60, 89], [3, 0, 45], [6, 5, 2], [2, 118, 1]]   # at the edges
    points *= spacing
    points[7] = np.nan                                                    # a spine without a base
    spines = pd.DataFrame(points, columns=["base_z_um", "base_y_um", "base_x_um"])
    ref = smoothed_at(image, spines, spacing)
    got = tiled_base_values(stored, spines, spacing, tile_px=16)          # many tiles, windows across them
    assert np.isnan(got[7]) and np.isfinite(np.delete(got, 7)).all()
    np.testing.assert_array_equal(got, ref)


def test_a_base_half_way_between_voxels_is_read_at_the_same_voxel_whatever_its_last_bit():
    # 14.147 µm / 0.094 µm is 150.5 voxels: the same spine measured on a block of a volume and
    # on the whole image came one bit apart, and the smoothed image was read at voxels 150 and
    # 151 (a confidence 0.01 apart in test_a_volume_above_the_whole_export_size_...)
    import pandas as pd

    from spinequant.pipeline.spine_confidence import base_voxels, smoothed_at

    x = np.array([14.147, np.nextafter(14.147, 0), np.nextafter(14.147, 20), 14.147 + 0.0471])
    assert len({v / 0.094 for v in x[:3]}) > 1                          # the bits do differ
    spines = pd.DataFrame({"base_y_um": np.full(4, 2.35), "base_x_um": x})
    assert base_voxels(spines, (0.094, 0.094), "yx").tolist() == [[25, 150]] * 3 + [[25, 151]]
    image = np.random.default_rng(0).gamma(2.0, 300.0, (50, 300)).astype(np.float32)
    values = smoothed_at(image, spines, (0.094, 0.094))
    assert values[0] == values[1] == values[2] != values[3]


def test_rerun_skips_finished_blocks_and_cli(zarr_stack, tmp_path):
    out = tmp_path / "out"
    args = ["analyze", str(zarr_stack), "--out", str(out), "--chunked", "--chunk-size", "256",
            "--method", "classical", "--no-meshes", "--no-roi", "--quiet"]
    assert main(args) == 0
    first = json.loads((out / "run.json").read_text())
    assert first["input"]["chunked"]["blocks_resumed"] == first["input"]["chunked"]["objects_resumed"] == 0
    (out / "chunked.work" / "maps.zarr" / "done" / "1_1").unlink()   # as if killed in the last block
    assert main(args) == 0
    second = json.loads((out / "run.json").read_text())
    assert second["input"]["chunked"]["blocks_resumed"] == 3
    assert second["input"]["chunked"]["objects_resumed"] == 4          # spine objects are resumed too
    assert second["counts"] == first["counts"]


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiff_is_read_lazily_for_chunked_runs(compression, tmp_path):
    import tifffile

    from spinequant.scale import open_volume

    data = np.random.default_rng(0).integers(0, 4000, (6, 2, 48, 64), dtype=np.uint16)
    path = tmp_path / ("s.tif" if compression is None else "s.ome.tif")
    tifffile.imwrite(path, data, imagej=compression is None, ome=compression is not None,
                     compression=compression, photometric="minisblack", metadata={"axes": "ZCYX"})
    stack = open_volume(path, channel=1, voxel_size=(0.5, 0.1, 0.1))
    assert type(stack.data).__name__ == "Array"                         # dask: nothing decoded yet
    assert np.array_equal(np.asarray(stack.data[:, 5:40, 7:50]), data[:, 1, 5:40, 7:50])


def test_max_memory_chooses_the_largest_block_that_fits():
    from spinequant.scale.memory import chunk_for_memory, predicted_peak

    shape, halo = (48, 20000, 20000), 304
    chunk = chunk_for_memory("4GB", shape, halo=halo, method="lean2d_real")
    assert chunk % 16 == 0 and chunk > 16
    assert predicted_peak(48 * (chunk + 2 * halo) ** 2, "lean2d_real") <= 4e9
    assert predicted_peak(48 * (chunk + 16 + 2 * halo) ** 2, "lean2d_real") > 4e9
    assert chunk_for_memory("8GB", shape, halo=halo, method="lean2d_real") > chunk
    assert chunk_for_memory("64GB", (48, 1000, 700), halo=halo, method="lean2d_real") == 1008   # no larger than the volume
    with pytest.raises(InputError, match="too small"):
        chunk_for_memory("600MB", shape, halo=halo, method="lean2d_real")
    with pytest.raises(InputError, match="memory size"):
        chunk_for_memory("lots", shape, halo=halo, method="lean2d_real")


@pytest.mark.parametrize("kept", ["in memory", "in files"])
def test_dendrites_touching_only_across_a_block_corner_are_joined(kept, tmp_path, monkeypatch):
    import zarr

    from spinequant.scale.objects import BlockObjects, StoredObjects, stitch

    blocks = block_grid((3, 32, 32), chunk_px=16, halo=0)
    # from files, stitching reads the sparse arrays it needs, never a block's dense window
    monkeypatch.setattr(StoredObjects, "__getitem__", lambda self, name: pytest.fail("dense window read"))

    def stitched(voxels, label=1):
        dend = {b.name: np.zeros((3, 16, 16), np.uint32) for b in blocks}
        for name, at in voxels.items():
            dend[name][at] = label
        objects = {b.name: BlockObjects(np.zeros((3, 16, 16), np.uint32), None, dend[b.name]) for b in blocks}
        if kept == "in files":
            for name, o in objects.items():
                o.save(tmp_path / f"{name}.npz")
            objects = StoredObjects(tmp_path, blocks)
        out = [zarr.zeros((3, 32, 32), chunks=(3, 16, 16), dtype=np.uint32) for _ in range(2)]
        return stitch(blocks, objects, *out), out[1][...]

    result, labels = stitched({"0_0": (0, 15, 15), "1_1": (1, 0, 0)})        # down-right corner
    assert result["n_dendrites"] == 1 and labels[0, 15, 15] == labels[1, 16, 16] == 1
    assert result["dendrite_boxes"][1] == (slice(0, 2), slice(15, 17), slice(15, 17))
    assert stitched({"0_1": (0, 15, 0), "1_0": (1, 0, 15)})[0]["n_dendrites"] == 1   # down-left
    assert stitched({"0_0": (0, 15, 15), "1_1": (2, 0, 0)})[0]["n_dendrites"] == 2   # 2 planes apart
    # a block's label 1 lay only in its halo (the core holds label 2): ids stay 1..D
    result, labels = stitched({"0_0": (0, 15, 15), "1_1": (2, 0, 0)}, label=2)
    assert result["n_dendrites"] == 2 and sorted(np.unique(labels)) == [0, 1, 2]
    assert sorted(result["dendrite_boxes"]) == [1, 2]


@pytest.fixture(scope="module")
def two_channel_tiff(phantom, tmp_path_factory):
    # the structural channel and a tagged one twice as bright in the true spines (ZCYX)
    from spinequant.io import write_tiff

    tagged = np.where(phantom.spine_labels > 0, 2.0, 1.0) * phantom.image.astype(float)
    data = np.stack([phantom.image, np.clip(tagged, 0, 65535).astype(np.uint16)], axis=1)
    return write_tiff(tmp_path_factory.mktemp("ratio") / "two.tif", data, SPACING, axes="ZCYX")


@pytest.mark.parametrize("background", [None, "auto"])
def test_chunked_ratio_streamed_equals_the_whole_arrays(two_channel_tiff, tmp_path, background):
    # the same chunked run written whole (spine_ratios on arrays) and above the whole-export
    # size (streamed band by band): the same labels, so the same means and RSDR
    from spinequant.pipeline.analyze import RatioConfig
    from spinequant.pipeline.batch import analyze_file

    config = AnalyzeConfig(method="classical", export_meshes=False, export_roi=False, report=False,
                           ratio=RatioConfig(background=background))
    runs = [analyze_chunked(two_channel_tiff, tmp_path / f"out{limit}", config=config, chunk_px=256, channel=0,
                            ratio_channel=1, scale=ScaleConfig(whole_export_max_voxels=limit))
            for limit in (2 ** 28, 0)]
    whole, streamed = (r.spines.set_index("id") for r in runs)
    assert len(whole) == len(streamed) > 20 and (whole.index == streamed.index).all()
    for column in ("tagged_mean_intensity", "rsdr"):
        np.testing.assert_allclose(streamed[column], whole[column], rtol=1e-9)
    assert np.nanmedian(whole["rsdr"]) > 1.0                      # the spines' enrichment is seen
    a, b = (r.diagnostics["ratio"] for r in runs)
    assert a["background_adu"] == b["background_adu"] and (background is None) == (a["background_adu"] is None)
    assert b["structure_dendrite_mean"] == pytest.approx(a["structure_dendrite_mean"], rel=1e-12)
    run = json.loads((tmp_path / "out0" / "run.json").read_text())
    assert run["input"]["channels"]["tagged"]["index"] == 1 and run["input"]["ratio_channel"] == 1
    # and the in-memory run of the same file agrees with the chunked one
    ref = analyze_file(two_channel_tiff, tmp_path / "mem", channel=0, ratio_channel=1, config=config).spines
    assert len(ref) == len(whole)
    assert np.nanmedian(ref["rsdr"]) == pytest.approx(np.nanmedian(whole["rsdr"]), rel=0.01)


def test_chunked_ratio_above_the_whole_export_size_refuses_the_psf_correction(two_channel_tiff, tmp_path):
    from spinequant.pipeline.analyze import RatioConfig

    config = AnalyzeConfig(method="classical", ratio=RatioConfig(psf_fwhm_um=(2.0, 0.4)))
    with pytest.raises(InputError, match="Leave out --psf-fwhm"):
        analyze_chunked(two_channel_tiff, tmp_path / "out", config=config, chunk_px=256, channel=0, ratio_channel=1,
                        scale=ScaleConfig(whole_export_max_voxels=0))
    assert not (tmp_path / "out").exists()


def test_work_folder_chunks_are_small_and_fill_each_block(tmp_path):
    """The block maps (and labels) are stored in chunks of at most 256 px that tile every
    block's core exactly: a block's halo then decodes a thin ring of chunks, not eight whole
    neighbouring blocks, and concurrent writers of different blocks never share a chunk."""
    from spinequant.scale.maps import MAPS, stored_chunk_px

    assert [stored_chunk_px(c) for c in (16, 128, 256, 512, 1024, 1040, 1008)] == [16, 128, 256, 256, 256, 208,
                                                                                    144]
    group = open_maps(tmp_path / "maps.zarr", (4, 2048, 2080), chunk_px=1040, heads=True,
                      fingerprint={"run": 1})
    assert {group[name].chunks for name in MAPS} == {(4, 208, 208)}
