"""Point head: head-centre targets, partly annotated training data, spine objects seeded at
head-map peaks, calibrated confidence, and the pipeline around them."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from spinequant.cli import main
from spinequant.instances import InstanceConfig, spine_instances
from spinequant.instances.heads import head_peaks
from spinequant.pipeline.analyze import AnalyzeConfig, analyze, resolve_config
from spinequant.segment.neural import ModelCard, build, save_model
from spinequant.segment.neural.architectures import architecture, n_outputs
from spinequant.segment.neural.calibration import (confidence, expected_calibration_error, fit_platt,
                                                   score_for)
from spinequant.segment.neural.data import UNLABELLED, TrainingSample, head_heatmap
from spinequant.segment.neural.losses import head_focal_loss, points_focal_loss, points_loss
from spinequant.segment.neural.train import TrainConfig, train
from spinequant.segment.neural.yolo_data import yolo_training_sample


def test_point_head_network_returns_three_maps():
    spec = architecture("lean2d_points")
    net = build(spec).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 64))
    assert n_outputs(spec) == 3 and out.shape == (2, 3, 64, 64)
    assert n_outputs("lean2d") == 2


def test_head_heatmap_is_a_gaussian_in_micrometres():
    heat = head_heatmap((3, 21, 21), [[1, 10, 10]], (0.5, 0.1, 0.1), sigma_um=(0.5, 0.25, 0.25))
    assert heat[1, 10, 10] == pytest.approx(1.0)
    # 0.25 µm (one sigma) away in x is exp(-1/2); one plane (0.5 µm = one sigma) away in z too
    assert heat[1, 10, 12] == pytest.approx(np.exp(-0.5 * (0.2 / 0.25) ** 2), rel=1e-5)
    assert heat[0, 10, 10] == pytest.approx(np.exp(-0.5), rel=1e-5)
    assert heat[1, 0, 0] < 1e-6


def test_points_loss_ignores_unlabelled_pixels_and_unknown_heads():
    logits = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    target = torch.zeros(2, 2, 16, 16)
    target[:, 0] = UNLABELLED                      # no mask annotated anywhere
    target[:, 1] = float("nan")                    # no heads annotated either
    assert float(points_loss(logits, target)) == pytest.approx(0.0, abs=1e-5)
    # changing the logits where nothing is known changes nothing; a known head map does
    target[0, 1] = 0.0
    target[0, 1, 8, 8] = 1.0
    assert float(points_loss(logits, target)) > 0.1


def test_focal_head_loss_rewards_a_weak_second_head_and_ignores_unknown_heads():
    heat = torch.from_numpy(head_heatmap((1, 32, 32), [[0, 10.2, 10.3], [0, 16.4, 10.2]], (1, 0.1, 0.1),
                                         sigma_um=(1, 0.25, 0.25)))
    known = torch.ones_like(heat, dtype=torch.bool)
    one = torch.full_like(heat, -9.0)
    one[0, 10, 10] = 9.0                                          # the second head not found
    both = one.clone()
    both[0, 16, 10] = 9.0
    weak = one.clone()
    weak[0, 16, 10] = 0.0                                         # found at p = 0.5
    losses = [float(head_focal_loss(x, heat, known)) for x in (one, weak, both)]
    assert losses[0] > losses[1] > losses[2] >= 0
    assert losses[2] == pytest.approx(0.0, abs=1e-3)
    # a false peak beside a head is forgiven ((1 - y)^4), one far from every head is not
    near, far = one.clone(), one.clone()
    near[0, 17, 10] = 9.0
    far[0, 28, 28] = 9.0
    extra_near, extra_far = (float(head_focal_loss(x, heat, known)) - losses[0] for x in (near, far))
    assert 0 <= extra_near < 0.01 < 1.0 < extra_far
    # nothing is learnt where heads were not annotated
    target = torch.stack([torch.full((1, 32, 32), float(UNLABELLED)), torch.full((1, 32, 32), float("nan"))], 1)
    logits = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert float(points_focal_loss(logits, target)) == pytest.approx(0.0, abs=1e-5)


def test_yolo_boxes_become_head_points_and_polygons_masks(tmp_path):
    image = np.zeros((40, 40), np.uint8)
    image[18:22, :] = 200                                          # shaft
    image[8:18, 9:12] = 150                                        # a spine above it
    boxes = tmp_path / "boxes.txt"
    boxes.write_text("0 0.2625 0.2625 0.05 0.05\n")                 # centre at pixel (10, 10)
    sample, classes = yolo_training_sample(image, boxes, pixel_size_um=0.1)
    assert classes.tolist() == [0] and np.allclose(sample.heads, [[0, 10, 10]])
    assert (sample.semantic == UNLABELLED).all() and sample.spacing[1:] == (0.1, 0.1)
    # a polygon around the spine: spine mask, the rest of the signal is dendrite, head at its far end
    poly = tmp_path / "poly.txt"
    poly.write_text("3 " + " ".join(f"{x / 40} {y / 40}" for x, y in
                                    [(9, 8), (12, 8), (12, 18), (9, 18)]) + "\n")
    sample, classes = yolo_training_sample(image, poly, pixel_size_um=0.1)
    assert classes.tolist() == [3]
    sem = sample.semantic[0]
    assert sem[12, 10] == 2 and sem[20, 30] == 1 and sem[2, 2] == 0
    z, y, x = sample.heads[0]
    assert y < 12 and 9 <= x <= 11                                 # the end away from the shaft


def _maps_with_two_heads():
    spine = np.zeros((1, 60, 60), np.float32)
    spine[0, 10:20, 10:14] = 0.8            # spine 1 with its head at the top
    spine[0, 40:44, 40:50] = 0.6            # a shaft fragment the head map never marks
    heads = head_heatmap(spine.shape, [[0, 11, 12], [0, 45, 20]], (0.5, 0.1, 0.1),
                         sigma_um=(0.75, 0.2, 0.2))
    heads[0, 35:, :] *= 0.5                 # the second head: peak 0.5, no spine map around it
    return spine, heads


@pytest.mark.parametrize("z_step, n_peaks", [(0.2, 2), (0.28, 2), (0.5, 1)])
def test_heads_stacked_in_z_are_two_peaks_where_the_z_steps_are_fine(z_step, n_peaks):
    """Two heads 0.5-0.6 µm apart along z (on planes), 0.2 µm in the plane, each a clear
    maximum: two spines at STED's and confocal's z steps; at 0.5 µm steps (a two-photon stack,
    whose PSF smears a head over 3 µm) peaks stay 0.8 µm apart along z, as before session 36."""
    n_planes = int(round(3.0 / z_step))
    z = np.arange(n_planes)[:, None, None] * z_step
    y = np.arange(40)[None, :, None] * 0.05
    x = np.arange(40)[None, None, :] * 0.05
    def blob(cz, cy, cx):
        return np.exp(-((z - cz) ** 2 / (2 * 0.2**2) + ((y - cy) ** 2 + (x - cx) ** 2) / (2 * 0.15**2)))
    cz, dz = (n_planes // 2) * z_step, round(0.55 / z_step) * z_step    # 0.6 / 0.56 / 0.5 µm
    heads = np.maximum(blob(cz, 1.0, 1.0), blob(cz + dz, 1.0, 1.2)).astype(np.float32)
    peaks, _ = head_peaks(heads, (z_step, 0.05, 0.05), threshold=0.3, min_distance_um=0.4)
    assert len(peaks) == n_peaks


@pytest.mark.parametrize("spine_level, n_peaks", [(0.8, 2), (0.2, 1)])
def test_heads_side_by_side_are_two_where_the_spine_map_says_spine(spine_level, n_peaks):
    """Two heads 0.3 µm apart in the plane, each a clear maximum of the head map: closer than
    the 0.4 µm that keeps peaks apart, so the weaker is a head only where the spine map is at
    least head_close_spine_min there (0.3), not on a stretch the network calls shaft."""
    y = np.arange(40)[:, None] * 0.05
    x = np.arange(40)[None, :] * 0.05
    def blob(cy, cx, peak):
        return peak * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 0.08**2))
    heads = np.maximum(blob(1.0, 1.0, 0.9), blob(1.0, 1.3, 0.7)).astype(np.float32)
    spine = np.where(heads > 0.1, 0.9, 0.0).astype(np.float32)
    spine[:, 24:] = np.minimum(spine[:, 24:], spine_level)      # around the weaker head
    spacing = (0.05, 0.05)
    alone, _ = head_peaks(heads, spacing, threshold=0.3, min_distance_um=0.4)
    assert alone.tolist() == [[20, 20]]                          # the installed distance alone
    peaks, values = head_peaks(heads, spacing, threshold=0.3, min_distance_um=0.4,
                               close_distance_um=0.2, spine_prob=spine, close_spine_min=0.3)
    assert peaks.tolist() == [[20, 20], [20, 26]][:n_peaks] and values[0] >= values[-1]
    # the analysis settings: the close rule is on by default and off at the installed distance
    cfg = InstanceConfig(method="heads", threshold=0.1, head_threshold=0.3, min_volume_um3=0.0001,
                         noise_rule=False)
    assert spine_instances(spine, None, spacing=spacing, config=cfg, head_prob=heads).n_spines == n_peaks
    off = dataclasses.replace(cfg, head_close_distance_um=0.4)
    assert spine_instances(spine, None, spacing=spacing, config=off, head_prob=heads).n_spines == 1
    with pytest.raises(Exception, match="head_close_spine_min"):
        dataclasses.replace(cfg, head_close_spine_min=1.5)


@pytest.mark.parametrize("image_kind, n_peaks", [("two heads", 2), ("head and neck", 1)])
def test_a_head_on_a_stronger_heads_flank_is_a_head_where_the_image_dips_between_them(image_kind, n_peaks):
    """Two heads 0.45 µm apart (a diagonal in the plane) whose head-map blobs merge: the weaker
    one is a maximum on the stronger's flank but not the highest voxel of any box around it,
    so no box rule finds it. It is a head when the image dips between the two (two heads
    side by side), not when it rises steadily from one to the other (a head and its own neck,
    which the network's map may also bump)."""
    y = np.arange(50)[:, None] * 0.05
    x = np.arange(50)[None, :] * 0.05
    def blob(cy, cx, peak, sigma):
        return peak * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    heads = (blob(1.0, 1.0, 0.95, 0.2) + blob(1.32, 1.32, 0.55, 0.1)).astype(np.float32)
    spine = np.where(heads > 0.1, 0.9, 0.0).astype(np.float32)
    spacing = (0.05, 0.05)
    if image_kind == "two heads":
        image = blob(1.0, 1.0, 1.0, 0.12) + blob(1.32, 1.32, 0.8, 0.1)
    else:                                         # a bright head, its dimmer neck running to the weaker maximum
        t = np.clip(((y - 1.0) + (x - 1.0)) / 2, 0.0, 0.32)          # nearest point of the neck's line
        neck = 0.6 * np.exp(-((y - 1.0 - t) ** 2 + (x - 1.0 - t) ** 2) / (2 * 0.08**2))
        image = np.maximum(blob(1.0, 1.0, 1.0, 0.12), neck)
    cfg = InstanceConfig(method="heads", threshold=0.1, head_threshold=0.3, min_volume_um3=0.0001, noise_rule=False)
    boxes, _ = head_peaks(heads, spacing, threshold=0.3, min_distance_um=0.4, close_distance_um=0.2,
                          spine_prob=spine, close_spine_min=0.3)
    assert len(boxes) == 1                                       # the box rules find one head
    assert spine_instances(spine, None, spacing=spacing, config=cfg, head_prob=heads,
                           image=image).n_spines == n_peaks
    off = dataclasses.replace(cfg, head_flank_prominence=0.0)
    assert spine_instances(spine, None, spacing=spacing, config=off, head_prob=heads, image=image).n_spines == 1
    # without the image (a caller that gives none) the rule cannot look for the dip: off
    assert spine_instances(spine, None, spacing=spacing, config=cfg, head_prob=heads).n_spines == 1


def test_heads_seed_spine_objects_and_fragments_without_a_head_are_not_spines():
    spine, heads = _maps_with_two_heads()
    peaks, values = head_peaks(heads, (0.5, 0.1, 0.1), threshold=0.3, min_distance_um=0.4)
    assert peaks[:, 1:].tolist() == [[11, 12], [45, 20]] and values[0] > values[1]
    cfg = InstanceConfig(method="heads", threshold=0.1, head_threshold=0.3, min_volume_um3=0.001,
                         noise_rule=False)
    result = spine_instances(spine, None, spacing=(0.5, 0.1, 0.1), config=cfg, head_prob=heads)
    labels = result.spine_labels[0]
    assert result.n_spines == 2
    assert labels[15, 12] > 0                                       # outlined by the spine map
    assert labels[42, 45] == 0                                      # fragment: no head, no spine
    assert labels[45, 20] > 0                                       # head with an invisible neck
    assert result.scores[labels[11, 12]] == pytest.approx(1.0, abs=1e-3)
    assert result.scores[labels[45, 20]] == pytest.approx(0.5, abs=1e-3)
    # a higher threshold keeps only the strong head
    strict = spine_instances(spine, None, spacing=(0.5, 0.1, 0.1), head_prob=heads,
                             config=dataclasses.replace(cfg, head_threshold=0.7))
    assert strict.n_spines == 1
    with pytest.raises(Exception, match="spine-head map"):
        spine_instances(spine, None, spacing=(0.5, 0.1, 0.1), config=cfg)


def test_two_touching_spines_are_split_between_their_heads():
    spine = np.zeros((40, 40), np.float32)
    spine[10:30, 10:14] = 0.9                               # one region ...
    heads = head_heatmap((1, 40, 40), [[0, 12, 12], [0, 27, 12]], (0.5, 0.1, 0.1),
                         sigma_um=(0.75, 0.2, 0.2))[0]      # ... with two heads (2D maps)
    cfg = InstanceConfig(method="heads", threshold=0.1, min_volume_um3=0.0001, noise_rule=False)
    labels = spine_instances(spine, None, spacing=(0.1, 0.1), config=cfg, head_prob=heads).spine_labels
    assert labels.max() == 2 and labels[12, 12] != labels[27, 12]


def test_a_head_in_a_wide_faint_region_is_judged_by_its_trimmed_size():
    # a head (spine map 0.9 over 0.5 x 0.5 µm) inside a faint stretch of the spine map (0.2,
    # 6 x 6 µm, i.e. 36 µm² above the 0.1 threshold): trimmed to half its peak it is a head-sized
    # spine; only once trimmed is it compared with the largest spine area
    spine = np.zeros((80, 80), np.float32)
    spine[10:70, 10:70] = 0.2
    spine[38:43, 38:43] = 0.9
    heads = head_heatmap((1, 80, 80), [[0, 40, 40]], (0.5, 0.1, 0.1), sigma_um=(0.5, 0.2, 0.2))[0]
    cfg = InstanceConfig(method="heads", threshold=0.1, head_threshold=0.3, max_volume_um3=4.4,
                         peak_fraction=0.5, max_distance_to_dendrite_um=None)
    result = spine_instances(spine, None, spacing=(0.1, 0.1), config=cfg, head_prob=heads)
    assert result.n_spines == 1
    assert np.count_nonzero(result.spine_labels) == 25                # the head, not the stretch
    # a head that is large even once trimmed is still refused by the size rule
    spine[30:50, 30:50] = 0.9
    big = spine_instances(spine, None, spacing=(0.1, 0.1), config=cfg, head_prob=heads)
    assert big.n_spines == 0 and big.removed["volume"] == 1


def test_platt_calibration_recovers_a_known_relation_and_inverts():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.02, 0.98, 20000)
    truth = confidence(scores, {"a": 2.0, "b": -1.0})
    hits = rng.random(scores.size) < truth
    params = fit_platt(scores, hits)
    assert params["a"] == pytest.approx(2.0, abs=0.1) and params["b"] == pytest.approx(-1.0, abs=0.1)
    ece, table = expected_calibration_error(confidence(scores, params), hits)
    assert ece < 0.02 and table[:, 3].sum() == scores.size
    assert ece < expected_calibration_error(scores, hits)[0]     # raw scores are off
    assert score_for(0.5, params) == pytest.approx(
        float(np.clip(scores, 0, 1)[np.argmin(np.abs(confidence(scores, params) - 0.5))]), abs=0.01)


