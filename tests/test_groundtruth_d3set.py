"""DeepD3 .d3set files, in DeepD3's own format (flammkuchen): both ways, and with DeepD3's side."""

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

fl = pytest.importorskip("flammkuchen")
pd = pytest.importorskip("pandas")
tables = pytest.importorskip("tables")

from spinequant.errors import InputError  # noqa: E402
from spinequant.groundtruth.d3set import (D3Stack, _flammkuchen, d3set_to_folder, folder_to_d3set,  # noqa: E402
                                          read_d3set, write_d3set)
from spinequant.synth import make_phantom  # noqa: E402

DATA = Path(__file__).parent / "data"
# pandas 3 on HDFStore.put, which flammkuchen calls (spinequant's own writer silences it)
pytestmark = pytest.mark.filterwarnings("ignore:.*track_times:DeprecationWarning")
DEEPD3_COLUMNS = ["Resolution_XY", "Resolution_Z", "Timestamp", "Generated_from", "crop", "X", "Y",
                  "Width", "Height", "Depth", "Z_begin", "Z_end"]


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
        assert b.spines.dtype == bool and np.array_equal(b.spines, a.spines)
        assert b.spacing == pytest.approx(a.spacing)
        assert b.meta["Width"] == 64 and b.meta["Height"] == 48 and b.meta["Depth"] == 8
        assert b.meta["Resolution_XY"] == a.spacing[2] and b.meta["Resolution_Z"] == a.spacing[0]
        assert b.meta["crop"] is False and b.meta["Generated_from"] == a.meta["Generated_from"]
        assert isinstance(b.meta["Timestamp"], str)
    write_d3set(tmp_path / "again.d3set", back)
    again = read_d3set(tmp_path / "again.d3set")
    for a, b in zip(back, again):
        assert np.array_equal(a.image, b.image) and a.image.dtype == b.image.dtype
        assert np.array_equal(a.dendrites, b.dendrites) and np.array_equal(a.spines, b.spines)
        assert a.meta == b.meta and a.spacing == b.spacing
    assert not list(tmp_path.glob(".*"))                   # written atomically, nothing left beside


def test_flammkuchen_loads_a_set_spinequant_wrote_as_deepd3s_training_stream_indexes_it(phantoms, tmp_path):
    stacks = _stacks(phantoms)
    write_d3set(tmp_path / "set.d3set", stacks)
    d = fl.load(tmp_path / "set.d3set")
    assert sorted(d) == ["data", "meta"] and sorted(d["data"]) == ["dendrites", "spines", "stacks"]
    meta = d["meta"]
    assert isinstance(meta, pd.DataFrame) and len(meta) == 2
    assert set(DEEPD3_COLUMNS) <= set(meta.columns)
    for r, (s, p) in enumerate(zip(stacks, phantoms)):      # as the stream picks a stack and a crop
        row = meta.iloc[r]
        assert row.Resolution_XY == pytest.approx(p.spacing[2]) and row.Resolution_Z == pytest.approx(p.spacing[0])
        assert (row.Depth, row.Height, row.Width) == p.image.shape
        assert all(isinstance(row[c], (int, np.integer)) for c in ("Width", "Height", "Depth"))
        x, y = np.random.choice(row.Width - 16), np.random.choice(row.Height - 16)
        crop = np.s_[0:1, y:y + 16, x:x + 16]
        assert np.array_equal(d["data"]["stacks"][f"x{r}"][crop], p.image[crop])
        assert np.array_equal(d["data"]["dendrites"][f"x{r}"][crop], (p.dendrite_labels > 0)[crop])
        assert np.array_equal(d["data"]["spines"][f"x{r}"][crop], (p.spine_labels > 0)[crop])
    with tables.open_file(tmp_path / "set.d3set") as f:        # Blosc, as DeepD3 saves its sets
        assert f.root.data.stacks.x0.filters.complib == "blosc"
        assert "pandas_version" in f.root.meta._v_attrs and f.root.meta._v_attrs.pandas_type == "frame"


