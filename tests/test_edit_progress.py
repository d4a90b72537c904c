"""Progress within the analysis stages and training, and stopping them by raising
spinequant.errors.Cancelled from the progress callback (what the napari plugin's Cancel does);
the spine-head points saved with corrected training data, read back by `spinequant train`."""

import json
import time

import numpy as np
import pytest

import spinequant as sq
from spinequant.data import sample_stack
from spinequant.edit import EditSession
from spinequant.errors import Cancelled, SpinequantError
from spinequant.pipeline import save_result
from spinequant.segment import segment_maps
from spinequant.segment.neural import TrainConfig, TrainingSample, train
from spinequant.segment.neural.augment import AugmentConfig

STAGES = ("segment", "instances", "measure")


@pytest.fixture(scope="module")
def stack():
    return sample_stack()


@pytest.fixture(scope="module")
def reports(stack):
    calls = []
    result = sq.analyze(stack, progress=lambda stage, fraction: calls.append((stage, fraction)))
    return result, calls


def test_analyze_reports_fractions_within_each_stage(reports):
    result, calls = reports
    assert [s for s, f in calls if f == 0.0] == list(STAGES)          # each stage starts at 0
    for stage in STAGES:
        fractions = [f for s, f in calls if s == stage]
        assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    # the network's tiles batch by batch (the sample: dozens of batches), the other stages by steps
    assert len([f for s, f in calls if s == "segment"]) > 20
    assert len([f for s, f in calls if s == "instances"]) >= 4
    assert len(result.spines) > 10


def test_a_one_argument_callback_gets_the_stage_names(stack):
    names = []
    sq.analyze(stack, config=sq.AnalyzeConfig(method="classical"), progress=names.append)
    assert names == list(STAGES)


def test_progress_leaves_the_maps_unchanged(stack, reports):
    image, spacing = np.asarray(stack.data), stack.spacing
    fractions = []
    for method in ("lean2d_real", "classical"):
        quiet = segment_maps(image, spacing=spacing, method=method)
        told = segment_maps(image, spacing=spacing, method=method, progress=fractions.append)
        assert np.array_equal(quiet.dendrite, told.dendrite) and np.array_equal(quiet.spine, told.spine)
    assert fractions[-1] == 1.0 and len(fractions) > 20


@pytest.mark.parametrize("method", ["lean2d_real", "classical"])
def test_cancel_stops_mid_segment_at_once(stack, method):
    seen, raised = [], []

    def progress(stage, fraction):
        seen.append((stage, fraction))
        if stage == "segment" and fraction > 0:
            raised.append(time.perf_counter())
            raise Cancelled

    with pytest.raises(Cancelled):
        sq.analyze(stack, config=sq.AnalyzeConfig(method=method), progress=progress)
    assert time.perf_counter() - raised[0] < 0.5          # nothing runs on after the callback raised
    assert seen[-1][0] == "segment" and all(s == "segment" for s, _ in seen)
    # Cancelled is no Exception: an `except Exception` (a folder run's per-stack guard) lets it through.
    assert not issubclass(Cancelled, Exception) and not issubclass(Cancelled, SpinequantError)


def test_cancel_while_saving_leaves_nothing(reports, tmp_path):
    result, _ = reports

    def progress(stage, fraction):
        if stage == "report":
            raise Cancelled

    with pytest.raises(Cancelled):
        save_result(result, tmp_path / "out", progress=progress)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _tiny_stack(seed):
    rng = np.random.default_rng(seed)
    sem = np.zeros((3, 48, 48), np.uint8)
    sem[:, 10:16, :] = 1
    sem[:, 16:20, 8:12] = 2
    img = (rng.normal(100, 8, sem.shape) + 120 * (sem > 0)).astype(np.float32)
    return TrainingSample(img, sem, (0.5, 0.1, 0.1), f"s{seed}")


TINY = TrainConfig(architecture={"kind": "dual_unet2d", "base_filters": 4, "depth": 1, "separable": False,
                                 "space_to_depth": 1, "z_context": 0},
                   tile_size=24, batch_size=2, steps_per_epoch=3, epochs=3, val_patches=4, num_threads=1,
                   patience=100, augment=AugmentConfig.off())


