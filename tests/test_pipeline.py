"""The analyze pipeline end to end: one stack, a folder of stacks, re-running, the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from spinequant.cli import main
from spinequant.evaluate.detection import match_spine_objects
from spinequant.io import write_tiff
from spinequant.pipeline import AnalyzeConfig, analyze, analyze_folder
from spinequant.synth import make_phantom

FAST = AnalyzeConfig(export_meshes=False)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("confocal", seed=1001)


def test_analyze_finds_spines_near_the_truth(phantom):
    result = analyze(phantom.image, spacing=phantom.spacing, config=FAST)
    assert result.spine_labels.shape == phantom.image.shape
    assert len(result.spines) == len(np.unique(result.spine_labels)) - 1
    match = match_spine_objects(result.spine_labels, phantom.spine_labels, spacing=phantom.spacing)
    # The classical method's level on this preset (benchmarks/accuracy.py): F1 about 0.6.
    assert match["precision"] > 0.5 and match["recall"] > 0.35, match
    for stage in ("segment", "instances", "measure"):
        assert result.timings[stage] >= 0


def test_results_folder_is_complete_and_reproducible(phantom, tmp_path):
    stack = tmp_path / "stack.tif"
    write_tiff(stack, phantom.image, phantom.spacing)
    out = tmp_path / "out"
    assert main(["analyze", str(stack), "--out", str(out), "--no-meshes", "--quiet"]) == 0
    for name in ("spines.csv", "dendrites.csv", "labels_spines.tif", "labels_semantic.tif",
                 "spines_roi.zip", "dendrites.swc", "report.html", "overview.png", "run.json"):
        assert (out / name).exists(), name
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] and run["input"]["spacing_um"] == list(phantom.spacing)
    assert run["config"]["method"] == "lean2d_real" and run["config"]["export_meshes"] is False
    assert 0 < run["config"]["min_confidence"] < 1 and run["config"]["instances"]["method"] == "heads"
    seg = run["diagnostics"]["segment"]
    assert len(seg["model_sha256"]) == 64 and seg["engine"] in ("torch", "onnx")
    assert set(run["timings_s"]) >= {"segment", "instances", "measure", "export", "report"}
    with tifffile.TiffFile(out / "labels_spines.tif") as tf:
        assert tf.imagej_metadata["spacing"] == pytest.approx(phantom.spacing[0])
    spines = pd.read_csv(out / "spines.csv")
    assert len(spines) == run["counts"]["spines"]
    assert spines["confidence"].between(run["config"]["min_confidence"] - 1e-6, 1).all()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "src=\"http" not in html
    assert f"{run['diagnostics']['below_min_confidence']} candidate spines below" in html   # the learnt confidence
    assert "spinequant 0." in html and "head_neck_ratio" in html and "has_neck" in html
    assert '"classical"' not in html          # settings of a method that did not run
    # Same settings from run.json, same input: the same table.
    out2 = tmp_path / "out2"
    assert main(["analyze", str(stack), "--out", str(out2), "--config", str(out / "run.json"), "--quiet"]) == 0
    pd.testing.assert_frame_equal(spines, pd.read_csv(out2 / "spines.csv"))


def test_folder_continues_after_a_bad_stack_and_skips_finished_ones(phantom, tmp_path):
    folder = tmp_path / "stacks"
    folder.mkdir()
    small = phantom.image[:, :96, :96]
    write_tiff(folder / "a.tif", small, phantom.spacing)
    (folder / "b.tif").write_bytes(b"not a tiff at all")
    write_tiff(folder / "c.tif", np.zeros_like(small), phantom.spacing)
    out = tmp_path / "results"
    summary = analyze_folder(folder, out, config=FAST)
    status = dict(zip(summary["stack"], summary["status"]))
    assert status == {"a.tif": "done", "b.tif": "failed", "c.tif": "failed"}
    message = dict(zip(summary["stack"], summary["message"]))
    assert "not a readable TIFF" in message["b.tif"] and "all zero" in message["c.tif"]
    assert (out / "summary.csv").exists() and (out / "a" / "run.json").exists()
    assert not (out / "b" / "run.json").exists()
    again = analyze_folder(folder, out, config=FAST)
    assert dict(zip(again["stack"], again["status"]))["a.tif"] == "skipped"
    # A stack replaced since its run is analysed again.
    write_tiff(folder / "a.tif", small[:, :80, :80], phantom.spacing)
    changed = analyze_folder(folder, out, config=FAST)
    assert dict(zip(changed["stack"], changed["status"]))["a.tif"] == "done"


def test_folder_recursive_and_summary_columns_that_do_not_change_with_the_data(phantom, tmp_path):
    """Sub-folders with --recursive, results mirrored; summary.csv always has the same columns,
    counts as whole numbers and empty (not 0.0 or NaN floats) for a failed stack."""
    from spinequant.pipeline.batch import SUMMARY_COLUMNS

    folder = tmp_path / "stacks"
    (folder / "day1").mkdir(parents=True)
    write_tiff(folder / "day1" / "a.tif", phantom.image, phantom.spacing)
    write_tiff(folder / "b.tif", np.zeros_like(phantom.image[:, :64, :64]), phantom.spacing)
    with pytest.raises(Exception, match="--recursive"):
        analyze_folder(tmp_path, tmp_path / "none", config=FAST)     # stacks only in sub-folders
    out = tmp_path / "results"
    summary = analyze_folder(folder, out, config=FAST, recursive=True)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    rows = summary.set_index("stack")
    assert rows.loc["day1/a.tif", "status"] == "done" and (out / "day1" / "a" / "run.json").exists()
    assert rows.loc["b.tif", "status"] == "failed"
    written = pd.read_csv(out / "summary.csv")
    assert tuple(written.columns) == SUMMARY_COLUMNS
    done = written.set_index("stack").loc["day1/a.tif"]
    types = sum(int(done[f"n_{k}"]) for k in ("stubby", "thin", "mushroom", "branched", "filopodia"))
    assert types == int(done["n_spines"]) > 0
    assert "n_spines,n_dendrites" in (out / "summary.csv").read_text()
    failed_line = next(line for line in (out / "summary.csv").read_text().splitlines() if line.startswith("b.tif"))
    assert ".0" not in failed_line.split(",", 4)[-1]    # no float counts for the failed stack


def test_analyze_rejects_bad_input():
    from spinequant.errors import InputError

    with pytest.raises(InputError, match="3D"):
        analyze(np.ones((2, 5, 5, 5)), spacing=(1, 1, 1))
    with pytest.raises(InputError, match="two numbers"):   # a 2D image takes (y, x)
        analyze(np.random.rand(8, 8), spacing=(1, 0.1, 0.1))
    with pytest.raises(InputError, match="nanometres"):
        analyze(np.random.rand(8, 8), spacing=(94, 94))
    with pytest.raises(InputError, match="voxel size"):
        analyze(np.random.rand(4, 8, 8), spacing=(0, 1, 1))
    with pytest.raises(InputError, match="nanometres"):
        analyze(np.random.rand(4, 8, 8), spacing=(0.5, 94, 94))
