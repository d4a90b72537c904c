"""Spine tracking over imaging sessions, on session phantoms with exact truth.

For each preset and seed, `make_sessions` draws 4 sessions of the same dendrites (days 0, 4,
8, 12; per interval 10 % of spines lost, 10 % gained, sizes ±15 %; per session a lateral drift
of 2-5 µm, up to 1 µm in z, rotation up to 3°, tilt up to 1°, stretch up to 2 %, a bend of up
to 0.5 µm). Every session is registered to the first from its image
(`spinequant.timelapse.alignment.align_sessions`, default settings) and

* **registration error**: distance between each true spine base mapped into the first
  session's frame and its true place there (µm);
* **tracking alone**: the true spine tables and dendrite labels of each session are tracked
  (`track_spines`, default settings) with the estimated transforms;
* **end to end**: each session is analysed (`analyze`, the default method unless --method)
  and the detected spines tracked; a detected spine is identified with a true one by
  `match_spine_objects` (centres within 1 µm or IoU >= 0.3).

Scores per interval and in total: link recall (correct links / true links, a true link = a
track seen in both sessions), link precision, recall over links whose both spines were
detected, and gained / lost counts against the true ones the tracker could see, with how many
of the found ones are true gains / losses of that interval (see
`spinequant.timelapse.track_scores`). End to end, the tracker gets the sessions' spine
probability maps, against which it checks losses and gains (`TrackConfig.absent_below`).

Usage: python benchmarks/tracking.py [--presets two_photon ...] [--seeds 0 1] [--method M] [--no-e2e]
Prints tables and writes benchmarks/results/tracking.md.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import replace
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from _table import markdown

from spinequant.evaluate.detection import match_spine_objects
from spinequant.pipeline.analyze import AnalyzeConfig, analyze
from spinequant.synth.sessions import make_sessions, project_sessions
from spinequant.timelapse.alignment import SessionTransform, align_sessions
from spinequant.timelapse.track_scores import identity_scores, registration_errors, score_tracks, truth_id_maps
from spinequant.timelapse.tracking import SessionSpines, TrackConfig, track_spines

RESULTS = Path(__file__).parent / "results"


def detected_id_maps(results, series) -> list[dict[int, int]]:
    maps = []
    for res, ph in zip(results, series.phantoms):
        match = match_spine_objects(res.spine_labels, ph.spine_labels, spacing=ph.spacing)
        track_of = dict(zip(ph.spines["id"], ph.spines["track_id"]))
        maps.append({int(p): int(track_of[int(t)]) for t, p in match["pairs"]})
    return maps


def run_one(preset: str, seed: int, method: str | None, e2e: bool, track_config: TrackConfig = TrackConfig(),
            drop: bool = False, project: bool = False) -> tuple[list[dict], list[pd.DataFrame], list[dict]]:
    t0 = time.perf_counter()
    series = make_sessions(preset, n_sessions=4, seed=seed)
    if project:     # 2D sessions: each session's maximum projection, registered and tracked in the plane
        series = replace(series, phantoms=project_sessions(series))
        preset = f"{preset} (2D)"
    t_make = time.perf_counter() - t0
    first = series.phantoms[0]
    transforms, reg_rows = [SessionTransform.identity()], []
    for k, ph in enumerate(series.phantoms[1:], start=1):
        t = time.perf_counter()
        tr, _ = align_sessions(first.image, ph.image, ph.spacing)
        el = time.perf_counter() - t
        transforms.append(tr)
        err = registration_errors(tr, ph.spines)
        true_shift = series.affine_to_first[k][:3, 3]
        reg_rows.append({"preset": preset, "seed": seed, "session": k,
                         "drift_um": float(np.linalg.norm(true_shift)),
                         "median_um": float(np.median(err)), "p95_um": float(np.percentile(err, 95)),
                         "max_um": float(err.max()), "spines": len(err), "time_s": el})
    truth = [SessionSpines(p.spines, p.dendrite_labels, p.spacing, p.centrelines) for p in series.phantoms]
    tracks = track_spines(truth, transforms, series.days, config=track_config)
    scores = [score_tracks(tracks, series.tracks, truth_id_maps(series.tracks, len(truth))).assign(
        preset=preset, seed=seed, input="true labels")]
    gaps = gap_rows(truth, transforms, series, preset, seed, track_config) if drop else []
    if e2e:
        config = AnalyzeConfig() if method is None else AnalyzeConfig(method=method)
        t = time.perf_counter()
        results = [analyze(p.image, spacing=p.spacing, config=config) for p in series.phantoms]
        t_an = time.perf_counter() - t
        found = [SessionSpines(r.spines, r.dendrite_labels, r.spacing, r.centrelines, r.spine_prob) for r in results]
        tracks = track_spines(found, transforms, series.days, config=track_config)
        scores.append(score_tracks(tracks, series.tracks, detected_id_maps(results, series)).assign(
            preset=preset, seed=seed, input=f"detected ({config.method})"))
        print(f"  {preset} seed {seed}: analysis of 4 sessions {t_an:.0f} s")
    print(f"  {preset} seed {seed}: phantoms {t_make:.0f} s, registration "
          f"{sum(r['time_s'] for r in reg_rows):.0f} s")
    return reg_rows, scores, gaps


def gap_rows(truth, transforms, series, preset, seed, track_config, *, drop: float = 0.15,
             gaps=(0, 1, 2, 3)) -> list[dict]:
    """Simulated detector misses: every spine of the true labels is dropped from each session's
    table with probability ``drop`` (seeded); the spines left are tracked with each ``max_gap``
    and scored by identity over sightings (`identity_scores`) and by the gains and losses found
    against the true ones (a dropped spine that comes back is neither)."""
    from dataclasses import replace

    rng = np.random.default_rng(1000 + seed)
    kept = [s.spines[rng.random(len(s.spines)) >= drop] for s in truth]
    sessions = [SessionSpines(k, s.dendrite_labels, s.spacing, s.centrelines) for k, s in zip(kept, truth)]
    maps = truth_id_maps(series.tracks, len(truth))
    maps = [{i: t for i, t in m.items() if i in set(k["id"])} for m, k in zip(maps, kept)]
    out = []
    for gap in gaps:
        tracks = track_spines(sessions, transforms, series.days, config=replace(track_config, max_gap=gap))
        ident = identity_scores(tracks, maps)
        score = score_tracks(tracks, series.tracks, maps).iloc[-1]
        out.append({"preset": preset, "seed": seed, "drop": drop, "max_gap": gap, **ident,
                    "true_gained": int(score["true_gained"]), "found_gained": int(score["found_gained"]),
                    "true_lost": int(score["true_lost"]), "found_lost": int(score["found_lost"]),
                    "missed_rows": int((tracks["status"] == "missed").sum())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["two_photon"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--method", default=None)
    ap.add_argument("--no-e2e", action="store_true")
    ap.add_argument("--project", action="store_true",
                    help="2D sessions: every session's maximum projection (registration and tracking in the plane)")
    ap.add_argument("--gaps", action="store_true",
                    help="also track the true labels with 15 %% of spines dropped per session, max_gap 0-3")
    ap.add_argument("--max-gap", type=int, default=TrackConfig().max_gap,
                    help="TrackConfig.max_gap: sessions a spine may be missing from and keep its track")
    ap.add_argument("--out", default=str(RESULTS / "tracking.md"))
    args = ap.parse_args()
    track_config = TrackConfig(max_gap=args.max_gap)
    reg, scores, gaps = [], [], []
    for preset in args.presets:
        for seed in args.seeds:
            r, s, g = run_one(preset, seed, args.method, not args.no_e2e, track_config, args.gaps, args.project)
            reg += r
            scores += s
            gaps += g
    reg = pd.DataFrame(reg)
    scores = pd.concat(scores, ignore_index=True)
    cols = ["preset", "seed", "input", "interval", "true_links", "found_links", "correct_links", "link_recall",
            "link_precision", "recoverable_links", "recoverable_recall", "true_gained", "found_gained",
            "correct_gained", "true_lost", "found_lost", "correct_lost"]
    scores = scores[cols]
    totals = scores[scores["interval"] == "all"]
    pooled = totals.groupby(["preset", "input"], as_index=False)[
        ["true_links", "found_links", "correct_links", "recoverable_links", "true_gained", "found_gained",
         "correct_gained", "true_lost", "found_lost", "correct_lost"]].sum()
    pooled["link_recall"] = pooled["correct_links"] / pooled["true_links"]
    pooled["link_precision"] = pooled["correct_links"] / pooled["found_links"]
    pooled["recoverable_recall"] = pooled["correct_links"] / pooled["recoverable_links"]
    pooled["gained_error"] = pooled["found_gained"] / pooled["true_gained"] - 1
    pooled["lost_error"] = pooled["found_lost"] / pooled["true_lost"] - 1
    reg_summary = reg.groupby("preset", as_index=False).agg(
        pairs=("session", "size"), median_um=("median_um", "median"), p95_um=("p95_um", "max"),
        max_um=("max_um", "max"), time_s=("time_s", "mean"))
    text = [f"# Spine tracking over sessions (benchmarks/tracking.py)\n",
            f"{date.today()}, {platform.machine()}, `OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/tracking.py "
            f"--presets {' '.join(args.presets)} --seeds {' '.join(map(str, args.seeds))}"
            f"{' --method ' + args.method if args.method else ''}{' --no-e2e' if args.no_e2e else ''}"
            f"{' --gaps' if args.gaps else ''}{' --project' if args.project else ''}"
            f"{' --max-gap ' + str(args.max_gap) if args.max_gap != TrackConfig().max_gap else ''}`\n",
            "## Registration error (true spine bases mapped to the first session, µm)\n",
            markdown(reg, digits=3), "\nPer preset (median of the medians; p95 and max over all pairs):\n",
            markdown(reg_summary, digits=3),
            "\n## Tracking, pooled over seeds and intervals\n", markdown(pooled, digits=3),
            "\n## Tracking per interval\n", markdown(scores, digits=3)]
    if gaps:
        gaps = pd.DataFrame(gaps)
        pooled_gaps = gaps.groupby(["preset", "max_gap"], as_index=False)[
            ["true_pairs", "found_pairs", "correct_pairs", "true_gained", "found_gained", "true_lost", "found_lost",
             "missed_rows"]].sum()
        pooled_gaps["pair_recall"] = pooled_gaps["correct_pairs"] / pooled_gaps["true_pairs"]
        pooled_gaps["pair_precision"] = pooled_gaps["correct_pairs"] / pooled_gaps["found_pairs"]
        text += ["\n## Gaps: true labels with 15 % of spines dropped per session (simulated misses)\n",
                 "A sighting pair = two successive sessions in which a true track was found; recall = "
                 "pairs whose spines share a found track id.\n", markdown(pooled_gaps, digits=3),
                 "\nPer seed:\n", markdown(gaps, digits=3)]
    print("\n".join(text))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(text), encoding="utf-8")


if __name__ == "__main__":
    main()
