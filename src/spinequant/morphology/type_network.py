"""Spine types of a 2D image from a small network that looks at each spine (``rule_set="network"``).

The rule sets and the ``learnt`` classifier type a spine from a few numbers of its outline
(length, head and neck widths). Experts type it from the picture: on the real, expert-typed
spine_types set (Dendritic-Spine-Analyzer-YOLO11 by Meng-De-Gong, MIT) the outline numbers
agree with the experts on 0.59-0.61 of the spines that ``analyze`` finds, a small network on a
patch of the image around each spine on more (``docs/measurements.md``, "Spine types on
real outlines"). Its input, for every spine: a 64 x 64 patch at 0.08 µm per pixel (5.1 µm)
centred on the spine's head, with two channels, the image (divided by its 99.5th
percentile, clipped at 1.5) and the spine's own object mask (as ``analyze`` outlined it, so
that a neighbour in the patch is not typed instead). The answer is averaged over the eight
rotations and flips of the patch.

The weights are a safetensors file in ``spinequant/models`` with a JSON card (training data,
licence, metrics, sha256 checked when read); ``scripts/train_type_network.py`` is the recipe.
No pickle. When ONNX Runtime is installed and the card names an ONNX file exported from the
current weights (:func:`export_type_network_onnx`; its sha256 is checked too), the network
runs through ONNX Runtime and a 2D analysis never imports PyTorch (about 180 MB resident).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import InputError

#: The shipped model's card (its weights file is named in it).
CARD_PATH = Path(__file__).resolve().parents[1] / "models" / "spine_types_2d_network.json"
#: Patch geometry and normalisation the network was trained with (also in its card).
PATCH_PIXEL_UM = 0.08
PATCH_HALF = 32
NORMALISE_PERCENTILE = 99.5
NORMALISE_CLIP = 1.5
#: How far around the spines and dendrites the image is shown to the network (µm).
FOREGROUND_MARGIN_UM = 0.3


def build_type_network(channels: int = 2, width: int = 16, classes: int = 5):
    """The classifier: four 3x3 convolution blocks (batch norm, ReLU; 2x2 max-pooling after
    the first three), global average pooling, dropout and one dense layer."""
    import torch.nn as nn

    layers, cin = [], channels
    for cout in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    layers += [nn.Conv2d(cin, cin, 3, padding=1), nn.BatchNorm2d(cin), nn.ReLU(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def image_scale(image: np.ndarray) -> float:
    """The value the image is divided by: the 99.5th percentile of its non-zero pixels (the
    training images have their background set to 0)."""
    image = np.asarray(image)
    values = image[image > 0]
    return float(np.percentile(values, NORMALISE_PERCENTILE)) if values.size else 1.0


def neuron_foreground(spine_labels: np.ndarray, dendrite: np.ndarray, spacing) -> np.ndarray:
    """Spines and dendrites grown by :data:`FOREGROUND_MARGIN_UM` (whole pixels, at least one,
    never more than the margin): what the network is shown
    of an image. Its training images had everything else set to 0 by their annotators; a
    user's image has background, haze and other neurites there."""
    grown = (np.asarray(spine_labels) > 0) | (np.asarray(dendrite) > 0)
    # Whole pixels up to the margin, never beyond it (at least one): the network types worse
    # the more background it is shown. Rounded instead, 0.3 µm became 3 pixels of 0.11 µm
    # (0.33 µm) and 2 of 0.16 µm, and with a background around the neuron val's spines were
    # typed right 73 instead of 85 and 71 instead of 79 times of 102 (docs/measurements.md).
    radius = np.maximum(np.floor(FOREGROUND_MARGIN_UM / np.asarray(spacing, float) + 1e-6), 1).astype(int)
    footprint = np.ones(tuple(2 * radius + 1), bool)
    return ndi.binary_dilation(grown, structure=footprint)


