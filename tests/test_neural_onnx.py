"""ONNX export and the ONNX Runtime engine: same maps as PyTorch, stale or damaged exports."""

import json

import numpy as np
import pytest
import torch
from _fresh_process import fresh_python_json

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from spinequant.errors import InputError  # noqa: E402
from spinequant.segment.neural import ModelCard, build, predict, save_model  # noqa: E402
from spinequant.segment.neural.architectures import architecture  # noqa: E402
from spinequant.segment.neural.onnx_runtime import export_onnx  # noqa: E402
from spinequant.segment.neural.predict import choose_engine  # noqa: E402

TINY_2D = {"kind": "dual_unet2d", "base_filters": 4, "depth": 2, "separable": True,
           "space_to_depth": 2, "z_context": 1}
TINY_P4M = {**TINY_2D, "base_filters": 8, "point_head": True, "symmetry": "p4m"}
TINY_3D = {"kind": "unet3d", "base_filters": 2, "depth": 2, "aniso_stages": 1}


def _saved(tmp_path, spec=TINY_2D, seed=1):
    torch.manual_seed(seed)
    net = build(spec).eval()
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    save_model(net, ModelCard(name="tiny", architecture=architecture(spec), voxel_size_um=(0.5, 0.1, 0.1),
                              tile_size=64, tile_overlap=16, tile_depth=4), tmp_path / "tiny")
    return tmp_path / "tiny.json"


@pytest.mark.parametrize("spec, shape", [(TINY_2D, (7, 90, 75)), (TINY_P4M, (5, 90, 75)), (TINY_3D, (9, 40, 33))])
def test_onnx_engine_gives_the_pytorch_maps(tmp_path, spec, shape):
    card = _saved(tmp_path, spec)
    onnx_path = export_onnx(card)
    entry = json.loads(card.read_text())["onnx"]
    assert onnx_path.exists() and entry["file"] == onnx_path.name and len(entry["sha256"]) == 64
    img = np.random.default_rng(0).integers(0, 4000, shape).astype(np.uint16)
    assert choose_engine(card) == "onnx"                     # installed and up to date: preferred
    # float32 maps: the engines' agreement, not float16's rounding (a value near a rounding
    # boundary may round to neighbouring float16 numbers, 2.5e-4 apart).
    ref = predict(img, spacing=(0.5, 0.1, 0.1), model=card, engine="torch", dtype=np.float32)
    got = predict(img, spacing=(0.5, 0.1, 0.1), model=card, engine="onnx", dtype=np.float32)
    for a, b in zip(ref, got):
        assert a.shape == b.shape == img.shape
        np.testing.assert_allclose(b, a, atol=1e-4)
    # Deterministic for the same input and engine.
    again = predict(img, spacing=(0.5, 0.1, 0.1), model=card, engine="onnx", dtype=np.float32)
    assert np.array_equal(again[0], got[0])


def test_stale_export_is_not_used(tmp_path):
    card = _saved(tmp_path)
    export_onnx(card)
    raw = json.loads(card.read_text())
    _saved(tmp_path, seed=2)                                  # retrained: new weights, card rewritten
    new = json.loads(card.read_text())
    assert "onnx" not in new or not new["onnx"]
    new["onnx"] = raw["onnx"]                                 # an export of the old weights
    card.write_text(json.dumps(new))
    assert choose_engine(card) == "torch"
    with pytest.raises(InputError, match="no ONNX export of its current weights"):
        choose_engine(card, "onnx")


def test_damaged_export_is_an_error(tmp_path):
    card = _saved(tmp_path)
    path = export_onnx(card)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match its model card"):
        choose_engine(card)


def test_engine_errors_name_the_problem(tmp_path):
    card = _saved(tmp_path)
    with pytest.raises(InputError, match="Unknown engine"):
        choose_engine(card, "tensorflow")
    with pytest.raises(InputError, match="no ONNX export"):
        choose_engine(card, "onnx")
    with pytest.raises(InputError, match="not a loaded network"):
        choose_engine((build(TINY_2D), None), "onnx")


