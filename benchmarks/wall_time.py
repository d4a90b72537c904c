"""Time a command as a whole process: wall, CPU and peak memory over several runs.

Start-up, reading and writing are included, as a user waits for them. Each run is a fresh
process; its user and system seconds and its peak resident memory are the operating system's
accounting of the finished child (``os.wait4``), its wall seconds a monotonic clock around it.
One warm-up run (not counted) fills the file cache. With ``--vs`` a second command (the
baseline) runs in turn with the first (A B A B ...) and the ratio A/B is taken pair by pair, so
that a machine whose speed drifts during the call still gives a fair ratio. Prints min, median
and max of each figure; quote the median. Linux and macOS (``ru_maxrss`` is KiB on Linux).

The docs' whole-process timings dated before session 45 (2026-12-07) were taken with a timer of
the machine they were measured on that follows this same protocol (one warm-up, runs in turn,
medians, paired ratios); this script repeats them with the standard library alone.

Usage:
    python benchmarks/wall_time.py -n 3 -- spinequant analyze image.tif --out R --quiet --force
    python benchmarks/wall_time.py -n 3 --vs "spinequant analyze image.tif --out R2 --quiet
        --force --method other/model.json" -- spinequant analyze image.tif --out R --quiet --force
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time


def run_once(command: list[str]) -> dict[str, float]:
    """One run of ``command`` (output discarded): wall, user, sys, cpu seconds, peak MiB, exit code."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    peak_kib = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)
    return {"wall s": wall, "user s": usage.ru_utime, "sys s": usage.ru_stime,
            "cpu s": usage.ru_utime + usage.ru_stime, "peak MiB": peak_kib / 1024,
            "exit": child.returncode}


def summary(runs: list[dict[str, float]], label: str) -> list[str]:
    lines = []
    for key in ("wall s", "cpu s", "peak MiB"):
        values = [r[key] for r in runs]
        lines.append(f"| {label} | {key} | {min(values):.2f} | {statistics.median(values):.2f} | "
                     f"{max(values):.2f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=3, help="counted runs of each command")
    parser.add_argument("--warmup", type=int, default=1, help="runs of each command not counted")
    parser.add_argument("--vs", default=None, help="a baseline command (one string, split as a shell does)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to time after --")
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    commands = {"A": command}
    if args.vs:
        commands["B"] = shlex.split(args.vs)
    for _ in range(args.warmup):
        for c in commands.values():
            run_once(c)
    runs = {k: [] for k in commands}
    for _ in range(args.runs):
        for k, c in commands.items():
            runs[k].append(run_once(c))
    for k, c in commands.items():
        print(f"{k} = {shlex.join(c)}")
        failed = [r["exit"] for r in runs[k] if r["exit"] != 0]
        if failed:
            print(f"{k}: {len(failed)} of {args.runs} runs failed (exit codes {sorted(set(failed))})")
    print("\n| command | figure | min | median | max |\n|---|---|---|---|---|")
    for k in commands:
        print("\n".join(summary(runs[k], k)))
    if "B" in runs:
        ratios = [a["wall s"] / b["wall s"] for a, b in zip(runs["A"], runs["B"])]
        print(f"| A/B | wall, paired | {min(ratios):.3f} | {statistics.median(ratios):.3f} | {max(ratios):.3f} |")
    return 0 if all(r["exit"] == 0 for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