def type_patches(image: np.ndarray, spine_labels: np.ndarray, table: pd.DataFrame, spacing, *,
                 foreground: np.ndarray | None = None) -> np.ndarray:
    """The network's input for every row of a 2D spine table: (K, 2, 64, 64) float32 patches
    (image, own mask) at :data:`PATCH_PIXEL_UM` per pixel centred on ``head_y_um``,
    ``head_x_um``; outside the image the patch is 0, and so is the image outside
    ``foreground`` (see :func:`neuron_foreground`) when given."""
    image = np.asarray(image, np.float32)
    if foreground is not None:
        image = np.where(foreground, image, 0.0).astype(np.float32)
    py, px = (float(s) for s in spacing)
    scale = image_scale(image)
    offsets = (np.arange(2 * PATCH_HALF) - PATCH_HALF) * PATCH_PIXEL_UM
    rows_um, cols_um = np.meshgrid(offsets, offsets, indexing="ij")
    out = np.zeros((len(table), 2, 2 * PATCH_HALF, 2 * PATCH_HALF), np.float32)
    for k, (sid, hy, hx) in enumerate(zip(table["id"], table["head_y_um"], table["head_x_um"])):
        coords = np.stack([(hy + rows_um) / py, (hx + cols_um) / px])
        patch = ndi.map_coordinates(image, coords, order=1, mode="constant", cval=0.0)
        out[k, 0] = np.clip(patch / scale, 0.0, NORMALISE_CLIP)
        out[k, 1] = ndi.map_coordinates(spine_labels, coords, order=0, mode="constant", cval=0) == sid
    return out


class OnnxTypeNetwork:
    """The type network through ONNX Runtime: called with (K, C, 64, 64) float32 patches, it
    returns (K, classes) probabilities."""

    def __init__(self, path: Path, classes: int):
        from ..segment.neural.onnx_runtime import _session

        self.session, self.classes = _session(path, threads=None), classes

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"patches": np.ascontiguousarray(patches, dtype=np.float32)})[0]


@lru_cache(maxsize=4)
def load_type_network(card_path: str | None = None, engine: str = "auto"):
    """``(network, card dict)``; the weights' sha256 must match the card's. ``engine``
    ``"auto"`` runs through ONNX Runtime when it is installed and the card's ONNX file was
    exported from these weights (:class:`OnnxTypeNetwork`), else PyTorch (the network in eval
    mode); ``"torch"`` always PyTorch."""
    card_file = Path(card_path) if card_path else CARD_PATH
    try:
        card = json.loads(card_file.read_text())
        weights = card_file.with_name(card["weights"])
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"The spine type network {card_file} could not be read ({exc}). "
                         f"Reinstall spinequant, or choose another type rule set "
                         f"(--rule-set learnt).") from exc
    if digest != card["sha256"]:
        raise InputError(f"The spine type network's weights {weights} do not match their card "
                         f"(sha256 {digest[:12]}... instead of {card['sha256'][:12]}...): the file "
                         f"is damaged. Reinstall spinequant.")
    onnx = _onnx_file(card_file, card) if engine == "auto" else None
    if onnx is not None:
        return OnnxTypeNetwork(onnx, len(card["classes"])), card
    from safetensors.torch import load_file

    arch = card["architecture"]
    net = build_type_network(arch["channels"], arch["width"], len(card["classes"]))
    net.load_state_dict(load_file(str(weights)))
    net.eval()
    return net, card


def _onnx_file(card_file: Path, card: dict) -> Path | None:
    """The card's ONNX file when ONNX Runtime is installed and the file was exported from the
    current weights; a file that does not match its recorded sha256 is refused."""
    from ..segment.neural.onnx_runtime import onnxruntime_available

    entry = card.get("onnx")
    if not entry or entry.get("weights_sha256") != card["sha256"] or not onnxruntime_available():
        return None
    path = card_file.with_name(entry["file"])
    if not path.exists():
        return None
    if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
        raise InputError(f"The spine type network's ONNX file {path} does not match its card (sha256): "
                         f"the file is damaged. Reinstall spinequant.")
    return path