def test_shipped_default_model_has_a_current_export():
    assert choose_engine("lean2d") == "onnx"


def test_cli_export_onnx_prints_and_records_its_check(tmp_path, capsys):
    from spinequant.cli import main

    card = _saved(tmp_path)
    assert main(["export-onnx", str(card)]) == 0
    printed = capsys.readouterr().out
    difference = json.loads(card.read_text())["onnx"]["max_difference_vs_torch"]
    assert 0 <= difference < 1e-3 and "checked: ONNX Runtime's output differs" in printed
    assert main(["export-onnx", str(card), "--no-check"]) == 0
    assert "not checked" in capsys.readouterr().out
    assert json.loads(card.read_text())["onnx"]["max_difference_vs_torch"] is None


def test_onnx_run_of_the_command_never_imports_torch(tmp_path):
    """PyTorch adds about 190 MB to a process: a 3D ``spinequant analyze`` through ONNX Runtime
    (the default on a CPU) with every export and the report must not load it. Nor dask (reading
    a TIFF needs none), and pandas (~65 MB) only from the measure stage on, not while the
    network's maps and the spine objects are built (docs/scale.md, "Memory of the in-memory
    path"). The network's maps are freed before the measure stage (the command keeps none),
    and its head map was kept only where spine objects read it. Run in a fresh process, since
    this one has them loaded."""
    import tifffile

    from spinequant.synth import make_phantom

    ph = make_phantom("two_photon", seed=1, shape=(12, 128, 128))
    tifffile.imwrite(tmp_path / "s.tif", ph.image, imagej=True, resolution=(1 / ph.spacing[2], 1 / ph.spacing[1]),
                     metadata={"spacing": ph.spacing[0], "unit": "um", "axes": "ZYX"})
    code = ("import json, sys, weakref\nfrom spinequant.cli import main\nimport spinequant.pipeline\n"
            "run = sys.modules['spinequant.pipeline.analyze']\n"
            "loaded, reporter, maps, segment = {}, run.stage_reporter, {}, run.segment_maps\n"
            "def segmenting(*args, **kwargs):\n"
            "    out = segment(*args, **kwargs)\n"
            "    maps['refs'] = [weakref.ref(m) for m in (out.dendrite, out.spine, out.heads)]\n"
            "    maps['heads_kept'] = float((out.heads != 0).mean())\n"
            "    return out\n"
            "run.segment_maps = segmenting\n"
            "def watching(progress):\n"
            "    step = reporter(progress)\n"
            "    def watched(stage, fraction=0.0):\n"
            "        loaded.setdefault(stage, [m for m in ('pandas', 'dask', 'zarr') if m in sys.modules])\n"
            "        if stage == 'measure':\n"
            "            maps.setdefault('alive', sum(ref() is not None for ref in maps['refs']))\n"
            "        step(stage, fraction)\n"
            "    return watched\n"
            "run.stage_reporter = watching\n"
            f"code = main(['analyze', {str(tmp_path / 's.tif')!r}, '--out', {str(tmp_path / 'r')!r}, '--quiet'])\n"
            "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules, 'dask': 'dask' in sys.modules, "
            "'loaded': loaded, 'maps_alive': maps['alive'], 'heads_kept': maps['heads_kept']}))")
    answer = fresh_python_json(code)
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    loaded = answer.pop("loaded")
    assert 0 < answer.pop("heads_kept") < 0.5           # the head map: only where spine objects read it
    assert answer == {"code": 0, "torch": False, "dask": False, "maps_alive": 0}
    assert loaded["segment"] == loaded["instances"] == loaded["measure"] == []
    assert "pandas" in loaded["export"] and "zarr" in loaded["report"]   # the tables, then results.ome.zarr
    assert run["diagnostics"]["segment"]["engine"] == "onnx" and (tmp_path / "r" / "spines.csv").exists()
