"""TIFF readers on files written by tifffile: the voxel size must come back exactly."""

import numpy as np
import pytest
import tifffile

from spinequant.errors import InputError, VoxelSizeError
from spinequant.io import open_stack, read_stack

SPACING = (0.5, 0.094, 0.094)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _imagej(path, data, axes, *, xy_um=0.094, z=0.5, unit="um"):
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / xy_um, 1 / xy_um),
                     metadata={"spacing": z, "unit": unit, "axes": axes})
    return path


# --- ImageJ hyperstacks ----------------------------------------------------------------------

@pytest.mark.parametrize("unit, scale", [("um", 1.0), ("micron", 1.0), ("\\u00B5m", 1.0), ("nm", 1000.0)])
def test_imagej_zyx_spacing_in_each_unit(tmp_path, rng, unit, scale):
    data = rng.integers(0, 255, (7, 16, 20), dtype=np.uint8)
    path = _imagej(tmp_path / "a.tif", data, "ZYX", xy_um=0.094 * scale, z=0.5 * scale, unit=unit)
    stack = read_stack(path)
    assert stack.spacing == SPACING
    assert stack.axes == "ZYX" and stack.spacing_source == "metadata"
    np.testing.assert_array_equal(stack.data, data)
    assert stack.metadata["format"] == "ImageJ TIFF"


def test_imagej_zcyx_puts_channel_first_and_selects(tmp_path, rng):
    data = rng.integers(0, 4000, (7, 2, 16, 20), dtype=np.uint16)  # Z C Y X as ImageJ stores it
    path = _imagej(tmp_path / "zc.tif", data, "ZCYX", xy_um=0.075, z=0.28)
    stack = open_stack(path)
    assert stack.axes == "CZYX" and stack.shape == (2, 7, 16, 20)
    assert stack.spacing == (0.28, 0.075, 0.075)
    one = read_stack(path, channel=1)
    np.testing.assert_array_equal(one.data, data[:, 1])
    with pytest.raises(InputError, match="2 channels.*--channel"):
        read_stack(path)


def test_imagej_tzcyx_time_and_channel(tmp_path, rng):
    data = rng.integers(1, 255, (3, 5, 2, 8, 9), dtype=np.uint8)
    path = _imagej(tmp_path / "t.tif", data, "TZCYX", xy_um=0.1, z=0.4)
    stack = open_stack(path)
    assert stack.axes == "TCZYX" and stack.shape == (3, 2, 5, 8, 9)
    one = read_stack(path, channel=0, time=2)
    assert one.spacing == (0.4, 0.1, 0.1)
    np.testing.assert_array_equal(one.data, data[2, :, 0])
    with pytest.raises(InputError, match="3 time points.*--time"):
        read_stack(path, channel=0)


