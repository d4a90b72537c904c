"""Train and install the 3D head network (``heads3d_real``) that joins lean2d_real on stacks.

The network (``segment.neural.architectures.Heads3D``: 4 x 4 pixels of the plane folded into
channels, a three-level 3D U-Net of 24-48-96 filters, the logits unfolded back) learns the
head-centre map alone (a Gaussian of 0.75 / 0.25 / 0.25 µm around every head; binary cross
entropy plus soft Dice), from randomised phantoms of every preset
(``train_default_models.randomised_phantom``: voxel size, SNR and haze varied around the
preset's; odd seeds with ``spinequant.synth.REALISTIC``'s varicosities, faint necks and shaft
texture; seeds 2001-..., none of the benchmarks') brought to lean2d_real's grid (0.5 / 0.094 /
0.094 µm) and normalised as it is (``NormaliseConfig()``). Patches of 16 x 128 x 128 voxels,
70 % around a head, turned, mirrored, brightness scaled; Adam 1e-3, 1e-4 for the last quarter
of the time; two patches a step, one thread.

    # session 44 (network C of session 43): 24 phantoms a preset, 50 minutes on one thread
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_heads3d.py train --n-seeds 24 --minutes 50 \\
        --cache /tmp/heads3d.npz --weights work/models/heads3d.pt
    # safetensors + card + ONNX in src/spinequant/models/, named in lean2d_real's card (stack_heads)
    .venv/bin/python scripts/train_heads3d.py install --weights work/models/heads3d.pt

    # session 47: heads3d_fine_real, lean2d_real's partner for stacks with z steps of at most 0.375 µm
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_heads3d.py train --n-seeds 16 --minutes 45 \\
        --grid-z 0.25 --patch-depth 24 --cache /tmp/fine_all.npz --weights work/models/heads3d_fine_all.pt
    .venv/bin/python scripts/train_heads3d.py install --weights work/models/heads3d_fine_all.pt \\
        --name heads3d_fine_real --max-z-step 0.375

    # session 48 (measured, not installed): either partner fine-tuned from its installed weights
    # toward the presets it serves (--preset-share in --presets' order, two_photon confocal sted low_snr)
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_heads3d.py train --n-seeds 16 --minutes 30 \
        --grid-z 0.25 --patch-depth 24 --init heads3d_fine_real --lr 3e-4 \
        --preset-share 0.15 0.35 0.35 0.15 --weights work/models/heads3d_fine_ft.pt
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_heads3d.py train --n-seeds 24 --minutes 30 \
        --init heads3d_real --lr 3e-4 --preset-share 0.35 0.15 0.15 0.35 --weights work/models/heads3d_coarse_ft.pt

    # session 52 (measured, not installed): the fine partner fine-tuned with a narrower head target
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_heads3d.py train --n-seeds 16 --minutes 40 \
        --grid-z 0.25 --patch-depth 24 --init heads3d_fine_real --lr 3e-4 --sigma 0.5 0.15 0.15 \
        --weights work/models/heads3d_fine_narrow.pt

``install`` converts the checkpoint (a PyTorch state dict, read with ``weights_only``) into the
package's format and records the training in the card; ``scripts/probe_3d_head_map.py`` compares
its map with the 2D network's (``eval``, ``sample``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_models import randomised_phantom  # noqa: E402

from spinequant.synth import REALISTIC  # noqa: E402

NAME = "heads3d_real"
PARTNER = "lean2d_real"
WEIGHT = 0.5
GRID = (0.5, 0.094, 0.094)
PATCH = (16, 128, 128)
PRESETS = ("two_photon", "confocal", "sted", "low_snr")
SIGMA_UM = (0.75, 0.25, 0.25)
#: fields (voxels at the preset's voxel size) large enough for a patch on the grid once resampled
FIELDS = {"two_photon": (32, 256, 256), "low_snr": (32, 256, 256), "confocal": (48, 256, 256),
          "sted": (64, 512, 512)}
FIRST_SEED = 2001


def normalised(image: np.ndarray, norm: str = "pipeline") -> np.ndarray:
    """``pipeline``: the networks' own normalisation (``NormaliseConfig()``: percentiles 1 and
    99.9 to -1 and 1, clipped at 3); ``probe`` (session 42): percentiles 1 and 99.8 to 0 and 1."""
    if norm == "pipeline":
        from spinequant.segment.neural.normalise import NormaliseConfig, normalise

        return normalise(image, NormaliseConfig())
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, (1, 99.8))
    return ((image - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def on_grid(image: np.ndarray, spacing, norm: str = "pipeline") -> np.ndarray:
    from spinequant.segment.neural.resample import to_model_grid

    return to_model_grid(normalised(image, norm), spacing, GRID)


def training_sample(preset: str, seed: int, norm: str = "pipeline", phantoms: str = "randomised"):
    """(image, head target, heads) on the grid. ``phantoms``: ``randomised`` (session 43 on)
    or ``preset``, the preset's own phantom (session 42)."""
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


