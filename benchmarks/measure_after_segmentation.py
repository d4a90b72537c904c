"""Accuracy of the spine table end to end: segment, build spine objects, measure, and compare
each found spine with the true spine it matches.

    .venv/bin/python benchmarks/measure_after_segmentation.py [--methods classical lean2d]
        [--n 3] [--peak-fraction 0 0.5]

`benchmarks/measure_accuracy.py` measures the phantoms' true labels, so it tests the
measurements alone; here the segmentation's outline errors come in too. Per preset and method
(phantom seeds as in `benchmarks/accuracy.py`), over matched pairs (centres within 1 µm or IoU
at least 0.3): median found/true volume ratio, median relative length error, median absolute
head-diameter error (µm), the share of pairs with the same type (NeuronStudio rules, the
default; and Risher et al.'s) and the
share of found spines that touch their dendrite. ``--peak-fraction`` re-runs a network's objects
with other values of ``InstanceConfig.peak_fraction`` (classical objects come from a mask and
are not trimmed). Prints a table and writes benchmarks/results/measure_after_segmentation.md
and .csv.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from _table import markdown
from accuracy import SEEDS, method_label

from spinequant.evaluate.detection import match_spine_objects
from spinequant.instances import spine_instances
from spinequant.morphology import MorphologyConfig, classify_spines, measure_spines
from spinequant.pipeline.analyze import default_instance_config
from spinequant.segment import semantic_maps
from spinequant.synth import PRESETS, make_phantom

RESULTS = Path(__file__).parent / "results"
RISHER = MorphologyConfig(rule_set="risher")


def pairs_of(phantom, maps, config) -> pd.DataFrame:
    """Found vs true measurements of the matched spines, objects built from ``maps``."""
    dend, spine = maps
    inst = spine_instances(spine, dend, spacing=phantom.spacing, config=config)
    pairs = match_spine_objects(inst.spine_labels, phantom.spine_labels, spacing=phantom.spacing)["pairs"]
    found = measure_spines(inst.spine_labels, inst.dendrite_labels, phantom.spacing).set_index("id")
    truth = phantom.spines.set_index("id")
    t = truth.loc[[p[0] for p in pairs]].reset_index()
    f = found.loc[[p[1] for p in pairs]].reset_index()
    return pd.DataFrame({
        "volume_ratio": f.volume_um3 / t.volume_um3,
        "length_error": (f.length_um - t.length_um).abs() / t.length_um,
        "head_error_um": (f.head_diameter_um - t.head_diameter_um).abs(),
        "same_type": f["type"] == t["type"],
        "same_type_risher": np.asarray(classify_spines(f, config=RISHER)[0]) == t["type"].to_numpy(),
        "attached": f.attached,
    })


def run(methods, n: int, fractions) -> pd.DataFrame:
    rows = []
    for preset in PRESETS:
        phantoms = [make_phantom(preset, seed=s) for s in SEEDS[:n]]
        for method in methods:
            # Segment once; only the spine objects change with peak_fraction.
            maps = [semantic_maps(ph.image, spacing=ph.spacing, method=method)[:2] for ph in phantoms]
            default = default_instance_config(method)
            configs = [default] if method == "classical" else [
                default if f is None else dataclasses.replace(default, peak_fraction=f) for f in fractions]
            for cfg in configs:
                d = pd.concat([pairs_of(ph, m, cfg) for ph, m in zip(phantoms, maps)], ignore_index=True)
                rows.append({
                    "preset": preset, "method": method_label(method),
                    "peak_fraction": cfg.peak_fraction, "pairs": len(d),
                    "volume_ratio": d.volume_ratio.median(), "length_error": d.length_error.median(),
                    "head_error_um": d.head_error_um.median(), "same_type": d.same_type.mean(),
                    "same_type_risher": d.same_type_risher.mean(),
                    "attached": d.attached.mean(),
                })
                print("  ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in rows[-1].items()), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["classical", "lean2d"])
    parser.add_argument("--n", type=int, default=3, help="phantoms per preset (at most 5)")
    parser.add_argument("--peak-fraction", type=float, nargs="+", default=None,
                        help="peak_fraction values for network methods (default: analyze's)")
    args = parser.parse_args()
    table = run(args.methods, min(args.n, len(SEEDS)), args.peak_fraction or [None])
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "measure_after_segmentation.csv", index=False)
    header = (f"Spine measurements after segmentation, matched spines (seeds {SEEDS[:args.n]}), "
              f"{date.today()}, {platform.machine()}, spinequant benchmarks/measure_after_segmentation.py")
    text = header + "\n\n" + markdown(table.round(3)) + "\n"
    (RESULTS / "measure_after_segmentation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
