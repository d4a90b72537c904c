"""Probe (session 42): does a head map learnt in 3D part the spine heads that the 2D network,
reading one plane at a time, merges in stacks?

Two-photon's missed heads mostly have another head within 0.6 µm in the plane and about 1.2 µm
away in z, inside the PSF (docs/real_data.md, "Networks averaged, stacks deconvolved along z,
and where the phantoms still err"). This trains a small 3D U-Net (MONAI ``DynUNet``, 12-96
filters, pooling in y/x first and then in z too) on the head-centre target alone, from
phantoms of the two-photon and low-SNR presets (seeds 2001-2012, none of the benchmark's),
then compares the peaks of its map with those of the installed ``lean2d_real`` head map on the
benchmark's phantoms (seeds 1001-...): the same peak rule (``head_peaks``, 0.4 µm), heads
matched within 1 µm, the best F1 over head thresholds for each map. A probe, not a model:
nothing here is installed or used by ``analyze``.

    .venv/bin/python scripts/probe_3d_head_map.py train --minutes 40            # ~2,300 steps on 2 threads
    .venv/bin/python scripts/probe_3d_head_map.py eval --presets two_photon low_snr --seeds 1001-1006
    .venv/bin/python scripts/probe_3d_head_map.py sample --thresholds 0.9 0.7 0.5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

OUT = Path("work/models/probe3d/weights.pt")
PATCH = (16, 128, 128)
TRAIN_PRESETS = ("two_photon", "low_snr")
SIGMA_UM = (0.75, 0.25, 0.25)


def network():
    from monai.networks.nets import DynUNet

    return DynUNet(3, 1, 1, kernel_size=[[3, 3, 3]] * 4, strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                   upsample_kernel_size=[[1, 2, 2], [2, 2, 2], [2, 2, 2]], filters=[12, 24, 48, 96],
                   norm_name="instance", res_block=False)


def normalised(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, (1, 99.8))
    return ((image - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def training_sample(preset: str, seed: int):
    from spinequant.segment.neural.data import head_heatmap
    from spinequant.synth import make_phantom

    ph = make_phantom(preset, seed=seed)
    heads = ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float) / np.asarray(ph.spacing, float)
    return normalised(ph.image), head_heatmap(ph.image.shape, heads, ph.spacing, sigma_um=SIGMA_UM), heads


def patch(rng, image, heat, heads):
    """A patch around a random head (70 %) or anywhere, turned, mirrored and scaled in brightness."""
    (pz, py, px), shape = PATCH, image.shape
    if rng.random() < 0.7 and len(heads):
        c = heads[rng.integers(len(heads))] + [rng.integers(-4, 5), rng.integers(-40, 41), rng.integers(-40, 41)]
        start = [int(np.clip(c[i] - PATCH[i] / 2, 0, shape[i] - PATCH[i])) for i in range(3)]
    else:
        start = [int(rng.integers(0, shape[i] - PATCH[i] + 1)) for i in range(3)]
    box = tuple(slice(s, s + n) for s, n in zip(start, (pz, py, px)))
    a, b = image[box], heat[box]
    k = int(rng.integers(4))
    a, b = np.rot90(a, k, (1, 2)), np.rot90(b, k, (1, 2))
    if rng.random() < 0.5:
        a, b = a[:, :, ::-1], b[:, :, ::-1]
    if rng.random() < 0.5:
        a, b = a[::-1], b[::-1]
    return (a * rng.uniform(0.8, 1.25)).astype(np.float32), b.astype(np.float32)


def train(minutes: float, seed: int = 0, out: Path = OUT, steps: int | None = None) -> None:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = [training_sample(p, s) for p in TRAIN_PRESETS for s in range(2001, 2013)]
    net = network()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0, step = time.time(), 0
    while time.time() - t0 < minutes * 60 and (steps is None or step < steps):
        pairs = [patch(rng, *data[rng.integers(len(data))]) for _ in range(2)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
        y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
        logits = net(x)
        prob = torch.sigmoid(logits)
        dice = 1 - (2 * (prob * y).sum() + 1) / (prob.sum() + y.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logits, y) + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step} {time.time() - t0:.0f} s loss {loss.item():.4f}", flush=True)
            torch.save(net.state_dict(), out)
    torch.save(net.state_dict(), out)
    print(f"{step} steps; weights in {out}", flush=True)


def head_map_3d(net, image: np.ndarray) -> np.ndarray:
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(normalised(image))[None, None]
    with torch.inference_mode():
        out = sliding_window_inference(x, PATCH, 2, lambda t: torch.sigmoid(net(t)), overlap=0.25, mode="gaussian")
    return out[0, 0].numpy()


def loaded(weights: Path = OUT):
    net = network()
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def evaluate(presets, seeds, weights: Path = OUT) -> None:
    from spinequant.evaluate.points import match_points
    from spinequant.instances.heads import head_peaks
    from spinequant.segment import segment_maps
    from spinequant.synth import make_phantom

    net = loaded(weights)
    for preset in presets:
        counts = {k: np.zeros((len(THRESHOLDS), 3)) for k in ("lean2d_real head map", "3D probe")}
        for seed in seeds:
            ph = make_phantom(preset, seed=seed)
            truth = ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float)
            maps = {"lean2d_real head map": segment_maps(ph.image, spacing=ph.spacing,
                                                         method="lean2d_real").heads.astype(np.float32),
                    "3D probe": head_map_3d(net, ph.image)}
            for name, heat in maps.items():
                for i, t in enumerate(THRESHOLDS):
                    peaks, _ = head_peaks(heat, ph.spacing, threshold=t, min_distance_um=0.4)
                    r = match_points(peaks * np.asarray(ph.spacing), truth, max_distance_um=1.0)
                    counts[name][i] += (r["tp"], r["fp"], r["fn"])
        print(f"\n{preset}, seeds {seeds[0]}-{seeds[-1]}: best F1 over head thresholds")
        print("| head map | F1 | P | R | at | F1 by threshold |\n|---|---|---|---|---|---|")
        for name, c in counts.items():
            tp, fp, fn = c.T
            f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
            i = int(np.argmax(f1))
            print(f"| {name} | {f1[i]:.3f} | {tp[i] / max(tp[i] + fp[i], 1):.3f} | {tp[i] / max(tp[i] + fn[i], 1):.3f} | "
                  f"{THRESHOLDS[i]} | " + " ".join(f"{v:.3f}" for v in f1) + " |", flush=True)


def sample(thresholds, weights: Path = OUT) -> None:
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
    heat = head_map_3d(loaded(weights), image)
    print(f"sample stack: analyze keeps {len(kept)} spines")
    for t in thresholds:
        peaks, _ = head_peaks(heat, spacing, threshold=t, min_distance_um=0.4)
        at = peaks * spacing
        # within 1 µm in the plane and 2 µm in z
        d = np.sqrt((((at[:, None] - kept[None]) / [2.0, 1.0, 1.0]) ** 2).sum(-1))
        print(f"probe at {t}: {len(at)} peaks; kept spines with a peak near: {int((d.min(0) <= 1).sum())}; "
              f"peaks near no kept spine: {int((d.min(1) > 1).sum())}")


def seed_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--minutes", type=float, default=40.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="stop after this many steps (or --minutes)")
    e = sub.add_parser("eval")
    e.add_argument("--presets", nargs="+", default=list(TRAIN_PRESETS))
    e.add_argument("--seeds", default="1001-1006")
    s = sub.add_parser("sample")
    s.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.7, 0.5])
    for p in (t, e, s):
        p.add_argument("--weights", type=Path, default=OUT, help="the probe's weights (default %(default)s)")
    args = ap.parse_args()
    if args.command == "train":
        train(args.minutes, args.seed, args.weights, args.steps)
    elif args.command == "eval":
        evaluate(args.presets, seed_range(args.seeds), args.weights)
    else:
        sample(args.thresholds, args.weights)


if __name__ == "__main__":
    main()
