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

    .venv/bin/python benchmarks/types_background.py --fields

puts real two-photon fields behind the dendrite instead of the texture: the distinct fields of
dendritic2's validation split (other dendrites with their spines, axons, haze, noise), read at
the size the project reads them, cut 4 px at their edges, turned by a random right angle and
laid side by side until they cover the image, scaled so that their median is ``level`` x the
median foreground intensity. The detector then also finds the spines of those fields, which
no expert typed: the table gives the expert-typed spines matched and typed right; writes
benchmarks/results/types_background_fields.md.
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
from train_real_models import REAL2D, SPINE_TYPES_UM, dendritic2_pixel_um, read_grey  # noqa: E402
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


def real_fields() -> list[tuple[np.ndarray, float]]:
    """dendritic2's distinct validation fields (not its zoomed crops) and their pixel sizes."""
    names = (REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split()
    return [(read_grey(REAL2D / "dendritic2" / "valid" / "images" / n).astype(np.float32), dendritic2_pixel_um(n))
            for n in names if not n.startswith("spine_image")]


def with_fields_behind(image: np.ndarray, level: float, rng, fields, pixel_um: float) -> np.ndarray:
    """``image`` with real fields where it is 0 (see the module's docstring)."""
    from skimage.transform import rescale

    image = image.astype(np.float32)
    if not level:
        return image
    rows, y = [], 0
    while y < image.shape[0]:
        row, x = [], 0
        while x < image.shape[1]:
            field, field_um = fields[rng.integers(len(fields))]
            field = rescale(field[4:-4, 4:-4], field_um / pixel_um, order=1, anti_aliasing=field_um < pixel_um,
                            preserve_range=True)
            n = min(field.shape)
            row.append(np.rot90(field[:n, :n], rng.integers(4)))
            x += n
        height = min(f.shape[0] for f in row)
        rows.append(np.concatenate([f[:height] for f in row], axis=1)[:, :image.shape[1]])
        y += height
    back = np.concatenate(rows, axis=0)[:image.shape[0]]
    back = back * (level * np.median(image[image > 0]) / max(float(np.median(back)), 1e-6))
    return np.where(image > 0, image, back).astype(np.float32)


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
    ap.add_argument("--fields", action="store_true",
                    help="real two-photon fields (dendritic2 validation) behind the dendrite instead of a texture")
    args = ap.parse_args()
    targets = [None] + list(args.pixel_um or [])
    rows = []
    for target in targets:
        rows += typed_at(target, fields=real_fields() if args.fields else None)
    table = pd.DataFrame(rows).round(3)
    if args.pixel_um is None:
        table = table.drop(columns="pixel_um")
    if args.fields:   # "found" counts the fields' own spines too, which no expert typed
        table = table.drop(columns=["found", "f1_with_type"])
    RESULTS.mkdir(exist_ok=True)
    name = "types_background" + ("_fields" if args.fields else "") + (
        "" if args.pixel_um is None else "_pixel_sizes") + ".md"
    command = "python benchmarks/types_background.py" + (" --fields" if args.fields else "") + (
        "" if args.pixel_um is None else " --pixel-um " + " ".join(f"{t:g}" for t in args.pixel_um))
    (RESULTS / name).write_text(f"`{command}`, {time.strftime('%Y-%m-%d')}\n\n" + markdown(table, digits=3) + "\n")
    print(markdown(table, digits=3))


def typed_at(target: float | None, fields=None) -> list[dict]:
    """The rows of every background level with the val images at ``target`` µm per pixel; with
    ``fields`` (:func:`real_fields`) those are put behind the dendrite instead of a texture."""
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
            backed = (with_background(grey, level, rng) if fields is None
                      else with_fields_behind(grey, level, rng, fields, px))
            image = resampled(backed, px, target)
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