def test_imagej_without_unit_is_unknown_voxel_size(tmp_path, rng):
    data = rng.integers(0, 255, (7, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", data, imagej=True, resolution=(10, 10), metadata={"axes": "ZYX"})
    with pytest.raises(VoxelSizeError, match="--voxel-size"):
        read_stack(tmp_path / "p.tif")
    assert read_stack(tmp_path / "p.tif", voxel_size=(1, 0.2, 0.2)).spacing_source == "override"


def test_imagej_with_xy_but_no_z_step_names_the_missing_axis(tmp_path, rng):
    data = rng.integers(0, 255, (7, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "noz.tif", data, imagej=True, resolution=(10, 10),
                     metadata={"unit": "um", "axes": "ZYX"})
    with pytest.raises(VoxelSizeError, match=r"Y = 0\.1 µm, X = 0\.1 µm\) but not Z.*--voxel-size"):
        read_stack(tmp_path / "noz.tif")


# --- OME-TIFF --------------------------------------------------------------------------------

@pytest.mark.parametrize("unit, factor", [("nm", 1000.0), ("µm", 1.0), ("mm", 1e-3)])
def test_ome_tiff_physical_size_units(tmp_path, rng, unit, factor):
    data = rng.integers(0, 255, (3, 7, 16, 20), dtype=np.uint8)
    meta = {"axes": "CZYX", "Channel": {"Name": ["GFP", "tdTomato", "Alexa 647"]}}
    for axis, value in zip("ZYX", SPACING):
        meta[f"PhysicalSize{axis}"] = value * factor
        meta[f"PhysicalSize{axis}Unit"] = unit
    tifffile.imwrite(tmp_path / "a.ome.tif", data, metadata=meta)
    stack = open_stack(tmp_path / "a.ome.tif")
    assert stack.metadata["format"] == "OME-TIFF"
    assert stack.spacing == SPACING
    assert stack.channel_names == ("GFP", "tdTomato", "Alexa 647")
    one = read_stack(tmp_path / "a.ome.tif", channel=2)
    assert one.channel_names == ("Alexa 647",)
    np.testing.assert_array_equal(one.data, data[2])


def test_ome_tiff_time_series_default_unit_is_micrometre(tmp_path, rng):
    data = rng.integers(1, 255, (4, 7, 2, 8, 9), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.ome.tif", data,
                     metadata={"axes": "TZCYX", "PhysicalSizeX": 0.094, "PhysicalSizeY": 0.094,
                               "PhysicalSizeZ": 0.5})
    stack = open_stack(tmp_path / "t.ome.tif")
    assert stack.axes == "TCZYX" and stack.shape == (4, 2, 7, 8, 9)
    assert stack.spacing == SPACING
    np.testing.assert_array_equal(read_stack(tmp_path / "t.ome.tif", channel=1, time=3).data, data[3, :, 1])


# --- plain TIFF, 2D, RGB ---------------------------------------------------------------------

def test_plain_tiff_with_centimetre_resolution_gives_xy_but_needs_z(tmp_path, rng):
    data = rng.integers(0, 255, (7, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", data, resolution=(1e4 / 0.094, 1e4 / 0.094), resolutionunit="CENTIMETER")
    stack = open_stack(tmp_path / "p.tif", require_spacing=False)
    assert stack.metadata["format"] == "TIFF" and stack.axes == "ZYX"
    assert np.isnan(stack.spacing[0]) and stack.spacing[1:] == (0.094, 0.094)
    with pytest.raises(VoxelSizeError, match="but not Z.*--voxel-size 0.5 0.094 0.094"):
        read_stack(tmp_path / "p.tif")


def test_plain_tiff_inch_resolution(tmp_path, rng):
    data = rng.integers(0, 255, (7, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", data, resolution=(25400 / 0.5, 25400 / 0.5), resolutionunit="INCH")
    assert open_stack(tmp_path / "p.tif", require_spacing=False).spacing[1:] == (0.5, 0.5)


def test_plain_tiff_without_resolution_unit_needs_voxel_size(tmp_path, rng):
    data = rng.integers(0, 255, (7, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", data, resolution=(10, 10), resolutionunit="NONE")
    with pytest.raises(VoxelSizeError, match="unknown.*will not guess.*--voxel-size"):
        read_stack(tmp_path / "p.tif")
    stack = read_stack(tmp_path / "p.tif", voxel_size=(0.3, 0.05, 0.05))
    assert stack.spacing == (0.3, 0.05, 0.05) and stack.spacing_source == "override"
    np.testing.assert_array_equal(stack.data, data)


def test_2d_image_stays_2d_with_a_yx_pixel_size(tmp_path, rng):
    data = rng.integers(0, 255, (16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "2d.tif", data, imagej=True, resolution=(1 / 0.094, 1 / 0.094),
                     metadata={"unit": "um"})
    stack = read_stack(tmp_path / "2d.tif")
    assert stack.shape == (16, 20) and stack.axes == "YX" and stack.is_2d
    assert stack.spacing == (0.094, 0.094)      # no z size is made up for a plane
    np.testing.assert_array_equal(stack.data, data)


def test_rgb_needs_a_channel_choice_with_a_clear_message(tmp_path, rng):
    data = rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb")
    with pytest.raises(InputError, match=r"RGB colour image \(0: red, 1: green, 2: blue\).*--channel N.*8-bit"):
        read_stack(tmp_path / "rgb.tif", voxel_size=SPACING[1:])
    green = read_stack(tmp_path / "rgb.tif", voxel_size=SPACING[1:], channel=1)
    np.testing.assert_array_equal(green.data, data[..., 1])
    assert green.channel_names == ("green",)
