"""2D images end to end through the real command line: 2D TIFF, LZW TIFF, PNG, JPEG, pixel sizes
of two values, and --project max/mean on a stack.

``analyze`` runs here with a stand-in for the analysis (it records what it was given), so these
tests check reading, the command line and run.json's ``input``; the 2D analysis itself is the
pipeline's (one end-to-end test at the bottom runs the real one).
"""

import json
from types import SimpleNamespace

import imagecodecs
import numpy as np
import pandas as pd
import pytest
import tifffile

from spinequant.cli import EXIT_INPUT, main
from spinequant.errors import InputError, VoxelSizeError
from spinequant.io import open_stack, project, read_stack, write_tiff
from spinequant.pipeline import batch
from spinequant.stack import Stack

YX = (0.09, 0.09)


def run(capsys, *args, command="info"):
    code = main([command, *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code, err, *patterns):
    assert code == EXIT_INPUT
    assert err.startswith("spinequant: error: ") and "Traceback" not in err
    text = " ".join(err.split())
    for p in patterns:
        assert p in text, f"{p!r} not in {text!r}"


@pytest.fixture
def grey():
    return np.random.default_rng(0).integers(1, 255, (16, 20), dtype=np.uint8)


@pytest.fixture
def stand_in(monkeypatch):
    """Replace the analysis by a recorder: what analyze_file passes on, and the run.json source."""
    seen = {}

    def fake_analyze(image, *, spacing=None, config=None, progress=None, keep_maps=True):
        if isinstance(image, Stack):
            image, spacing = image.data, image.spacing
        seen.update(image=np.asarray(image), spacing=tuple(spacing))
        return SimpleNamespace(spines=[], dendrites=[], diagnostics={})

    def fake_save(result, out_dir, *, source=None, progress=None):
        seen["source"] = source
        (out_dir / "run.json").write_text(json.dumps({"input": source}))

    monkeypatch.setattr(batch, "analyze", fake_analyze)
    monkeypatch.setattr(batch, "save_result", fake_save)
    return seen


def analyze(capsys, tmp_path, *args):
    return run(capsys, *args, "--out", tmp_path / "results", "--quiet", command="analyze")


# --- the Stack contract ------------------------------------------------------------------------

def test_stack_2d_has_a_yx_spacing_and_select_keeps_it_2d(grey):
    stack = Stack(grey, spacing=YX, axes="YX")
    assert stack.is_2d and stack.spatial_axes == "YX"
    assert stack.extent_um == (16 * 0.09, 20 * 0.09)
    assert stack.select().axes == "YX" and stack.select().data.shape == (16, 20)
    two = Stack(np.stack([grey, grey + 1]), spacing=YX, axes="CYX", channel_names=("a", "b"))
    assert two.select(channel=1).axes == "YX"
    with pytest.raises(InputError, match="2 channels.*--channel"):
        two.select()
    with pytest.raises(InputError, match="spatial axes YX but 3 voxel sizes.*Y X for a 2D image"):
        Stack(grey, spacing=(0.5, *YX), axes="YX")
    with pytest.raises(InputError, match="Z Y X for a volume"):
        Stack(grey[None], spacing=YX, axes="ZYX")
    assert not Stack(grey[None], spacing=(0.5, *YX)).is_2d


# --- 2D TIFF -------------------------------------------------------------------------------------

def test_2d_imagej_tiff_through_info(capsys, tmp_path, grey):
    path = write_tiff(tmp_path / "plane.tif", grey, YX)          # a 2D ImageJ TIFF, no z step
    with tifffile.TiffFile(path) as tf:
        assert "spacing" not in tf.imagej_metadata and tf.series[0].axes == "YX"
    code, out, _ = run(capsys, path)
    assert code == 0
    assert "axes YX" in out and "2D (one plane: no z)" in out
    assert "pixel size  y 0.09  x 0.09 µm  (from metadata)" in out
    assert "extent      y 1.44  x 1.8 µm" in out
    stack = read_stack(path)
    assert stack.spacing == YX and stack.axes == "YX"
    np.testing.assert_array_equal(stack.data, grey)


def test_2d_plain_tiff_without_metadata_needs_two_values(capsys, tmp_path, grey):
    tifffile.imwrite(tmp_path / "plain.tif", grey)
    code, out, _ = run(capsys, tmp_path / "plain.tif")
    assert code == 0 and "pixel size  UNKNOWN -- give it with --voxel-size Y X (µm)" in out
    with pytest.raises(VoxelSizeError, match=r"pixel size of .* is unknown.*--voxel-size 0\.094 0\.094"):
        read_stack(tmp_path / "plain.tif")
    code, out, _ = run(capsys, tmp_path / "plain.tif", "--voxel-size", *YX)
    assert code == 0 and "y 0.09  x 0.09 µm  (from override)" in out
    assert read_stack(tmp_path / "plain.tif", voxel_size=YX).spacing_source == "override"


def test_2d_plain_tiff_with_resolution_tags(tmp_path, grey):
    tifffile.imwrite(tmp_path / "cm.tif", grey, resolution=(1e4 / 0.09, 1e4 / 0.09), resolutionunit="CENTIMETER")
    assert read_stack(tmp_path / "cm.tif").spacing == YX


def test_2d_ome_tiff(tmp_path, grey):
    tifffile.imwrite(tmp_path / "p.ome.tif", grey, metadata={"axes": "YX", "PhysicalSizeX": 90,
                                                              "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 90,
                                                              "PhysicalSizeYUnit": "nm"})
    stack = read_stack(tmp_path / "p.ome.tif")
    assert stack.spacing == YX and stack.axes == "YX" and stack.metadata["format"] == "OME-TIFF"


def test_single_plane_stack_is_read_as_2d_without_a_made_up_z(tmp_path, grey):
    tifffile.imwrite(tmp_path / "one.ome.tif", grey[None], metadata={"axes": "ZYX", "PhysicalSizeX": 0.09,
                                                                     "PhysicalSizeY": 0.09})
    stack = read_stack(tmp_path / "one.ome.tif")
    assert stack.axes == "YX" and stack.spacing == YX


# --- voxel size with the wrong number of values, each way ---------------------------------------

def test_voxel_size_count_each_way(capsys, tmp_path, grey):
    plane = write_tiff(tmp_path / "plane.tif", grey, YX)
    stack = write_tiff(tmp_path / "stack.tif", np.stack([grey, grey]), (0.5, *YX))
    code, _, err = run(capsys, plane, "--voxel-size", 0.5, *YX)
    assert_error(code, err, "needs two numbers, Y X, because it is a 2D image", "3 were given",
                 "--voxel-size 0.094 0.094")
    code, _, err = run(capsys, stack, "--voxel-size", *YX)
    assert_error(code, err, "needs three numbers, Z Y X, because it is a stack", "2 were given",
                 "--voxel-size 0.5 0.094 0.094", "--project max")
    code, _, err = run(capsys, plane, "--voxel-size", 0.09)
    assert_error(code, err, "needs two numbers, Y X", "1 were given")
    code, _, err = run(capsys, stack, "--voxel-size", 1, 2, 3, 4)
    assert_error(code, err, "needs three numbers, Z Y X", "4 were given")
    with pytest.raises(VoxelSizeError, match="needs two numbers, Y X"):
        read_stack(plane, voxel_size=(0.5, *YX))
    assert read_stack(stack, voxel_size=(0.4, 0.1, 0.1)).spacing == (0.4, 0.1, 0.1)


def test_analyze_passes_a_2d_image_and_yx_spacing(capsys, tmp_path, grey, stand_in):
    path = write_tiff(tmp_path / "plane.tif", grey, YX)
    code, _, err = analyze(capsys, tmp_path, path)
    assert code == 0, err
    assert stand_in["spacing"] == YX
    np.testing.assert_array_equal(stand_in["image"], grey)
    assert stand_in["source"]["projection"] is None and stand_in["source"]["format"] == "ImageJ TIFF"


# --- compressed TIFF -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(16, 20), (3, 16, 20)])
def test_lzw_tiff_is_read(capsys, tmp_path, shape):
    data = np.random.default_rng(1).integers(0, 4000, shape, dtype=np.uint16)
    spacing = YX if len(shape) == 2 else (0.5, *YX)
    tifffile.imwrite(tmp_path / "lzw.tif", data, compression="lzw", imagej=True,
                     resolution=(1 / 0.09, 1 / 0.09),
                     metadata={"unit": "um", "spacing": 0.5, "axes": "ZYX"[3 - len(shape):]})
    code, out, _ = run(capsys, tmp_path / "lzw.tif")
    assert code == 0 and "from metadata" in out
    stack = read_stack(tmp_path / "lzw.tif")
    assert stack.spacing == spacing
    np.testing.assert_array_equal(stack.data, data)


def test_missing_codec_is_not_blamed_on_the_file(capsys, tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "lzw.tif", np.ones((16, 20), np.uint8), compression="lzw")

    def no_codec(self, *args, **kwargs):   # what tifffile raises when imagecodecs is missing
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", no_codec)
    code, _, err = run(capsys, tmp_path / "lzw.tif")
    assert_error(code, err, "stored with LZW compression", "needs the Python package 'imagecodecs'",
                 "the file itself is probably fine", "pip install imagecodecs")
    assert "damaged" not in err


# --- PNG and JPEG ------------------------------------------------------------------------------

def _png(path, data):
    path.write_bytes(imagecodecs.png_encode(data))
    return path


def _jpeg(path, data):
    path.write_bytes(imagecodecs.jpeg8_encode(data, level=95))
    return path


def test_png_grey_8_and_16_bit(capsys, tmp_path, grey):
    for data in (grey, grey.astype(np.uint16) * 200):
        path = _png(tmp_path / "g.png", data)
        stack = read_stack(path, voxel_size=YX)
        assert stack.axes == "YX" and stack.spacing == YX and stack.dtype == data.dtype
        np.testing.assert_array_equal(stack.data, data)
    code, out, _ = run(capsys, path)
    assert code == 0 and "format      PNG" in out and "--voxel-size Y X" in out


@pytest.mark.parametrize("writer, suffix", [(_png, ".png"), (_jpeg, ".jpg"), (_jpeg, ".jpeg")])
def test_grey_stored_as_rgb_is_read_as_grey(tmp_path, grey, writer, suffix):
    path = writer(tmp_path / f"rgbgrey{suffix}", np.stack([grey] * 3, axis=-1))
    stack = read_stack(path, voxel_size=YX)
    assert stack.axes == "YX" and stack.shape == (16, 20)
    assert stack.metadata["stored_as_rgb"] is True and not stack.metadata["rgb"]
    if suffix == ".png":
        np.testing.assert_array_equal(stack.data, grey)


def test_grey_stored_as_rgba_png_ignores_alpha(tmp_path, grey):
    path = _png(tmp_path / "rgba.png", np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1))
    np.testing.assert_array_equal(read_stack(path, voxel_size=YX).data, grey)


