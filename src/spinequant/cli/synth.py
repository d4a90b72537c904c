"""``spinequant synth``: write synthetic spiny-dendrite stacks with exact ground truth."""

from __future__ import annotations

import time
from pathlib import Path


def register(sub) -> None:
    from ..synth import CELL_PRESETS, PRESETS

    p = sub.add_parser("synth", help="make synthetic stacks with exact ground truth",
                       description="Make N synthetic spiny-dendrite stacks, each in its own folder "
                                   "DIR/phantom_NNN with image.tif, labels_*.tif, truth_spines.csv, "
                                   "dendrites.swc and params.json. Phantom i uses seed S + i, so the "
                                   "same command writes identical files.")
    p.add_argument("--preset", default="two_photon", choices=sorted(PRESETS) + sorted(CELL_PRESETS),
                   help="acquisition to mimic (default two_photon); nuclei_* make cell volumes "
                        "(image.tif, labels_cells.tif, truth_cells.csv; docs/cells.md)")
    p.add_argument("--n", type=int, default=1, metavar="N", help="number of phantoms (default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the first phantom (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--shape", nargs=3, type=int, metavar=("Z", "Y", "X"),
                   help="voxels per phantom (default: the preset's)")
    p.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="voxel size in µm (default: the preset's)")
    p.add_argument("--snr", type=float, help="signal-to-noise ratio of the shafts (default: the preset's)")
    p.add_argument("--spine-density", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="spines per µm of shaft, drawn per dendrite in this range (default: the preset's)")
    p.add_argument("--sessions", type=int, default=None, metavar="S",
                   help="instead, S imaging sessions of the same dendrites days apart (spines gained, "
                        "lost and resized; drift, rotation, stretch, bend): DIR/phantom_NNN/session_00 "
                        "... each a phantom folder, plus truth_tracks.csv and transforms.json")
    p.add_argument("--days", nargs="+", type=float, metavar="DAY",
                   help="with --sessions: the day of each session (default 0 4 8 ...)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InputError
    from ..synth import CELL_PRESETS, make_phantom, write_phantom

    if args.n < 1:
        raise InputError(f"--n must be at least 1 (got {args.n}).")
    if args.sessions is not None:
        if args.preset in CELL_PRESETS:
            raise InputError(f"--sessions makes spiny dendrites; the cell preset '{args.preset}' has none.")
        return _run_sessions(args)
    if args.days is not None:
        raise InputError("--days goes with --sessions.")
    out = Path(args.out)
    if args.preset in CELL_PRESETS:
        return _cells(args, out)
    overrides = {k: v for k, v in (("spacing", args.voxel_size), ("snr", args.snr),
                                   ("spine_density_per_um", args.spine_density)) if v is not None}
    for i in range(args.n):
        start = time.perf_counter()
        phantom = make_phantom(args.preset, seed=args.seed + i, shape=args.shape, **overrides)
        folder = write_phantom(phantom, out / f"phantom_{i:03d}")
        types = phantom.spines["type"].value_counts().to_dict()
        summary = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
        print(f"{folder}  seed {args.seed + i}  shape {phantom.image.shape}  "
              f"{len(phantom.spines)} spines ({summary})  {time.perf_counter() - start:.1f} s")
    return 0


def _cells(args, out: Path) -> int:
    from ..errors import InputError
    from ..synth import make_cell_phantom, write_cell_phantom

    if args.spine_density is not None:
        raise InputError(f"--spine-density does not apply to the cell preset '{args.preset}'; leave it out.")
    overrides = {k: v for k, v in (("spacing", args.voxel_size), ("snr", args.snr)) if v is not None}
    for i in range(args.n):
        start = time.perf_counter()
        phantom = make_cell_phantom(args.preset, seed=args.seed + i, shape=args.shape, **overrides)
        folder = write_cell_phantom(phantom, out / f"phantom_{i:03d}")
        print(f"{folder}  seed {args.seed + i}  shape {phantom.image.shape}  {len(phantom.cells)} cells "
              f"({phantom.params['n_touching']} touching)  {time.perf_counter() - start:.1f} s")
    return 0


def _run_sessions(args) -> int:
    from ..errors import InputError
    from ..synth.sessions import SessionConfig, make_sessions, write_sessions

    if args.n < 1 or args.sessions < 2:
        raise InputError(f"--sessions needs at least 2 sessions and --n at least 1 (got {args.sessions}, {args.n}).")
    cfg = SessionConfig(n_sessions=args.sessions, days=tuple(args.days) if args.days else None)
    overrides = {k: v for k, v in (("spacing", args.voxel_size), ("snr", args.snr),
                                   ("spine_density_per_um", args.spine_density)) if v is not None}
    for i in range(args.n):
        start = time.perf_counter()
        series = make_sessions(args.preset, seed=args.seed + i, shape=args.shape, sessions=cfg, **overrides)
        folder = write_sessions(series, Path(args.out) / f"phantom_{i:03d}")
        events = series.tracks["event"].value_counts()
        print(f"{folder}  seed {args.seed + i}  {args.sessions} sessions (days {', '.join(f'{d:g}' for d in series.days)})"
              f"  {int(events.get('initial', 0))} spines at first, {int(events.get('gained', 0))} gained, "
              f"{int(events.get('lost', 0))} lost  {time.perf_counter() - start:.1f} s")
    return 0
