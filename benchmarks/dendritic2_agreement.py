"""How well do dendritic2's annotations agree with themselves? A ceiling for detection F1.

    .venv/bin/python benchmarks/dendritic2_agreement.py [--method lean2d_real]

Many dendritic2 validation images are other frames of a field that is also in the training
split (the set's README: near-copies). For every validation image, the training images of the
same size whose 48 x 48 thumbnails correlate best with it are registered to it (phase
correlation, 1/4 px); a pair is the same field when the full-resolution correlation after the
shift is at least ``MIN_FIELD_CORRELATION`` (same fields score 0.83-0.99, different ones up to
0.81). The training image's points are moved by the shift and matched to the validation image's
points within 1 µm, one-to-one, at the pixel size the project reads the image at (fields
0.09 µm, zoomed ``spine_image`` crops 0.025 µm).

Not every such pair was marked twice: where the residuals of the matched points (validation
point minus moved training point) spread less than ``COPIED_UM`` about their mean (half a
field pixel), the
marks were carried over from one frame to the other (a shift of the whole set, no click of a
hand), and their agreement says nothing about the annotators. Pairs whose points scatter more
were marked again, on another frame: their F1 is how well one marking of the set reproduces
another of the same spines (a lower bound on the annotators' consistency: spines that appeared
or vanished between frames count against it), and a detector scored against one marking
cannot be expected to do much better. The same images are analysed (``--method``) and scored
against each marking, and the detector's spines on the two frames against each other (its own
repeatability, to set beside the annotators'). A second table lists the images of ``valid_distinct.txt`` (the set the
real-data benchmark reports) that are frames of a training field, and the detector's F1 on
them and on the rest. A third table sets the detector against itself on those images and their
mirror images (flipped left-right, up-down, turned by 90°; its spines mapped back): a detector
that learnt no orientation should find the same spines. Writes
benchmarks/results/dendritic2_agreement.md.
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
#: Training images whose thumbnails correlate best with a validation image, tried in turn.
CANDIDATES = 3
MIN_FIELD_CORRELATION = 0.82
COPIED_UM = 0.045


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


def shifted_correlation(image: np.ndarray, other: np.ndarray, shift) -> float:
    """Pearson correlation of ``image`` and ``other`` moved by ``shift``, where they overlap."""
    from scipy import ndimage as ndi

    moved = ndi.shift(other, shift, order=1, mode="constant", cval=np.nan)
    both = np.isfinite(moved)
    a, b = image[both] - image[both].mean(), moved[both] - moved[both].mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-9))


def f1_points(a_px: np.ndarray, b_px: np.ndarray, pixel_um: float) -> tuple[int, int, int]:
    """(matches, len(a), len(b)) within MATCH_UM, one-to-one."""
    from spinequant.evaluate.points import match_points

    as3 = lambda p: np.column_stack([np.zeros(len(p)), np.asarray(p, float) * pixel_um])  # noqa: E731
    r = match_points(as3(a_px), as3(b_px), max_distance_um=MATCH_UM)
    return r["tp"], len(a_px), len(b_px)


def residual_spread(a_px: np.ndarray, b_px: np.ndarray, pixel_um: float) -> float:
    """Median distance (µm) of the residuals of ``a``'s points to their nearest ``b`` point
    within MATCH_UM from the residuals' mean; NaN with fewer than three such pairs."""
    from scipy.spatial import cKDTree

    if len(a_px) < 3 or len(b_px) < 3:
        return float("nan")
    d, j = cKDTree(b_px).query(a_px)
    near = d * pixel_um < MATCH_UM
    if near.sum() < 3:
        return float("nan")
    r = a_px[near] - b_px[j[near]]
    return float(np.median(np.linalg.norm(r - r.mean(axis=0), axis=1))) * pixel_um


