"""``spinequant cells`` and the cell hooks of ``synth`` and ``evaluate``, end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from spinequant.cells import CELL_COLUMNS
from spinequant.cli import EXIT_INPUT, main
from spinequant.io import read_stack, write_tiff


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    out = tmp_path_factory.mktemp("cells") / "ph"
    assert main(["synth", "--preset", "nuclei_confocal", "--seed", "3", "--shape", "24", "96", "96",
                 "--out", str(out)]) == 0
    return out / "phantom_000"


def test_cells_end_to_end(phantom, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["cells", str(phantom / "image.tif"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"labels_cells.tif", "results.ome.zarr", "cells.csv", "run.json",
                                               "report.html", "overview.png", "histograms.png"}
    labels = read_stack(out / "labels_cells.tif", check_values=False)
    truth = read_stack(phantom / "labels_cells.tif", check_values=False)
    np.testing.assert_allclose(labels.spacing, truth.spacing)
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells.columns[:len(CELL_COLUMNS)]) == CELL_COLUMNS and "mean_intensity_c0" in cells
    assert len(cells) == int(labels.data.max()) and f"{len(cells)} cells" in said
    truth_cells = pd.read_csv(phantom / "truth_cells.csv")
    assert abs(len(cells) - len(truth_cells)) <= 1
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] and run["analysis"] == "cells" and run["summary"]["n_cells"] == len(cells)
    assert run["config"]["spot_sigma_um"] == 2.0 and run["input"]["spacing_um"] == list(truth.spacing)
    from spinequant.io import open_stack

    zarr_labels = open_stack(out / "results.ome.zarr" / "labels" / "cells", require_spacing=False)
    assert np.array_equal(np.asarray(zarr_labels.data).reshape(labels.data.shape), labels.data)

    # the same settings again from run.json, with one changed on the command line
    again = tmp_path / "r2"
    assert main(["cells", str(phantom / "image.tif"), "--out", str(again), "--config", str(out / "run.json"),
                 "--min-volume", "50", "--no-report", "-q"]) == 0
    run2 = json.loads((again / "run.json").read_text())
    assert run2["config"] == {**run["config"], "min_volume_um3": 50.0}
    assert not (again / "report.html").exists()

    # scores against the truth
    ev = tmp_path / "ev"
    assert main(["evaluate", "--objects", "cells", str(out / "labels_cells.tif"),
                 str(phantom / "labels_cells.tif"), "--out", str(ev)]) == 0
    scores = pd.read_csv(ev / "cell_scores.csv")
    from spinequant.evaluate.cells import score_cells

    expected = score_cells(labels.data, truth.data, spacing=truth.spacing)
    assert scores["dice"].item() == pytest.approx(expected["dice"]) and scores["dice"].item() > 0.9
    assert scores["f1"].item() == pytest.approx(expected["instances"]["f1"])
    assert pd.read_csv(ev / "cell_points.csv")["f1"].item() == pytest.approx(expected["points"]["f1"])
    assert (ev / "cell_points.csv").exists() and (ev / "f1_vs_iou.png").exists()


def test_cells_bad_input(tmp_path, capsys):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.random.default_rng(0).integers(0, 100, (8, 32, 32), dtype=np.uint16))
    assert main(["cells", str(plain), "--out", str(tmp_path / "r")]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert "voxel size" in err and "--voxel-size" in err and not (tmp_path / "r").exists()
    flat = tmp_path / "flat.tif"
    write_tiff(flat, np.random.default_rng(0).integers(0, 100, (32, 32), dtype=np.uint16), (0.5, 0.5))
    assert main(["cells", str(flat), "--out", str(tmp_path / "r")]) == EXIT_INPUT
    assert "3D" in capsys.readouterr().err
    assert main(["cells", str(plain), "--out", str(tmp_path / "r"), "--voxel-size", "1", "0.5", "0.5",
                 "--spot-sigma", "1", "2"]) == EXIT_INPUT
    assert "three" in capsys.readouterr().err
    not_cells = tmp_path / "run.json"
    not_cells.write_text(json.dumps({"config": {"method": "classical"}}))
    assert main(["cells", str(plain), "--out", str(tmp_path / "r"), "--voxel-size", "1", "0.5", "0.5",
                 "--config", str(not_cells)]) == EXIT_INPUT
    # wrapped to the terminal's width: where the line breaks fall depends on the path's length
    assert "not the run.json of a cells run" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "r").exists()


def test_failed_write_leaves_nothing(phantom, tmp_path, monkeypatch, capsys):
    """A run whose report cannot be written keeps none of its files (an earlier run.json goes too)."""
    from spinequant.cells import report
    from spinequant.errors import OutputError

    out = tmp_path / "r"
    out.mkdir()
    (out / "run.json").write_text("{}")

    def full_disk(*args, **kwargs):
        raise OutputError("Could not write 'report.html': the drive is full.")

    monkeypatch.setattr(report, "write_cell_report", full_disk)
    assert main(["cells", str(phantom / "image.tif"), "--out", str(out), "-q"]) == EXIT_INPUT
    assert "drive is full" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_intensities_of_every_channel(phantom, tmp_path):
    """A two-channel hyperstack: channel 1 is segmented, both channels are measured per cell."""
    image = read_stack(phantom / "image.tif")
    other = np.full(image.data.shape, 5, np.uint16)
    other[image.data > np.percentile(image.data, 90)] = 9
    data = np.stack([other, image.data], axis=1)          # Z C Y X
    z, y, x = image.spacing
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / x, 1 / y),
                     metadata={"axes": "ZCYX", "spacing": z, "unit": "um"})
    out = tmp_path / "r"
    assert main(["cells", str(path), "--out", str(out), "--channel", "1", "-q", "--no-report"]) == 0
    cells = pd.read_csv(out / "cells.csv")
    assert {"mean_intensity_c0", "max_intensity_c0", "mean_intensity_c1", "max_intensity_c1"} <= set(cells)
    assert cells["max_intensity_c0"].isin([5, 9]).all() and (cells["max_intensity_c0"] == 9).any()
    labels = read_stack(out / "labels_cells.tif", check_values=False).data
    first = labels == cells["id"].iloc[0]
    assert cells["mean_intensity_c1"].iloc[0] == pytest.approx(image.data[first].mean())
    assert json.loads((out / "run.json").read_text())["input"]["intensity_channels"] == ["c0", "c1"]
