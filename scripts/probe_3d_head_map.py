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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_models import randomised_phantom  # noqa: E402

from spinequant.synth import REALISTIC  # noqa: E402

OUT = Path("work/models/probe3d/weights.pt")
GRID = (0.5, 0.094, 0.094)
PATCH = (16, 128, 128)
TILE = (32, 256, 256)
PRESETS = ("two_photon", "confocal", "sted", "low_snr")
SIGMA_UM = (0.75, 0.25, 0.25)
#: fields (voxels at the preset's voxel size) large enough for a patch on the grid once resampled
FIELDS = {"two_photon": (32, 256, 256), "low_snr": (32, 256, 256), "confocal": (48, 256, 256),
          "sted": (64, 512, 512)}


def _cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class FastHeads3D(nn.Module):
    """Space to depth in the plane (s x s pixels into channels), a U-Net pooling (1, 2, 2) then
    (2, 2, 2), and depth to space back to the input's pixels: one logit a voxel."""

    def __init__(self, filters=(24, 48, 96), s2d: int = 4):
        super().__init__()
        f0, f1, f2 = filters
        self.s = s2d
        self.e0 = nn.Sequential(_cbr(s2d * s2d, f0), _cbr(f0, f0))
        self.e1 = nn.Sequential(_cbr(f0, f1), _cbr(f1, f1))
        self.e2 = nn.Sequential(_cbr(f1, f2), _cbr(f2, f2))
        self.up2 = nn.ConvTranspose3d(f2, f1, 2, stride=2)
        self.d1 = _cbr(f1, f1)
        self.up1 = nn.ConvTranspose3d(f1, f0, (1, 2, 2), stride=(1, 2, 2))
        self.d0 = _cbr(f0, f0)
        self.out = nn.Conv3d(f0, s2d * s2d, 1)

    def forward(self, x):
        b, _, z, y, w = x.shape
        s = self.s
        x = x.reshape(b, z, y // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).reshape(b, s * s, z, y // s, w // s)
        a = self.e0(x)
        m = self.e1(F.max_pool3d(a, (1, 2, 2)))
        m = self.d1(self.up2(self.e2(F.max_pool3d(m, 2))) + m)
        a = self.d0(self.up1(m) + a)
        o = self.out(a).reshape(b, s, s, z, y // s, w // s)
        return o.permute(0, 3, 4, 1, 5, 2).reshape(b, 1, z, y, w)


def network(spec: dict) -> nn.Module:
    if spec["arch"] == "fast":
        return FastHeads3D(tuple(spec["filters"]), spec["s2d"])
    from monai.networks.nets import DynUNet

    return DynUNet(3, 1, 1, kernel_size=[[3, 3, 3]] * 4, strides=[[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
                   upsample_kernel_size=[[1, 2, 2], [2, 2, 2], [2, 2, 2]], filters=[12, 24, 48, 96],
                   norm_name="instance", res_block=False)


def normalised(image: np.ndarray, norm: str = "probe") -> np.ndarray:
    """``probe`` (session 42): percentiles 1 and 99.8 to 0 and 1; ``pipeline``: the networks'
    own normalisation (``NormaliseConfig()``: percentiles 1 and 99.9 to -1 and 1, clipped at 3)."""
    if norm == "pipeline":
        from spinequant.segment.neural.normalise import NormaliseConfig, normalise

        return normalise(image, NormaliseConfig())
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, (1, 99.8))
    return ((image - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def on_grid(image: np.ndarray, spacing, norm: str = "probe") -> np.ndarray:
    from spinequant.segment.neural.resample import to_model_grid

    return to_model_grid(normalised(image, norm), spacing, GRID)


def training_sample(preset: str, seed: int, norm: str, phantoms: str):
    """``phantoms``: ``randomised`` (session 43) or ``preset``, the preset's own (session 42)."""
    from spinequant.segment.neural.data import head_heatmap
    from spinequant.synth import make_phantom

    if phantoms == "preset":
        ph = make_phantom(preset, seed=seed)
        image, spacing = np.asarray(ph.image), np.asarray(ph.spacing, float)
        heads = ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float) / spacing
    else:
        s = randomised_phantom(preset, seed, dict(REALISTIC) if seed % 2 else None, base_shape=FIELDS[preset])
        image, spacing, heads = s.image, np.asarray(s.spacing, float), s.heads
    image = on_grid(image, spacing, norm)
    heads = heads * spacing / np.asarray(GRID)
    return image, head_heatmap(image.shape, heads, GRID, sigma_um=SIGMA_UM).astype(np.float32), heads


def patch(rng, image, heat, heads, floor: float = 0.0):
    """A patch around a random head (70 %) or anywhere, turned, mirrored and scaled in brightness."""
    shape = image.shape
    if rng.random() < 0.7 and len(heads):
        c = heads[rng.integers(len(heads))] + [rng.integers(-4, 5), rng.integers(-40, 41), rng.integers(-40, 41)]
        start = [int(np.clip(c[i] - PATCH[i] / 2, 0, shape[i] - PATCH[i])) for i in range(3)]
    else:
        start = [int(rng.integers(0, shape[i] - PATCH[i] + 1)) for i in range(3)]
    box = tuple(slice(s, s + n) for s, n in zip(start, PATCH))
    a, b = image[box], heat[box]
    k = int(rng.integers(4))
    a, b = np.rot90(a, k, (1, 2)), np.rot90(b, k, (1, 2))
    if rng.random() < 0.5:
        a, b = a[:, :, ::-1], b[:, :, ::-1]
    if rng.random() < 0.5:
        a, b = a[::-1], b[::-1]
    # brightness scaled above the normalisation's floor (0 or -1)
    return ((a - floor) * rng.uniform(0.8, 1.25) + floor).astype(np.float32), b.astype(np.float32)


def training_data(presets, n_seeds: int, cache: Path | None, norm: str, phantoms: str):
    if cache is not None and cache.exists():
        z = np.load(cache)
        return [(z[f"i{k}"], z[f"h{k}"], z[f"p{k}"]) for k in range(len(z.files) // 3)]
    data = [training_sample(p, s, norm, phantoms) for p in presets for s in range(2001, 2001 + n_seeds)]
    if cache is not None:
        np.savez(cache, **{f"{n}{k}": a for k, d in enumerate(data) for n, a in zip("ihp", d)})
    return data


def train(spec: dict, presets, n_seeds: int, minutes: float, seed: int, out: Path, steps: int | None,
          cache: Path | None) -> None:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = training_data(presets, n_seeds, cache, spec.get("norm", "probe"), spec.get("phantoms", "randomised"))
    print(f"{len(data)} phantoms on the {GRID} µm grid", flush=True)
    net = network(spec)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(dict(spec, presets=list(presets), n_seeds=n_seeds)))
    t0, step, lowered = time.time(), 0, False
    while time.time() - t0 < minutes * 60 and (steps is None or step < steps):
        if not lowered and time.time() - t0 > 0.75 * minutes * 60:
            for g in opt.param_groups:
                g["lr"] = 1e-4
            lowered = True
        floor = -1.0 if spec.get("norm") == "pipeline" else 0.0
        pairs = [patch(rng, *data[rng.integers(len(data))], floor=floor) for _ in range(2)]
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
