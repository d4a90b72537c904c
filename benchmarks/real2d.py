"""Spine detection on real annotated 2D images (../shared/data/real2d), per method.

    .venv/bin/python benchmarks/real2d.py --methods classical lean2d lean2d_real

Sets (see ../shared/data/real2d/README.md): ``dendritic2/valid`` restricted to the
images of ``valid_distinct.txt`` (not near-copies of a training image; 136 of its 139 have a
label file), and
``spine_types/val`` (15 images with typed outlines). Neither was used for training or for
choosing a model's epoch. A found spine matches an annotated head within 1 µm, one-to-one
(Hungarian). The pixel size of these sets is not recorded: they are analysed at the size
judged from the shaft width (dendritic2 0.09 µm; spine_types 0.08 µm for 1024 px images,
0.12 µm for 512 px) and at 0.75x and 1.33x of it, the matching tolerance staying 1 µm at the
judged size, so the columns show what a misstated pixel size costs.

For a model with a point head, the detection score of every spine found with a low head
threshold is also collected (``--calibrate``): a logistic (Platt) calibration of the score
against "a human marked this spine" is fitted on one half of the images and its expected
calibration error measured on the other half, and the reverse; the calibration fitted on all
images is written to the model card with the threshold that maximises F1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_real_models import DENDRITIC2_UM, REAL2D, SPINE_TYPES_UM, read_grey  # noqa: E402

from _table import markdown  # noqa: E402

from spinequant.evaluate.points import match_points  # noqa: E402
from spinequant.segment.neural.yolo_data import yolo_training_sample  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCALES = (1.0, 0.75, 4 / 3)
MATCH_UM = 1.0
TYPE_NAMES = ("mushroom", "stubby", "branched", "thin", "filopodia")


@dataclasses.dataclass
class Image2D:
    name: str
    image: np.ndarray
    pixel_um: float
    heads_px: np.ndarray          # (K, 2) row, col
    types: np.ndarray | None      # class per head (spine_types only)


def load_set(name: str) -> list[Image2D]:
    out = []
    if name == "dendritic2":
        folder = REAL2D / "dendritic2" / "valid"
        for stem in (REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split():
            label = folder / "labels" / (Path(stem).stem + ".txt")
            if not label.exists():   # 3 of the 139 have no label file: not scored
                continue
            img = read_grey(folder / "images" / stem)
            s, _ = yolo_training_sample(img, label,
                                        pixel_size_um=DENDRITIC2_UM, outlines=False)
            out.append(Image2D(stem, img, DENDRITIC2_UM, s.heads[:, 1:], None))
    else:
        folder = REAL2D / "spine_types" / "val"
        for path in sorted((folder / "images").glob("*.png")):
            img = read_grey(path)
            px = SPINE_TYPES_UM.get(img.shape[0], 0.08)
            s, classes = yolo_training_sample(img, folder / "labels" / (path.stem + ".txt"),
                                              pixel_size_um=px, outlines=True)
            out.append(Image2D(path.name, img, px, s.heads[:, 1:], classes))
    return out


def detect(image: np.ndarray, pixel_um: float, method: str, *, head_threshold: float | None = None):
    """Spines found in a 2D image by ``method`` with the settings ``analyze`` uses: (K, 2)
    pixel positions (the head-map peak for point-head models, else the object's centroid) and
    detection scores (NaN for methods without)."""
    import cc3d

    from spinequant.instances import spine_instances
    from spinequant.pipeline.analyze import default_instance_config
    from spinequant.segment import segment_maps
    from spinequant.segment.neural.yolo_data import PLANE_Z_UM

    spacing = (PLANE_Z_UM, pixel_um, pixel_um)
    maps = segment_maps(image[None], spacing=spacing, method=method)
    config = default_instance_config(method)
    if head_threshold is not None:
        config = dataclasses.replace(config, head_threshold=head_threshold)
    inst = spine_instances(maps.spine, maps.dendrite, spacing=spacing, config=config, head_prob=maps.heads)
    labels = inst.spine_labels[0]
    n = int(labels.max())
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0)
    if maps.heads is None:
        return cc3d.statistics(labels)["centroids"][1:], np.full(n, np.nan)
    heads = maps.heads[0]
    points = np.zeros((n, 2))
    for i, box in enumerate(cc3d.statistics(labels)["bounding_boxes"][1:], start=1):
        local = np.where(labels[box] == i, heads[box], -1.0)
        r, c = np.unravel_index(int(np.argmax(local)), local.shape)
        points[i - 1] = (r + box[0].start, c + box[1].start)
    return points, inst.scores[1:]


def score(sets, method, scale, *, head_threshold=None, collect=False):
    rows, samples = [], []
    for set_name, images in sets.items():
        tp = n_pred = n_true = 0
        t = time.perf_counter()
        for im in images:
            stated = im.pixel_um * scale
            pts, scores = detect(im.image, stated, method, head_threshold=head_threshold)
            r = match_points(np.column_stack([np.zeros(len(pts)), pts * im.pixel_um]),
                             np.column_stack([np.zeros(len(im.heads_px)), im.heads_px * im.pixel_um]),
                             max_distance_um=MATCH_UM)
            tp, n_pred, n_true = tp + r["tp"], n_pred + r["n_pred"], n_true + r["n_true"]
            if collect:
                hit = np.zeros(len(pts), bool)
                hit[r["pairs"]["pred_index"].to_numpy()] = True
                samples.append(pd.DataFrame({"set": set_name, "image": im.name, "score": scores,
                                             "hit": hit, "n_true": len(im.heads_px)}))
        p = tp / n_pred if n_pred else float("nan")
        rc = tp / n_true if n_true else float("nan")
        rows.append({"set": set_name, "method": method, "pixel_size": f"{scale:.2f}x",
                     "images": len(images), "true": n_true, "found": n_pred, "precision": p,
                     "recall": rc, "f1": 2 * tp / (n_pred + n_true) if n_pred + n_true else 1.0,
                     "s_per_image": (time.perf_counter() - t) / len(images)})
    return rows, (pd.concat(samples, ignore_index=True) if samples else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["classical", "lean2d", "lean2d_real"])
    ap.add_argument("--sets", nargs="+", default=["dendritic2", "spine_types"])
    ap.add_argument("--scales", type=float, nargs="+", default=list(SCALES))
    ap.add_argument("--out", default=str(RESULTS / "real2d.md"))
    args = ap.parse_args()
    sets = {name: load_set(name) for name in args.sets}
    rows = []
    for method in args.methods:
        for scale in args.scales:
            r, _ = score(sets, method, scale)
            rows += r
            print(pd.DataFrame(r).round(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).round(3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        f"`python benchmarks/real2d.py --methods {' '.join(args.methods)}`, "
        f"{time.strftime('%Y-%m-%d')}\n\n" + markdown(table, digits=3) + "\n")
    print(markdown(table, digits=3))
    print(json.dumps({"written": args.out}))


if __name__ == "__main__":
    main()
