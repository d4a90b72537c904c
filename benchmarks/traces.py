"""Calcium traces on movie phantoms with motion: Pearson r between recovered and true ΔF/F0
per spine, ROI means (raw, and with the dendrite subtracted) against per-frame demixing with
the PSF-blurred footprints, 2D (projections) and 3D.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/traces.py [--seeds2d 0 1 2] [--seeds3d 0 1]
        [--photons 30 150] [--out benchmarks/results/traces.md]

Phantoms: ``make_phantom("two_photon", seed=s, shape=(12, 160, 160), <sparse>)`` (2D:
``project_phantom``), ``make_movie(..., n_frames=150, frame_rate_hz=10, seed=s, photons=P)``
(0.3 µm jitter + 0.5 µm drift). ROIs: the true labels. Motion: estimated against the resting
image (``estimate_shifts``), the same shifts for every variant. F0: frames 0-19 (no event).

For each spine whose demixed r stays below 0.95 the table of reasons says why:
- ``edge``: the spine lies closer to the frame's edge than the largest shift of the movie, so
  part of its light leaves the field of view in some frames;
- ``noise``: the demixed trace's noise (SD of ΔF/F0 in the 20 quiet frames, where the truth
  is exactly 0) caps r at ``sqrt(var_true / (var_true + noise²)) < 0.95``: the spine's own
  signal is too small against the shot noise of everything the PSF spreads over it;
- ``other``: neither.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _table import markdown  # noqa: E402

from spinequant.morphology.unmixing import FWHM_PER_SIGMA  # noqa: E402
from spinequant.synth import make_phantom, project_phantom  # noqa: E402
from spinequant.synth.movie import make_movie  # noqa: E402
from spinequant.timelapse import estimate_shifts, extract_traces, wide  # noqa: E402

SPARSE = dict(spine_density_per_um=(0.6, 1.0), n_axons=(0, 0), n_dim_dendrites=(0, 0))
SHAPE = (12, 160, 160)
QUIET = 20


def true_psf(movie) -> tuple[float, ...]:
    fwhm = [s * d * FWHM_PER_SIGMA for s, d in zip(movie.params["psf_sigma_px"], movie.spacing)]
    return (fwhm[0], fwhm[-1]) if len(movie.spacing) == 3 else (fwhm[-1],)


def pearson(table: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    w = wide(table)
    return pd.Series({i: np.corrcoef(w[f"spine_{i}"], truth[i])[0, 1] if f"spine_{i}" in w else np.nan
                      for i in truth.columns})


def edge_distance_um(labels, spacing) -> pd.Series:
    """Per spine, the lateral distance (µm) of its nearest pixel to the frame's edge."""
    out = {}
    lateral = np.asarray(spacing[-2:])
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        ys, xs = box[-2], box[-1]
        out[i] = min(ys.start * lateral[0], xs.start * lateral[1], (labels.shape[-2] - ys.stop) * lateral[0],
                     (labels.shape[-1] - xs.stop) * lateral[1])
    return pd.Series(out)


def one_movie(dim: str, seed: int, photons: float) -> tuple[dict, pd.DataFrame]:
    ph = make_phantom("two_photon", seed=seed, shape=SHAPE, **SPARSE)
    if dim == "2D":
        ph = project_phantom(ph)
    movie = make_movie(ph, n_frames=150, frame_rate_hz=10.0, seed=seed, photons=photons)
    t0 = time.perf_counter()
    shifts = estimate_shifts(movie.frames, movie.spacing, reference=movie.resting)
    t_reg = time.perf_counter() - t0
    reg_rms = float(np.sqrt(((shifts - movie.shifts_um) ** 2).sum(axis=1).mean()))
    common = dict(frame_rate_hz=10.0, shifts_um=shifts, baseline=(0, QUIET), background=movie.background_adu)
    args = (movie.frames, movie.spine_labels, movie.dendrite_labels, movie.spacing)
    psf = true_psf(movie)
    r, timing = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, extra in (("raw", {}), ("raw r=0.1", {"neuropil_r": 0.1}),
                            ("demixed", {"psf_fwhm_um": psf}),
                            ("demixed PSF -20 %", {"psf_fwhm_um": tuple(0.8 * f for f in psf)}),
                            ("demixed PSF +20 %", {"psf_fwhm_um": tuple(1.2 * f for f in psf)})):
            t0 = time.perf_counter()
            table, _ = extract_traces(*args, **common, **extra)
            timing[name] = time.perf_counter() - t0
            r[name] = pearson(table, movie.spine_dff)
            if name == "demixed":
                demixed = wide(table)
    truth = movie.spine_dff
    noise = pd.Series({i: float(demixed[f"spine_{i}"].iloc[:QUIET].std()) for i in truth.columns})
    signal = truth.std()
    ceiling = np.sqrt(signal**2 / (signal**2 + noise**2))
    edge = edge_distance_um(movie.spine_labels, movie.spacing)
    max_shift = float(np.abs(movie.shifts_um[:, -2:]).max())
    spines = pd.DataFrame({"r_raw": r["raw"], "r_demixed": r["demixed"], "ceiling": ceiling, "noise_sd": noise,
                           "signal_sd": signal, "edge_um": edge.reindex(truth.columns),
                           "pixels": pd.Series(np.bincount(movie.spine_labels.ravel())[1:],
                                               index=range(1, len(truth.columns) + 1))})
    spines["reason"] = np.where(spines["r_demixed"] >= 0.95, "",
                                np.where(spines["edge_um"] < max_shift, "edge",
                                         np.where(spines["ceiling"] < 0.95, "noise", "other")))
    row = {"image": dim, "seed": seed, "photons": int(photons), "spines": len(truth.columns),
           "registration RMS µm": reg_rms, "max shift µm": max_shift, "s registration": t_reg}
    for name, values in r.items():
        row[name] = values
    row["s traces raw"], row["s traces demixed"] = timing["raw"], timing["demixed"]
    return row, spines.assign(image=dim, seed=seed, photons=int(photons), max_shift_um=max_shift)


