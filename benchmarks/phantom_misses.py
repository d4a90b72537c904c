"""Where `lean2d_real` loses a phantom preset's spines: in the learnt confidence or before it.

Every candidate is kept (`analyze` with a minimum confidence of 1e-9) and matched to the true
spines as `benchmarks/accuracy.py` matches (centres within 1 µm or IoU >= 0.3, one-to-one); a
true spine is *found* when a candidate at the model's default confidence matches it, *dropped*
when only a candidate below it does, and otherwise has *no candidate*, split by whether the
PSF lets any detector separate its head (`evaluate.resolvable_heads`). For the heads without a
candidate that the PSF resolves it prints the nearest other head (in the plane and in z,
medians), how many of those neighbours were found, and at how many the head map has a maximum
of its own (3 x 3 x 3 voxels, at least 0.1, within 0.3 µm in the plane and 0.75 µm in z, nearer
to this head than to any other): the joined map that spine objects read, the 2D network's map
alone and the 3D partner's alone (`stack_heads`; card copies naming no partner, or the partner
at weight 1). docs/real_data.md, "Partners fine-tuned toward the presets they serve".

Usage:  python benchmarks/phantom_misses.py [--presets two_photon low_snr] [--n 6] [--out PATH]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from _table import write_results

from spinequant.evaluate import resolvable_heads
from spinequant.evaluate.detection import match_spine_objects
from spinequant.pipeline.analyze import AnalyzeConfig, analyze
from spinequant.segment import segment_maps
from spinequant.segment.neural.card import read_card, resolve, update_card
from spinequant.synth import PRESETS, make_phantom

MODEL = "lean2d_real"
RESULTS = Path(__file__).parent / "results"
SEEDS = tuple(range(1001, 1014))
HEAD = ["head_z_um", "head_y_um", "head_x_um"]


def map_variants(tmp: Path) -> dict[str, str]:
    """The joined map's model and card copies for the 2D map alone and the 3D partner alone."""
    entry = dict(read_card(MODEL).stack_heads or {})
    alone3d = {**entry, "weight": 1.0}
    if "finer_z" in entry:
        alone3d["finer_z"] = {**entry["finer_z"], "weight": 1.0}
    out = {"joined": MODEL}
    card, weights = resolve(MODEL)
    for name, heads in (("2d", {}), ("3d", alone3d)):
        folder = tmp / name
        folder.mkdir()
        shutil.copy(card, folder / "model.json")
        shutil.copy(weights, folder / "model.safetensors")
        update_card(folder, stack_heads=heads)
        out[name] = str(folder)
    return out


def own_maxima(phantom, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima (3 x 3 x 3, at least 0.1) of ``model``'s head map, in µm, and their values."""
    heads = np.asarray(segment_maps(phantom.image, spacing=phantom.spacing, method=model).heads, np.float32)
    at = (heads == ndi.maximum_filter(heads, size=3)) & (heads >= 0.1)
    return np.argwhere(at) * np.asarray(phantom.spacing, float), heads[at]


def has_own_maximum(points: np.ndarray, head: np.ndarray, every_head: np.ndarray) -> bool:
    dz = np.abs(points[:, 0] - head[0])
    dxy = np.hypot(points[:, 1] - head[1], points[:, 2] - head[2])
    own = np.linalg.norm(points - head, axis=1)
    other = np.linalg.norm(points[:, None] - every_head[None], axis=2).min(1)
    return bool(((dxy <= 0.3) & (dz <= 0.75) & (own <= other + 1e-6)).any())


def spines_of(phantom, variants: dict[str, str], min_confidence: float) -> pd.DataFrame:
    result = analyze(phantom.image, spacing=phantom.spacing,
                     config=AnalyzeConfig(method=MODEL, report=False, min_confidence=1e-9), keep_maps=False)
    kept_ids = result.spines.loc[result.spines["confidence"] >= min_confidence, "id"].to_numpy()
    kept = np.where(np.isin(result.spine_labels, kept_ids), result.spine_labels, 0)
    every = dict(match_spine_objects(result.spine_labels, phantom.spine_labels, spacing=phantom.spacing)["pairs"])
    found = dict(match_spine_objects(kept, phantom.spine_labels, spacing=phantom.spacing)["pairs"])
    truth = phantom.spines
    heads = truth[HEAD].to_numpy(float)
    resolvable = resolvable_heads(truth[HEAD], phantom.params["imaging"]["psf_fwhm_um"])
    maxima = {name: own_maxima(phantom, model)[0] for name, model in variants.items()}
    rows = []
    for i, spine_id in enumerate(truth["id"].to_numpy()):
        d = np.linalg.norm(heads - heads[i], axis=1)
        d[i] = np.inf
        j = int(np.argmin(d))
        status = ("found" if spine_id in found else "dropped" if spine_id in every
                  else "no candidate, resolvable" if resolvable[i] else "no candidate, not resolvable")
        others = np.delete(heads, i, axis=0)
        rows.append({"status": status, "nn_dz_um": abs(heads[j, 0] - heads[i, 0]),
                     "nn_dxy_um": float(np.hypot(*(heads[j, 1:] - heads[i, 1:]))),
                     "nn_found": truth["id"].iat[j] in found,
                     **{f"max_{name}": has_own_maximum(points, heads[i], others) if len(points) else False
                        for name, points in maxima.items()}})
    return pd.DataFrame(rows)


def summary(preset: str, table: pd.DataFrame) -> dict:
    counts = table["status"].value_counts()
    lost = table[table["status"] == "no candidate, resolvable"]
    return {
        "preset": preset, "true_spines": len(table), "found": int(counts.get("found", 0)),
        "dropped_by_confidence": int(counts.get("dropped", 0)),
        "no_candidate_resolvable": len(lost),
        "no_candidate_not_resolvable": int(counts.get("no candidate, not resolvable", 0)),
        "nearest_head_dxy_um": float(lost["nn_dxy_um"].median()) if len(lost) else float("nan"),
        "nearest_head_dz_um": float(lost["nn_dz_um"].median()) if len(lost) else float("nan"),
        "nearest_head_found": int(lost["nn_found"].sum()),
        "own_max_joined": int(lost["max_joined"].sum()), "own_max_2d": int(lost["max_2d"].sum()),
        "own_max_3d": int(lost["max_3d"].sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["two_photon", "low_snr"], choices=list(PRESETS))
    parser.add_argument("--n", type=int, default=6, help=f"phantoms per preset (max {len(SEEDS)})")
    parser.add_argument("--out", default=str(RESULTS / "phantom_misses"), help="output path without extension")
    args = parser.parse_args()
    if not 1 <= args.n <= len(SEEDS):
        parser.error(f"--n must be between 1 and {len(SEEDS)} (the held-out seeds {SEEDS[0]}-{SEEDS[-1]})")
    min_confidence = float(read_card(MODEL).calibration["min_confidence"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = map_variants(Path(tmp))
        for preset in args.presets:
            per = [spines_of(make_phantom(preset, seed=s), variants, min_confidence) for s in SEEDS[:args.n]]
            rows.append(summary(preset, pd.concat(per, ignore_index=True)))
            print(rows[-1], flush=True)
    header = (f"Where {MODEL} loses phantom spines (seeds {SEEDS[:args.n]}, default minimum confidence "
              f"{min_confidence}), {date.today()}, {platform.machine()}, spinequant benchmarks/phantom_misses.py\n\n")
    write_results(pd.DataFrame(rows), args.out, header)


if __name__ == "__main__":
    main()
