"""Chunked cell runs (``spinequant cells --chunked``) give the in-memory run's cells."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from spinequant.cells import CELL_COLUMNS, CellConfig, analyze_cells
from spinequant.cells.chunked import WORK_DIR, analyze_cells_chunked, cell_halo_um, chunked_cells
from spinequant.cells.config import CellChunkConfig
from spinequant.cli import EXIT_INPUT, main
from spinequant.errors import InputError
from spinequant.evaluate.cells import score_cells
from spinequant.io import write_tiff
from spinequant.synth.cells import make_cell_phantom

CHUNK = 32          # 12.8 µm cores at 0.4 µm: most of the 6-11 µm nuclei cross a border


@pytest.fixture(scope="module")
def phantom():
    return make_cell_phantom("nuclei_confocal", seed=4, shape=(20, 160, 160))


@pytest.fixture(scope="module")
def in_memory(phantom):
    return analyze_cells(phantom.image, spacing=phantom.spacing)


def _pairing(a, b) -> dict:
    """{id in a: id in b} when every object of ``a`` lies on exactly one object of ``b``."""
    both = (a > 0) | (b > 0)
    pairs = np.unique(np.stack([a[both], b[both]]), axis=1)
    return dict(zip(pairs[0].tolist(), pairs[1].tolist())), pairs


def test_chunked_cells_equal_in_memory(phantom, in_memory, tmp_path):
    chunking = CellChunkConfig(chunk_px=CHUNK, max_cell_diameter_um=12.0)
    run = chunked_cells(phantom.image, phantom.spacing, tmp_path, chunking=chunking)
    labels = np.asarray(run["labels"][...]).astype(np.int32)
    assert run["chunking"]["blocks"] == 25 and run["chunking"]["cells_clipped_by_halo"] == 0
    assert run["diagnostics"]["otsu_threshold"] == pytest.approx(in_memory.diagnostics["segment"]["otsu_threshold"])
    n = len(in_memory.cells)
    assert n >= 10 and len(run["cells"]) == n and int(labels.max()) == n
    # the same voxels, one to one (no cell split by a border, none merged, lost or doubled)
    mapping, pairs = _pairing(labels, in_memory.labels)
    assert pairs.shape[1] == n and (pairs > 0).all() and len(set(mapping.values())) == n
    # cells cut by block borders: their boxes span a core edge
    cut = 0
    for box in ndimage.find_objects(labels):
        cut += any(s.start // CHUNK != (s.stop - 1) // CHUNK for s in box[1:])
    assert cut >= n // 2
    score = score_cells(labels, in_memory.labels, spacing=phantom.spacing)
    assert score["instances"]["f1"] == 1.0 and score["instances"]["mean_matched_iou"] == 1.0
    # the table: the same rows in another id order (centroids within 1e-9 µm)
    table = run["cells"].set_index(run["cells"]["id"].map(mapping)).sort_index()
    ref = in_memory.cells.set_index("id").sort_index()
    assert list(run["cells"].columns) == list(in_memory.cells.columns)
    for column in ref.columns:
        if column in ("id",):
            continue
        np.testing.assert_allclose(table[column].to_numpy(float), ref[column].to_numpy(float), atol=1e-9,
                                   err_msg=column)
    assert table["touches_border"].any() and not table["touches_border"].all()


def test_halo_is_stated_in_um_and_a_missing_one_is_reported(phantom, in_memory, tmp_path):
    assert cell_halo_um(CellConfig(), 25.0) == pytest.approx(1.5 * 25 + 4 * 2.0)
    none = chunked_cells(phantom.image, phantom.spacing, tmp_path, chunking=CellChunkConfig(chunk_px=CHUNK, halo_um=0))
    assert none["chunking"]["halo_px"] == 0 and none["chunking"]["cells_clipped_by_halo"] > 0
    # without a halo, cells are cut at the block borders: the in-memory cells are not found
    labels = np.asarray(none["labels"][...]).astype(np.int32)
    assert score_cells(labels, in_memory.labels, spacing=phantom.spacing)["instances"]["f1"] < 0.9


def test_cli_chunked_writes_the_result_folder_and_resumes(phantom, in_memory, tmp_path):
    path = tmp_path / "nuclei.tif"
    write_tiff(path, phantom.image, phantom.spacing)
    out = tmp_path / "r"
    args = ["cells", str(path), "--out", str(out), "--chunked", "--chunk-size", str(CHUNK),
            "--max-cell-diameter", "12", "--no-report", "-q"]
    assert main(args) == 0
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells.columns)[:len(CELL_COLUMNS)] == CELL_COLUMNS and len(cells) == len(in_memory.cells)
    record = json.loads((out / "run.json").read_text())
    assert record["analysis"] == "cells" and record["summary"]["n_cells"] == len(in_memory.cells)
    assert record["diagnostics"]["chunked"]["blocks"] == 25
    assert (out / "labels_cells.tif").exists() and (out / "results.ome.zarr" / "labels" / "cells").exists()
    assert main(args) == 0                                  # again: every block's cells are reused
    again = json.loads((out / "run.json").read_text())
    assert again["diagnostics"]["chunked"]["blocks_resumed"] == 25
    assert again["summary"] == record["summary"]


def test_above_the_whole_export_size_only_table_zarr_and_run_json(phantom, in_memory, tmp_path):
    path = tmp_path / "nuclei.tif"
    write_tiff(path, phantom.image, phantom.spacing)
    out = tmp_path / "big"
    result = analyze_cells_chunked(path, out, chunking=CellChunkConfig(chunk_px=64, max_cell_diameter_um=12.0,
                                                                       whole_export_max_voxels=1000))
    assert len(result.cells) == len(in_memory.cells)
    assert not (out / "labels_cells.tif").exists() and (out / "cells.csv").exists()
    record = json.loads((out / "run.json").read_text())
    assert "not_written" in record and record["complete"]
    import zarr

    stored = zarr.open_array(str(out / "results.ome.zarr" / "labels" / "cells" / "0"), mode="r")
    assert stored.shape == phantom.image.shape and int(np.asarray(stored[...]).max()) == len(in_memory.cells)


def test_networks_and_flatten_are_refused_chunked(phantom, tmp_path):
    with pytest.raises(InputError, match="classical method only"):
        chunked_cells(phantom.image, phantom.spacing, tmp_path, config=CellConfig(method="segresnet_nuclei"))
    path = tmp_path / "nuclei.tif"
    write_tiff(path, phantom.image, phantom.spacing)
    assert main(["cells", str(path), "--out", str(tmp_path / "r"), "--chunked", "--flatten", "30", "-q"]) == EXIT_INPUT
    assert not (tmp_path / "r" / "run.json").exists()


def test_two_dask_workers_give_the_in_memory_cells(phantom, in_memory, tmp_path):
    pytest.importorskip("distributed")
    path = tmp_path / "nuclei.tif"
    write_tiff(path, phantom.image, phantom.spacing)
    out = tmp_path / "dask"
    assert main(["cells", str(path), "--out", str(out), "--chunk-size", "64", "--max-cell-diameter", "12",
                 "--workers", "2", "--no-report", "-q"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["diagnostics"]["chunked"]["workers"] == 2
    import tifffile

    labels = tifffile.imread(out / "labels_cells.tif")
    score = score_cells(labels, in_memory.labels, spacing=phantom.spacing)["instances"]
    assert score["f1"] == 1.0 and score["mean_matched_iou"] == 1.0


def test_constant_and_nan_volumes_are_refused_chunked(tmp_path):
    flat = np.full((8, 48, 48), 7, np.uint16)
    with pytest.raises(InputError, match="constant"):
        chunked_cells(flat, (1.0, 0.4, 0.4), tmp_path / "a", chunking=CellChunkConfig(chunk_px=16))
    bad = np.ones((8, 48, 48), np.float32)
    bad[4, 40, 40] = np.nan
    with pytest.raises(InputError, match="NaN"):
        chunked_cells(bad, (1.0, 0.4, 0.4), tmp_path / "b", chunking=CellChunkConfig(chunk_px=16))