def pairs() -> list[dict]:
    """Every validation image that is a frame of a training field, with both markings."""
    from skimage.registration import phase_cross_correlation

    train, valid = load("train"), load("valid")
    names = list(train)
    thumbs = np.stack([thumbnail(train[n][0]) for n in names])
    distinct = set((REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split())
    out = []
    for name, (image, heads) in valid.items():
        corr = thumbs @ thumbnail(image)
        for j in np.argsort(corr)[::-1][:CANDIDATES]:
            other, other_heads = train[names[j]]
            if other.shape != image.shape:
                continue
            shift, _, _ = phase_cross_correlation(image, other, upsample_factor=4)
            field_corr = shifted_correlation(image, other, shift)
            if field_corr < MIN_FIELD_CORRELATION:
                continue
            px = dendritic2_pixel_um(name)
            moved = other_heads + shift
            spread = residual_spread(heads, moved, px)
            out.append({"valid": name, "train": names[j], "correlation": field_corr, "image": image,
                        "other_image": other, "shift": shift,
                        "heads": heads, "other_heads": moved, "pixel_um": px, "spread_um": spread,
                        "kind": "crop" if name.startswith("spine_image") else "field",
                        "marking": "carried over" if spread < COPIED_UM else "marked again",
                        "distinct": name in distinct})
            break
    return out


def detected(image: np.ndarray, pixel_um: float, method: str) -> np.ndarray:
    import spinequant as sq
    from spinequant.pipeline.analyze import AnalyzeConfig

    spines = sq.analyze(image, spacing=(pixel_um, pixel_um), config=AnalyzeConfig(method=method, report=False)).spines
    return spines[["head_y_um", "head_x_um"]].to_numpy(float) / pixel_um


def _f1(rows: list[dict], key: str) -> float:
    tp = sum(r[key][0] for r in rows)
    return round(2 * tp / max(sum(r[key][1] + r[key][2] for r in rows), 1), 3)


def agreement_table(rows: list[dict], method: str) -> pd.DataFrame:
    table = []
    groups = [(f"{kind}s, {marking}", lambda r, k=kind, m=marking: r["kind"] == k and r["marking"] == m)
              for kind in ("field", "crop") for marking in ("marked again", "carried over")]
    groups.append(("all", lambda r: True))
    for label, keep in groups:
        sel = [r for r in rows if keep(r)]
        if not sel:
            continue
        table.append({"images": label, "pairs": len(sel),
                      "of them in valid_distinct": sum(r["distinct"] for r in sel),
                      "spines (valid / train marking)": f"{sum(r['marking_vs_marking'][1] for r in sel)} / "
                                                        f"{sum(r['marking_vs_marking'][2] for r in sel)}",
                      "F1 marking vs marking": _f1(sel, "marking_vs_marking"),
                      f"F1 {method} vs valid marking": _f1(sel, "model_vs_valid"),
                      f"F1 {method} vs train marking": _f1(sel, "model_vs_train"),
                      f"F1 {method} on one frame vs the other": _f1(sel, "model_vs_model")})
    return pd.DataFrame(table)


def distinct_table(found: list[dict], method: str) -> pd.DataFrame:
    """The detector on valid_distinct.txt: its images that are frames of a training field and the rest."""
    framed = {p["valid"] for p in found if p["distinct"]}
    valid = load("valid")
    stems = [s for s in (REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split() if s in valid]
    rows = {True: [], False: []}
    for stem in stems:
        image, heads = valid[stem]
        px = dendritic2_pixel_um(stem)
        rows[stem in framed].append({"model_vs_valid": f1_points(detected(image, px, method), heads, px)})
    out = []
    for label, key in (("frames of a training field", True), ("no training frame found", False),
                       ("all (the benchmark)", None)):
        sel = rows[key] if key is not None else rows[True] + rows[False]
        out.append({"valid_distinct images": label, "images": len(sel),
                    "marked spines": sum(r["model_vs_valid"][2] for r in sel),
                    f"F1 {method}": _f1(sel, "model_vs_valid")})
    return pd.DataFrame(out)


#: Mirror images of a (rows, cols) image, and how a point (row, col) of the mirror image maps back.
MIRRORS = {
    "flipped left-right": (lambda a: a[:, ::-1], lambda p, shape: np.column_stack([p[:, 0], shape[1] - 1 - p[:, 1]])),
    "flipped up-down": (lambda a: a[::-1], lambda p, shape: np.column_stack([shape[0] - 1 - p[:, 0], p[:, 1]])),
    "turned by 90°": (np.rot90, lambda p, shape: np.column_stack([p[:, 1], shape[1] - 1 - p[:, 0]])),
}


def mirror_table(method: str) -> pd.DataFrame:
    """The detector on each image of valid_distinct.txt against itself on the image's mirror images."""
    valid = load("valid")
    stems = [s for s in (REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split() if s in valid]
    agree = {k: [] for k in MIRRORS}
    marks = {k: [] for k in ("as given", *MIRRORS)}
    for stem in stems:
        image, heads = valid[stem]
        px = dendritic2_pixel_um(stem)
        found = detected(image, px, method)
        marks["as given"].append({"f": f1_points(found, heads, px)})
        for name, (mirror, back) in MIRRORS.items():
            other = detected(np.ascontiguousarray(mirror(image)), px, method)
            other = back(other, image.shape) if len(other) else other
            agree[name].append({"f": f1_points(found, other, px)})
            marks[name].append({"f": f1_points(other, heads, px)})
    return pd.DataFrame([{"image": name, f"F1 {method} vs itself on the image as given":
                          _f1(agree[name], "f") if name in agree else 1.0,
                          f"F1 {method} vs the marks": _f1(marks[name], "f")} for name in marks])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="lean2d_real", help="detector scored on the same images")
    ap.add_argument("--out", default=str(RESULTS / "dendritic2_agreement.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    found = pairs()
    for p in found:
        found_px = detected(p["image"], p["pixel_um"], args.method)
        p["marking_vs_marking"] = f1_points(p["heads"], p["other_heads"], p["pixel_um"])
        p["model_vs_valid"] = f1_points(found_px, p["heads"], p["pixel_um"])
        p["model_vs_train"] = f1_points(found_px, p["other_heads"], p["pixel_um"])
        other_px = detected(p["other_image"], p["pixel_um"], args.method) + p["shift"]
        p["model_vs_model"] = f1_points(found_px, other_px, p["pixel_um"])
    first = markdown(agreement_table(found, args.method))
    second = markdown(distinct_table(found, args.method))
    third = markdown(mirror_table(args.method))
    print(first, second, third, sep="\n\n")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# dendritic2: agreement of the annotations with themselves\n\n"
        f"`python benchmarks/dendritic2_agreement.py --method {args.method}` ({date.today()}, "
        f"{time.perf_counter() - t0:.0f} s). Validation images that are frames of a training field "
        f"(correlation >= {MIN_FIELD_CORRELATION} after registration); points matched within {MATCH_UM} µm, "
        f"one-to-one, fields read at 0.09 µm and crops at 0.025 µm per pixel. \"Carried over\": the "
        f"matched points' residuals spread less than {COPIED_UM} µm about their mean (the marks were "
        f"shifted from one frame to the other, not set again); \"marked again\": they scatter more.\n\n"
        f"{first}\n\nThe images of `valid_distinct.txt` (the real-data benchmark's set) that are "
        f"frames of a training field, found the same way, and the rest:\n\n{second}\n\nThe same "
        f"images, the detector on each as given against itself on its mirror images (its spines "
        f"mapped back), and each run against the marks:\n\n{third}\n")


if __name__ == "__main__":
    main()
