"""``spinequant track SESSION1 SESSION2 ... --out R [--days ...]``: spines followed over sessions."""

from __future__ import annotations


def register(sub) -> None:
    from ._common import add_stack_arguments

    p = sub.add_parser(
        "track", help="follow spines over imaging sessions days apart: tracks, gains, losses, turnover",
        description="Each SESSION is a stack (analysed like 'spinequant analyze', results in "
                    "OUT/sessions/session_NN) or an existing result folder (reused). Every session is "
                    "registered to the first (rigid, then affine; µm), spines of consecutive sessions "
                    "are matched one-to-one along corresponding dendrites, and OUT gets tracks.csv "
                    "(one row per spine per session: track id, status, position in the first "
                    "session's frame and along its dendrite), summary.csv (gains, losses, turnover per "
                    "µm of dendrite per day, survival), transforms.json, kymograph.png and run.json.")
    p.add_argument("sessions", nargs="+", metavar="SESSION", help="stacks or result folders, in time order")
    p.add_argument("--out", required=True, metavar="DIR", help="results folder")
    p.add_argument("--days", nargs="+", type=float, metavar="DAY",
                   help="day of each session (default 0 1 2 ...); turnover is per day")
    p.add_argument("--method", default=None, help="analysis method for stacks (default: the shipped network)")
    p.add_argument("--max-distance", type=float, default=None, metavar="UM",
                   help="largest distance of a spine's base and head between sessions after registration "
                        "(root-mean-square, µm; default 0.8)")
    p.add_argument("--max-gap", type=int, default=None, metavar="N",
                   help="a spine missing from up to N consecutive sessions keeps its track when it is "
                        "found again at its place (default 2; 0: a spine not found is lost)")
    p.add_argument("--any-dendrite", action="store_true",
                   help="also link spines on dendrites that do not correspond between sessions")
    p.add_argument("--deformable", action="store_true",
                   help="add a smooth residual field after the affine registration")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    add_stack_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import replace

    from ..pipeline import AnalyzeConfig
    from ._common import image_choice
    from ..timelapse.alignment import AlignConfig
    from ..timelapse.session_files import track_sessions
    from ..timelapse.tracking import TrackConfig

    config = TrackConfig(same_dendrite=not args.any_dendrite)
    if args.max_distance is not None:
        config = replace(config, max_distance_um=args.max_distance)
    if args.max_gap is not None:
        config = replace(config, max_gap=args.max_gap)
    analyze_config = AnalyzeConfig() if args.method is None else AnalyzeConfig(method=args.method)
    reading = dict(channel=args.channel, time=args.time, voxel_size=args.voxel_size,
                   image=image_choice(args.image), allow_incomplete=args.allow_incomplete)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    result = track_sessions(args.sessions, args.out, days=args.days, config=config,
                            align=AlignConfig(deformable=args.deformable), analyze_config=analyze_config,
                            reading=reading, say=say)
    summary = result["summary"]
    for row in summary.itertuples():
        say(f"sessions {row.interval}: {row.stable} stable, {row.gained} gained, {row.lost} lost; "
            f"turnover {row.turnover_per_um_per_day:.3f} /µm/day, survival {row.survival_from_first:.2f}")
    say(f"results in {args.out}/ (tracks.csv, summary.csv, transforms.json, kymograph.png, run.json)")
    return 0
