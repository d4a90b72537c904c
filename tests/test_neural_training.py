"""Neural segmentation: losses, patches, training, determinism, resume, data folders, CLI."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from safetensors.torch import load_file

from spinequant.cli import main
from spinequant.errors import InputError
from spinequant.io import write_tiff
from spinequant.io.swc import write_swc
from spinequant.segment.neural import TrainConfig, TrainingSample, load_training_data, train
from spinequant.segment.neural import losses
from spinequant.segment.neural.augment import AugmentConfig, sample_patch

TINY = {"kind": "dual_unet2d", "base_filters": 4, "depth": 1, "separable": False,
        "space_to_depth": 1, "z_context": 0}
CFG = TrainConfig(architecture=TINY, tile_size=24, batch_size=4, steps_per_epoch=6, epochs=2,
                  learning_rate=1e-2, val_patches=8, num_threads=1, augment=AugmentConfig.off())


def _stack(seed=0):
    """Bright horizontal bars (dendrite) with bright blobs (spines) on a dim noisy background."""
    rng = np.random.default_rng(seed)
    sem = np.zeros((3, 48, 48), np.uint8)
    sem[:, 10:16, :] = 1
    sem[:, 30:36, :] = 1
    sem[:, 16:20, 8:12] = 2
    sem[:, 26:30, 30:34] = 2
    img = (rng.normal(100, 8, sem.shape) + 120 * (sem > 0)).astype(np.float32)
    return TrainingSample(img, sem, (0.5, 0.1, 0.1), f"s{seed}")


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_dice_and_mse_losses_known_values():
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert float(losses.dice_loss(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.dice_loss(torch.full_like(y, 0.5), y)) == pytest.approx(1 - 2 * 1 / (1 + 2))


def test_dual_decoder_losses_are_zero_for_confident_truth():
    sem = torch.tensor([[[0, 1, 2, 1]]])
    logits = torch.stack([(sem == 1).float(), (sem == 2).float()], dim=1) * 40 - 20
    assert float(losses.deepd3_loss(logits, sem)) == pytest.approx(0, abs=1e-6)
    assert float(losses.deepd3_spine_dice_loss(logits, sem)) == pytest.approx(0, abs=1e-6)
    assert float(losses.deepd3_spine_dice_loss(-logits, sem)) > 2


def test_smoothed_log_class_weights():
    sem = np.array([0] * 90 + [1] * 8 + [2] * 2)
    raw = np.array([1.0, np.log(2 * 100 / 8), np.log(2 * 100 / 2)])   # log(2*100/90) < 1 -> 1
    np.testing.assert_allclose(losses.class_weights(sem), raw / raw.sum(), rtol=1e-6)


def test_distance_decay_pixel_weights():
    sem = np.zeros((1, 1, 11), np.uint8)
    sem[0, 0, 0] = 1
    spacing = (1.0, 1.0, 0.5)                  # x pixels 0.5 µm: pixel 4 is 2 µm away
    w = losses.pixel_weights(sem, spacing, mode="exp", r_decay=0.5)
    assert w[0, 0, 0] == 1 and w[0, 0, 4] == pytest.approx(0.25)
    w = losses.pixel_weights(sem, spacing, mode="window", d_max_um=5.0)
    assert w[0, 0, 5] == pytest.approx((1 - 0.25) ** 2) and w[0, 0, 10] == 0


def test_weighted_ce_and_generalised_dice_prefer_the_truth():
    sem = torch.tensor([[0, 1, 2, 2]])
    good = torch.nn.functional.one_hot(sem, 3).permute(0, 2, 1).float() * 10
    bad = torch.roll(good, 1, dims=1)
    for loss in (losses.weighted_cross_entropy, losses.generalised_dice_loss):
        assert float(loss(good, sem)) < float(loss(bad, sem))


def test_patch_sampling_without_augmentation_is_a_crop():
    s = _stack()
    img, lab = sample_patch(s.image, s.semantic, s.spacing, s.spacing, centre=(1, 24, 24), size=8,
                            image_planes=(-1, 0, 1), label_planes=(0,),
                            rng=np.random.default_rng(0), config=AugmentConfig.off())
    # Grid centred between pixels 20.5..27.5: linear interpolation of neighbours.
    np.testing.assert_array_equal(lab[0], s.semantic[1, 21:29, 21:29])
    expected = 0.5 * (s.image[1, 20:28] + s.image[1, 21:29])
    expected = 0.5 * (expected[:, 20:28] + expected[:, 21:29])
    np.testing.assert_allclose(img[1], expected, rtol=1e-5)


def _dihedral_index(patch, base):
    """Which of the eight turns and flips of ``base`` ``patch`` is (None if none)."""
    for k in range(8):
        t = np.rot90(base, k % 4)
        if k >= 4:
            t = t[::-1]
        if np.allclose(patch, t, atol=1e-4):
            return k
    return None


def test_right_angle_rotation_only_turns_and_flips_the_patch():
    s = _stack()
    rng = np.random.default_rng(1)
    image = rng.random(s.image.shape).astype(np.float32)   # no symmetry of its own
    kwargs = dict(centre=(1, 24, 24), size=9, image_planes=(0,), label_planes=(0,))
    base = sample_patch(image, s.semantic, s.spacing, s.spacing, rng=np.random.default_rng(0),
                        config=AugmentConfig.off(), **kwargs)[0][0]
    turns = replace(AugmentConfig.off(), rotate=True, flip=True, right_angles=True)
    found = {_dihedral_index(sample_patch(image, s.semantic, s.spacing, s.spacing, rng=np.random.default_rng(seed),
                                          config=turns, **kwargs)[0][0], base) for seed in range(24)}
    assert None not in found and len(found) >= 6
    any_angle = replace(turns, right_angles=False)
    other = [_dihedral_index(sample_patch(image, s.semantic, s.spacing, s.spacing, rng=np.random.default_rng(seed),
                                          config=any_angle, **kwargs)[0][0], base) for seed in range(8)]
    assert None in other


def test_flip_consistency_is_the_plain_loss_for_a_mirror_symmetric_network_and_more_otherwise():
    from spinequant.segment.neural.train import MIRRORS, flip_consistency

    torch.manual_seed(0)
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 3, 16, 16)
    net = torch.nn.Conv2d(1, 3, 3, padding=1, bias=False)
    loss_fn = lambda logits, target: ((torch.sigmoid(logits) - target) ** 2).mean()  # noqa: E731
    with torch.no_grad():   # a kernel equal to its own mirror images: the network answers alike
        w = net.weight
        w.copy_(w + w.flip(-1) + w.flip(-2) + w.flip(-1, -2))
    for axes in MIRRORS:
        assert torch.allclose(flip_consistency(net, loss_fn, x, y, axes, 1.0), loss_fn(net(x), y), atol=1e-6)
    with torch.no_grad():   # a kernel that looks one way: the mirror image answers differently
        net.weight.zero_()
        net.weight[:, :, 1, 2] = 4.0
    plain = 0.5 * (loss_fn(net(x), y) + loss_fn(torch.flip(net(torch.flip(x, (-1,))), (-1,)), y))
    term = flip_consistency(net, loss_fn, x, y, (-1,), 1.0) - plain
    assert term > 0.01
    term.backward()   # and the term's gradient pulls the kernel towards its mirror image
    g = net.weight.grad[:, :, 1]
    assert torch.all(g[:, :, 2] > 0) and torch.all(g[:, :, 0] < 0)


def test_training_reduces_loss_and_is_deterministic(tmp_path):
    samples = [_stack(0), _stack(1)]
    cfg = replace(CFG, epochs=3)
    train(samples, out_dir=tmp_path / "a", config=cfg, progress=False)
    hist = json.loads((tmp_path / "a" / "checkpoint.json").read_text())["history"]
    assert hist[-1]["val_loss"] < 0.8 * hist[0]["val_loss"]
    assert hist[-1]["dendrite_iou"] > 0.5
    train(samples, out_dir=tmp_path / "b", config=cfg, progress=False)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_continues_exactly(tmp_path):
    samples = [_stack(0), _stack(1)]
    cfg = replace(CFG, patience=100)
    train(samples, out_dir=tmp_path / "full", config=cfg, progress=False)
    train(samples, out_dir=tmp_path / "part", config=replace(cfg, epochs=1), progress=False)
    train(samples, out_dir=tmp_path / "part", config=cfg, progress=False)       # resumes at epoch 1
    full = json.loads((tmp_path / "full" / "checkpoint.json").read_text())["history"]
    part = json.loads((tmp_path / "part" / "checkpoint.json").read_text())["history"]
    assert [h["val_loss"] for h in part] == pytest.approx([h["val_loss"] for h in full], rel=1e-6)
    ck = [load_file(str(tmp_path / d / "checkpoint.safetensors")) for d in ("full", "part")]
    assert all(torch.allclose(ck[0][k], ck[1][k]) for k in ck[0])


def test_fine_tuning_starts_from_the_given_model(tmp_path):
    samples = [_stack(0), _stack(1)]
    base, _ = train(samples, out_dir=tmp_path / "base", config=replace(CFG, epochs=1, loss="deepd3_spine_dice"),
                    progress=False)
    _, card = train(samples, out_dir=tmp_path / "ft", config=replace(CFG, epochs=1, learning_rate=0.0),
                    init=tmp_path / "base", progress=False)
    assert card.training["init"] == str(tmp_path / "base")
    assert card.training["config"]["loss"] == "deepd3_spine_dice"      # the base model's loss
    wa, wb = _weights(tmp_path / "base"), _weights(tmp_path / "ft")
    # lr 0: only batch-norm running statistics may move.
    assert all(torch.equal(wa[k], wb[k]) for k in wa if "running" not in k and "num_batches" not in k)


def test_load_training_data_layouts(tmp_path):
    s = _stack()
    d = tmp_path / "data"
    write_tiff(d / "one" / "image.tif", s.image, s.spacing)
    tifffile.imwrite(d / "one" / "labels_semantic.tif", s.semantic, photometric="minisblack")
    write_tiff(d / "two" / "image.tif", s.image, s.spacing)
    tifffile.imwrite(d / "two" / "labels_spines.tif", (s.semantic == 2).astype(np.int32) * 7, photometric="minisblack")
    tifffile.imwrite(d / "two" / "labels_dendrites.tif", (s.semantic > 0).astype(np.int32), photometric="minisblack")
    write_tiff(d / "cell.tif", s.image, s.spacing)
    tifffile.imwrite(d / "cell_labels.tif", s.semantic, photometric="minisblack")
    found = load_training_data(d)
    assert sorted(x.name for x in found) == ["cell", "one", "two"]
    # DeepD3 layout: dendrite trace (SWC, µm) + spine mask.
    write_tiff(d / "three" / "image.tif", s.image, s.spacing)
    tifffile.imwrite(d / "three" / "spines.tif", (s.semantic == 2).astype(np.uint8), photometric="minisblack")
    write_swc(d / "three" / "dendrites.swc", pd.DataFrame(
        {"id": [1, 2], "type": 3, "x": [0.0, 4.7], "y": [1.25, 1.25], "z": [0.5, 0.5],
         "radius": [0.2, 0.2], "parent": [-1, 1]}))
    three = [x for x in load_training_data(d) if x.name == "three"][0]
    # y = 1.25 µm is row 12.5; radius 0.2 µm covers rows 11..14 in plane 1 only.
    np.testing.assert_array_equal(np.flatnonzero((three.semantic[1] == 1).any(axis=1)), [11, 12, 13, 14])
    assert (three.semantic[[0, 2]] == 1).sum() == 0 and (three.semantic == 2).sum() == (s.semantic == 2).sum()
    for x in found:
        np.testing.assert_array_equal(x.semantic, s.semantic)
        assert x.spacing == pytest.approx(s.spacing)
    bad = tmp_path / "bad"
    write_tiff(bad / "image.tif", s.image, s.spacing)
    tifffile.imwrite(bad / "labels_semantic.tif", s.semantic * 3, photometric="minisblack")
    with pytest.raises(InputError, match="only 0"):
        load_training_data(bad)


def test_empty_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="No training pairs"):
        load_training_data(tmp_path)


def test_cli_train_writes_a_model(tmp_path, capsys):
    s = _stack()
    for name in ("a", "b"):
        write_tiff(tmp_path / "data" / name / "image.tif", s.image, s.spacing)
        tifffile.imwrite(tmp_path / "data" / name / "labels_semantic.tif", s.semantic, photometric="minisblack")
    rc = main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--architecture",
               "deepd3_8", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
               "--tile-size", "32", "--threads", "1"])
    assert rc == 0
    assert (tmp_path / "model" / "model.safetensors").exists()
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["architecture"]["base_filters"] == 8 and card["voxel_size_um"] == [0.5, 0.1, 0.1]
    assert "dendrite IoU" in capsys.readouterr().out
