"""DeepD3 .d3set files: written and read back identically; conversions with the training layout."""

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from spinequant.errors import InputError  # noqa: E402
from spinequant.groundtruth.d3set import (D3Stack, d3set_to_folder, folder_to_d3set, read_d3set,  # noqa: E402
                                          write_d3set)
from spinequant.synth import make_phantom  # noqa: E402


@pytest.fixture(scope="module")
def phantoms():
    return [make_phantom("two_photon", seed=s, shape=(8, 48, 64)) for s in (0, 1)]


def _stacks(phantoms):
    return [D3Stack(p.image, p.dendrite_labels > 0, p.spine_labels > 0, p.spacing, {"Generated_from": f"p{i}"})
            for i, p in enumerate(phantoms)]


def test_written_and_read_back_identically(phantoms, tmp_path):
    stacks = _stacks(phantoms)
    write_d3set(tmp_path / "set.d3set", stacks)
    back = read_d3set(tmp_path / "set.d3set")
    assert len(back) == 2
    for a, b in zip(stacks, back):
        assert b.image.dtype == a.image.dtype and np.array_equal(b.image, a.image)
        assert b.dendrites.dtype == bool and np.array_equal(b.dendrites, a.dendrites)
        assert np.array_equal(b.spines, a.spines)
        assert b.spacing == pytest.approx(a.spacing)
        assert b.meta["Width"] == 64 and b.meta["Height"] == 48 and b.meta["Depth"] == 8
        assert b.meta["Generated_from"] == a.meta["Generated_from"]
    with h5py.File(tmp_path / "set.d3set") as f:          # DeepD3's keys
        assert sorted(f["data"].keys()) == ["dendrites", "spines", "stacks"]
        assert sorted(f["data/stacks"].keys()) == ["x0", "x1"]
        assert f["meta/Resolution_XY"][()].tolist() == pytest.approx([0.094, 0.094])
    write_d3set(tmp_path / "again.d3set", back)
    again = read_d3set(tmp_path / "again.d3set")
    assert all(np.array_equal(a.image, b.image) and a.meta == b.meta for a, b in zip(back, again))


def test_reads_the_numeric_columns_of_a_pandas_meta_table(tmp_path):
    path = tmp_path / "deepd3.d3set"
    with h5py.File(path, "w") as f:
        for k in ("stacks", "dendrites", "spines"):
            f.create_dataset(f"data/{k}/x0", data=np.zeros((2, 4, 5), np.uint8))
        meta = f.create_group("meta")
        meta.attrs["pandas_type"] = "frame"
        meta.attrs["nblocks"] = 2
        meta.create_dataset("block0_items", data=np.array([b"Resolution_XY", b"Resolution_Z"]))
        meta.create_dataset("block0_values", data=np.array([[0.094, 0.5]]))
        meta.create_dataset("block1_items", data=np.array([b"Width", b"Height", b"Depth"]))
        meta.create_dataset("block1_values", data=np.array([[5], [4], [2]]))   # stored transposed
    (s,) = read_d3set(path)
    assert s.spacing == (0.5, 0.094, 0.094) and s.meta["Width"] == 5 and s.meta["Depth"] == 2


def test_conversion_both_ways_with_the_training_layout(phantoms, tmp_path):
    from spinequant.segment.neural.data import load_training_data

    write_d3set(tmp_path / "set.d3set", _stacks(phantoms))
    folders = d3set_to_folder(tmp_path / "set.d3set", tmp_path / "train")
    assert [f.name for f in folders] == ["x0", "x1"]
    samples = load_training_data(tmp_path / "train")
    for sample, p in zip(samples, phantoms):
        assert np.array_equal(sample.semantic, p.semantic)
        assert sample.spacing == pytest.approx(p.spacing, rel=1e-4)
    folder_to_d3set(tmp_path / "train", tmp_path / "back.d3set")
    for a, p in zip(read_d3set(tmp_path / "back.d3set"), phantoms):
        assert np.array_equal(a.image, p.image) and np.array_equal(a.spines, p.spine_labels > 0)
        assert np.array_equal(a.dendrites, p.dendrite_labels > 0)


def test_files_that_are_not_deepd3_sets_are_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_d3set(tmp_path / "no.d3set")
    (tmp_path / "text.d3set").write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_d3set(tmp_path / "text.d3set")
    with h5py.File(tmp_path / "other.d3set", "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="data/stacks"):
        read_d3set(tmp_path / "other.d3set")


def test_cli_converts_both_ways(phantoms, tmp_path):
    from spinequant.cli import main

    write_d3set(tmp_path / "set.d3set", _stacks(phantoms))
    assert main(["groundtruth", "d3set", str(tmp_path / "set.d3set"), str(tmp_path / "f")]) == 0
    assert main(["groundtruth", "d3set", str(tmp_path / "f"), str(tmp_path / "b.d3set")]) == 0
    assert len(read_d3set(tmp_path / "b.d3set")) == 2
    assert main(["groundtruth", "d3set", str(tmp_path / "f"), str(tmp_path / "g")]) == 2
