"""One way to check stage configs: every config refuses a bad setting when it is made."""

import dataclasses
import json

import pytest

from spinequant.cli import main
from spinequant.config import config_from_dict
from spinequant.errors import InputError
from spinequant.evaluate.config import EvaluationConfig
from spinequant.instances import InstanceConfig
from spinequant.morphology import MorphologyConfig
from spinequant.pipeline import AnalyzeConfig
from spinequant.segment.classical import ClassicalConfig


@pytest.mark.parametrize("cls, values, message", [
    (InstanceConfig, dict(threshold=1.5), "InstanceConfig.threshold=1.5 .*at most 1"),
    (InstanceConfig, dict(head_threshold=0), "above 0"),
    (InstanceConfig, dict(connectivity=8), "choose one of \\[6, 18, 26\\]"),
    (InstanceConfig, dict(max_volume_um3=float("nan")), "NaN"),
    (InstanceConfig, dict(noise_rule="yes"), "true or false"),
    (InstanceConfig, dict(min_planes=1.5), "whole number"),
    (ClassicalConfig, dict(threshold="median"), "choose one of"),
    (ClassicalConfig, dict(threshold=-3.0), "at least 0"),
    (ClassicalConfig, dict(smooth_sigma_um=(0.1, 0.1)), "3 values"),
    (ClassicalConfig, dict(local_fraction=2.0), "at most 1"),
    (ClassicalConfig, dict(z_elongation=0), "above 0"),
    (MorphologyConfig, dict(prune_length_um=-1.0), "at least 0"),
    (AnalyzeConfig, dict(engine="gpu"), "choose one of"),
    (AnalyzeConfig, dict(min_confidence=1.2), "below 1"),
    (AnalyzeConfig, dict(instances="floodfill"), "InstanceConfig"),
    (EvaluationConfig, dict(matching="best"), "choose one of"),
    (EvaluationConfig, dict(max_distance_um=(2.5, -1, 0.85)), "above 0"),
])
def test_bad_settings_are_refused_with_their_name(cls, values, message):
    with pytest.raises(InputError, match=message):
        cls(**values)


def test_good_settings_pass_and_numbers_in_words_are_kept():
    assert ClassicalConfig(threshold=120.0, z_elongation=3.0).threshold == 120.0
    assert ClassicalConfig(threshold="otsu").threshold == "otsu"
    assert InstanceConfig(max_distance_to_dendrite_um=None).max_distance_to_dendrite_um is None
    assert AnalyzeConfig(min_confidence=None, engine="onnx").engine == "onnx"
    for cls in (InstanceConfig, ClassicalConfig, MorphologyConfig, AnalyzeConfig, EvaluationConfig):
        cls()   # the defaults are valid


def test_run_json_with_a_bad_nested_setting_is_refused_before_any_work(tmp_path, capsys):
    """A run.json whose spine-object settings are wrong fails at once, naming the setting."""
    values = dataclasses.asdict(AnalyzeConfig())
    values["instances"] = dataclasses.asdict(InstanceConfig(method="heads"))
    values["instances"]["split_by"] = "area"
    with pytest.raises(InputError, match="InstanceConfig.split_by"):
        config_from_dict(AnalyzeConfig, values)
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"config": values}))
    code = main(["analyze", "sample", "--config", str(run), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "split_by" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
