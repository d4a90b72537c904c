"""ONNX export of a model, and inference through ONNX Runtime (optional extra ``onnx``).

On a CPU, ONNX Runtime runs our small convolutional networks 1.5-2x faster than PyTorch's
eager mode (see docs/neural.md), so ``predict`` uses it when it is installed and the model has
an ONNX file that was exported from its current weights. The graph ends in the probabilities
(sigmoid or softmax), so both engines hand the same maps to the blending.

The ONNX file sits beside the model card; the card's ``onnx`` entry records its file name,
sha256, opset and the sha256 of the weights it was exported from. A file that does not match
is never used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..._atomic import atomic_path
from ...errors import InputError
from . import specs
from .card import ModelCard, load_model, resolve, sha256_of

OPSET = 17
_INSTALL_HINT = "Install the optional extra: pip install 'spinequant[onnx]'."


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(model: str | os.PathLike | None = None, *, check: bool = True) -> Path:
    """Export a model (shipped name, folder or card) to ONNX beside its card and record the
    file in the card. Returns the path of the ``.onnx`` file.

    The exported graph takes float32 tiles (N, C, H, W) -- (N, 1, D, H, W) for 3D models --
    with any batch and any tile size that is a multiple of the model's, and returns the
    (dendrite, spine) probabilities. With ``check`` the ONNX Runtime output on a random tile
    is compared with PyTorch's (needs onnxruntime).
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise InputError(f"ONNX export needs the 'onnx' package. {_INSTALL_HINT}") from None
    import torch

    from .architectures import fuse_for_inference, to_probabilities

    class WithProbabilities(torch.nn.Module):
        def __init__(self, net: torch.nn.Module, spec: dict):
            super().__init__()
            self.net, self.spec = net, spec

        def forward(self, x):
            return to_probabilities(self.spec, self.net(x))

    card_path, _ = resolve(model)
    net, card = load_model(card_path)
    spec = specs.architecture(card.architecture)
    wrapped = WithProbabilities(fuse_for_inference(net), spec).eval()
    example = torch.from_numpy(_example_tile(spec))
    spatial = {0: "batch", 2: "height", 3: "width"} if example.ndim == 4 else \
        {0: "batch", 2: "depth", 3: "height", 4: "width"}
    out = card_path.with_suffix(".onnx")
    with atomic_path(out) as tmp, torch.inference_mode(), warnings.catch_warnings():
        # The TorchScript-based exporter: quick and exact for these plain convolutional
        # graphs; torch 2.9+ flags it as legacy.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["tiles"], output_names=["probabilities"],
                          dynamic_axes={"tiles": spatial, "probabilities": spatial})
        difference = None
        if check and onnxruntime_available():
            difference = _check_against_torch(tmp, wrapped, example.numpy())
        digest = sha256_of(tmp)
    entry = {"file": out.name, "sha256": digest, "opset": OPSET, "weights_sha256": card.sha256,
             "torch_version": torch.__version__, "max_difference_vs_torch": difference}
    card = dataclasses.replace(card, onnx=entry)
    with atomic_path(card_path) as tmp:
        tmp.write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    return out


def _example_tile(spec: dict) -> np.ndarray:
    rng = np.random.default_rng(0)
    m = specs.multiple_of(spec)
    if specs.is_3d(spec):
        shape = (1, 1, 2 * specs.z_multiple_of(spec), 2 * m, 2 * m)
    else:
        shape = (1, 2 * spec.get("z_context", 0) + 1, 2 * m, 2 * m)
    return rng.normal(size=shape).astype(np.float32)


def _check_against_torch(path: Path, wrapped, tile: np.ndarray) -> float:
    """The largest difference between ONNX Runtime's and PyTorch's probabilities on ``tile``."""
    import torch

    session = _session(path, threads=1)
    got = session.run(None, {"tiles": tile})[0]
    with torch.inference_mode():
        want = wrapped(torch.from_numpy(tile)).numpy()
    err = float(np.abs(got - want).max())
    if err > 1e-3:
        raise RuntimeError(f"ONNX export differs from PyTorch by {err:.2g}; not saved.")
    return err


def onnx_file(card_path: Path, card: ModelCard) -> Path | None:
    """The model's ONNX file if one was exported from its current weights and is intact."""
    entry = card.onnx
    if not entry:
        return None
    path = Path(card_path).parent / entry["file"]
    if not path.exists() or entry.get("weights_sha256") != card.sha256:
        return None
    if sha256_of(path) != entry["sha256"]:
        raise InputError(
            f"The ONNX file '{path}' does not match its model card (sha256). It is damaged or "
            f"was replaced: delete it and run 'spinequant export-onnx {card_path}' again."
        )
    return path


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or default_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def default_threads() -> int:
    """The CPU threads a run uses when none are asked for: PyTorch's setting when torch is
    loaded (a caller may have set it), else what torch would start with -- OMP_NUM_THREADS
    when set, else the physical cores -- without importing torch for it."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    value = os.environ.get("OMP_NUM_THREADS", "")
    if value.isdigit() and int(value) > 0:
        return int(value)
    return 0     # ONNX Runtime's own default: one thread per physical core


def make_onnx_runner(path: Path, *, threads: int | None = None):
    """A ``run`` callable for :func:`~.tiling.sliding_window` backed by ONNX Runtime."""
    session = _session(path, threads)

    def run(tiles: np.ndarray) -> np.ndarray:
        return session.run(None, {"tiles": np.ascontiguousarray(tiles, dtype=np.float32)})[0]

    return run


def describe(path: Path) -> dict:
    """What run.json records about the ONNX engine."""
    import onnxruntime as ort

    return {"engine": "onnxruntime", "onnxruntime_version": ort.__version__, "onnx_file": path.name}


__all__ = ["export_onnx", "onnx_file", "make_onnx_runner", "onnxruntime_available"]

