"""Does the image network type spines the same when the image has a background?

    .venv/bin/python benchmarks/types_background.py

The spine_types images (the network's training and validation data) have everything but the
dendrite and its spines set to 0 by their annotators; users' images do not. Each val image gets
a synthetic background where it is 0 (smooth texture at ``level`` x the median foreground
intensity, +-50 %, plus noise at 5 %), is analysed with ``lean2d_real``, and the spines that
match an expert's outline are typed by the network twice: shown the whole patch, and shown only
within 0.3 µm of the spines and dendrites ``analyze`` found (``neuron_foreground``, what
``measure_spines`` does). Writes benchmarks/results/types_background.md.

    .venv/bin/python benchmarks/types_background.py --pixel-um 0.11 0.16

also types the val images resampled to other pixel sizes (linear, anti-aliased when shrinking,
after the background is added), where the margin of 0.3 µm is another number of pixels;
writes benchmarks/results/types_background_pixel_sizes.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_real_models import REAL2D, SPINE_TYPES_UM, read_grey  # noqa: E402
from train_type_classifier import CLASS_NAMES  # noqa: E402

from _table import markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (0.0, 0.15, 0.3)


def with_background(image: np.ndarray, level: float, rng) -> np.ndarray:
    image = image.astype(np.float32)
    if not level:
        return image
    median = np.median(image[image > 0])
    texture = ndi.gaussian_filter(rng.normal(0, 1, image.shape), 6)
    back = level * median * (1 + 0.5 * texture / texture.std()) + rng.normal(0, 0.05 * median, image.shape)
    return np.where(image > 0, image, np.clip(back, 0, None)).astype(np.float32)


def resampled(image: np.ndarray, pixel_um: float, target_um: float | None) -> np.ndarray:
    """``image`` (pixels of ``pixel_um``) at ``target_um`` per pixel (``None``: as it is)."""
    from skimage.transform import resize

    if target_um is None:
        return image
    f = pixel_um / target_um
    shape = tuple(int(round(n * f)) for n in image.shape)
    return resize(image, shape, order=1, anti_aliasing=f < 1, preserve_range=True).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pixel-um", type=float, nargs="+", default=None,
                    help="also type the val images resampled to these pixel sizes (µm)")
    args = ap.parse_args()
    targets = [None] + list(args.pixel_um or [])
    rows = []
    for target in targets:
        rows += typed_at(target)
    table = pd.DataFrame(rows).round(3)
    if args.pixel_um is None:
        table = table.drop(columns="pixel_um")
    RESULTS.mkdir(exist_ok=True)
    name = "types_background.md" if args.pixel_um is None else "types_background_pixel_sizes.md"
    command = "python benchmarks/types_background.py" + (
        "" if args.pixel_um is None else " --pixel-um " + " ".join(f"{t:g}" for t in args.pixel_um))
    (RESULTS / name).write_text(f"`{command}`, {time.strftime('%Y-%m-%d')}\n\n" + markdown(table, digits=3) + "\n")
    print(markdown(table, digits=3))


def typed_at(target: float | None) -> list[dict]:
    """The rows of every background level with the val images at ``target`` µm per pixel."""
    import spinequant as sq
    from spinequant.evaluate.points import match_points
    from spinequant.morphology import MorphologyConfig
    from spinequant.morphology.type_network import classify_by_network
    from spinequant.pipeline.analyze import AnalyzeConfig
    from spinequant.segment.neural.yolo_data import yolo_training_sample

    rng = np.random.default_rng(0)
    folder = REAL2D / "spine_types" / "val"
    config = AnalyzeConfig(method="lean2d_real", report=False, morphology=MorphologyConfig(rule_set="learnt"))
    rows = []
    for level in LEVELS:
        counts = {"whole patch": [0, 0], "spines and dendrites only (default)": [0, 0]}
        found_total = true_total = 0
        for path in sorted((folder / "images").glob("*.png")):
            grey = read_grey(path)
            px = SPINE_TYPES_UM.get(grey.shape[0], 0.08)
            truth, classes = yolo_training_sample(grey, folder / "labels" / (path.stem + ".txt"), pixel_size_um=px)
            image = resampled(with_background(grey, level, rng), px, target)
            use = target or px
            result = sq.analyze(image, spacing=(use, use), config=config)
            found = result.spines[["head_y_um", "head_x_um"]].to_numpy(float)
            pairs = match_points(np.column_stack([np.zeros(len(found)), found]),
                                 np.column_stack([np.zeros(len(truth.heads)), truth.heads[:, 1:] * px]),
                                 max_distance_um=1.0)["pairs"]
            want = np.array(CLASS_NAMES)[classes[pairs["true_index"].to_numpy()]]
            found_total, true_total = found_total + len(found), true_total + len(classes)
            for name, dendrite in zip(counts, (None, result.dendrite_labels)):
                types, _ = classify_by_network(image, result.spine_labels, result.spines, (use, use),
                                               dendrite=dendrite, filopodia_max_head_um=0.5)
                got = np.array(types)[pairs["pred_index"].to_numpy()] if len(types) else np.zeros(0)
                counts[name][0] += int((got == want).sum())
                counts[name][1] += len(pairs)
        for name, (right, matched) in counts.items():
            rows.append({"pixel_um": "as published" if target is None else target,
                         "background": level, "network shown": name, "found": found_total, "true": true_total,
                         "matched": matched, "right type": right, "accuracy": right / max(matched, 1),
                         "f1_with_type": 2 * right / (found_total + true_total)})
        print(pd.DataFrame(rows[-2:]).round(3).to_string(index=False), flush=True)
    return rows


if __name__ == "__main__":
    main()