def test_reads_a_set_that_flammkuchen_saved_in_deepd3s_layout(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (4, 30, 40)).astype(np.uint8), rng.integers(0, 999, (2, 33, 20)).astype(np.uint16)]
    meta = pd.concat([pd.DataFrame({"Resolution_XY": xy, "Resolution_Z": z, "Timestamp": "20230301_101010",
                                    "Generated_from": f"cell{i}.tif", "crop": False, "X": 0, "Y": 0,
                                    "Width": im.shape[2], "Height": im.shape[1], "Depth": im.shape[0],
                                    "Z_begin": 0, "Z_end": im.shape[0]}, index=[0])
                      for i, (im, xy, z) in enumerate(zip(images, (0.094, 0.2), (0.5, 1.0)))])
    data = {"stacks": {f"x{i}": im for i, im in enumerate(images)},
            "dendrites": {f"x{i}": im > 100 for i, im in enumerate(images)},
            "spines": {f"x{i}": im > 200 for i, im in enumerate(images)}}
    # flammkuchen itself (with NumPy 2's missing aliases given back), as DeepD3's tooling calls it; under
    # pandas 3 the table has no "pandas_version", so flammkuchen.load gives its blocks and pandas reads it
    _flammkuchen().save(tmp_path / "deepd3.d3set", {"data": data, "meta": meta}, compression="blosc")
    stacks = read_d3set(tmp_path / "deepd3.d3set")
    assert [s.spacing for s in stacks] == [(0.5, 0.094, 0.094), (1.0, 0.2, 0.2)]
    for s, im in zip(stacks, images):
        assert s.image.dtype == im.dtype and np.array_equal(s.image, im)
        assert np.array_equal(s.dendrites, im > 100) and np.array_equal(s.spines, im > 200)
    assert stacks[1].meta["Generated_from"] == "cell1.tif" and stacks[1].meta["Width"] == 20


def test_reads_a_set_written_in_deepd3s_own_environment(tmp_path):
    """tests/data/deepd3_numpy1.d3set.gz: flammkuchen 1.0.3 under NumPy 1.26 and pandas 2.2
    (tests/data/make_deepd3_d3set.py), the libraries DeepD3's tooling runs with."""
    path = tmp_path / "deepd3.d3set"
    with gzip.open(DATA / "deepd3_numpy1.d3set.gz") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    stacks = read_d3set(path)
    rng = np.random.default_rng(7)                           # the fixture's images, made again
    for s, shape, spacing, source in zip(stacks, [(3, 20, 24), (2, 18, 30)], [(0.5, 0.094, 0.094), (1.0, 0.12, 0.12)],
                                         ["stack0.tif", "stack1.tif"]):
        image = rng.integers(0, 4000, shape).astype(np.uint16)
        assert s.image.dtype == np.uint16 and np.array_equal(s.image, image)
        assert np.array_equal(s.dendrites, image > 2500) and np.array_equal(s.spines, image > 3500)
        assert s.spacing == spacing and s.meta["Generated_from"] == source
        assert (s.meta["Depth"], s.meta["Height"], s.meta["Width"]) == shape and s.meta["crop"] is False
    write_d3set(tmp_path / "back.d3set", stacks)              # and written again: the same content
    for a, b in zip(stacks, read_d3set(tmp_path / "back.d3set")):
        assert np.array_equal(a.image, b.image) and a.meta == b.meta


@pytest.mark.skipif(not os.environ.get("SPINEQUANT_DEEPD3_PYTHON"),
                    reason="set SPINEQUANT_DEEPD3_PYTHON to a Python with DeepD3's libraries (NumPy 1, pandas 2, "
                           "flammkuchen) to load a set spinequant wrote there")
def test_deepd3s_environment_loads_a_set_spinequant_wrote(phantoms, tmp_path):
    write_d3set(tmp_path / "set.d3set", _stacks(phantoms))
    check = ("import sys, flammkuchen as fl, pandas as pd; d = fl.load(sys.argv[1]); m = d['meta']; "
             "assert isinstance(m, pd.DataFrame) and len(m) == 2; r = m.iloc[1]; "
             "print(r.Resolution_XY, r.Resolution_Z, r.Width, r.Height, r.Depth, r.Generated_from, "
             "d['data']['stacks']['x1'].dtype, d['data']['stacks']['x1'][3, 10, 20], d['data']['spines']['x1'].sum())")
    out = subprocess.run([os.environ["SPINEQUANT_DEEPD3_PYTHON"], "-c", check, str(tmp_path / "set.d3set")],
                         capture_output=True, text=True, check=True).stdout.split()
    p = phantoms[1]
    assert out == [str(p.spacing[2]), str(p.spacing[0]), "64", "48", "8", "p1", str(p.image.dtype),
                   str(p.image[3, 10, 20]), str((p.spine_labels > 0).sum())]