@pytest.mark.parametrize("writer, suffix", [(_png, ".png"), (_jpeg, ".jpg")])
def test_true_colour_asks_for_a_channel(capsys, tmp_path, grey, writer, suffix, stand_in):
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    path = writer(tmp_path / f"colour{suffix}", colour)
    code, _, err = analyze(capsys, tmp_path, path, "--voxel-size", *YX)
    assert_error(code, err, "is an RGB colour image (0: red, 1: green, 2: blue)", "--channel N")
    code, _, err = analyze(capsys, tmp_path, path, "--voxel-size", *YX, "--channel", 1)
    assert code == 0, err
    assert stand_in["image"].shape == (16, 20) and stand_in["spacing"] == YX
    if suffix == ".png":
        np.testing.assert_array_equal(stand_in["image"], 255 - grey)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_png_and_jpeg_need_the_pixel_size(capsys, tmp_path, grey, suffix, stand_in):
    path = (_png if suffix == ".png" else _jpeg)(tmp_path / f"g{suffix}", grey)
    fmt = "PNG" if suffix == ".png" else "JPEG"
    code, _, err = analyze(capsys, tmp_path, path)
    assert_error(code, err, f"pixel size of '{path}' is unknown: {fmt} files do not record it",
                 "--voxel-size 0.094 0.094")
    assert not (tmp_path / "results").exists()
    code, _, err = analyze(capsys, tmp_path, path, "--voxel-size", *YX)
    assert code == 0, err
    assert stand_in["spacing"] == YX and stand_in["source"]["format"] == fmt