@pytest.fixture
def point_model(tmp_path):
    torch.manual_seed(0)
    spec = architecture("lean2d_points")
    net = build(spec).eval()
    card = ModelCard(name="tiny-points", architecture=spec, voxel_size_um=(0.5, 0.1, 0.1), tile_size=64,
                     calibration={"method": "platt", "a": 1.0, "b": 0.0, "min_confidence": 0.4})
    save_model(net, card, tmp_path / "points")
    return tmp_path / "points.json"


def test_analyze_with_a_point_head_model_reports_confidence(point_model):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 48)).astype(np.uint8)
    config = resolve_config(AnalyzeConfig(method=str(point_model), report=False))
    assert config.min_confidence == 0.4 and config.instances.method == "heads"
    assert config.instances.head_threshold == pytest.approx(0.4)   # identity calibration
    result = analyze(image, spacing=(0.1, 0.1), config=AnalyzeConfig(method=str(point_model),
                                                                      min_confidence=0.2))
    assert "confidence" in result.spines
    assert (result.spines["confidence"] >= 0.2 - 1e-6).all()
    with pytest.raises(Exception, match="min_confidence=1.5 .*below 1"):
        resolve_config(AnalyzeConfig(method=str(point_model), min_confidence=1.5))


def test_cli_min_confidence_is_recorded_and_refused_for_methods_without_scores(tmp_path, point_model, capsys):
    import tifffile

    image = np.random.default_rng(1).integers(0, 255, (48, 48)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "plane.tif", image)
    out = tmp_path / "r"
    code = main(["analyze", str(tmp_path / "plane.tif"), "--voxel-size", "0.1", "0.1", "--out", str(out),
                 "--method", str(point_model), "--min-confidence", "0.3", "--quiet", "--no-meshes"])
    assert code == 0
    assert json.loads((out / "run.json").read_text())["config"]["min_confidence"] == 0.3
    report = (out / "report.html").read_text()
    assert "spines below 0.3 were left out" in report
    code = main(["analyze", str(tmp_path / "plane.tif"), "--voxel-size", "0.1", "0.1", "--out",
                 str(tmp_path / "c"), "--method", "classical", "--min-confidence", "0.3", "--quiet"])
    assert code == 2 and "scores each spine" in capsys.readouterr().err


