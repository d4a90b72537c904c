"""OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on zarr v3) and plain Zarr arrays, read lazily."""

import dask.array as da
import numpy as np
import pytest
import zarr

from spinequant.errors import InputError, VoxelSizeError
from spinequant.io import open_stack, read_stack

SPACING = (0.5, 0.094, 0.094)


@pytest.fixture
def image():
    return np.random.default_rng(1).integers(0, 4000, (2, 7, 16, 20), dtype=np.uint16)


def _axes(unit):
    return [{"name": "c", "type": "channel"}] + [
        {"name": a, "type": "space", "unit": unit} for a in "zyx"]


def _multiscale(path, scale, unit):
    return {"axes": _axes(unit), "datasets": [
        {"path": path, "coordinateTransformations": [{"type": "scale", "scale": [1.0, *scale]}]}]}


def test_ngff_04_on_zarr_v2(tmp_path, image):
    root = zarr.open_group(str(tmp_path / "a.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=image.shape, dtype=image.dtype, chunks=(1, 7, 8, 8))[...] = image
    root.attrs["multiscales"] = [{"version": "0.4", **_multiscale("0", SPACING, "micrometer")}]
    root.attrs["omero"] = {"channels": [{"label": "GFP"}, {"label": "RFP"}]}
    stack = open_stack(tmp_path / "a.zarr")
    assert isinstance(stack.data, da.Array) and stack.is_lazy
    assert stack.axes == "CZYX" and stack.spacing == SPACING
    assert stack.channel_names == ("GFP", "RFP")
    assert stack.metadata["format"] == "OME-Zarr 0.4"
    assert not stack.metadata["notes"]  # the channel axis needs no unit
    one = read_stack(tmp_path / "a.zarr", channel=1)
    assert isinstance(one.data, np.ndarray)
    np.testing.assert_array_equal(one.data, image[1])


def test_ngff_05_on_zarr_v3_with_attributes_under_ome(tmp_path, image):
    root = zarr.open_group(str(tmp_path / "b.zarr"), mode="w", zarr_format=3)
    root.create_array("s0", shape=image.shape, dtype=image.dtype, chunks=(1, 7, 16, 20))[...] = image
    root.attrs["ome"] = {"version": "0.5",
                         "multiscales": [_multiscale("s0", (500.0, 94.0, 94.0), "nanometer")],
                         "omero": {"channels": [{"label": "GFP"}, {"label": "RFP"}]}}
    stack = open_stack(tmp_path / "b.zarr")
    assert stack.is_lazy and stack.metadata["format"] == "OME-Zarr 0.5"
    assert stack.spacing == SPACING  # nanometres converted exactly
    np.testing.assert_array_equal(read_stack(tmp_path / "b.zarr", channel=0).data, image[0])


def test_ngff_scale_is_product_of_dataset_and_global_transforms(tmp_path, image):
    root = zarr.open_group(str(tmp_path / "c.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=image.shape, dtype=image.dtype)[...] = image
    ms = _multiscale("0", (0.25, 0.047, 0.047), "micrometer")
    ms["coordinateTransformations"] = [{"type": "scale", "scale": [1.0, 2.0, 2.0, 2.0]}]
    root.attrs["multiscales"] = [{"version": "0.4", **ms}]
    assert open_stack(tmp_path / "c.zarr").spacing == SPACING


def test_ngff_space_axes_without_unit_need_voxel_size(tmp_path, image):
    root = zarr.open_group(str(tmp_path / "d.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=image.shape, dtype=image.dtype)[...] = image
    ms = _multiscale("0", SPACING, None)
    for a in ms["axes"]:
        a.pop("unit", None)
    root.attrs["multiscales"] = [{"version": "0.4", **ms}]
    stack = open_stack(tmp_path / "d.zarr", require_spacing=False)
    assert np.isnan(stack.spacing).all()
    assert any("Z/Y/X have no unit" in n for n in stack.metadata["notes"])
    with pytest.raises(VoxelSizeError, match="--voxel-size"):
        open_stack(tmp_path / "d.zarr")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_zarr_array_is_lazy_and_needs_voxel_size(tmp_path, zarr_format):
    data = np.random.default_rng(2).random((7, 16, 20)).astype(np.float32)
    arr = zarr.open_array(str(tmp_path / "p.zarr"), mode="w", shape=data.shape, dtype=data.dtype,
                          chunks=(7, 8, 8), zarr_format=zarr_format)
    arr[...] = data
    with pytest.raises(VoxelSizeError, match="--voxel-size"):
        open_stack(tmp_path / "p.zarr")
    stack = open_stack(tmp_path / "p.zarr", voxel_size=SPACING)
    assert isinstance(stack.data, da.Array)
    assert stack.axes == "ZYX" and stack.spacing == SPACING and stack.spacing_source == "override"
    assert stack.data.chunksize == (7, 8, 8)
    np.testing.assert_array_equal(stack.data.compute(), data)


def test_zarr_group_without_multiscales_lists_its_arrays(tmp_path):
    root = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=2)
    root.create_array("raw", shape=(4, 4, 4), dtype="u1")
    with pytest.raises(InputError, match="without OME-Zarr 'multiscales'.*g.zarr/raw"):
        open_stack(tmp_path / "g.zarr")


def test_pyramid_of_a_dask_volume_is_the_numpy_one(tmp_path):
    """A volume given as a Dask array (larger than memory) gets every level of the pyramid
    exactly as the same volume given as numpy, image and labels, odd edges included (its
    levels are made from the levels already written)."""
    import dask.array as da
    import zarr

    from spinequant.io.omezarr import write_ome_zarr

    rng = np.random.default_rng(1)
    image = rng.integers(0, 4000, (2, 1100, 1030)).astype(np.uint16)
    labels = rng.integers(0, 5, image.shape).astype(np.uint32)
    paths = [write_ome_zarr(tmp_path / f"{k}.ome.zarr", im, (0.5, 0.1, 0.1), labels={"spines": lab})
             for k, (im, lab) in enumerate([(image, labels), (da.from_array(image, chunks=(1, 300, 333)),
                                                              da.from_array(labels, chunks=(2, 512, 200)))])]
    for sub in ("", "labels/spines"):
        a, b = (zarr.open_group(str(p / sub), mode="r") for p in paths)
        levels = sorted(a.array_keys())
        assert levels == sorted(b.array_keys()) == ["0", "1", "2", "3"]
        for k in levels:
            assert a[k].shape == b[k].shape and np.array_equal(a[k][:], b[k][:]), (sub, k)


def test_a_dask_volume_is_read_once_per_chunk_when_written(tmp_path):
    """Writing a Dask volume whose chunks are larger than the written ones computes each of
    its chunks once for level 0 (before: once per written chunk it overlaps, 2 x 4 x 4 here)."""
    import dask.array as da
    import zarr

    from spinequant.io.omezarr import write_ome_zarr

    labels = np.random.default_rng(2).integers(0, 9, (48, 1024, 1024)).astype(np.uint32)

    class Counted:
        shape, dtype, ndim = labels.shape, labels.dtype, labels.ndim
        reads = 0

        def __getitem__(self, box):
            part = labels[box]
            Counted.reads += part.size > 0                        # (not dask's probe of the type)
            return part

    lazy = da.from_array(Counted(), chunks=(48, 512, 512), asarray=False)
    path = write_ome_zarr(tmp_path / "r.ome.zarr", np.zeros((48, 1024, 1024), np.uint8), (0.5, 0.1, 0.1),
                          labels={"spines": lazy})
    level0 = zarr.open_group(str(path / "labels" / "spines"), mode="r")["0"]
    assert level0.chunks == (32, 256, 256) and np.array_equal(level0[:], labels)
    assert Counted.reads == 4                                     # the 4 chunks, each once



def test_a_dask_volume_reports_each_levels_regions_as_they_are_written(tmp_path):
    from spinequant.io.omezarr import write_ome_zarr

    calls = []
    labels = da.from_array(np.arange(2 * 600 * 520, dtype=np.uint32).reshape(2, 600, 520), chunks=(2, 256, 256))
    write_ome_zarr(tmp_path / "r.ome.zarr", None, (0.5, 0.1, 0.1), labels={"spines": labels},
                   progress=lambda what, done, total: calls.append((what, done, total)))
    spines = [c for c in calls if c[0].startswith("spines")]
    assert [c for c in spines if c[1] == c[2]] == [("spines level 0", 9, 9), ("spines level 1", 4, 4),
                                                    ("spines level 2", 1, 1)]
    assert [c[1] for c in spines if c[0] == "spines level 0"] == list(range(10))


def test_a_dask_volume_failing_mid_write_leaves_nothing_and_nothing_written_after(tmp_path):
    """The regions are written on several threads: when one fails, the others still running
    finish before the temporary folder is removed, so none writes into it afterwards."""
    import threading
    import time

    from spinequant.io.omezarr import write_ome_zarr

    started = threading.Event()

    def region(block, block_info=None):
        if block_info[0]["chunk-location"] == (0, 1, 1):
            started.wait(5)
            raise OSError("No space left on device")
        started.set()
        time.sleep(0.2)                                           # still writing when the other fails
        return block

    volume = da.zeros((4, 512, 512), dtype=np.uint16, chunks=(4, 256, 256)).map_blocks(region, dtype=np.uint16)
    with pytest.raises(OSError, match="No space"):
        write_ome_zarr(tmp_path / "r.ome.zarr", volume, (0.5, 0.1, 0.1))
    assert not list(tmp_path.iterdir())
    time.sleep(0.5)
    assert not list(tmp_path.iterdir())

def test_written_ome_zarr_is_a_multiscale_pyramid(tmp_path):
    """Levels halved in y/x until the plane fits in 256 px; image levels are 2 x 2 means
    shifted half a pixel, label levels every second pixel with the same ids."""
    import json

    import zarr

    from spinequant.io import open_stack
    from spinequant.io.omezarr import write_ome_zarr

    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (3, 600, 520)).astype(np.uint16)
    labels = np.zeros(image.shape, np.uint16)
    labels[1, 100:140, 200:260] = 7
    path = write_ome_zarr(tmp_path / "p.ome.zarr", image, (0.5, 0.1, 0.1), labels={"spines": labels})
    root = zarr.open_group(str(path), mode="r")
    meta = json.loads((path / ".zattrs").read_text())["multiscales"][0]
    assert [d["path"] for d in meta["datasets"]] == ["0", "1", "2"]
    assert [root[str(k)].shape for k in range(3)] == [(3, 600, 520), (3, 300, 260), (3, 150, 130)]
    level1 = meta["datasets"][1]["coordinateTransformations"]
    assert level1[0]["scale"] == [0.5, 0.2, 0.2] and level1[1]["translation"] == [0.0, 0.05, 0.05]
    expected = image[:, :600, :520].reshape(3, 300, 2, 260, 2).mean(axis=(2, 4))
    assert np.abs(root["1"][:].astype(float) - expected).max() <= 0.5
    lab = zarr.open_group(str(path / "labels" / "spines"), mode="r")
    assert lab["1"].shape == (3, 300, 260) and set(np.unique(lab["1"][:])) == {0, 7}
    back = open_stack(path)
    assert back.data.shape == image.shape and np.array_equal(np.asarray(back.data), image)