def test_damaged_png(capsys, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    code, _, err = run(capsys, tmp_path / "bad.png")
    assert_error(code, err, "cannot be decoded as a PNG image", "Copy the file again")


def test_folder_scan_picks_up_png_jpeg_and_tif(tmp_path, grey):
    _png(tmp_path / "a.png", grey)
    _jpeg(tmp_path / "b.jpg", grey)
    _jpeg(tmp_path / "c.JPEG", grey)
    write_tiff(tmp_path / "d.tif", grey, YX)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in batch.find_stacks(tmp_path)] == ["a.png", "b.jpg", "c.JPEG", "d.tif"]


# --- projections --------------------------------------------------------------------------------

@pytest.fixture
def zstack(tmp_path):
    data = np.zeros((3, 4, 5), np.uint16)
    data[0, 0, 0], data[1, 0, 0], data[2, 0, 0] = 10, 40, 1      # max 40, mean 17
    data[2, 3, 4] = 9                                            # max 9, mean 3
    return data, write_tiff(tmp_path / "z.tif", data, (0.5, 0.1, 0.1))


@pytest.mark.parametrize("how, top, corner, dtype", [("max", 40, 9, np.uint16), ("mean", 17, 3, np.float32)])
def test_project_values_and_spacing(zstack, how, top, corner, dtype):
    data, path = zstack
    flat = read_stack(path, project=how)
    assert flat.axes == "YX" and flat.shape == (4, 5) and flat.spacing == (0.1, 0.1)
    assert flat.dtype == dtype and flat.data[0, 0] == top and flat.data[3, 4] == corner
    assert flat.data.sum() == pytest.approx(top + corner)
    assert flat.metadata["projection"] == how and flat.metadata["projected_planes"] == 3
    assert flat.metadata["projected_z_um"] == 0.5