def export_type_network_onnx(card_path: str | None = None) -> Path:
    """Export the type network (with its softmax) to ONNX beside its card, check it against
    PyTorch on random patches and record the file in the card. Returns the ONNX file."""
    import torch

    from .._atomic import atomic_path
    from ..segment.neural.onnx_runtime import OPSET, onnxruntime_available

    card_file = Path(card_path) if card_path else CARD_PATH
    net, card = load_type_network.__wrapped__(str(card_file), "torch")
    wrapped = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)).eval()
    example = np.random.default_rng(0).random((4, card["architecture"]["channels"], 2 * PATCH_HALF,
                                                2 * PATCH_HALF)).astype(np.float32)
    out = card_file.with_suffix(".onnx")
    with atomic_path(out) as tmp, torch.inference_mode():
        torch.onnx.export(wrapped, (torch.from_numpy(example),), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["patches"], output_names=["probabilities"],
                          dynamic_axes={"patches": {0: "spines"}, "probabilities": {0: "spines"}})
        difference = None
        if onnxruntime_available():
            got = OnnxTypeNetwork(tmp, len(card["classes"]))(example)
            difference = float(np.abs(got - wrapped(torch.from_numpy(example)).numpy()).max())
            if difference > 1e-4:
                raise RuntimeError(f"ONNX export differs from PyTorch by {difference:.2g}; not saved.")
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
    card["onnx"] = {"file": out.name, "sha256": digest, "opset": OPSET, "weights_sha256": card["sha256"],
                    "torch_version": torch.__version__, "max_difference_vs_torch": difference}
    with atomic_path(card_file) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=1) + "\n")
    load_type_network.cache_clear()
    return out


def type_probabilities(patches: np.ndarray, net) -> np.ndarray:
    """(K, classes) probabilities, averaged over the eight rotations and flips of each patch;
    ``net`` is a PyTorch network or an :class:`OnnxTypeNetwork`."""
    if isinstance(net, OnnxTypeNetwork):
        if len(patches) == 0:
            return np.zeros((0, net.classes))
        probabilities = net
    else:
        import torch

        if len(patches) == 0:
            return np.zeros((0, net[-1].out_features))

        def probabilities(x):
            with torch.no_grad():
                return torch.softmax(net(torch.from_numpy(x)), 1).numpy()
    total = 0.0
    for k in range(4):
        for flip in (False, True):
            x = np.rot90(patches, k, axes=(2, 3))
            x = x[..., ::-1] if flip else x
            total = total + probabilities(np.ascontiguousarray(x, dtype=np.float32))
    return total / 8.0


def classify_by_network(image: np.ndarray, spine_labels: np.ndarray, table: pd.DataFrame, spacing, *,
                        dendrite: np.ndarray | None = None, filopodia_max_head_um: float | None = None,
                        card_path: str | None = None) -> tuple[list[str], list[str]]:
    """Type of every spine of a 2D table from the image, and the rule column's text (the
    network's probability for that type). With ``dendrite`` (mask or labels), the image is
    shown only around the spines and dendrites, as in training. A spine whose head is at least
    ``filopodia_max_head_um`` wide is never a filopodium (the published rules' guard): it
    takes the network's most probable other type."""
    if np.ndim(spine_labels) != 2:
        raise InputError("The 'network' spine type rule set types spines of 2D images (a plane or "
                         "a projection) only; for a 3D stack choose 'neuronstudio' or 'risher'.")
    net, card = load_type_network(card_path)
    foreground = None if dendrite is None else neuron_foreground(spine_labels, dendrite, spacing)
    patches = type_patches(image, spine_labels, table, spacing, foreground=foreground)
    patches = patches[:, :card["architecture"]["channels"]]
    probs = type_probabilities(patches, net)
    names = card["classes"]
    if filopodia_max_head_um is not None and "filopodia" in names and len(probs):
        wide = table["head_diameter_um"].to_numpy(float) >= filopodia_max_head_um
        probs = probs.copy()
        probs[wide, names.index("filopodia")] = -1.0
    best = probs.argmax(1) if len(probs) else np.zeros(0, int)
    return ([names[b] for b in best],
            [f"{card['name']} network: p={p[b]:.2f}" for p, b in zip(probs, best)])
