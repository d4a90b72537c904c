"""How well do dendritic2's annotations agree with themselves? A ceiling for detection F1.

    .venv/bin/python benchmarks/dendritic2_agreement.py [--method lean2d_real]

Many dendritic2 validation images are other frames of a field that is also in the training
split (the set's README: near-copies). Their spines were marked again, independently, on an
almost identical picture. For every validation image whose 48 x 48 thumbnail correlates at
least 0.95 with a training image of the same size, the training image's points are moved by
the shift between the two (phase correlation, 1/4 px) and matched to the validation image's
points within 1 µm, one-to-one, at the pixel size the project reads the image at (fields
0.09 µm, zoomed ``spine_image`` crops 0.025 µm). The F1 of that match is how well one marking
of the set reproduces another of the same spines; a detector scored against one marking
cannot be expected to do much better. The same images are also analysed (``--method``) and
scored against each marking, for comparison. Writes benchmarks/results/dendritic2_agreement.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_real_models import REAL2D, dendritic2_pixel_um, read_grey  # noqa: E402

from _table import markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MATCH_UM = 1.0
MIN_CORRELATION = 0.95


def load(split: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Image name -> (grey image, (K, 2) annotated heads in pixels, row and column)."""
    folder = REAL2D / "dendritic2" / split
    out = {}
    for path in sorted((folder / "images").glob("*.jpg")):
        label = folder / "labels" / (path.stem + ".txt")
        if not label.exists():
            continue
        image = read_grey(path).astype(np.float32)
        rows = np.loadtxt(label, ndmin=2)
        out[path.name] = (image, rows[:, [2, 1]] * np.array(image.shape) if len(rows) else np.zeros((0, 2)))
    return out


def thumbnail(image: np.ndarray) -> np.ndarray:
    from skimage.transform import resize

    t = resize(image, (48, 48), anti_aliasing=True).ravel()
    t = t - t.mean()
    return t / (np.linalg.norm(t) + 1e-9)


def f1_points(a_px: np.ndarray, b_px: np.ndarray, pixel_um: float) -> tuple[int, int, int]:
    """(matches, len(a), len(b)) within MATCH_UM, one-to-one."""
    from spinequant.evaluate.points import match_points

    as3 = lambda p: np.column_stack([np.zeros(len(p)), np.asarray(p, float) * pixel_um])  # noqa: E731
    r = match_points(as3(a_px), as3(b_px), max_distance_um=MATCH_UM)
    return r["tp"], len(a_px), len(b_px)


def pairs() -> list[dict]:
    from skimage.registration import phase_cross_correlation

    train, valid = load("train"), load("valid")
    names = list(train)
    thumbs = np.stack([thumbnail(train[n][0]) for n in names])
    out = []
    for name, (image, heads) in valid.items():
        corr = thumbs @ thumbnail(image)
        j = int(np.argmax(corr))
        other, other_heads = train[names[j]]
        if corr[j] < MIN_CORRELATION or other.shape != image.shape:
            continue
        shift, _, _ = phase_cross_correlation(image, other, upsample_factor=4)
        out.append({"valid": name, "train": names[j], "correlation": float(corr[j]), "image": image,
                    "heads": heads, "other_heads": other_heads + shift, "pixel_um": dendritic2_pixel_um(name),
                    "kind": "crop" if name.startswith("spine_image") else "field"})
    return out


def detected(image: np.ndarray, pixel_um: float, method: str) -> np.ndarray:
    import spinequant as sq
    from spinequant.pipeline.analyze import AnalyzeConfig

    spines = sq.analyze(image, spacing=(pixel_um, pixel_um), config=AnalyzeConfig(method=method, report=False)).spines
    return spines[["head_y_um", "head_x_um"]].to_numpy(float) / pixel_um


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="lean2d_real", help="detector scored on the same images")
    args = ap.parse_args()
    t0 = time.perf_counter()
    found = pairs()
    rows = []
    for p in found:
        found_px = detected(p["image"], p["pixel_um"], args.method)
        rows.append({"kind": p["kind"],
                     "marking_vs_marking": f1_points(p["heads"], p["other_heads"], p["pixel_um"]),
                     "model_vs_valid": f1_points(found_px, p["heads"], p["pixel_um"]),
                     "model_vs_train": f1_points(found_px, p["other_heads"], p["pixel_um"])})
    table = []
    for kind in ("field", "crop", "all"):
        sel = [r for r in rows if kind == "all" or r["kind"] == kind]
        if not sel:
            continue
        row = {"images": kind + "s" if kind != "all" else "all", "pairs": len(sel),
               "spines (valid / train marking)": f"{sum(r['marking_vs_marking'][1] for r in sel)} / "
                                                 f"{sum(r['marking_vs_marking'][2] for r in sel)}"}
        for key, label in (("marking_vs_marking", "F1 marking vs marking"),
                           ("model_vs_valid", f"F1 {args.method} vs valid marking"),
                           ("model_vs_train", f"F1 {args.method} vs train marking")):
            tp = sum(r[key][0] for r in sel)
            n = sum(r[key][1] + r[key][2] for r in sel)
            row[label] = round(2 * tp / max(n, 1), 3)
        table.append(row)
    frame = pd.DataFrame(table)
    text = markdown(frame)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dendritic2_agreement.md").write_text(
        f"# dendritic2: agreement of the annotations with themselves\n\n"
        f"`python benchmarks/dendritic2_agreement.py --method {args.method}` ({date.today()}, "
        f"{time.perf_counter() - t0:.0f} s). Validation images whose thumbnail correlates >= "
        f"{MIN_CORRELATION} with a training image (other frames of the same field, marked again); "
        f"points matched within {MATCH_UM} µm, one-to-one, fields read at 0.09 µm and crops at "
        f"0.025 µm per pixel.\n\n{text}\n")


if __name__ == "__main__":
    main()