def test_project_keeps_channels_and_needs_no_z_step(tmp_path):
    data = np.random.default_rng(2).integers(1, 200, (3, 2, 6, 7), dtype=np.uint8)   # Z C Y X
    tifffile.imwrite(tmp_path / "zc.tif", data, imagej=True, resolution=(10, 10),
                     metadata={"unit": "um", "axes": "ZCYX"})                       # no z step
    with pytest.raises(VoxelSizeError, match="but not Z"):
        read_stack(tmp_path / "zc.tif", channel=1)
    stack = open_stack(tmp_path / "zc.tif", require_spacing=False)
    both = project(stack, "max")
    assert both.axes == "CYX" and both.spacing == (0.1, 0.1) and both.metadata["projected_z_um"] is None
    one = read_stack(tmp_path / "zc.tif", channel=1, project="max")
    np.testing.assert_array_equal(one.data, data[:, 1].max(axis=0))
    assert read_stack(tmp_path / "zc.tif", channel=1, project="max", voxel_size=(0.2, 0.2)).spacing == (0.2, 0.2)


def test_project_errors(capsys, tmp_path, grey, zstack):
    plane = write_tiff(tmp_path / "plane.tif", grey, YX)
    with pytest.raises(InputError, match="already a 2D image.*Leave out --project"):
        read_stack(plane, project="max")
    with pytest.raises(InputError, match="Unknown projection 'median'"):
        read_stack(zstack[1], project="median")
    with pytest.raises(SystemExit) as exit_info:       # argparse refuses it before anything is read
        main(["analyze", str(zstack[1]), "--out", str(tmp_path / "r"), "--project", "median"])
    assert exit_info.value.code == 2 and "invalid choice: 'median'" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["max", "mean"])
