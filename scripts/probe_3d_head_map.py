"""Probe (sessions 42-43): does a head map learnt in 3D part the spine heads that the 2D
network, reading a few planes at a time, merges in stacks, and can it be fast enough?

Two-photon's missed heads mostly have another head within 0.6 µm in the plane and about 1.2 µm
away in z, inside the PSF (docs/real_data.md, "Networks averaged, stacks deconvolved along z,
and where the phantoms still err"). This trains a small 3D U-Net on the head-centre target
alone, from randomised phantoms (``train_default_models.randomised_phantom``: voxel size, SNR
and haze varied around the preset's, half of them with the realism features of
``spinequant.synth.REALISTIC``; seeds 2001-..., none of the benchmark's) brought to the 2D
network's grid (0.5 / 0.094 µm), then compares the peaks of its map with those of the installed
``lean2d_real`` head map on the benchmark's phantoms (seeds 1001-...): the same peak rule
(``head_peaks``, 0.4 µm), heads matched within 1 µm, the best F1 over head thresholds for each
map. A probe, not a model: nothing here is installed or used by ``analyze``.

Architectures (``--arch``): ``dynunet`` is session 42's (MONAI ``DynUNet``, 12-96 filters, full
resolution, 2.2 µs a voxel on 2 threads); ``fast`` folds ``--s2d`` x ``--s2d`` pixels of the
plane into channels first (space to depth) and unfolds them at the end, with a three-level
U-Net (``--filters``, batch norm) between: 0.075-0.37 µs a voxel. ``--norm pipeline`` feeds it
the networks' own normalisation, so that its weights could go through ``segment.neural``'s
tiling as they are.

    # session 43: randomised phantoms of every preset
    .venv/bin/python scripts/probe_3d_head_map.py train --s2d 4 --filters 24 48 96 --n-seeds 24 \
        --minutes 50 --cache /tmp/heads3d.npz --weights work/models/probe3d/s4_pipe24.pt
    .venv/bin/python scripts/probe_3d_head_map.py eval --weights work/models/probe3d/s4_pipe24.pt --seeds 1001-1006
    .venv/bin/python scripts/probe_3d_head_map.py sample --weights work/models/probe3d/s4_pipe24.pt
    # session 42's probe
    .venv/bin/python scripts/probe_3d_head_map.py train --arch dynunet --norm probe --phantoms preset \
        --presets two_photon low_snr --minutes 40
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the training recipe moved to train_heads3d.py when the network shipped (session 44)
from train_heads3d import GRID, PRESETS, on_grid, training_data  # noqa: E402
from train_heads3d import train as train_loop  # noqa: E402

OUT = Path("work/models/probe3d/weights.pt")
TILE = (32, 256, 256)


def network(spec: dict) -> nn.Module:
    if spec["arch"] == "fast":
        from spinequant.segment.neural.architectures import Heads3D

        return Heads3D(tuple(spec["filters"]), spec["s2d"])
    from monai.networks.nets import DynUNet

    return DynUNet(3, 1, 1, kernel_size=[[3, 3, 3]] * 4, strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                   upsample_kernel_size=[[1, 2, 2], [2, 2, 2], [2, 2, 2]], filters=[12, 24, 48, 96],
                   norm_name="instance", res_block=False)


def train(spec: dict, presets, n_seeds: int, minutes: float, seed: int, out: Path, steps: int | None,
          cache: Path | None) -> None:
    data = training_data(presets, n_seeds, cache, spec.get("norm", "probe"), spec.get("phantoms", "randomised"))
    print(f"{len(data)} phantoms on the {GRID} µm grid", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(dict(spec, presets=list(presets), n_seeds=n_seeds)))
    train_loop(network(spec), data, minutes=minutes, seed=seed, out=out, steps=steps,
               floor=-1.0 if spec.get("norm") == "pipeline" else 0.0)


def loaded(weights: Path):
    spec_file = weights.with_suffix(".json")
    spec = json.loads(spec_file.read_text()) if spec_file.exists() else {"arch": "dynunet"}
    net = network(spec)
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.norm = spec.get("norm", "probe")
    return net.eval()


def head_map_3d(net, image: np.ndarray, spacing) -> np.ndarray:
    """The head map on the grid (``GRID``)."""
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(on_grid(image, spacing, net.norm))[None, None]
    with torch.inference_mode():
        # stacks smaller than a tile are padded with the normalisation's floor (background)
        out = sliding_window_inference(x, TILE, 1, lambda t: torch.sigmoid(net(t)), overlap=0.125, mode="gaussian",
                                       cval=-1.0 if net.norm == "pipeline" else 0.0)
    return out[0, 0].numpy()


THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def evaluate(presets, seeds, weights: Path) -> None:
    from spinequant.evaluate.points import match_points
    from spinequant.instances.heads import head_peaks
    from spinequant.segment import segment_maps
    from spinequant.segment.neural.resample import to_input_grid
    from spinequant.synth import make_phantom

    net = loaded(weights)
    for preset in presets:
        names = ("lean2d_real head map", "3D", "mean of the two")
        counts = {k: np.zeros((len(THRESHOLDS), 3)) for k in names}
        seconds = {k: 0.0 for k in counts}
        for seed in seeds:
            ph = make_phantom(preset, seed=seed)
            truth = ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float)
            t = time.time()
            maps = {"lean2d_real head map": (segment_maps(ph.image, spacing=ph.spacing, method="lean2d_real")
                                             .heads.astype(np.float32), ph.spacing)}
            seconds["lean2d_real head map"] += time.time() - t
            t = time.time()
            maps["3D"] = (head_map_3d(net, ph.image, ph.spacing), GRID)
            seconds["3D"] += time.time() - t
            back = to_input_grid(maps["3D"][0], ph.image.shape)
            maps["mean of the two"] = (0.5 * (back + maps["lean2d_real head map"][0]), ph.spacing)
            seconds["mean of the two"] = seconds["3D"] + seconds["lean2d_real head map"]
            for name, (heat, spacing) in maps.items():
                for i, th in enumerate(THRESHOLDS):
                    peaks, _ = head_peaks(heat, spacing, threshold=th, min_distance_um=0.4)
                    r = match_points(peaks * np.asarray(spacing), truth, max_distance_um=1.0)
                    counts[name][i] += (r["tp"], r["fp"], r["fn"])
        print(f"\n{preset}, seeds {seeds[0]}-{seeds[-1]}: best F1 over head thresholds")
        print("| head map | F1 | P | R | at | s a phantom | F1 by threshold |\n|---|---|---|---|---|---|---|")
        for name, c in counts.items():
            tp, fp, fn = c.T
            f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
            i = int(np.argmax(f1))
            print(f"| {name} | {f1[i]:.3f} | {tp[i] / max(tp[i] + fp[i], 1):.3f} | {tp[i] / max(tp[i] + fn[i], 1):.3f} | "
                  f"{THRESHOLDS[i]} | {seconds[name] / len(seeds):.2f} | " + " ".join(f"{v:.3f}" for v in f1) + " |",
                  flush=True)


def sample(thresholds, weights: Path) -> None:
    """The probe's peaks on the shipped real stack against the spines ``analyze`` keeps."""
    from spinequant.data import sample_path
    from spinequant.instances.heads import head_peaks
    from spinequant.io import read_stack
    from spinequant.pipeline.analyze import AnalyzeConfig, analyze

    stack = read_stack(sample_path())
    image, spacing = np.asarray(stack.data), np.asarray(stack.spacing, float)
    res = analyze(image, spacing=tuple(spacing), config=AnalyzeConfig(method="lean2d_real", report=False),
                  keep_maps=False)
    kept = res.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float)
    heat = head_map_3d(loaded(weights), image, spacing)
    print(f"sample stack: analyze keeps {len(kept)} spines")
    for t in thresholds:
        peaks, _ = head_peaks(heat, GRID, threshold=t, min_distance_um=0.4)
        at = peaks * np.asarray(GRID)
        # within 1 µm in the plane and 2 µm in z
        d = np.sqrt((((at[:, None] - kept[None]) / [2.0, 1.0, 1.0]) ** 2).sum(-1))
        print(f"3D map at {t}: {len(at)} peaks; kept spines with a peak near: {int((d.min(0) <= 1).sum())}; "
              f"peaks near no kept spine: {int((d.min(1) > 1).sum())}")
        for j in np.flatnonzero(d.min(1) > 1):
            print(f"   new peak at z/y/x {at[j].round(2)} µm")


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--arch", choices=("fast", "dynunet"), default="fast")
    t.add_argument("--filters", type=int, nargs=3, default=[24, 48, 96])
    t.add_argument("--s2d", type=int, default=4)
    t.add_argument("--norm", choices=("probe", "pipeline"), default="pipeline")
    t.add_argument("--phantoms", choices=("randomised", "preset"), default="randomised")
    t.add_argument("--presets", nargs="+", default=list(PRESETS))
    t.add_argument("--n-seeds", type=int, default=12, help="phantoms a preset")
    t.add_argument("--minutes", type=float, default=40.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="stop after this many steps (or --minutes)")
    t.add_argument("--cache", type=Path, default=None, help="keep the training phantoms in this .npz")
    e = sub.add_parser("eval")
    e.add_argument("--presets", nargs="+", default=list(PRESETS))
    e.add_argument("--seeds", default="1001-1006")
    s = sub.add_parser("sample")
    s.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.7, 0.5])
    for p in (t, e, s):
        p.add_argument("--weights", type=Path, default=OUT, help="the probe's weights (default %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.command == "train":
        spec = {"arch": args.arch, "filters": args.filters, "s2d": args.s2d, "norm": args.norm,
                "phantoms": args.phantoms}
        train(spec, args.presets, args.n_seeds, args.minutes, args.seed, args.weights, args.steps, args.cache)
    elif args.command == "eval":
        evaluate(args.presets, seed_range(args.seeds), args.weights)
    else:
        sample(args.thresholds, args.weights)


if __name__ == "__main__":
    main()