def test_reads_the_numeric_meta_of_spinequants_earlier_layout(tmp_path):
    zeros = {"x0": np.zeros((2, 4, 5), np.uint8)}
    meta = {"Resolution_XY": np.array([0.094]), "Resolution_Z": np.array([0.5]), "Width": np.array([5]),
            "Depth": np.array([2])}                          # one array per column, as h5py wrote them
    _flammkuchen().save(tmp_path / "old.d3set", {"data": {"stacks": zeros, "dendrites": zeros, "spines": zeros},
                                                  "meta": meta})
    (s,) = read_d3set(tmp_path / "old.d3set")
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
    save = _flammkuchen().save
    with pytest.raises(InputError, match="does not exist"):
        read_d3set(tmp_path / "no.d3set")
    (tmp_path / "text.d3set").write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_d3set(tmp_path / "text.d3set")
    save(tmp_path / "other.d3set", {"x": np.arange(3)})
    with pytest.raises(InputError, match="not a DeepD3 set: it needs data/stacks.*found \\['x'\\]"):
        read_d3set(tmp_path / "other.d3set")
    image = np.zeros((2, 4, 5), np.uint8)
    meta = pd.DataFrame({"Resolution_XY": [0.1], "Resolution_Z": [0.5]})
    save(tmp_path / "nomask.d3set", {"data": {"stacks": {"x0": image}, "dendrites": {}, "spines": {}}, "meta": meta})
    with pytest.raises(InputError, match="stack x0 has no dendrite or spine mask"):
        read_d3set(tmp_path / "nomask.d3set")
    save(tmp_path / "shape.d3set", {"data": {"stacks": {"x0": image}, "dendrites": {"x0": image[:1] > 0},
                                             "spines": {"x0": image > 0}}, "meta": meta})
    with pytest.raises(InputError, match="dendrites mask of stack x0 has the shape \\(1, 4, 5\\).*must agree"):
        read_d3set(tmp_path / "shape.d3set")
    save(tmp_path / "nometa.d3set", {"data": {k: {"x0": image} for k in ("stacks", "dendrites", "spines")}})
    with pytest.raises(InputError, match="no Resolution_XY / Resolution_Z"):
        read_d3set(tmp_path / "nometa.d3set")
    with pytest.raises(InputError, match="must be 3D and of one shape"):
        write_d3set(tmp_path / "bad.d3set", [D3Stack(image, image[:1], image, (1, 1, 1))])
    assert not (tmp_path / "bad.d3set").exists()


def test_without_flammkuchen_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "flammkuchen", None)
    for call in (lambda: read_d3set(tmp_path / "x.d3set"), lambda: write_d3set(tmp_path / "x.d3set", [])):
        with pytest.raises(InputError, match=r"needs flammkuchen.*pip install 'spinequant\[groundtruth\]'"):
            call()


def test_importing_spinequant_does_not_import_pytables():
    code = ("import sys, spinequant, spinequant.groundtruth.d3set, spinequant.cli; "
            "print('tables' in sys.modules, 'flammkuchen' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_cli_converts_both_ways(phantoms, tmp_path):
    from spinequant.cli import main

    write_d3set(tmp_path / "set.d3set", _stacks(phantoms))
    assert main(["groundtruth", "d3set", str(tmp_path / "set.d3set"), str(tmp_path / "f")]) == 0
    assert main(["groundtruth", "d3set", str(tmp_path / "f"), str(tmp_path / "b.d3set")]) == 0
    back = read_d3set(tmp_path / "b.d3set")
    assert len(back) == 2 and all(np.array_equal(b.image, p.image) for b, p in zip(back, phantoms))
    assert isinstance(fl.load(tmp_path / "b.d3set")["meta"], pd.DataFrame)
    assert main(["groundtruth", "d3set", str(tmp_path / "f"), str(tmp_path / "g")]) == 2
