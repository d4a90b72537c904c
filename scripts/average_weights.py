"""Average the weights of fine-tunes of one model (a "model soup", Wortsman et al. 2022).

    .venv/bin/python scripts/average_weights.py work/models/lean2d_real_soup \
        work/models/lean2d_real_noint-last work/models/lean2d_real_noint_s1-last

Runs of the same recipe from the same starting weights that differ only in their random seed
end in the same basin, so their plain average is a network of its own, as fast as each, and
picks no run by its validation score. Every floating-point tensor (weights and batch-norm
statistics) is the mean of the runs' tensors, computed in float64 so that the result does
not depend on the order the runs are given in (torch's ``swa_utils.AveragedModel`` keeps a
running mean in float32: within one unit in the last place of this, but order-dependent);
integer tensors (batch counters) must agree and are copied. Writes ``OUT/model.safetensors`` and ``OUT/model.json``;
the card is the first run's, its training description naming the runs averaged.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from spinequant.segment.neural import load_model, save_model


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    keys = list(states[0])
    if any(list(s) != keys for s in states[1:]):
        raise SystemExit("The runs do not hold the same tensors: they are not one architecture.")
    out = {}
    for k in keys:
        tensors = [s[k] for s in states]
        if tensors[0].is_floating_point():
            out[k] = (sum(t.double() for t in tensors) / len(tensors)).to(tensors[0].dtype)
        elif all(torch.equal(tensors[0], t) for t in tensors[1:]):
            out[k] = tensors[0]
        else:
            raise SystemExit(f"Integer tensor {k} differs between the runs; they cannot be averaged.")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", nargs="+", type=Path, help="model folders (model.json + model.safetensors)")
    args = ap.parse_args()
    if len(args.runs) < 2:
        raise SystemExit("Give at least two runs to average.")
    loaded = [load_model(run / "model.json") for run in args.runs]
    cards = [card for _, card in loaded]
    if any(c.architecture != cards[0].architecture for c in cards[1:]):
        raise SystemExit("The runs' cards name different architectures.")
    net = loaded[0][0]
    net.load_state_dict(average_state([m.state_dict() for m, _ in loaded]))
    training = dict(cards[0].training)
    training["description"] = (
        f"uniform average of the weights of {len(args.runs)} runs of one recipe differing in their "
        f"seed ({', '.join(str(r) for r in args.runs)}; scripts/average_weights.py); each run: "
        + training.get("description", ""))
    training["averaged_runs"] = [{"run": str(r), "validation": c.validation} for r, c in zip(args.runs, cards)]
    args.out.mkdir(parents=True, exist_ok=True)
    card = save_model(net, dataclasses.replace(cards[0], training=training, validation={}), args.out / "model")
    print(f"wrote {args.out}/model.* (sha256 {card.sha256[:12]})")


if __name__ == "__main__":
    main()
