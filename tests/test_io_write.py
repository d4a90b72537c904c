"""Writers: ImageJ TIFF and OME-Zarr carry the voxel size; writes are atomic."""

import os

import numpy as np
import pytest
import tifffile
import zarr

from spinequant._atomic import atomic_path, ensure_writable_dir
from spinequant.errors import InputError, OutputError
from spinequant.io import open_stack, write_ome_zarr, write_tiff

SPACING = (0.5, 0.094, 0.094)


@pytest.fixture
def labels():
    lab = np.zeros((7, 16, 20), dtype=np.int32)
    lab[1:4, 2:6, 3:8] = 1
    lab[4:6, 9:14, 10:18] = 300  # above uint8: must be stored as uint16
    return lab


def test_write_tiff_is_imagej_with_scale_in_um(tmp_path, labels):
    path = write_tiff(tmp_path / "labels.tif", labels, SPACING)
    with tifffile.TiffFile(path) as tf:
        assert tf.is_imagej
        ij = tf.imagej_metadata
        assert ij["unit"] == "um" and ij["spacing"] == 0.5 and ij["slices"] == 7
        num, den = tf.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(0.094, rel=1e-6)  # ImageJ's pixel width, µm
        num, den = tf.pages[0].tags["YResolution"].value
        assert den / num == pytest.approx(0.094, rel=1e-6)
        assert tf.series[0].axes == "ZYX"
        back = tf.asarray()
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)
    stack = open_stack(path)
    assert stack.spacing == SPACING  # exact after reading back through spinequant


@pytest.mark.parametrize("data, dtype", [
    (np.ones((2, 3, 4), dtype=bool), np.uint8),
    (np.full((2, 3, 4), 7, dtype=np.int64), np.uint8),
    (np.full((2, 3, 4), 70000, dtype=np.int32), np.float32),  # ImageJ has no 32-bit integers
    (np.full((2, 3, 4), 0.25, dtype=np.float64), np.float32),
])
def test_write_tiff_picks_an_imagej_dtype_without_losing_values(tmp_path, data, dtype):
    path = write_tiff(tmp_path / "x.tif", data, SPACING)
    back = tifffile.imread(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, data.astype(dtype))


def test_write_tiff_refuses_labels_beyond_float32_precision(tmp_path):
    with pytest.raises(InputError, match="2\\*\\*24"):
        write_tiff(tmp_path / "x.tif", np.full((1, 2, 2), 2**25, dtype=np.int64), SPACING)
    assert not list(tmp_path.iterdir())


def test_write_ome_zarr_round_trip_with_labels_group(tmp_path, labels):
    image = np.random.default_rng(3).integers(0, 255, labels.shape, dtype=np.uint8)
    path = write_ome_zarr(tmp_path / "r.ome.zarr", image, SPACING,
                          labels={"spines": labels, "mask": labels > 0})
    stack = open_stack(path)
    assert stack.spacing == SPACING and stack.axes == "ZYX" and stack.is_lazy
    np.testing.assert_array_equal(stack.data.compute(), image)
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["multiscales"][0]["axes"][0] == {"name": "z", "type": "space", "unit": "micrometer"}
    assert list(root["labels"].attrs["labels"]) == ["spines", "mask"]
    assert root["labels/spines"].attrs["image-label"]["source"]["image"] == "../../"
    spines = open_stack(path / "labels" / "spines")
    assert spines.spacing == SPACING
    np.testing.assert_array_equal(spines.data.compute(), labels)
    mask = np.asarray(root["labels/mask/0"])
    assert mask.dtype == np.uint8 and mask.sum() == (labels > 0).sum()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_write_ome_zarr_rejects_label_of_other_shape_and_writes_nothing(tmp_path, labels):
    with pytest.raises(InputError, match="shape"):
        write_ome_zarr(tmp_path / "r.ome.zarr", labels, SPACING, labels={"bad": labels[:3]})
    assert not list(tmp_path.iterdir())


def test_atomic_path_leaves_nothing_on_failure_and_keeps_old_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert final.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_directory_replaces_old_folder_only_on_success(tmp_path):
    final = tmp_path / "res.zarr"
    with atomic_path(final, directory=True) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(final, directory=True) as tmp:
            tmp.mkdir()
            (tmp / "b").write_text("2")
            raise KeyboardInterrupt
    assert [p.name for p in final.iterdir()] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["res.zarr"]


def test_write_tiff_interrupted_inside_tifffile_leaves_no_file(tmp_path, labels, monkeypatch):
    def broken(path, data, **kw):
        with open(path, "wb") as fh:
            fh.write(b"II*\x00partial")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_tiff(tmp_path / "labels.tif", labels, SPACING)
    assert not list(tmp_path.iterdir())


def test_unwritable_output_folder_raises_output_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")  # a path below a regular file cannot be created, even as root
    with pytest.raises(OutputError, match="Cannot write results to .*afile/out.*--out"):
        ensure_writable_dir(blocker / "out")
    with pytest.raises(OutputError, match="Cannot create the folder .*afile"):
        with atomic_path(blocker / "labels.tif"):
            pass
    assert ensure_writable_dir(tmp_path / "new" / "dir").is_dir()
    assert not [p for p in (tmp_path / "new" / "dir").iterdir()]  # probe file removed
    assert os.path.isfile(blocker)


def test_a_stop_during_the_write_test_leaves_no_probe_file(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM (raised as exceptions) between the probe's creation and its removal:
    the folder is left as it was (a file object's own clean-up could be cut short there)."""
    import spinequant._atomic as atomic

    close = os.close

    def stopped(fd):
        close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "close", stopped)
    with pytest.raises(KeyboardInterrupt):
        ensure_writable_dir(tmp_path)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
