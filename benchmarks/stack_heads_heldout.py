"""What a fine-tuning run's check of the 3D head network sees on small held-out stacks.

`spinequant train --from lean2d_real` keeps the 3D head network that joins the head map on
stacks (`stack_heads`) only if the held-out stacks with depth score at least as well with it
(:func:`spinequant.pipeline.training.carry_stack_heads`). This prints, per phantom preset, the
head-map detection F1 (best minimum of a Platt fit, as the check measures it) of
`lean2d_real`'s weights with and without the 3D network on four stacks pooled, and the
difference stack by stack: how many annotated heads the check needs before it can tell the
two apart.

Usage:  python benchmarks/stack_heads_heldout.py [ZxYxX]     (default 32x160x160)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from spinequant.pipeline.calibrate import head_map_f1
from spinequant.segment.neural import TrainingSample
from spinequant.segment.neural.card import read_card, resolve, update_card
from spinequant.synth import make_phantom

PRESETS = ("two_photon", "confocal", "sted", "low_snr")
SEEDS = (31, 32, 33, 34)


def stack(preset: str, seed: int, shape) -> TrainingSample:
    ph = make_phantom(preset, seed=seed, shape=shape)
    heads = ph.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy(float) / np.asarray(ph.spacing)
    return TrainingSample(ph.image.astype(np.float32), ph.semantic.astype(np.uint8), tuple(ph.spacing),
                          f"{preset}-{seed}", heads=heads)


def f1_pair(model: Path, samples, entry) -> tuple[float, float]:
    """(F1 of the 2D head map alone, F1 joined by the 3D network ``entry``)."""
    update_card(model, stack_heads={})
    alone = head_map_f1(model, samples)
    update_card(model, stack_heads=entry)
    return alone, head_map_f1(model, samples)


def main() -> None:
    shape = tuple(int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "32x160x160").split("x"))
    entry = read_card("lean2d_real").stack_heads
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        model.mkdir()
        card, weights = resolve("lean2d_real")
        shutil.copy(card, model / "model.json")
        shutil.copy(weights, model / "model.safetensors")
        update_card(model, calibration={})          # as `spinequant train` writes a fine-tuned card
        print("| preset | stacks | heads | F1 alone | F1 joined | joined - alone, stack by stack |")
        print("|---|---|---|---|---|---|")
        for preset in PRESETS:
            samples = [stack(preset, seed, shape) for seed in SEEDS]
            alone, joined = f1_pair(model, samples, entry)
            per = [f"{j - a:+.3f}" for a, j in (f1_pair(model, [s], entry) for s in samples)]
            print(f"| {preset} | {len(samples)} | {sum(len(s.heads) for s in samples)} | {alone:.3f} | "
                  f"{joined:.3f} | {' '.join(per)} |", flush=True)


if __name__ == "__main__":
    main()
