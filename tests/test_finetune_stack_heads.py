"""A model fine-tuned from lean2d_real keeps its 3D head network (stack_heads) when the
held-out stacks say the joined head map detects at least as well, and drops it otherwise."""

import shutil

import numpy as np
import pytest

from spinequant.pipeline import AnalyzeConfig, analyze
from spinequant.pipeline import training
from spinequant.pipeline.training import carry_stack_heads, train_model
from spinequant.segment.neural import TrainConfig, TrainingSample
from spinequant.segment.neural.card import read_card, resolve, update_card
from spinequant.synth import make_phantom, project_phantom


def _fine_tuned_copy(folder):
    """lean2d_real's weights with a card as `spinequant train` writes it (no calibration, no
    3D partner)."""
    card, weights = resolve("lean2d_real")
    folder.mkdir()
    shutil.copy(card, folder / "model.json")
    shutil.copy(weights, folder / "model.safetensors")
    update_card(folder, calibration={}, stack_heads={})
    return folder


def _stack(seed: int, preset: str = "confocal") -> TrainingSample:
    ph = make_phantom(preset, seed=seed, shape=(32, 160, 160))
    heads = ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float) / np.asarray(ph.spacing)
    return TrainingSample(ph.image.astype(np.float32), ph.semantic.astype(np.uint8), tuple(ph.spacing),
                          f"stack-{seed}", heads=heads)


def _projection(seed: int) -> TrainingSample:
    flat = project_phantom(make_phantom("low_snr", seed=seed, shape=(24, 128, 128)))
    heads = flat.spines[["head_y_um", "head_x_um"]].to_numpy(float) / np.asarray(flat.spacing)
    return TrainingSample(flat.image[None].astype(np.float32), flat.semantic[None].astype(np.uint8),
                          (1.0, *flat.spacing), f"flat-{seed}", heads=np.column_stack([np.zeros(len(heads)), heads]))


@pytest.fixture(scope="module")
def stacks():
    return [_stack(seed) for seed in (31, 32, 33, 34)]


def test_the_partner_is_kept_when_the_held_out_stacks_detect_at_least_as_well_with_it(tmp_path, stacks):
    model = _fine_tuned_copy(tmp_path / "tuned")
    note = carry_stack_heads("lean2d_real", model, stacks)
    entry = read_card(model).stack_heads
    measured = entry["held_out"]
    assert (entry["model"], entry["weight"]) == ("heads3d_real", 0.5)
    assert entry["finer_z"]["model"] == "heads3d_fine_real"
    assert measured["stacks"] == 4 and measured["annotated_heads"] >= training.MIN_STACK_HEADS
    # The 3D network ran: the two head maps score differently; on these confocal stacks the
    # joined one finds more heads (0.905 against 0.888, as on the benchmark's phantoms).
    assert measured["f1_joined"] > measured["f1_2d_alone"] > 0.5
    assert "joined by the 3D network heads3d_real" in note and f"{measured['f1_joined']:.3f}" in note
    result = analyze(stacks[0].image, spacing=stacks[0].spacing, keep_maps=False,
                     config=AnalyzeConfig(method=str(model), report=False))
    # a confocal stack (0.28 µm z steps) is joined by the partner for finer z steps
    assert result.diagnostics["segment"]["stack_heads"]["model"] == "heads3d_fine_real"


def test_the_partner_is_dropped_when_the_joined_map_detects_worse(tmp_path, stacks, monkeypatch):
    from spinequant.pipeline import calibrate

    model = _fine_tuned_copy(tmp_path / "tuned")
    seen = []

    def joined_worse(model, samples, **kw):      # as if the 3D network lost heads on these stacks
        seen.append(bool(read_card(model).stack_heads))
        return 0.5 if seen[-1] else 0.6

    monkeypatch.setattr(calibrate, "head_map_f1", joined_worse)
    note = carry_stack_heads("lean2d_real", model, stacks)
    assert seen == [False, True]                 # measured alone first, then joined
    assert read_card(model).stack_heads == {}
    assert "was dropped" in note and "0.500 joined against 0.600 alone" in note
    result = analyze(stacks[0].image, spacing=stacks[0].spacing, keep_maps=False,
                     config=AnalyzeConfig(method=str(model), report=False))
    assert "stack_heads" not in result.diagnostics["segment"]
    # Too few heads to tell: kept, unchecked, and said so.
    few = [_stack(31, "sted")]
    note = carry_stack_heads("lean2d_real", model, few)
    assert read_card(model).stack_heads["model"] == "heads3d_real" and len(seen) == 2
    assert f"{len(few[0].heads)} annotated heads on 1 held-out stack(s) with depth, fewer than" in note


def test_fine_tuning_on_projections_carries_the_partner_unchecked(tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(training, "carry_stack_heads",
                        lambda *a, **kw: called.append(a) or carry_stack_heads(*a, **kw))
    samples = [_projection(seed) for seed in (41, 42, 43)]
    config = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, tile_size=64, num_threads=1,
                         learning_rate=0.0, val_fraction=0.34)
    trained = train_model(samples, out_dir=tmp_path / "tuned", config=config, init="lean2d_real",
                          progress=False, calibrate=None)
    assert len(called) == 1
    entry = read_card(tmp_path / "tuned").stack_heads
    assert entry["model"] == "heads3d_real" and "unchecked" in entry["held_out"]
    assert trained.card.stack_heads == entry
    assert "joined by the 3D network heads3d_real" in trained.summary()
    assert "no held-out annotated stack has depth" in trained.summary()
    # A model that names no 3D network gives nothing to carry.
    assert carry_stack_heads(tmp_path / "tuned", tmp_path / "tuned", samples) != ""
    update_card(tmp_path / "tuned", stack_heads={})
    assert carry_stack_heads(tmp_path / "tuned", tmp_path / "tuned", samples) == ""
