"""The network's maps averaged over orientations of the image (test-time augmentation)."""

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.pipeline import AnalyzeConfig, analyze
from spinequant.pipeline.analyze import resolve_config
from spinequant.segment.neural.orientations import oriented
from spinequant.synth import make_phantom, project_phantom


def _lopsided(tiles):
    """A 'network' that answers differently on a turned or mirrored tile: the input times a ramp."""
    ramp = np.linspace(0.0, 1.0, tiles.shape[-1])[None, :] ** 2 + np.linspace(0.0, 0.5, tiles.shape[-2])[:, None]
    return tiles[:, :1] * ramp + tiles[:, :1] ** 2


@pytest.fixture(scope="module")
def tiles():
    return np.random.default_rng(0).random((2, 3, 16, 16)).astype(np.float32)


def test_eight_orientations_answer_alike_on_turned_and_mirrored_tiles(tiles):
    run8 = oriented(_lopsided, 8)
    for change in (lambda t: np.rot90(t, 1, axes=(-2, -1)), lambda t: t[..., ::-1],
                   lambda t: np.rot90(t, 3, axes=(-2, -1))[..., ::-1, :]):
        assert np.allclose(run8(np.ascontiguousarray(change(tiles))), change(run8(tiles)), atol=1e-6)
    # the network alone does not, nor four mirror images on a quarter turn
    turn = lambda t: np.rot90(t, 1, axes=(-2, -1))  # noqa: E731
    assert not np.allclose(_lopsided(np.ascontiguousarray(turn(tiles))), turn(_lopsided(tiles)), atol=1e-3)
    run4 = oriented(_lopsided, 4)
    assert np.allclose(run4(np.ascontiguousarray(tiles[..., ::-1, :])), run4(tiles)[..., ::-1, :], atol=1e-6)
    assert not np.allclose(run4(np.ascontiguousarray(turn(tiles))), turn(run4(tiles)), atol=1e-3)
    assert oriented(_lopsided, 1) is _lopsided


def test_orientations_setting_is_checked_and_resolved_per_image():
    with pytest.raises(InputError, match="orientations must be 1, 4 or 8"):
        AnalyzeConfig(orientations=3)
    assert resolve_config(AnalyzeConfig(), ndim=2).orientations == 8
    assert resolve_config(AnalyzeConfig(), ndim=3).orientations == 1
    assert resolve_config(AnalyzeConfig(orientations=4), ndim=3).orientations == 4
    assert resolve_config(AnalyzeConfig(method="classical"), ndim=2).orientations == 1
    with pytest.raises(InputError, match="classical method has no network"):
        resolve_config(AnalyzeConfig(method="classical", orientations=8), ndim=2)


def test_a_mirrored_or_turned_projection_gives_the_same_spines():
    """On a projected phantom the shipped network alone finds 16 spines, 17 on the mirror image
    and 19 on the turned one; averaged over the eight orientations (the 2D default) it finds
    the same spines on all three, at the same places."""
    flat = project_phantom(make_phantom("confocal", seed=1001, shape=(24, 160, 160)))
    dx = flat.spacing[1]
    w = flat.image.shape[1]
    result = analyze(flat.image, spacing=flat.spacing, config=AnalyzeConfig(report=False))
    assert result.config.orientations == 8 and result.diagnostics["segment"]["orientations"] == 8
    heads = result.spines[["head_y_um", "head_x_um"]].to_numpy()
    assert len(heads) >= 10
    for image, back in (
            (flat.image[:, ::-1], lambda p: np.column_stack([p[:, 0], (w - 1) * dx - p[:, 1]])),
            (np.rot90(flat.image), lambda p: np.column_stack([p[:, 1], (w - 1) * dx - p[:, 0]]))):
        other = analyze(np.ascontiguousarray(image), spacing=flat.spacing, config=AnalyzeConfig(report=False))
        moved = back(other.spines[["head_y_um", "head_x_um"]].to_numpy())
        assert len(moved) == len(heads)
        assert np.linalg.norm(heads[:, None] - moved[None], axis=2).min(axis=1).max() < 0.1


def test_chunked_maps_average_the_same_orientations(tmp_path):
    """A block-wise run asked for four orientations gets the in-memory maps of four."""
    from spinequant.scale import block_grid, volume_levels
    from spinequant.scale.maps import MAPS, PARTNER, open_maps
    from spinequant.scale.stack_heads import partner_of
    from spinequant.scale.tile_maps import blend_block_maps, tile_plan, write_tile_sums
    from spinequant.segment import segment_maps

    image = make_phantom("two_photon", seed=1, shape=(4, 256, 192)).image
    spacing, method = (0.5, 0.094, 0.094), "lean2d_real"
    blocks = block_grid(image.shape, chunk_px=128, halo=0)
    levels = volume_levels(image, spacing, blocks, method=method)[0]
    group = open_maps(tmp_path / "m.zarr", image.shape, chunk_px=128, heads=True, fingerprint={"test": 1},
                      partner=True)
    plan = tile_plan(image.shape, spacing, method, blocks)
    for b in blocks:
        write_tile_sums(image, plan, b, tmp_path / "m.zarr", method=method, levels=levels, engine="onnx",
                        orientations=4)
    partner = partner_of(image, spacing, method, levels, "onnx", orientations=4)   # the 3D head network
    for b in blocks:
        blend_block_maps(plan, b, group, partner=partner)
    four, one = (segment_maps(image, spacing=spacing, method=method, engine="onnx", orientations=n) for n in (4, 1))
    for name, attr in (*zip(MAPS, MAPS), (PARTNER, "partner_heads")):
        chunked = np.asarray(group[name][...], np.float32)
        assert np.abs(chunked - getattr(four, attr).astype(np.float32)).max() <= 0.0005, name
        assert np.abs(chunked - getattr(one, attr).astype(np.float32)).max() > 0.01, name


def test_cli_records_the_orientations_and_refuses_them_without_a_network(tmp_path, capsys):
    import json

    import tifffile

    from spinequant.cli import main

    tifffile.imwrite(tmp_path / "plane.tif", np.random.default_rng(1).integers(0, 255, (64, 64)).astype(np.uint8))
    common = [str(tmp_path / "plane.tif"), "--voxel-size", "0.1", "0.1", "--quiet", "--no-meshes"]
    for flag, expected in (([], 8), (["--orientations", "4"], 4)):
        out = tmp_path / f"r{expected}"
        assert main(["analyze", *common, "--out", str(out), *flag]) == 0
        run = json.loads((out / "run.json").read_text())
        assert run["config"]["orientations"] == expected == run["diagnostics"]["segment"]["orientations"]
    assert main(["analyze", *common, "--out", str(tmp_path / "c"), "--method", "classical",
                 "--orientations", "8"]) == 2
    assert "classical method has no network" in capsys.readouterr().err
    assert not (tmp_path / "c" / "run.json").exists()
