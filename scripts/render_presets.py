"""Maximum projections of a phantom of each preset beside the real two-photon sample stack.

Usage: python scripts/render_presets.py [--out docs/images/presets.png] [--seed 0] [--stats]

``--stats`` also prints intensity and noise statistics of the real sample and of four
two-photon phantoms of the same shape (the table in docs/synth.md).

Each panel shows the xy maximum projection (top) and the xz maximum projection (bottom,
stretched to µm), displayed between the 0.5th and 99.8th percentile as the real sample is,
and at the same physical scale (a scale bar of 5 µm).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from spinequant.data import sample_stack  # noqa: E402
from spinequant.synth import PRESETS, make_phantom  # noqa: E402

#: Every phantom covers the same field as the real sample (µm, y x), at its own voxel size.
FIELD_UM = (16.7, 29.0)


def panels(seed: int):
    real = sample_stack()
    yield "real sample (two-photon, DeepD3)", np.asarray(real.data, float), real.spacing
    for name, cfg in PRESETS.items():
        z = int(round(10.0 / cfg.spacing[0]))
        shape = (z, *(int(round(f / s)) for f, s in zip(FIELD_UM, cfg.spacing[1:])))
        ph = make_phantom(name, seed=seed, shape=shape)
        yield f"phantom '{name}' ({ph.image.dtype.name})", ph.image.astype(float), ph.spacing


def intensity_stats(img: np.ndarray) -> str:
    """Percentiles, background noise (residual after a 15-pixel mean where that mean is in
    the darkest 40 %) and the noise's lag-1 correlation along x."""
    img = img.astype(float)
    resid = img - ndi.uniform_filter(img, (1, 15, 15))
    dark = ndi.uniform_filter(img, (3, 15, 15)) < np.percentile(img, 40)
    r = resid[dark]
    pair = dark[:, :, :-1]
    corr = np.mean(resid[:, :, :-1][pair] * resid[:, :, 1:][pair]) / r.var()
    pct = " ".join(f"{v:.0f}" for v in np.percentile(img, [1, 50, 90, 99, 99.9]))
    return f"percentiles 1/50/90/99/99.9: {pct}  max {img.max():.0f}  noise {r.std():.1f}  corr {corr:.2f}"


def print_stats() -> None:
    real = np.asarray(sample_stack().data)
    print("real sample  ", intensity_stats(real))
    for seed in range(4):
        ph = make_phantom("two_photon", seed=seed, shape=real.shape)
        print(f"phantom {seed}    ", intensity_stats(ph.image))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/images/presets.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stats", action="store_true", help="print intensity statistics too")
    args = ap.parse_args(argv)
    if args.stats:
        print_stats()
    items = list(panels(args.seed))
    fig, axes = plt.subplots(2, len(items), figsize=(3.4 * len(items), 3.6),
                             gridspec_kw={"height_ratios": [FIELD_UM[0], 11.5]})
    for k, (title, img, sp) in enumerate(items):
        lo, hi = np.percentile(img, [0.5, 99.8])
        xy, xz = img.max(axis=0), img.max(axis=1)
        ext_xy = (0, xy.shape[1] * sp[2], xy.shape[0] * sp[1], 0)
        ext_xz = (0, xz.shape[1] * sp[2], xz.shape[0] * sp[0], 0)
        axes[0, k].imshow(xy, cmap="gray", vmin=lo, vmax=hi, extent=ext_xy)
        axes[1, k].imshow(xz, cmap="gray", vmin=lo, vmax=hi, extent=ext_xz)
        axes[0, k].set_title(title, fontsize=9)
        axes[0, k].plot([1, 6], [ext_xy[2] - 1] * 2, color="w", lw=2)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("xy max projection")
    axes[1, 0].set_ylabel("xz max projection")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
