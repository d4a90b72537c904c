"""RSDR accuracy on two-channel phantoms with known enrichment: the paper's raw ratio against
the blur-corrected one (linear unmixing), with true labels and through ``analyze``.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ratio.py [--seeds 0 1 2] [--photons 200 2000]

Prints markdown tables (relative error |RSDR / truth - 1| over the spines of each phantom).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import markdown  # noqa: E402

from spinequant.synth import make_phantom, project_phantom  # noqa: E402
from spinequant.synth.movie import make_two_channel  # noqa: E402
from spinequant.morphology.ratio import rsdr, rsdr_corrected  # noqa: E402
from spinequant.morphology.unmixing import FWHM_PER_SIGMA  # noqa: E402

SPARSE = dict(spine_density_per_um=(0.6, 1.0), n_axons=(0, 0), n_dim_dendrites=(0, 0))
SHAPE = (16, 128, 128)
#: (row name, PSF FWHM / true one, background, fit)
VARIANTS = [("corrected (ROI means), true PSF, offset given", 1.0, "offset", "rois"),
            ("corrected (voxels), true PSF, offset given", 1.0, "offset", "voxels"),
            ("corrected (voxels), true PSF, background fitted", 1.0, None, "voxels"),
            ("corrected (voxels), PSF -20 %, offset given", 0.8, "offset", "voxels"),
            ("corrected (voxels), PSF +20 %, offset given", 1.2, "offset", "voxels"),
            ("corrected (ROI means), PSF -20 %, offset given", 0.8, "offset", "rois"),
            ("corrected (ROI means), PSF +20 %, offset given", 1.2, "offset", "rois")]


def true_psf(tc, spacing) -> tuple[float, ...]:
    fwhm = [s * d * FWHM_PER_SIGMA for s, d in zip(tc.params["psf_sigma_px"], spacing)]
    return (fwhm[0], fwhm[-1]) if len(spacing) == 3 else (fwhm[-1],)


def errors(measured: pd.Series, truth: pd.Series) -> pd.Series:
    return (measured.reindex(truth.index) / truth - 1).abs()


def summary(rows, **key) -> dict:
    e = pd.concat(rows)
    per_seed = " / ".join(f"{100 * r.median():.1f}" for r in rows)
    return {**key, "spines": int(e.notna().sum()), "median %": 100 * e.median(),
            "median % per seed": per_seed, "p90 %": 100 * e.quantile(0.9), "max %": 100 * e.max()}


def true_labels(seeds, photons_list) -> pd.DataFrame:
    out = []
    for dim in ("3D", "2D"):
        for photons in photons_list:
            found: dict[str, list] = {}
            for seed in seeds:
                ph = make_phantom("two_photon", seed=seed, shape=SHAPE, **SPARSE)
                ph = project_phantom(ph) if dim == "2D" else ph
                tc = make_two_channel(ph, seed=seed, photons=photons)
                args = (tc.tagged, tc.structure, tc.spine_labels, tc.dendrite_labels)
                truth, psf = tc.true_rsdr, true_psf(tc, ph.spacing)
                found.setdefault("raw", []).append(errors(rsdr(*args).set_index("id")["rsdr"], truth))
                found.setdefault("raw, offset subtracted", []).append(
                    errors(rsdr(*args, background=tc.background_adu).set_index("id")["rsdr"], truth))
                for name, scale, bg, fit in VARIANTS:
                    bg = tc.background_adu if bg == "offset" else bg
                    table = rsdr_corrected(*args, spacing=ph.spacing, psf_fwhm_um=tuple(scale * p for p in psf),
                                           background=bg, fit=fit).set_index("id")
                    found.setdefault(name, []).append(errors(table["rsdr_corrected"], truth))
            for name, rows in found.items():
                out.append(summary(rows, image=dim, photons=photons, ratio=name))
    return pd.DataFrame(out)


def detected(seeds, photons, dim: str, method: str) -> pd.DataFrame:
    """Through ``analyze`` (true PSF, offset given); spines matched to true ones only."""
    from spinequant import analyze
    from spinequant.evaluate.detection import match_spine_objects
    from spinequant.pipeline.analyze import AnalyzeConfig, RatioConfig

    found: dict[str, list] = {}
    for seed in seeds:
        ph = make_phantom("two_photon", seed=seed, shape=(24, 160, 160), **SPARSE)
        ph = project_phantom(ph) if dim == "2D" else ph
        tc = make_two_channel(ph, seed=seed, photons=photons)
        rng = np.random.default_rng(1)   # read noise, so the classical method sees a real background
        structure, tagged = (np.clip(c + rng.normal(0, 30, c.shape), 0, 65535).astype(np.uint16)
                             for c in (tc.structure, tc.tagged))
        config = AnalyzeConfig(method=method, ratio=RatioConfig(psf_fwhm_um=true_psf(tc, ph.spacing),
                                                                background=tc.background_adu))
        result = analyze(structure, spacing=ph.spacing, config=config, tagged=tagged)
        match = match_spine_objects(result.spine_labels, tc.spine_labels, spacing=ph.spacing)
        pairs = pd.DataFrame(match["pairs"], columns=["true", "pred"])
        table = result.spines.set_index("id")
        truth = pd.Series(tc.true_rsdr.reindex(pairs["true"]).to_numpy(), index=pairs["pred"].to_numpy())
        for column in ("rsdr", "rsdr_corrected"):
            found.setdefault(column, []).append(errors(table[column], truth))
        print(f"{dim} {method} seed {seed}: {len(table)} spines found, {len(pairs)} of {len(tc.true_rsdr)} "
              f"true ones matched, {int(table['rsdr_corrected'].isna().sum())} without a corrected RSDR; "
              f"labelled voxels / true: dendrite {(result.dendrite_labels > 0).sum() / (tc.dendrite_labels > 0).sum():.1f}, "
              f"spines {(result.spine_labels > 0).sum() / (tc.spine_labels > 0).sum():.1f}", file=sys.stderr)
    return pd.DataFrame([summary(rows, image=f"{dim} detected ({method})", photons=photons,
                                 ratio=f"{name} (offset subtracted)") for name, rows in found.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--photons", type=float, nargs="+", default=[200, 2000])
    parser.add_argument("--no-detection", action="store_true")
    args = parser.parse_args()
    print(f"True labels, two_photon phantoms {SHAPE} (2D: their projection), seeds {args.seeds}:\n")
    print(markdown(true_labels(args.seeds, args.photons), digits=1))
    if not args.no_detection:
        print(f"\nThrough analyze, 24 x 160 x 160 (2D: its projection), seeds {args.seeds}, 200 photons + "
              f"30 ADU read noise, true PSF, offset given; matched spines only ('spines': those with a value):\n")
        runs = [detected(args.seeds, 200, dim, method) for dim, method in
                [("3D", "classical"), ("3D", "lean2d_real"), ("2D", "classical"), ("2D", "lean2d_real")]]
        print(markdown(pd.concat(runs), digits=1))


if __name__ == "__main__":
    main()
