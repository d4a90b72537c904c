"""Cell networks: WNet3D's SoftNCuts on hand-made cases, model cards without pickle, sliding-window
inference and instances on a small phantom, the bundled real volume, and the command lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from spinequant.cells import CellConfig, analyze_cells  # noqa: E402
from spinequant.cells.networks import build_cell_network, cell_architecture, foreground_probability  # noqa: E402
from spinequant.cells.predict import cell_probability  # noqa: E402
from spinequant.cells.train import CellTrainConfig, cell_samples, load_cell_model, train_cell_model  # noqa: E402
from spinequant.cells.voronoi_otsu import cells_from_probability  # noqa: E402
from spinequant.cells.wnet3d import WNet3D, foreground_class, soft_ncut_loss  # noqa: E402
from spinequant.errors import InputError  # noqa: E402
from spinequant.evaluate.cells import score_cells  # noqa: E402
from spinequant.synth.cells import make_cell_phantom  # noqa: E402


def _two_halves(n=8):
    image = torch.zeros(1, 1, n, n, n)
    image[..., n // 2:] = 50.0
    hard = torch.zeros(1, 2, n, n, n)
    hard[:, 0, ..., : n // 2] = 1
    hard[:, 1, ..., n // 2:] = 1
    return image, hard


def test_soft_ncut_hand_made_cases():
    image, hard = _two_halves()
    # the partition along the brightness edge: no edge weight crosses it (exp(-50^2) = 0)
    assert float(soft_ncut_loss(hard, image)) == pytest.approx(0.0, abs=1e-6)
    # both classes at 0.5 everywhere: assoc(A,A)/assoc(A,V) = 0.5 per class, 2 - 1 = 1
    assert float(soft_ncut_loss(torch.full_like(hard, 0.5), image)) == pytest.approx(1.0, abs=1e-6)
    # on a uniform image the same hard partition cuts edges: loss between 0 and 1,
    # and a partition across the brightness edge is worse than one along it
    flat = torch.zeros_like(image)
    cut_flat = float(soft_ncut_loss(hard, flat))
    assert 0.05 < cut_flat < 1.0
    across = hard.transpose(2, 4).contiguous()    # split along z instead of x
    assert float(soft_ncut_loss(across, image)) > 0.1


def test_wnet3d_shapes_and_cell_class():
    torch.manual_seed(0)
    net = WNet3D(n_classes=2, base_filters=4, depth=2, groups=2)
    x = torch.randn(1, 1, 8, 16, 16)
    probs, recon, unit = net.forward_train(x)
    assert probs.shape == (1, 2, 8, 16, 16) and recon.shape == x.shape
    assert torch.allclose(probs.sum(1), torch.ones(1, 8, 16, 16), atol=1e-5)
    assert float(unit.min()) == 0.0 and float(unit.max()) == pytest.approx(1.0)
    image, hard = _two_halves()
    assert foreground_class(hard, image) == 1
    assert foreground_class(hard.flip(1), image) == 0


def test_unknown_network_is_refused():
    with pytest.raises(InputError, match="Unknown cell network"):
        cell_architecture("unet9")


@pytest.fixture(scope="module")
def phantom():
    return make_cell_phantom("nuclei_lightsheet", seed=3, shape=(16, 48, 48))


def test_instances_from_a_probability_map(phantom):
    # the true foreground as the network's probability: the seeded split must recover the cells
    prob = (phantom.labels > 0).astype(np.float32)
    labels, found = cells_from_probability(phantom.image, prob, phantom.spacing, CellConfig())
    s = score_cells(labels, phantom.labels, spacing=phantom.spacing)
    assert s["dice"] > 0.99
    assert s["instances"]["f1"] > 0.8
    assert found["foreground_fraction"] == pytest.approx(prob.mean())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, phantom):
    out = tmp_path_factory.mktemp("segresnet")
    samples = cell_samples([phantom.image], phantom.spacing, labels=[phantom.labels])
    config = CellTrainConfig(architecture={"kind": "cells_segresnet", "blocks_down": [1, 1], "blocks_up": [1]},
                             tile_depth=8, tile_size=16, epochs=2, steps_per_epoch=2, val_patches=2)
    net, card = train_cell_model(samples, out_dir=out, config=config)
    return out, net, card


def test_card_round_trip_without_pickle(tiny_model, phantom):
    out, net, card = tiny_model
    raw = (out / "model.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])   # safetensors: a JSON header, no pickle
    assert any(k.startswith("convInit") for k in header)
    stored = json.loads((out / "model.json").read_text())
    assert stored["architecture"]["kind"] == "cells_segresnet" and stored["architecture"]["blocks_down"] == [1, 1]
    assert stored["training"]["labels_used"] is True and len(stored["sha256"]) == 64
    assert stored["validation"]["epoch"] in (1, 2)
    net2, card2 = load_cell_model(out)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, 8, 16, 16)).astype(np.float32))
    with torch.inference_mode():
        assert torch.equal(net.eval()(x), net2(x))
    assert card2.voxel_size_um == tuple(phantom.spacing)
    (out / "model.safetensors").write_bytes(raw[:-4] + b"\0\0\0\0")
    try:
        with pytest.raises(InputError, match="do not match"):
            load_cell_model(out)
    finally:
        (out / "model.safetensors").write_bytes(raw)


def test_sliding_window_inference_and_cells(tiny_model, phantom):
    out, _, _ = tiny_model
    prob, info = cell_probability(phantom.image, phantom.spacing, out)
    assert prob.shape == phantom.image.shape and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    assert info["tile"] == [8, 16, 16]
    # at another voxel size the volume is resampled to the model's and the map back to the input
    coarse = phantom.image[:, ::2, ::2]
    prob2, _ = cell_probability(coarse, (4.0, 4.0, 4.0), out)
    assert prob2.shape == coarse.shape
    result = analyze_cells(phantom.image, spacing=phantom.spacing, config=CellConfig(method=str(out)))
    assert result.labels.shape == phantom.image.shape
    assert result.diagnostics["segment"]["network"]["architecture"] == "cells_segresnet"
    mask = prob > 0.5
    assert set(np.unique(result.labels[~mask])) <= {0}      # cells only where the network says so
    assert result.summary["n_cells"] == len(result.cells) == int(result.labels.max())


def test_foreground_probability_of_wnet_uses_the_cell_class():
    logits = torch.zeros(1, 2, 2, 2, 2)
    logits[:, 0] = 4.0
    spec = cell_architecture("wnet3d")
    assert float(foreground_probability(spec, logits, 0).min()) > 0.9
    assert float(foreground_probability(spec, logits, 1).max()) < 0.1
    tiny = build_cell_network({"kind": "cells_wnet3d", "base_filters": 2, "depth": 1})
    assert tiny(torch.zeros(1, 1, 4, 4, 4)).shape == (1, 2, 4, 4, 4)


def test_cli_sample_cells_and_cell_training(tmp_path, phantom, capsys):
    from spinequant.cli import main
    from spinequant.synth.cells import write_cell_phantom

    assert main(["cells", "sample-cells", "--out", str(tmp_path / "R"), "--no-report", "-q"]) == 0
    record = json.loads((tmp_path / "R" / "run.json").read_text())
    assert record["input"]["spacing_um"] == [5.0, 5.26, 5.26]
    assert record["input"]["shape"] == [124, 86, 94]
    assert 300 < record["summary"]["n_cells"] < 500     # 404 with the defaults (docs/cells.md)
    capsys.readouterr()
    assert main(["cells", "sample-cells", "--out", str(tmp_path / "R2"), "--method", "swinunetr", "-q"]) != 0
    assert "No trained swinunetr cell model is shipped" in capsys.readouterr().err
    assert not (tmp_path / "R2" / "run.json").exists()
    write_cell_phantom(phantom, tmp_path / "data" / "v0")
    assert main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "M"), "--cells", "wnet3d",
                 "--epochs", "1", "--steps-per-epoch", "1", "--threads", "1"]) == 0
    card = json.loads((tmp_path / "M" / "model.json").read_text())
    assert card["architecture"]["kind"] == "cells_wnet3d" and card["training"]["labels_used"] is False
    assert main(["cells", str(tmp_path / "data" / "v0" / "image.tif"), "--out", str(tmp_path / "R3"),
                 "--method", str(tmp_path / "M"), "--no-report", "-q"]) == 0
    run = json.loads((tmp_path / "R3" / "run.json").read_text())
    assert run["config"]["method"] == str(tmp_path / "M")
    assert run["diagnostics"]["segment"]["network"]["architecture"] == "cells_wnet3d"