@pytest.mark.parametrize("consistency", [0.0, 0.5])
def test_training_on_points_only_and_outline_samples_runs(tmp_path, consistency):
    rng = np.random.default_rng(0)
    img = rng.normal(10, 2, (1, 64, 64)).astype(np.float32)
    img[0, 30:34, :] += 50
    points = TrainingSample(img, np.full(img.shape, UNLABELLED, np.uint8), (0.5, 0.1, 0.1), "points",
                            heads=[[0, 20, 20]])
    sem = np.zeros(img.shape, np.uint8)
    sem[0, 30:34, :] = 1
    sem[0, 22:30, 40:43] = 2
    masks = TrainingSample(img, sem, (0.5, 0.1, 0.1), "masks", heads=[[0, 23, 41]])
    config = TrainConfig(architecture="lean2d_points", tile_size=32, batch_size=2, steps_per_epoch=2,
                         epochs=1, val_patches=2, num_threads=1, consistency_weight=consistency)
    net, card = train([points, masks], out_dir=tmp_path / "m", config=config, val_samples=[masks],
                      progress=False)
    assert card.architecture["point_head"] and np.isfinite(card.validation["val_loss"])


def test_implausible_pixel_size_is_reported(tmp_path, capsys):
    import tifffile

    from spinequant.synth import make_phantom

    ph = make_phantom("two_photon", seed=3, shape=(16, 192, 192))
    plane = ph.image.max(axis=0)
    tifffile.imwrite(tmp_path / "plane.tif", plane)
    right = main(["analyze", str(tmp_path / "plane.tif"), "--voxel-size", "0.094", "0.094", "--out",
                  str(tmp_path / "ok"), "--method", "classical", "--no-meshes"])
    assert right == 0 and "Warning" not in capsys.readouterr().err
    # 5x too fine: still a plausible number (under 0.01 µm, e.g. 0.0094, the input is refused)
    wrong = main(["analyze", str(tmp_path / "plane.tif"), "--voxel-size", "0.0188", "0.0188", "--out",
                  str(tmp_path / "nm"), "--method", "classical", "--no-meshes"])
    err = capsys.readouterr().err
    assert wrong == 0 and "No dendrite was found" in err and "0.0188 x 0.0188 µm" in err
    run = json.loads((tmp_path / "nm" / "run.json").read_text())
    assert run["diagnostics"]["warnings"] and "Warning" in (tmp_path / "nm" / "report.html").read_text()