def patch(rng, image, heat, heads, floor: float = -1.0):
    """A patch around a random head (70 %) or anywhere, turned, mirrored and scaled in brightness."""
    shape = image.shape
    if rng.random() < 0.7 and len(heads):
        c = heads[rng.integers(len(heads))] + [rng.integers(-PATCH[0] // 4, PATCH[0] // 4 + 1), rng.integers(-40, 41), rng.integers(-40, 41)]
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
    # brightness scaled above the normalisation's floor (-1, or 0 for the probe's)
    return ((a - floor) * rng.uniform(0.8, 1.25) + floor).astype(np.float32), b.astype(np.float32)


def training_data(presets, n_seeds: int, cache: Path | None, norm: str = "pipeline", phantoms: str = "randomised"):
    if cache is not None and cache.exists():
        z = np.load(cache)
        return [(z[f"i{k}"], z[f"h{k}"], z[f"p{k}"]) for k in range(len(z.files) // 3)]
    data = [training_sample(p, s, norm, phantoms) for p in presets for s in range(FIRST_SEED, FIRST_SEED + n_seeds)]
    if cache is not None:
        np.savez(cache, **{f"{n}{k}": a for k, d in enumerate(data) for n, a in zip("ihp", d)})
    return data


def train(net, data, *, minutes: float, seed: int, out: Path, steps: int | None, floor: float = -1.0,
          lr: float = 1e-3, draw: np.ndarray | None = None) -> int:
    """Train ``net`` on ``data`` for ``minutes`` (or ``steps``); the state dict is saved to ``out``
    every 50 steps and at the end. ``draw``: each phantom's chance of giving a patch (uniform if
    None); ``lr`` falls to a tenth for the last quarter of the time. Returns the number of steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(net.parameters(), lr)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0, step, lowered = time.time(), 0, False
    while time.time() - t0 < minutes * 60 and (steps is None or step < steps):
        if not lowered and time.time() - t0 > 0.75 * minutes * 60:
            for g in opt.param_groups:
                g["lr"] = lr / 10
            lowered = True
        pairs = [patch(rng, *data[rng.integers(len(data)) if draw is None else rng.choice(len(data), p=draw)],
                       floor=floor) for _ in range(2)]
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
    return step


def preset_draw(presets, n_seeds: int, share) -> np.ndarray:
    """Each phantom's chance of giving a patch, so that the presets give ``share`` of them."""
    if len(share) != len(presets) or min(share) < 0 or sum(share) <= 0:
        raise SystemExit(f"--preset-share needs one share >= 0 for each of {list(presets)}, got {list(share)}")
    share = np.asarray(share, float) / sum(share)
    return np.repeat(share / n_seeds, n_seeds)


def initial_network(init: str | None):
    """A fresh network, or one holding ``init``'s weights (a .pt state dict or an installed model)."""
    from spinequant.segment.neural.architectures import build
    from spinequant.segment.neural.card import load_model

    if init is None:
        return build(spec())
    if init.endswith(".pt"):
        net = build(spec())
        net.load_state_dict(torch.load(init, weights_only=True), strict=True)
        return net
    net, card = load_model(init)
    if card.architecture != spec():
        raise SystemExit(f"--init {init}: its architecture {card.architecture} is not this script's {spec()}")
    return net.train()


def spec() -> dict:
    return {"kind": "heads3d", "filters": [24, 48, 96], "space_to_depth": 4}


def install(weights: Path, training: dict, name: str = NAME, max_z_step_um: float | None = None) -> None:
    """The checkpoint as the package's ``name`` (safetensors, card, ONNX), and lean2d_real's card
    naming it as its partner on stacks: on every stack, or (``max_z_step_um``) as its
    ``finer_z`` partner on stacks whose z step is at most that."""
    from spinequant.segment.neural.architectures import build
    from spinequant.segment.neural.card import MODELS_DIR, ModelCard, read_card, save_model, update_card
    from spinequant.segment.neural.onnx_runtime import export_onnx

    net = build(spec())
    net.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    partner = read_card(PARTNER)
    stacks = (f"confocal and STED stacks (z steps of at most {max_z_step_um} µm; 3D only)" if max_z_step_um
              else "stacks (two-photon, confocal, STED; 3D only)")
    coarse = ("" if max_z_step_um else " alone its map is worse than the 2D network's on STED (0.2 µm z steps "
              "are resampled to 0.5 µm) and")
    card = ModelCard(
        name=name, architecture=spec(), voxel_size_um=GRID, normalisation=dict(partner.normalisation),
        tile_size=256, tile_overlap=32, tile_depth=int(round(16 / GRID[0])) // 2 * 2, training=training,
        intended_use=(f"The spine-head-centre map of {stacks}, averaged "
                      f"with {PARTNER}'s head map (weight {WEIGHT}) when {PARTNER} analyses a stack: it "
                      f"parts heads above one another within the PSF that the 2D network merges."),
        limitations=(f"Learnt from spinequant phantoms only (no real 3D annotations):{coarse} it has "
                     "never seen real textures; it is meant to be averaged with the 2D map, not used "
                     "alone. No dendrite or spine map."))
    save_model(net, card, MODELS_DIR / name)
    export_onnx(name)
    entry = {"model": name, "weight": WEIGHT}
    changes = {}
    if max_z_step_um:
        entry = {**(partner.stack_heads or {}), "finer_z": {**entry, "max_z_step_um": max_z_step_um}}
    elif "finer_z" in (partner.stack_heads or {}):
        entry["finer_z"] = partner.stack_heads["finer_z"]  # a new coarse partner keeps the fine one
        said = "a 3D head network (stack_heads in this card)."
        if said in partner.intended_use:
            changes["intended_use"] = partner.intended_use.replace(said, (
                f"a 3D head network ({name}'s on stacks with z steps of at most {max_z_step_um} µm; "
                f"stack_heads in this card)."))
    update_card(PARTNER, stack_heads=entry, **changes)
    print(f"installed {MODELS_DIR / name}.safetensors/.json/.onnx; {PARTNER} joins it on stacks", flush=True)


def main() -> None:
    global GRID, PATCH, SIGMA_UM
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--presets", nargs="+", default=list(PRESETS))
    t.add_argument("--n-seeds", type=int, default=24, help="phantoms a preset")
    t.add_argument("--minutes", type=float, default=50.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=None, help="stop after this many steps (or --minutes)")
    t.add_argument("--cache", type=Path, default=None, help="keep the training phantoms in this .npz")
    t.add_argument("--preset-share", type=float, nargs="+", default=None,
                   help="each preset's share of the patches, in --presets' order (default: alike)")
    t.add_argument("--init", default=None,
                   help="start from these weights: a checkpoint (.pt) or an installed model's name")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam's step size (a tenth for the last quarter)")
    i = sub.add_parser("install")
    i.add_argument("--steps-done", type=int, default=None, help="steps the checkpoint was trained for")
    i.add_argument("--name", default=NAME, help="the installed model's name (default %(default)s)")
    i.add_argument("--max-z-step", type=float, default=None,
                   help="install it as lean2d_real's partner for stacks with z steps of at most this (µm)")
    for p in (t, i):
        p.add_argument("--weights", type=Path, default=Path("work/models/heads3d.pt"))
        p.add_argument("--grid-z", type=float, default=GRID[0], help="the grid's z step in µm (default %(default)s)")
        p.add_argument("--patch-depth", type=int, default=PATCH[0], help="planes a patch (default %(default)s)")
    t.add_argument("--sigma", type=float, nargs=3, default=SIGMA_UM, metavar=("Z", "Y", "X"),
                   help="the head target's Gaussian sigma in µm (default %(default)s)")
    args = ap.parse_args()
    GRID, PATCH = (args.grid_z, *GRID[1:]), (args.patch_depth, *PATCH[1:])
    if args.command == "train":
        SIGMA_UM = tuple(args.sigma)
    if args.command == "train":
        from spinequant.segment.neural.architectures import build

        draw = preset_draw(args.presets, args.n_seeds, args.preset_share) if args.preset_share else None
        net = initial_network(args.init)
        data = training_data(args.presets, args.n_seeds, args.cache)
        print(f"{len(data)} phantoms on the {GRID} µm grid", flush=True)
        steps = train(net, data, minutes=args.minutes, seed=args.seed, out=args.weights,
                      steps=args.steps, lr=args.lr, draw=draw)
        args.weights.with_suffix(".json").write_text(json.dumps(
            {"presets": list(args.presets), "n_seeds": args.n_seeds, "minutes": args.minutes, "seed": args.seed,
             "steps": steps, "grid": list(GRID), "patch": list(PATCH), "preset_share": args.preset_share,
             "init": args.init, "lr": args.lr, "sigma": list(SIGMA_UM)}))
    else:
        done = args.weights.with_suffix(".json")
        run = json.loads(done.read_text()) if done.exists() else {}
        steps = args.steps_done or run.get("steps")
        GRID, PATCH = tuple(run.get("grid", GRID)), tuple(run.get("patch", PATCH))
        SIGMA_UM = tuple(run.get("sigma", SIGMA_UM))
        training = {
            "script": "scripts/train_heads3d.py train",
            "data": (f"randomised phantoms (train_default_models.randomised_phantom, odd seeds with "
                     f"synth.REALISTIC) of {', '.join(run.get('presets', PRESETS))}, seeds "
                     f"{FIRST_SEED}-{FIRST_SEED + run.get('n_seeds', 24) - 1} each, on the {GRID} µm grid"),
            "target": f"head-centre Gaussians, sigma {SIGMA_UM} µm; loss BCE + soft Dice",
            "patch": list(PATCH), "batch": 2,
            "optimiser": f"Adam {run.get('lr', 1e-3):g}, {run.get('lr', 1e-3) / 10:g} for the last quarter",
            "minutes": run.get("minutes"), "steps": steps, "seed": run.get("seed", 0),
            **({"started_from": run["init"]} if run.get("init") else {}),
            **({"preset_share": dict(zip(run.get("presets", PRESETS), run["preset_share"]))}
               if run.get("preset_share") else {}),
            "licence": "phantoms generated by spinequant (no third-party data)",
        }
        install(args.weights, training, args.name, args.max_z_step)


if __name__ == "__main__":
    main()
