"""Accuracy, speed and memory of the classical cell segmentation (Voronoi-Otsu in µm) on the
cell phantom presets.

Each preset runs in a fresh process (so its peak memory is its own), OMP_NUM_THREADS=1, on
seeds 100.. (the defaults were chosen on seeds 0-1; tests use 2, 3 and 7). Per phantom:
foreground Dice, instance F1 at IoU 0.5 and mean F1 over IoU 0.1-0.9, point F1 of the
centroids within 5 µm, counts, the median volume ratio of matched cells (found / true), time
of analyze_cells (segment + measure) per Mvoxel, the peak of numpy allocations during it
(tracemalloc) and the process's peak RSS. Also: both split rules, and the light-sheet preset
at lower and higher SNR and with twice its fall-off of the light along x, and with the
illumination flattened (flatten_sigma_um), and sampled at the voxel size of CellSeg3D's mesoSPIM
data (5 µm in z, 5.26 µm in y and x). Writes benchmarks/results/cells.md and cells.csv.

With ``--networks DIR`` it compares the foreground methods instead, on the light-sheet
preset: classical (Otsu) and every trained cell network in DIR (sub-folders ``segresnet``,
``swinunetr``, ``wnet3d`` written by scripts/train_cells.py, trained on seeds 10-14), each
followed by the same seeded split; results in cells_networks.md / .csv. The time includes the
network's sliding-window inference on the CPU (one thread).

With ``--wnet-settings`` it compares WNet3D's loss settings instead (the choices in
``CellTrainConfig``'s docstring): a plain 150-step training loop per setting (4-filter depth-2
WNet3D, 2 random 16 x 32 x 32 crops per step of the nuclei_lightsheet phantoms seeds 10-13, no
augmentation, one thread) and, every 50 steps, the Dice of Otsu's cut of the cell class on all
of seed 14, the mean class probability inside and outside the true cells and the foreground
volume found / true; results in cells_wnet_settings.md.

Usage:  python benchmarks/cells.py [--seeds 3] [--networks DIR] [--wnet-settings]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from _table import markdown

RESULTS = Path(__file__).parent / "results"
#: (label, preset, phantom overrides, CellConfig overrides)
CASES = [
    ("nuclei_confocal", "nuclei_confocal", {}, {}),
    ("nuclei_lightsheet", "nuclei_lightsheet", {}, {}),
    ("nuclei_confocal, split=intensity", "nuclei_confocal", {}, {"split": "intensity"}),
    ("nuclei_lightsheet, split=intensity", "nuclei_lightsheet", {}, {"split": "intensity"}),
    ("nuclei_lightsheet, SNR 4", "nuclei_lightsheet", {"snr": 4.0}, {}),
    ("nuclei_lightsheet, SNR 16", "nuclei_lightsheet", {"snr": 16.0}, {}),
    ("nuclei_lightsheet, fall-off 0.7", "nuclei_lightsheet", {"illumination_falloff": 0.7}, {}),
    ("nuclei_lightsheet, fall-off 0.7, flatten 30 µm", "nuclei_lightsheet", {"illumination_falloff": 0.7},
     {"flatten_sigma_um": 30.0}),
    ("nuclei_lightsheet, flatten 30 µm", "nuclei_lightsheet", {}, {"flatten_sigma_um": 30.0}),
    ("nuclei_confocal, flatten 30 µm", "nuclei_confocal", {}, {"flatten_sigma_um": 30.0}),
    ("nuclei_lightsheet at CellSeg3D's voxel", "nuclei_lightsheet", {"spacing": (5.0, 5.26, 5.26),
                                                                    "shape": (32, 64, 64)}, {}),
    ("nuclei_lightsheet, 80x256x256", "nuclei_lightsheet", {"shape": (80, 256, 256)}, {}),
]


NETWORKS = ("segresnet", "swinunetr", "wnet3d")


def network_cases(folder) -> list:
    """Classical and each trained network of ``folder`` on the light-sheet preset."""
    cases = [("classical", "nuclei_lightsheet", {}, {})]
    for name in NETWORKS:
        if (Path(folder) / name / "model.json").exists():
            cases.append((name, "nuclei_lightsheet", {}, {"method": str(Path(folder).resolve() / name)}))
    return cases


def matched_volume_ratio(pred, truth) -> float:
    """Median found / true voxel count over predicted cells whose voxels are mostly one true cell."""
    ratios = []
    t_counts = np.bincount(truth.ravel())
    for i, box in enumerate(ndi.find_objects(pred), start=1):
        if box is None:
            continue
        mine = pred[box] == i
        overlap = np.bincount(truth[box][mine])
        overlap[0] = 0
        t = int(overlap.argmax())
        if t and overlap[t] > 0.5 * mine.sum():
            ratios.append(mine.sum() / t_counts[t])
    return float(np.median(ratios)) if ratios else float("nan")


def one_case(index: int, n_seeds: int, cases=CASES) -> list[dict]:
    """Runs in the child process."""
    import time
    import tracemalloc

    from spinequant.cells import CellConfig, analyze_cells
    from spinequant.evaluate import match_instances
    from spinequant.evaluate.cells import score_cells
    from spinequant.pipeline.runinfo import peak_memory_mb
    from spinequant.synth.cells import make_cell_phantom

    label, preset, ph_over, cfg_over = cases[index]
    config = CellConfig(**cfg_over)
    rows = []
    for seed in range(100, 100 + n_seeds):
        ph = make_cell_phantom(preset, seed=seed, **ph_over)
        tracemalloc.start()
        t = time.perf_counter()
        result = analyze_cells(ph.image, spacing=ph.spacing, config=config)
        seconds = time.perf_counter() - t
        traced = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        s = score_cells(result.labels, ph.labels, spacing=ph.spacing)
        matched = set(match_instances(result.labels, ph.labels, iou_threshold=0.5)["pairs"]["true_id"])
        touching = ph.cells.loc[ph.cells["cluster"] > 0, "id"]
        rows.append({"case": label, "seed": seed, "shape": "x".join(map(str, ph.image.shape)),
                     "voxel_um": "/".join(f"{v:g}" for v in ph.spacing), "n_true": len(ph.cells),
                     "n_touching": int((ph.cells["cluster"] > 0).sum()), "n_found": len(result.cells),
                     "dice": s["dice"], "f1_iou50": s["instances"]["f1"], "f1_mean_iou10_90": float(s["curve"]["f1"].mean()),
                     "point_f1": s["points"]["f1"],
                     "touching_recall": float(touching.isin(matched).mean()) if len(touching) else float("nan"),
                     "volume_ratio": matched_volume_ratio(result.labels, ph.labels),
                     "s_per_Mvoxel": seconds / (ph.image.size / 1e6), "traced_peak_MB": traced,
                     "process_peak_MB": peak_memory_mb()})
    return rows


#: (label, CellTrainConfig overrides) of --wnet-settings
WNET_SETTINGS = [
    ("chosen: sigma_I 5, rec 5e-4, lr 1e-2", {}),
    ("paper's rec weight and lr: rec 5e-3, lr 1e-3", {"reconstruction_weight": 5e-3, "learning_rate": 1e-3}),
    ("sigma_I 10", {"ncut_sigma_intensity": 10.0}),
    ("sigma_I 20", {"ncut_sigma_intensity": 20.0}),
]


def wnet_settings(steps: int = 150, every: int = 50) -> pd.DataFrame:
    import time

    import torch
    from skimage.filters import threshold_otsu

    from spinequant.cells.networks import build_cell_network
    from spinequant.cells.train import CellTrainConfig, wnet_losses
    from spinequant.cells.wnet3d import foreground_class, intensity_0_100
    from spinequant.segment.neural.normalise import NormaliseConfig, normalise
    from spinequant.synth.cells import make_cell_phantom

    torch.set_num_threads(1)
    norm = dataclasses.asdict(NormaliseConfig())
    volumes = [normalise(make_cell_phantom("nuclei_lightsheet", seed=s).image, norm).astype(np.float32)
               for s in (10, 11, 12, 13)]
    val = make_cell_phantom("nuclei_lightsheet", seed=14)
    val_x = torch.from_numpy(normalise(val.image, norm).astype(np.float32))[None, None]
    truth = val.labels > 0
    rows = []
    for label, overrides in WNET_SETTINGS:
        config = CellTrainConfig(architecture="wnet3d", **{"learning_rate": 1e-2, **overrides})
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        net = build_cell_network("wnet3d")
        opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
        started = time.perf_counter()
        for step in range(steps + 1):
            if step % every == 0:
                net.eval()
                with torch.inference_mode():
                    probs = torch.softmax(net(val_x), dim=1)
                    prob = probs[0, foreground_class(probs, intensity_0_100(val_x))].numpy()
                net.train()
                mask = prob > threshold_otsu(prob)
                dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
                rows.append({"setting": label, "step": step, "dice": dice,
                             "p_cells": float(prob[truth].mean()), "p_background": float(prob[~truth].mean()),
                             "volume_found_per_true": float(mask.sum() / truth.sum()),
                             "minutes": (time.perf_counter() - started) / 60})
                print(rows[-1], flush=True)
            crops = []
            for _ in range(2):
                v = volumes[int(rng.integers(len(volumes)))]
                z, y, x = (int(rng.integers(n - k + 1)) for n, k in zip(v.shape, (16, 32, 32)))
                crops.append(v[z:z + 16, y:y + 32, x:x + 32])
            loss = wnet_losses(net, torch.from_numpy(np.stack(crops)[:, None].copy()), config)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--networks", default=None, metavar="DIR",
                        help="compare classical with the trained cell networks in DIR")
    parser.add_argument("--name", default=None, help="results file stem (default cells or cells_networks)")
    parser.add_argument("--wnet-settings", action="store_true", help="compare WNet3D's loss settings")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.wnet_settings:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        table = wnet_settings()
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "cells_wnet_settings.md").write_text(
            f"# WNet3D loss settings\n\n`python benchmarks/cells.py --wnet-settings`, {date.today()}, "
            f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, one thread. Each setting trains "
            f"a 4-filter depth-2 WNet3D for 150 steps (2 crops of 16 x 32 x 32 voxels of nuclei_lightsheet "
            f"seeds 10-13, no labels, no augmentation, torch seed 0; learning rate 1e-2 unless stated); "
            f"columns on all of seed 14: dice of Otsu's cut of the cell class, its mean probability in "
            f"and outside the true cells, foreground volume found / true.\n\n" + markdown(table, digits=3))
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        return
    cases = network_cases(args.networks) if args.networks else CASES
    if args.child is not None:
        print(json.dumps(one_case(args.child, args.seeds, cases)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    rows = []
    for i, (label, *_) in enumerate(cases):
        seeds = 1 if "256x256" in label else args.seeds
        extra = ["--networks", args.networks] if args.networks else []
        out = subprocess.run([sys.executable, __file__, "--child", str(i), "--seeds", str(seeds), *extra],
                             capture_output=True, text=True, env=env, check=True)
        rows += json.loads(out.stdout.strip().splitlines()[-1])
        print(label, "done", flush=True)
    per_seed = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    stem = args.name or ("cells_networks" if args.networks else "cells")
    per_seed.to_csv(RESULTS / f"{stem}.csv", index=False)
    numbers = ["n_true", "n_touching", "n_found", "dice", "f1_iou50", "f1_mean_iou10_90", "point_f1",
               "touching_recall", "volume_ratio", "s_per_Mvoxel", "traced_peak_MB", "process_peak_MB"]
    table = per_seed.groupby(["case", "shape", "voxel_um"], sort=False)[numbers].mean().reset_index()
    table.insert(3, "phantoms", per_seed.groupby(["case"], sort=False).size().to_numpy())
    header = (f"# Cell segmentation on phantoms\n\n`python benchmarks/cells.py --seeds {args.seeds}`, {date.today()}, "
              f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs, OMP_NUM_THREADS=1. "
              f"Voronoi-Otsu labelling with the default CellConfig (spot sigma 2 µm, outline sigma 0.5 µm, "
              f"min volume 30 µm³) unless the case says otherwise; phantom seeds 100-{99 + args.seeds} "
              f"(one for the large volume). Means over the phantoms; per phantom in cells.csv. dice: foreground; "
              f"f1_iou50: instances matched one-to-one at IoU >= 0.5; f1_mean_iou10_90: mean F1 over IoU "
              f"0.1-0.9; point_f1: centroids within 5 µm; touching_recall: fraction of the true cells that "
              f"touch another one found as their own object (IoU >= 0.5); volume_ratio: median found/true volume of matched "
              f"cells; s_per_Mvoxel: analyze_cells (segment + measure); traced_peak_MB: peak numpy "
              f"allocations during it; process_peak_MB: peak RSS of the process (phantom included).\n\n"
              f"Reference only (other data, not comparable): CellSeg3D reports Dice 0.83 for SwinUNetR on its "
              f"mesoSPIM test volumes (Achard et al. 2024).\n\n")
    if args.networks:
        command = f"python benchmarks/cells.py --seeds {args.seeds} --networks {args.networks}" + (
            f" --name {args.name}" if args.name else "")
        header = (f"# Cell foreground methods on phantoms\n\n`{command}`, {date.today()}, {platform.machine()}, "
                  f"{os.cpu_count()} cores shared "
                  f"with other jobs, OMP_NUM_THREADS=1. nuclei_lightsheet phantoms seeds 100-{99 + args.seeds}; "
                  f"networks trained by scripts/train_cells.py on seeds 10-13 (validation 14), SegResNet and "
                  f"SwinUNETR with labels, WNet3D without. Every method's foreground is split by the same seeds "
                  f"(default CellConfig). Columns as in cells.md; s_per_Mvoxel includes the network's "
                  f"sliding-window inference.\n\n")
    (RESULTS / f"{stem}.md").write_text(header + markdown(table, digits=3))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