def summarise(rows) -> pd.DataFrame:
    out = []
    keys = ["raw", "raw r=0.1", "demixed", "demixed PSF -20 %", "demixed PSF +20 %"]
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["image"], row["photons"]), []).append(row)
    for (dim, photons), group in groups.items():
        for key in keys:
            r = pd.concat([g[key] for g in group])
            out.append({"image": dim, "photons": photons, "seeds": " ".join(str(g["seed"]) for g in group),
                        "spines": len(r), "traces": key, "median r": r.median(),
                        "median per seed": " / ".join(f"{g[key].median():.3f}" for g in group),
                        "p10 r": r.quantile(0.1), "min r": r.min(), "fraction r >= 0.95": (r >= 0.95).mean()})
    return pd.DataFrame(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds2d", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--seeds3d", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--photons", type=float, nargs="+", default=[30.0, 150.0])
    parser.add_argument("--photons3d", type=float, nargs="+", default=[150.0])
    parser.add_argument("--out", type=Path, default=None, help="also write the tables (markdown) here")
    args = parser.parse_args(argv)
    rows, spines = [], []
    for dim, seeds, photons_list in (("2D", args.seeds2d, args.photons), ("3D", args.seeds3d, args.photons3d)):
        for photons in photons_list:
            for seed in seeds:
                row, per_spine = one_movie(dim, seed, photons)
                rows.append(row)
                spines.append(per_spine)
                print(f"{dim} seed {seed} photons {photons:g}: raw {row['raw'].median():.3f}, demixed "
                      f"{row['demixed'].median():.3f} (registration {row['s registration']:.1f} s, "
                      f"traces {row['s traces raw']:.1f} s raw, {row['s traces demixed']:.1f} s demixed)",
                      file=sys.stderr)
    summary = summarise(rows)
    movies = pd.DataFrame([{k: v for k, v in row.items() if not isinstance(v, pd.Series)} for row in rows])
    per_spine = pd.concat(spines)
    below = per_spine[per_spine["reason"] != ""]
    reasons = (below.groupby(["image", "photons", "reason"]).agg(
        spines=("r_demixed", "size"), median_r=("r_demixed", "median"), median_ceiling=("ceiling", "median"),
        median_pixels=("pixels", "median"), median_edge_um=("edge_um", "median")).reset_index())
    ok = per_spine[per_spine["edge_um"] >= per_spine["max_shift_um"]]
    inside = (ok.groupby(["image", "photons"]).apply(lambda g: pd.Series({
        "spines farther from the edge than the largest shift": len(g), "median r demixed": g["r_demixed"].median(),
        "fraction >= 0.95": (g["r_demixed"] >= 0.95).mean(),
        "fraction >= 0.95 where ceiling >= 0.95": (g.loc[g["ceiling"] >= 0.95, "r_demixed"] >= 0.95).mean(),
        "spines with ceiling >= 0.95": int((g["ceiling"] >= 0.95).sum())}), include_groups=False).reset_index())
    change = per_spine["r_demixed"] - per_spine["r_raw"]
    versus = (per_spine.assign(better=change > 0.05, worse=change < -0.05, much_worse=change < -0.1)
              .groupby(["image", "photons"])[["better", "worse", "much_worse"]].sum().reset_index()
              .rename(columns={"better": "demixed better by > 0.05", "worse": "demixed worse by > 0.05",
                               "much_worse": "demixed worse by > 0.1"}))
    text = ("## Pearson r per spine, recovered vs true ΔF/F0 (true ROIs, estimated motion)\n\n"
            + markdown(summary, digits=3)
            + "\n## Movies\n\n" + markdown(movies, digits=3)
            + "\n## Per spine: demixed against raw (ROI means)\n\n" + markdown(versus, digits=3)
            + "\n## Spines with demixed r < 0.95, by reason\n\n" + markdown(reasons, digits=3)
            + "\n## Spines away from the edge: demixed r against the noise ceiling\n\n" + markdown(inside, digits=3))
    print(text)
    if args.out:
        args.out.write_text(f"Command: `OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/traces.py "
                            f"{' '.join(sys.argv[1:])}`\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