def test_train_cli_on_a_yolo_folder(tmp_path, point_model, capsys):
    import imageio.v3 as iio

    rng = np.random.default_rng(2)
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "labels").mkdir()
    for k in range(2):
        img = rng.integers(0, 40, (64, 64)).astype(np.uint8)
        img[30:34] = 200
        iio.imwrite(tmp_path / "data" / "images" / f"cell{k}.png", img)
        (tmp_path / "data" / "labels" / f"cell{k}.txt").write_text("0 0.5 0.4 0.05 0.05\n0 0.2 0.6 0.05 0.05\n")
    common = ["train", str(tmp_path / "data"), "--voxel-size", "0.1", "0.1", "--epochs", "1",
              "--steps-per-epoch", "2", "--batch-size", "2", "--tile-size", "32", "--threads", "1"]
    # points only: a model without a point head cannot learn from them
    assert main([*common, "--out", str(tmp_path / "m0")]) == 2
    assert "point head" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "m1"), "--from", str(point_model)]) == 0
    assert (tmp_path / "m1" / "model.safetensors").exists()
    # Points label no pixel: no IoU is claimed for them, and one held-out image with two heads
    # is too little to calibrate the confidence on (the run says so and still writes the model).
    out = capsys.readouterr().out
    assert "dendrite IoU n/a (no masks), spine IoU n/a (no masks)" in out, out
    assert "Spine confidence not calibrated: Too few candidate spines" in out, out
    assert json.loads((tmp_path / "m1" / "model.json").read_text())["validation"]["spine_iou"] is None


