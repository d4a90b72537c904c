"""``spinequant analyze STACK|FOLDER --out DIR``: from a stack to spines, tables and report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .._partials import remove_own
from ..errors import InputError
from ..io import PROJECTIONS
from . import _signals
from ._common import add_block_arguments, add_stack_arguments, image_choice, stack_path


def register(sub) -> None:
    p = sub.add_parser(
        "analyze", help="segment dendrites and spines, measure them, write tables and a report",
        description="Segment dendrites and spines in a stack (or every stack of a folder), build "
                    "spine objects, measure them in µm and write tables, label images, ROI sets, "
                    "meshes, a report and run.json. Use 'sample' for the bundled sample stack.")
    p.add_argument("stack", help="stack file, Zarr folder, or a folder of stacks")
    p.add_argument("--out", required=True, help="results folder (created if needed)")
    p.add_argument("--method", default=None,
                   help="a model name or path (default: the shipped lean2d network) or 'classical' "
                        "(no network)")
    p.add_argument("--engine", default=None, choices=["auto", "torch", "onnx"],
                   help="neural models: 'auto' (default) runs ONNX Runtime on a CPU when it is "
                        "installed and the model has an ONNX export, else PyTorch")
    p.add_argument("--config", default=None, metavar="RUN_JSON",
                   help="repeat the settings of an earlier run (its run.json)")
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="networks that score spines (lean2d_real): keep spines a human would mark "
                        "with at least this probability (default: the model's, chosen by F1 on real "
                        "validation images; recorded in run.json)")
    p.add_argument("--confidence", choices=("auto", "head_map"), default=None,
                   help="networks that score spines: 'auto' (default) scores every candidate from "
                        "its measurements with the model's learnt confidence when it has one; "
                        "'head_map' by its head-map peak alone")
    p.add_argument("--orientations", type=int, choices=(1, 4, 8), default=None,
                   help="networks: average the maps over the image as given (1), with its mirror images "
                        "(4) or with its quarter turns too (8); default 8 for a 2D image, 1 for a stack or a "
                        "network whose filters are shared over the orientations (p4m) (each orientation is "
                        "one more pass of the network; recorded in run.json)")
    p.add_argument("--no-meshes", action="store_true", help="skip mesh export")
    p.add_argument("--no-roi", action="store_true", help="skip the ImageJ ROI set")
    p.add_argument("--force", action="store_true", help="re-run stacks whose results are complete")
    p.add_argument("--recursive", action="store_true",
                   help="a folder: also analyse the stacks in its sub-folders (results in the same "
                        "sub-folders of --out)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--project", default=None, choices=PROJECTIONS,
                   help="analyse the stack's projection along z (maximum or mean intensity) as a 2D "
                        "image; recorded in run.json")
    p.add_argument("--ratio-channel", type=int, default=None, metavar="C",
                   help="a second, tagged channel of the same file (0-based; --channel is the structural "
                        "one that is segmented): spines.csv gets its mean raw intensity per spine "
                        "(tagged_mean_intensity) and the spine-to-dendrite ratio of the DeepD3 paper "
                        "(rsdr); run.json records both channels")
    p.add_argument("--psf-fwhm", type=float, nargs="+", default=None, metavar="UM",
                   help="--ratio-channel: the microscope's PSF FWHM in µm, Z XY for a stack (XY only for a "
                        "2D image); adds rsdr_corrected, the RSDR with the blur undone by linear unmixing "
                        "(docs/timelapse.md). Measure it (e.g. beads); without it only the raw rsdr")
    p.add_argument("--ratio-background", nargs="+", default=None, metavar="ADU",
                   help="--ratio-channel: background of the tagged and the structural channel in ADU "
                        "(T S), or 'auto' (5th percentile of each channel outside spines and dendrites), "
                        "subtracted before both ratios (default: raw values, as the DeepD3 paper)")
    p.add_argument("--chunked", action="store_true",
                   help="analyse a large 3D stack block by block (maps, spine objects and dendrites "
                        "per block with a halo, stitched into global ids; docs/scale.md); a re-run "
                        "into the same --out skips the finished blocks. With --project: the "
                        "projection is made chunk by chunk, never reading the stack whole, and the "
                        "2D projection is analysed in memory")
    add_block_arguments(p, default_chunk_px=1024, memory_model="a measured model, docs/scale.md")
    add_stack_arguments(p)
    p.set_defaults(func=run)


def _config(args):
    from dataclasses import replace

    from ..pipeline import AnalyzeConfig

    values = None
    if args.config:
        path = Path(args.config)
        try:
            values = json.loads(path.read_text(encoding="utf-8")).get("config")
        except (OSError, ValueError) as exc:
            raise InputError(f"Cannot read the settings file '{path}' ({exc}). Give the run.json of an earlier run.") from None
    config = AnalyzeConfig.from_dict(values)
    changes = {}
    if args.method:
        changes["method"] = args.method
        if values and values.get("method") not in (None, args.method):
            # Spine-object settings and the confidence threshold belong to the method that
            # recorded them; another method starts from its own.
            changes.update(instances=None, min_confidence=None, orientations=None)
            if not args.quiet:
                print(f"Note: --method {args.method} differs from the method of {args.config} "
                      f"({values.get('method')}); its spine-object settings, minimum confidence and orientations "
                      f"are that method's defaults, the other settings come from the file.",
                      file=sys.stderr)
    if args.engine:
        changes["engine"] = args.engine
    if args.min_confidence is not None:
        changes["min_confidence"] = args.min_confidence
    if args.confidence is not None:
        changes["confidence"] = args.confidence
    if args.orientations is not None:
        changes["orientations"] = args.orientations
    if args.no_meshes:
        changes["export_meshes"] = False
    if args.no_roi:
        changes["export_roi"] = False
    if args.psf_fwhm is not None or args.ratio_background is not None:
        changes["ratio"] = _ratio_config(args, config.ratio)
    return replace(config, **changes)


def _ratio_config(args, ratio):
    from dataclasses import replace

    if args.ratio_channel is None:
        raise InputError("--psf-fwhm and --ratio-background apply to a ratio run: add --ratio-channel C.")
    changes = {}
    if args.psf_fwhm is not None:
        changes["psf_fwhm_um"] = tuple(args.psf_fwhm)
    if args.ratio_background is not None:
        words = args.ratio_background
        if words == ["auto"]:
            changes["background"] = "auto"
        else:
            try:
                changes["background"] = tuple(float(w) for w in words)
            except ValueError:
                changes["background"] = None
            if changes["background"] is None or len(words) != 2:
                raise InputError(f"--ratio-background takes two numbers (tagged, structural background in "
                                 f"ADU) or 'auto', not {' '.join(words)!r}.")
    return replace(ratio, **changes)


def run(args) -> int:
    # Filled in as the run goes, for the message when a signal stops it.
    stacks: list[Path] = []     # a folder's stacks, once known
    finished: list[Path] = []   # those done (analysed, skipped or failed)
    try:
        return _run(args, stacks, finished)
    except KeyboardInterrupt as exc:
        # atomic_path has removed its files; this also catches a late write of zarr's own thread
        remove_own(Path(args.out))
        current = next((p.name for p in stacks if p not in finished), None if stacks else Path(args.stack).name)
        outcome = (_folder_outcome(current, len(finished), args.out) if stacks
                   else f"nothing was written for {current}")
        raise _signals.with_outcome(exc, outcome) from None


def _run(args, stacks: list[Path], finished: list[Path]) -> int:
    from ..pipeline import STAGES, analyze_file, analyze_folder, find_stacks
    from ..io.omezarr import is_zarr

    config = _config(args)
    if getattr(args, "owns_process", False) and config.method != "classical":
        # A process of our own: let glibc keep freed memory for the network's next batch
        # (the library never changes the allocator; see segment/neural/_malloc.py).
        from ..segment.neural import keep_freed_memory

        keep_freed_memory()
    path = stack_path(args.stack)
    # The outcome of the run is the command's output (stdout); progress and warnings go to
    # stderr, so `spinequant analyze ... > log` keeps the result lines apart.
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    common = dict(channel=args.channel, time=args.time, voxel_size=args.voxel_size, config=config,
                  image=image_choice(args.image), project=args.project,
                  allow_incomplete=args.allow_incomplete, ratio_channel=args.ratio_channel)
    bar = _StageBar(STAGES, quiet=args.quiet)
    progress = _stopping_on_signal(bar.stage)
    lazy = False
    if args.chunked or any(v is not None for v in (args.chunk_size, args.workers, args.scheduler, args.max_memory)):
        if not args.project:
            return _run_chunked(args, path, config, say)
        _check_chunked_projection(args, path)
        lazy = True      # the projection is made chunk by chunk; the 2D image is analysed in memory
    if path.is_dir() and not is_zarr(path):
        stacks += find_stacks(path, recursive=args.recursive)

        def report(item):
            finished.append(item.path)
            bar.reset()
            note = f" ({item.n_spines} spines)" if item.n_spines is not None else ""
            say(f"{item.status:8s} {item.path.name}{note}" + (f": {item.message}" if item.status == "failed" else ""))

        try:
            summary = analyze_folder(path, args.out, progress=progress, on_item=report, force=args.force,
                                     recursive=args.recursive,
                                     **common)
        finally:
            bar.close()
        failed = int((summary["status"] == "failed").sum())
        say(f"{len(summary)} stacks: {len(summary) - failed} analysed or already complete, {failed} failed. "
            f"Summary: {Path(args.out) / 'summary.csv'}")
        return 1 if failed else 0
    try:
        result = analyze_file(path, args.out, progress=progress, keep_maps=False, lazy=lazy, **common)
    finally:
        bar.close()
    for warning in result.diagnostics.get("warnings", []):
        print(f"Warning: {warning}", file=sys.stderr)
    _say_cell_bodies(result, say)
    say(f"{len(result.spines)} spines on {len(result.dendrites)} dendrite(s); "
        f"results in {args.out}/ (open report.html)")
    return 0


def _check_chunked_projection(args, path: Path) -> None:
    """``--chunked --project``: one stack, projected chunk by chunk; the projection, a 2D
    image, is analysed in memory, so the block options have nothing to act on."""
    if path.is_dir() and not is_zarr_path(path):
        raise InputError("--chunked analyses one stack (a file or a Zarr folder), not a folder of stacks.")
    given = [name for name, value in (("--chunk-size", args.chunk_size), ("--workers", args.workers),
                                      ("--scheduler", args.scheduler), ("--max-memory", args.max_memory))
             if value is not None]
    if given:
        raise InputError(f"With --project the stack's projection, a 2D image, is analysed in memory (--chunked "
                         f"makes the projection chunk by chunk without reading the stack whole); "
                         f"{', '.join(given)} apply to 3D runs block by block. Leave out {', '.join(given)}.")


def _run_chunked(args, path: Path, config, say) -> int:
    from ..scale import analyze_chunked

    if path.is_dir() and not is_zarr_path(path):
        raise InputError("--chunked analyses one 3D stack (a file or a Zarr folder), not a folder of stacks.")
    bar = _BlockBar(quiet=args.quiet)
    try:
        result = analyze_chunked(path, args.out, config=config, chunk_px=args.chunk_size, channel=args.channel,
                                 time_point=args.time, voxel_size=args.voxel_size, workers=args.workers,
                                 scheduler=args.scheduler, max_memory=args.max_memory,
                                 ratio_channel=args.ratio_channel, progress=_stopping_on_signal_blocks(bar.update),
                                 say=lambda m: None if args.quiet else print(m, file=sys.stderr, flush=True))
    finally:
        bar.close()
    _say_cell_bodies(result, say)
    blocks = result.diagnostics["chunked"]
    say(f"{len(result.spines)} spines on {len(result.dendrites)} dendrite(s) from {blocks['blocks']} blocks "
        f"of {blocks['chunk_px']} px "
        f"({blocks['blocks_resumed']} resumed); results in {args.out}/")
    return 0


def _say_cell_bodies(result, say) -> None:
    bodies = result.diagnostics.get("segment", {}).get("cell_bodies")
    if bodies:
        say(f"Note: {bodies['note']}.")


def is_zarr_path(path: Path) -> bool:
    from ..io.omezarr import is_zarr

    return is_zarr(path)


def _folder_outcome(current: str | None, n_finished: int, out) -> str:
    """What an interrupted folder run leaves: the stacks finished before it, nothing of the one
    under way, and how to go on."""
    now = f"nothing was written for {current}" if current else "summary.csv was not written"
    before = (f"the results of {n_finished} finished stack{'s' * (n_finished != 1)} are in {out}"
              if n_finished else "no stack had been finished")
    return (f"{now}; {before}. Run the same command again to go on: stacks with complete "
            f"results are skipped")


def _stopping_on_signal(progress):
    """``progress`` that first stops the run if a signal came whose exception was swallowed."""
    def step(name: str, fraction: float = 0.0) -> None:
        _signals.raise_if_received()
        progress(name, fraction)
    return step


def _stopping_on_signal_blocks(progress):
    def step(name: str, done: int, total: int) -> None:
        _signals.raise_if_received()
        progress(name, done, total)
    return step


class _BlockBar:
    """A progress bar over the blocks of each chunked stage (tqdm) on a terminal; in a log one
    line when a stage starts and when it ends; nothing in quiet mode."""

    def __init__(self, *, quiet: bool):
        self.quiet, self.bar, self.name, self.started = quiet, None, None, None

    def update(self, name: str, done: int, total: int) -> None:
        if self.quiet:
            return
        import time

        self.started = self.started or time.perf_counter()
        if not sys.stderr.isatty():
            if done in (0, total):
                print(f"[{time.perf_counter() - self.started:6.1f} s] {name} {done}/{total} blocks",
                      file=sys.stderr, flush=True)
            return
        from tqdm import tqdm

        if name != self.name:
            self.close()
            self.name = name
            self.bar = tqdm(total=total, unit="block", file=sys.stderr, leave=False,
                            bar_format="{desc:<10} {bar} {n_fmt}/{total_fmt} blocks [{elapsed}<{remaining}]")
            self.bar.set_description_str(name)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.name = None, None


class _StageBar:
    """A progress bar over pipeline stages (tqdm) on a terminal, moving within a stage as
    ``analyze`` reports its fractions; in a log (stderr not a terminal) one line per stage with
    the time so far; nothing in quiet mode."""

    def __init__(self, stages, *, quiet: bool):
        self.stages = list(stages)
        self.bar = None
        self.quiet = quiet
        self.started = None

    def stage(self, name: str, fraction: float = 0.0) -> None:
        if self.quiet:
            return
        if not sys.stderr.isatty():
            if fraction:
                return
            import time

            self.started = self.started or time.perf_counter()
            print(f"[{time.perf_counter() - self.started:6.1f} s] {name}", file=sys.stderr, flush=True)
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=len(self.stages), unit="stage", file=sys.stderr, leave=False,
                            bar_format="{desc:<12} {bar} {percentage:3.0f}% [{elapsed}]")
        if fraction == 0.0:
            self.bar.set_description_str(name, refresh=False)
        done = self.stages.index(name) + fraction if name in self.stages else self.bar.n
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        elif fraction == 0.0:
            self.bar.refresh()

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        self.started = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