def test_training_reports_steps_and_epochs_and_cancels_midway(tmp_path):
    samples = [_tiny_stack(0), _tiny_stack(1)]
    calls = []

    def progress(epoch, step, metrics):
        calls.append((epoch, step, metrics))
        if epoch == 2 and step == 2 and metrics is None:
            raise Cancelled

    with pytest.raises(Cancelled):
        train(samples, out_dir=tmp_path / "m", config=TINY, progress=progress)
    assert [(e, s) for e, s, m in calls if m is None] == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]
    epochs = [m for _, _, m in calls if m is not None]
    assert len(epochs) == 1 and epochs[0]["epoch"] == 1 and np.isfinite(epochs[0]["val_loss"])
    # The first epoch's model and checkpoint stay whole; training again resumes after it.
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["validation"]["epoch"] == 1
    assert json.loads((tmp_path / "m" / "checkpoint.json").read_text())["epoch"] == 1
    resumed = []
    train(samples, out_dir=tmp_path / "m", config=TINY, progress=lambda e, s, m: resumed.append(e))
    assert resumed[0] == 2 and resumed[-1] == 3


def test_training_data_carries_head_points_that_train_reads(reports, tmp_path, monkeypatch, capsys):
    from spinequant.cli import main
    from spinequant.cli import train as cli_train
    from spinequant.groundtruth.layout import HEADS_FILE
    from spinequant.segment.neural import load_training_data

    result, _ = reports
    session = EditSession.from_result(result)
    session.delete([int(session.spines["id"].iloc[0])])
    folder = session.save_training(tmp_path / "data" / "sample")
    heads = (session.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float)
             / np.asarray(result.spacing))
    assert len(heads) == len(result.spines) - 1 and (folder / HEADS_FILE).exists()
    samples = load_training_data(tmp_path / "data")
    np.testing.assert_allclose(samples[0].heads, heads, atol=1e-6)
    # One stack is split into training and validation rows; each part keeps its own heads.
    from spinequant.segment.neural.train import split_validation

    (fit,), (val,) = split_validation(samples, 0.2)
    assert len(fit.heads) + len(val.heads) == len(heads) and len(fit.heads) and len(val.heads)
    assert (val.heads[:, 1] >= 0).all() and (val.heads[:, 1] < val.image.shape[1]).all()
    # Every head lies in its spine (the labels saved beside it).
    ids = session.spine_labels[tuple(np.round(heads).astype(int).T)]
    assert (ids == session.spines["id"].to_numpy()).mean() > 0.9
    # `spinequant train` reads them: a one-step fine-tuning of the point-head model sees them.
    seen = []
    from spinequant.pipeline import training

    real_train = training.train

    def spy(samples, **kwargs):
        seen.extend(samples)
        return real_train(samples, **kwargs)

    monkeypatch.setattr(training, "train", spy)
    rc = main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--from", "lean2d_real",
               "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--threads", "1"])
    assert rc == 0 and (tmp_path / "model" / "model.safetensors").exists()
    # It learns from the training rows and holds out the validation rows, on which it then
    # calibrates the new network's confidence.
    np.testing.assert_allclose(seen[0].heads, fit.heads, atol=1e-6)
    # The validation rows of one small stack are too few to calibrate on: the run says so, and the
    # new model keeps the learnt confidence of lean2d_real (its trees copied beside the card).
    out = capsys.readouterr().out
    assert "Spine confidence not calibrated: Too few candidate spines" in out, out
    assert "keeps the learnt confidence of the model it was fine-tuned from, unchecked" in out, out
    from spinequant.segment.neural.card import read_card

    calibration = read_card(tmp_path / "model").calibration
    assert calibration["method"] == "trees" and (tmp_path / "model" / calibration["file"]).exists()
    assert calibration == read_card("lean2d_real").calibration


def test_cli_progress_line_moves_within_stages(monkeypatch):
    import io
    import sys

    from spinequant.cli.analyze import _StageBar
    from spinequant.pipeline import STAGES as ALL_STAGES

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = _StageBar(ALL_STAGES, quiet=False)
    bar.stage("segment", 0.0)
    bar.stage("segment", 0.5)
    assert bar.bar.n == 0.5 and bar.bar.desc == "segment"
    bar.stage("instances", 0.0)
    assert bar.bar.n == 1 and bar.bar.desc == "instances"
    bar.close()
    log = io.StringIO()                       # not a terminal: one line per stage, none per fraction
    monkeypatch.setattr(sys, "stderr", log)
    bar = _StageBar(ALL_STAGES, quiet=False)
    for stage, fraction in (("segment", 0.0), ("segment", 0.4), ("segment", 0.9), ("instances", 0.0)):
        bar.stage(stage, fraction)
    assert [line.split("] ")[1] for line in log.getvalue().splitlines()] == ["segment", "instances"]