def test_a_training_label_file_that_cannot_be_read_is_named(tmp_path):
    from spinequant.errors import InputError
    from spinequant.segment.neural.yolo_data import read_yolo_lines

    (tmp_path / "moved.txt").symlink_to(tmp_path / "elsewhere.txt")      # a link whose file was moved
    with pytest.raises(InputError, match="moved.txt' cannot be read .No such file.*or remove it"):
        read_yolo_lines(tmp_path / "moved.txt")


def test_update_card_keeps_the_weights_and_their_checksum(point_model):
    from spinequant.segment.neural.card import read_card, sha256_of, update_card

    before = sha256_of(point_model.with_suffix(".safetensors"))
    update_card(point_model, calibration={"method": "platt", "a": 2.0, "b": 0.0, "min_confidence": 0.5})
    card = read_card(point_model)
    assert card.calibration["a"] == 2.0 and card.sha256 == before
    assert sha256_of(point_model.with_suffix(".safetensors")) == before


def test_config_of_another_method_does_not_carry_its_spine_object_settings(tmp_path, point_model, capsys):
    import tifffile

    image = np.random.default_rng(3).integers(0, 255, (48, 48)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "plane.tif", image)
    first = tmp_path / "a"
    assert main(["analyze", str(tmp_path / "plane.tif"), "--voxel-size", "0.1", "0.1", "--out", str(first),
                 "--method", str(point_model), "--quiet", "--no-meshes"]) == 0
    second = tmp_path / "b"
    assert main(["analyze", str(tmp_path / "plane.tif"), "--voxel-size", "0.1", "0.1", "--out", str(second),
                 "--config", str(first / "run.json"), "--method", "classical", "--no-meshes"]) == 0
    assert "differs from the method" in capsys.readouterr().err
    run = json.loads((second / "run.json").read_text())
    assert run["config"]["instances"]["method"] == "components" and run["config"]["min_confidence"] is None
