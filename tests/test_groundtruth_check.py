"""spinequant groundtruth check: per-stack statistics and problems with known answers."""

import numpy as np
import pandas as pd
import pytest

from spinequant.errors import InputError
from spinequant.groundtruth import write_training_stack
from spinequant.groundtruth.check import check_folder
from spinequant.io import write_tiff


@pytest.fixture()
def folder(tmp_path):
    sp = (0.5, 0.1, 0.1)
    image = np.random.default_rng(0).integers(10, 200, (4, 20, 20)).astype(np.uint16)
    dend = np.zeros(image.shape, np.int32)
    dend[:, 8:12, :] = 1
    spines = np.zeros(image.shape, np.int32)
    spines[1, 5:8, 3:5] = 1          # touches the dendrite (y 7 next to 8): 6 voxels
    spines[2, 0:2, 15:18] = 2        # floats: 6 voxels
    write_training_stack(tmp_path / "good", image, sp, spines, dend)
    sem = np.zeros(image.shape, np.uint8)
    sem[0, 0, 0] = 7
    tifffile_write(tmp_path / "odd", image, sem)
    (tmp_path / "unlabelled").mkdir()
    tifffile_write(tmp_path / "unlabelled", image, None)
    return tmp_path


def tifffile_write(d, image, sem):
    import tifffile

    d.mkdir(exist_ok=True)
    tifffile.imwrite(d / "image.tif", image, photometric="minisblack")          # no voxel size
    if sem is not None:
        tifffile.imwrite(d / "labels_semantic.tif", sem[:, :10], photometric="minisblack")


def test_statistics_and_problems(folder):
    t = check_folder(folder).set_index("stack")
    good = t.loc["good"]
    assert good["annotation"] == "semantic+instances" and good["voxel_size_um"] == "0.5 0.1 0.1"
    assert good["dendrite_voxels"] == 4 * 4 * 20 and good["spine_voxels"] == 12 and good["spines"] == 2
    assert good["spine_volume_median_um3"] == pytest.approx(6 * 0.005)
    assert good["spines_not_touching"] == 1 and "1 spines touch no dendrite" in good["problems"]
    odd = t.loc["odd"]
    assert "no voxel size" in odd["problems"] and "differ in shape" in odd["problems"]
    assert "no labels" in t.loc["unlabelled", "problems"]


def test_values_outside_the_classes_and_empty_labels(tmp_path):
    import tifffile

    d = tmp_path / "s"
    d.mkdir()
    write_tiff(d / "image.tif", np.ones((2, 5, 5), np.uint8) * 3, (1, 0.2, 0.2))
    tifffile.imwrite(d / "labels_semantic.tif", np.full((2, 5, 5), 5, np.uint8), photometric="minisblack")
    (row,) = check_folder(tmp_path).to_dict("records")
    assert "values [5] outside 0/1/2" in row["problems"] and "no spine voxels" in row["problems"]
    assert "no dendrite voxels" in row["problems"]


def test_cli_prints_and_writes_the_table(folder, capsys):
    from spinequant.cli import main

    assert main(["groundtruth", "check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "3 stack(s), 3 with problems" in out
    table = pd.read_csv(folder / "groundtruth_check.csv")
    assert len(table) == 3
    with pytest.raises(InputError, match="not a folder"):
        check_folder(folder / "nothing_here")
