"""A second estimate of the real 2D sets' pixel size: the apparent width of spine heads.

    .venv/bin/python benchmarks/head_widths.py

The real annotated sets (../shared/data/real2d) do not record their pixel size; it was judged
from the width of their shafts (dendritic2 0.09 µm, spine_types 0.08 / 0.12 µm). Here each
marked head is fitted with a 2D Gaussian on a sloping background (robust least squares in a
disc of R pixels around the mark), and the median width in pixels is set against the same fit
on a two-photon stack whose pixel size is recorded: the shipped sample (DeepD3's benchmark
stack, 0.094 µm), in its maximum projection, at the heads spinequant finds there (confidence
>= 0.5). If heads image alike, pixel size = sample's median width (µm) / set's median width
(px). Two disc radii show how much the window moves the answer; the 512-px spine_types images,
whose shafts are 1.5x narrower in pixels, get 2/3 of the radius. Zoomed dendritic2 crops
(``spine_image*``) are left out: they are not fields.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_real_models import REAL2D, SPINE_TYPES_UM, dendritic2_pixel_um, read_grey  # noqa: E402

from _table import markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RADII = (9, 12)


def head_sigma(image: np.ndarray, row: float, col: float, radius: int) -> float | None:
    """Width (σ, px) of a Gaussian fitted to the blob at (row, col), or None if no blob fits."""
    r0, c0 = int(round(row)), int(round(col))
    if min(r0, c0) < radius or r0 + radius >= image.shape[0] or c0 + radius >= image.shape[1]:
        return None
    win = image[r0 - radius:r0 + radius + 1, c0 - radius:c0 + radius + 1].astype(float)
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1].astype(float)
    disc = yy ** 2 + xx ** 2 <= radius ** 2
    base = np.percentile(win[disc], 10)

    def residual(p):
        a, y, x, s, b0, by, bx = p
        return (a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s)) + b0 + by * yy + bx * xx - win)[disc]

    height = win.max() - base
    fit = least_squares(residual, [height, 0, 0, radius / 3, base, 0, 0],
                        bounds=([0, -radius / 2, -radius / 2, 0.5, -np.inf, -np.inf, -np.inf],
                                [np.inf, radius / 2, radius / 2, radius, np.inf, np.inf, np.inf]),
                        loss="soft_l1", f_scale=max(1.0, 0.1 * height))
    amplitude, _, _, sigma = fit.x[:4]
    # a faint blob, or one as wide as the disc or narrower than a pixel, is no head
    if amplitude < 0.2 * height or sigma >= 0.95 * radius or sigma <= 0.55:
        return None
    return float(sigma)


def sample_heads() -> tuple[np.ndarray, list[tuple[float, float]], float]:
    from spinequant.data import sample_stack
    from spinequant.pipeline import analyze

    stack = sample_stack()
    spines = analyze(stack, keep_maps=False).spines
    spines = spines[spines["confidence"] >= 0.5]
    px = stack.spacing[1]
    return (stack.data.max(axis=0), [(r.head_y_um / px, r.head_x_um / px) for r in spines.itertuples()], px)


def dendritic2_heads(split: str, every: int):
    folder = REAL2D / "dendritic2" / split
    for path in sorted((folder / "images").glob("*.jpg"))[::every]:
        label = folder / "labels" / (path.stem + ".txt")
        if dendritic2_pixel_um(path.name) < 0.05 or not label.exists():
            continue
        image = read_grey(path)
        marks = np.loadtxt(label, ndmin=2)
        yield image, [(y * image.shape[0], x * image.shape[1]) for _, x, y, *_ in marks]


def spine_types_heads(size: int):
    from spinequant.segment.neural.yolo_data import yolo_training_sample

    folder = REAL2D / "spine_types" / "train"
    for path in sorted((folder / "images").glob("*.png")):
        image = read_grey(path)
        if image.shape[0] != size:
            continue
        sample, _ = yolo_training_sample(image, folder / "labels" / (path.stem + ".txt"),
                                         pixel_size_um=SPINE_TYPES_UM[size], outlines=True)
        yield image, [(r, c) for _, r, c in sample.heads]


def widths(images, radius: int) -> np.ndarray:
    out = [head_sigma(image, r, c, radius) for image, marks in images for r, c in marks]
    return np.array([s for s in out if s is not None])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(RESULTS / "head_widths.md"))
    args = ap.parse_args()
    t = time.perf_counter()
    mip, marks, sample_um = sample_heads()
    sets = [("dendritic2 train fields (every 3rd)", 0.09, lambda: dendritic2_heads("train", 3), 1.0),
            ("dendritic2 valid fields (every 2nd)", 0.09, lambda: dendritic2_heads("valid", 2), 1.0),
            ("spine_types train, 1024 px", SPINE_TYPES_UM[1024], lambda: spine_types_heads(1024), 1.0),
            ("spine_types train, 512 px", SPINE_TYPES_UM[512], lambda: spine_types_heads(512), 2 / 3)]
    rows = []
    for radius in RADII:
        ref = widths([(mip, marks)], radius)
        ref_um = float(np.median(ref)) * sample_um
        rows.append({"set": f"sample (recorded {sample_um} µm)", "radius_px": radius, "heads": len(ref),
                     "median_sigma_px": np.median(ref), "iqr_px": f"{np.percentile(ref, 25):.2f}-{np.percentile(ref, 75):.2f}",
                     "judged_um": sample_um, "implied_um": sample_um})
        for name, judged, images, shrink in sets:
            r = int(round(radius * shrink))
            w = widths(images(), r)
            rows.append({"set": name, "radius_px": r, "heads": len(w), "median_sigma_px": np.median(w),
                         "iqr_px": f"{np.percentile(w, 25):.2f}-{np.percentile(w, 75):.2f}",
                         "judged_um": judged, "implied_um": ref_um / np.median(w)})
        print(markdown(pd.DataFrame(rows), digits=3), flush=True)
    text = (f"`python benchmarks/head_widths.py`, {time.strftime('%Y-%m-%d')} ({time.perf_counter() - t:.0f} s)\n\n"
            + markdown(pd.DataFrame(rows), digits=3) + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