def test_analyze_project_through_the_cli_records_it(capsys, tmp_path, zstack, stand_in, how):
    data, path = zstack
    code, _, err = analyze(capsys, tmp_path, path, "--project", how)
    assert code == 0, err
    assert stand_in["spacing"] == (0.1, 0.1) and stand_in["image"].shape == (4, 5)
    expected = data.max(axis=0) if how == "max" else data.mean(axis=0)
    np.testing.assert_allclose(stand_in["image"], expected)
    run_json = json.loads((tmp_path / "results" / "run.json").read_text())
    assert run_json["input"]["projection"] == how


def test_folder_run_passes_the_projection_and_reruns_when_it_changes(tmp_path, zstack, stand_in, monkeypatch):
    from spinequant._json import to_json
    from spinequant.config import config_to_dict

    def complete_run(result, out_dir, *, source=None, progress=None):   # what a finished run.json holds
        stand_in["runs"] = stand_in.get("runs", 0) + 1
        stand_in["source"] = source
        config = to_json(config_to_dict(batch.resolve_config(None)))
        (out_dir / "run.json").write_text(json.dumps({"complete": True, "config": config, "input": source}))

    monkeypatch.setattr(batch, "save_result", complete_run)
    folder = tmp_path / "in"
    folder.mkdir()
    write_tiff(folder / "z.tif", zstack[0], (0.5, 0.1, 0.1))
    command = ["analyze", str(folder), "--out", str(tmp_path / "out"), "-q"]
    assert main([*command, "--project", "max"]) == 0
    assert stand_in["source"]["projection"] == "max" and stand_in["image"].shape == (4, 5)
    assert main([*command, "--project", "max"]) == 0 and stand_in["runs"] == 1     # complete: skipped
    assert main([*command, "--project", "mean"]) == 0 and stand_in["runs"] == 2    # other projection: re-run
    assert stand_in["source"]["projection"] == "mean"


# --- the real pipeline on a 2D image ------------------------------------------------------------

def test_analyze_png_end_to_end(capsys, tmp_path):
    image = np.zeros((64, 64), np.uint8)
    image[30:34, 4:60] = 200                                   # a shaft
    image[20:30, 20:23] = 180                                  # a spine
    path = _png(tmp_path / "cell.png", image)
    code, _, err = run(capsys, path, "--out", tmp_path / "r", "--quiet", "--method", "classical",
                       "--voxel-size", *YX, command="analyze")
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "run.json").read_text())["input"]["spacing_um"] == list(YX)
    spines = pd.read_csv(tmp_path / "r" / "spines.csv")
    assert "area_um2" in spines and "volume_um3" not in spines


@pytest.mark.parametrize("how", ["max", "mean"])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_chunked_project_makes_the_projection_without_reading_the_stack_whole(capsys, tmp_path, stand_in,
                                                                              monkeypatch, how, compression):
    # --chunked --project: the TIFF is opened lazily (a memory map, or chunk by chunk when
    # compressed) and projected plane by plane; the same 2D image as the in-memory projection
    from spinequant.io import tiff

    data = np.random.default_rng(3).integers(0, 4000, (6, 40, 50)).astype(np.uint16)
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(10, 10), compression=compression,
                     metadata={"unit": "um", "spacing": 0.5, "axes": "ZYX"})
    monkeypatch.setattr(tiff, "_decode", lambda *a: pytest.fail("the whole stack was read"))
    code, _, err = analyze(capsys, tmp_path, path, "--project", how, "--chunked")
    assert code == 0, err
    expected = data.max(axis=0) if how == "max" else data.mean(axis=0, dtype=np.float64).astype(np.float32)
    np.testing.assert_array_equal(stand_in["image"], expected)
    assert stand_in["spacing"] == (0.1, 0.1)
    run_json = json.loads((tmp_path / "results" / "run.json").read_text())
    assert run_json["input"]["projection"] == how and run_json["input"]["projected_chunk_by_chunk"] is True
