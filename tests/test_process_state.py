"""Library calls leave process-wide settings alone: torch's threads, glibc's allocator,
matplotlib's backend."""

import ctypes
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from spinequant.segment.neural import ModelCard, build, predict, save_model
from spinequant.segment.neural.architectures import architecture
from spinequant.segment.neural.threads import torch_threads

TINY_2D = {"kind": "dual_unet2d", "base_filters": 4, "depth": 2, "separable": True,
           "space_to_depth": 2, "z_context": 1}


@pytest.fixture
def other_thread_count():
    """A thread count different from the current one, and the current one restored after."""
    before = torch.get_num_threads()
    yield 2 if before != 2 else 1
    torch.set_num_threads(before)


def test_torch_threads_restores_the_count(other_thread_count):
    before = torch.get_num_threads()
    with torch_threads(other_thread_count):
        assert torch.get_num_threads() == other_thread_count
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(other_thread_count):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_predict_leaves_threads_and_allocator_alone(tmp_path, monkeypatch, other_thread_count):
    save_model(build(TINY_2D).eval(), ModelCard(name="tiny", architecture=architecture(TINY_2D),
                                                voxel_size_um=(0.5, 0.1, 0.1), tile_size=64,
                                                tile_overlap=16, tile_depth=4), tmp_path / "tiny")
    loaded = []
    real_cdll = ctypes.CDLL
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: loaded.append(name) or real_cdll(name, *a, **k))
    before = torch.get_num_threads()
    image = np.random.default_rng(0).integers(0, 4000, (3, 40, 40)).astype(np.uint16)
    predict(image, spacing=(0.5, 0.1, 0.1), model=tmp_path / "tiny.json", engine="torch",
            threads=other_thread_count)
    assert torch.get_num_threads() == before
    assert not any("libc" in str(name) for name in loaded)  # no mallopt


def test_figures_do_not_switch_the_matplotlib_backend():
    # A fresh interpreter whose backend is SVG: importing and drawing every figure keeps it,
    # and pyplot (with its global figure list) is never loaded.
    script = textwrap.dedent("""
        import matplotlib, sys
        import numpy as np, pandas as pd
        from spinequant.report import figures
        image = np.random.default_rng(0).random((4, 20, 30))
        spines = np.zeros(image.shape, np.int32); spines[2, 5:8, 5:8] = 1
        dendrites = np.zeros(image.shape, np.int32); dendrites[1:3, 10:14, :] = 1
        table = pd.DataFrame({"id": [1], "type": ["thin"], "centroid_z_um": [1.0], "centroid_y_um": [0.6],
                              "centroid_x_um": [0.6], "volume_um3": [0.1], "length_um": [1.0],
                              "head_diameter_um": [0.5]})
        dend = pd.DataFrame({"dendrite_id": [1], "density_per_um": [0.3], "length_um": [3.0]})
        figs = [figures.overview(image, spines, dendrites, table, (0.5, 0.1, 0.1)),
                figures.overview(image[0], spines[0], dendrites[0], table, (0.1, 0.1)),
                figures.histograms(table), figures.density_chart(dend),
                figures.overlay_projection(image, spines, dendrites, table, (0.5, 0.1, 0.1)).figure]
        for f in figs:
            f.canvas.draw()
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """)
    env = dict(os.environ, MPLBACKEND="svg")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["svg", "False"], out.stderr


def test_kept_freed_memory_is_handed_back_after_each_prediction(tmp_path, monkeypatch):
    # A program that owns its process asked for the raised thresholds: a prediction runs with
    # them and puts glibc's initial ones back afterwards (trimming the heap), also when it fails,
    # so the later stages hold no kept memory; the next prediction raises them again.
    from spinequant.segment.neural import _malloc

    save_model(build(TINY_2D).eval(), ModelCard(name="tiny", architecture=architecture(TINY_2D),
                                                voxel_size_um=(0.5, 0.1, 0.1), tile_size=64,
                                                tile_overlap=16, tile_depth=4), tmp_path / "tiny")
    calls = []
    monkeypatch.setattr(_malloc, "_set", lambda *thresholds: calls.append(thresholds) or True)
    monkeypatch.setattr(_malloc, "_kept", None)
    assert _malloc.keep_freed_memory(64 << 20, 96 << 20)
    image = np.random.default_rng(0).integers(0, 4000, (3, 40, 40)).astype(np.uint16)
    run = dict(spacing=(0.5, 0.1, 0.1), model=tmp_path / "tiny.json", engine="torch")
    calls.clear()
    predict(image, **run)
    assert calls == [(64 << 20, 96 << 20), (32 << 20, 32 << 20)]
    calls.clear()
    with pytest.raises(ZeroDivisionError):
        predict(image, progress=lambda fraction: 1 / 0, **run)
    assert calls == [(64 << 20, 96 << 20), (32 << 20, 32 << 20)]


def test_overlapping_predictions_put_the_thresholds_back_once(monkeypatch):
    # Threads of one process share the allocator: the raised thresholds stay until the last
    # running prediction ends.
    from spinequant.segment.neural import _malloc

    calls = []
    monkeypatch.setattr(_malloc, "_set", lambda *thresholds: calls.append(thresholds) or True)
    monkeypatch.setattr(_malloc, "_kept", (64 << 20, 96 << 20))
    with _malloc.while_predicting():
        with _malloc.while_predicting():
            pass
        assert calls == [(64 << 20, 96 << 20)]
    assert calls == [(64 << 20, 96 << 20), (32 << 20, 32 << 20)]
