"""``spinequant cells STACK --out DIR``: segment and measure neuronal cells / nuclei in 3D."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ._common import add_block_arguments, add_stack_arguments, image_choice, stack_path


def register(sub) -> None:
    from ..cells import SPLITS

    p = sub.add_parser(
        "cells", help="segment and measure cells or nuclei in a 3D volume",
        description="Segment cells or nuclei in a 3D volume by Voronoi-Otsu labelling with sizes in µm "
                    "(docs/cells.md) and write labels_cells.tif, results.ome.zarr, cells.csv (one row per "
                    "cell: centroid, volume, diameter, sphericity, intensities), report.html and run.json.")
    p.add_argument("stack", help="3D stack file or Zarr folder; 'sample-cells' for the bundled light-sheet "
                                 "volume (CellSeg3D's example, docs/cells.md)")
    p.add_argument("--out", required=True, help="results folder (created if needed)")
    p.add_argument("--spot-sigma", nargs="+", type=float, metavar="UM",
                   help="Gaussian sigma (µm; one value or Z Y X) of the image whose maxima seed one cell each "
                        "(default 2)")
    p.add_argument("--outline-sigma", nargs="+", type=float, metavar="UM",
                   help="Gaussian sigma (µm; one value or Z Y X) before Otsu's threshold (default 0.5)")
    p.add_argument("--threshold-factor", type=float, default=None, metavar="F",
                   help="foreground above Otsu's threshold times F (default 1)")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="touching cells: nearest seed in µm (voronoi, default) or seeded watershed of the "
                        "smoothed image (intensity)")
    p.add_argument("--min-volume", type=float, default=None, metavar="UM3",
                   help="remove objects smaller than this many µm³ (default 30)")
    p.add_argument("--flatten", type=float, default=None, metavar="UM",
                   help="even out uneven illumination first: divide by the image's Gaussian blur of this "
                        "sigma in µm, a few cell diameters (default: off)")
    p.add_argument("--method", default=None, metavar="METHOD",
                   help="foreground by 'classical' (Otsu's threshold, the default), a shipped cell model "
                        "('segresnet_nuclei', docs/cells.md) or the folder/.json of a model trained with "
                        "'spinequant train --cells'; seeds and split as classical")
    p.add_argument("--probability-threshold", default=None, metavar="P",
                   help="with a network: foreground where its cell probability exceeds P (0-1), or 'otsu' "
                        "(default: the model card's calibrated threshold, else 0.5; Otsu for WNet3D's class map)")
    p.add_argument("--config", default=None, metavar="RUN_JSON",
                   help="repeat the settings of an earlier cells run (its run.json)")
    p.add_argument("--no-report", action="store_true", help="skip report.html and its figures")
    p.add_argument("--chunked", action="store_true",
                   help="segment a large volume block by block (Otsu's threshold chosen once for the whole "
                        "volume, cells cut by block borders stitched into one id; classical method only; "
                        "docs/cells.md); a re-run into the same --out skips the finished blocks")
    add_block_arguments(p, default_chunk_px=512, memory_model="the spine model of docs/scale.md")
    p.add_argument("--max-cell-diameter", type=float, default=None, metavar="UM",
                   help="--chunked: the largest cell kept whole across block borders; sets the halo "
                        "(default 25 µm)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    add_stack_arguments(p)
    p.set_defaults(func=run)


def _level(value):
    if value is None or value in ("otsu", "auto"):
        return value
    try:
        return float(value)
    except ValueError:
        raise InputError(f"--probability-threshold takes a number from 0 to 1 or 'otsu', not '{value}'.") from None


def _config(args):
    from ..cells import CellConfig

    values = None
    if args.config:
        path = Path(args.config)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"Cannot read the settings file '{path}' ({exc}). Give the run.json of an "
                             f"earlier cells run.") from None
        if record.get("analysis") != "cells":
            raise InputError(f"'{path}' is not the run.json of a cells run; give the one that "
                             f"'spinequant cells' wrote.")
        values = record.get("config")
    config = CellConfig.from_dict(values)
    sigma = (lambda v: None if v is None else (v[0] if len(v) == 1 else tuple(v)))
    for name, value in (("spot_sigma_um", sigma(args.spot_sigma)), ("outline_sigma_um", sigma(args.outline_sigma))):
        if value is not None and not isinstance(value, float) and len(value) != 3:
            raise InputError(f"--{name.split('_')[0]}-sigma takes one number (µm) or three (Z Y X).")
    changes = {k: v for k, v in (("spot_sigma_um", sigma(args.spot_sigma)),
                                 ("outline_sigma_um", sigma(args.outline_sigma)),
                                 ("threshold_factor", args.threshold_factor), ("split", args.split),
                                 ("min_volume_um3", args.min_volume), ("flatten_sigma_um", args.flatten),
                                 ("method", args.method), ("probability_threshold", _level(args.probability_threshold)))
               if v is not None}
    return replace(config, **changes)


def run(args) -> int:
    from .._partials import remove_own
    from . import _signals

    try:
        return _run(args)
    except KeyboardInterrupt as exc:
        # atomic writes have removed their files; this also catches a late write of zarr's own thread
        remove_own(Path(args.out))
        raise _signals.with_outcome(exc, f"nothing was written for {Path(args.stack).name}") from None


def _stack_path(name: str) -> Path:
    from ..data import CELLS_SAMPLE_NAME, cells_sample_path

    if name == CELLS_SAMPLE_NAME and not Path(name).exists():
        return Path(str(cells_sample_path()))
    return stack_path(name)


def _run(args) -> int:
    from ..cells import analyze_cells_file

    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    progress = (lambda name: None) if args.quiet else (lambda name: print(f"{name}...", file=sys.stderr, flush=True))
    chunked = (args.chunk_size, args.max_cell_diameter, args.max_memory, args.workers, args.scheduler)
    if args.chunked or any(v is not None for v in chunked):
        result = _run_chunked(args)
    else:
        result = analyze_cells_file(_stack_path(args.stack), args.out, channel=args.channel, time=args.time,
                                    voxel_size=args.voxel_size, image=image_choice(args.image),
                                    allow_incomplete=args.allow_incomplete, config=_config(args),
                                    progress=progress, report=not args.no_report)
    s = result.summary
    say(f"{s['n_cells']} cells, {s['density_per_mm3']:.4g} per mm³ of {s['imaged_volume_mm3']:.4g} mm³, "
        f"median volume {s['median_volume_um3']:.4g} µm³; results in {args.out}/"
        + ("" if args.no_report else " (open report.html)"))
    return 0


def _run_chunked(args):
    from ..cells.chunked import analyze_cells_chunked
    from ..cells.config import CellChunkConfig
    from .analyze import _BlockBar, _stopping_on_signal_blocks

    if args.image is not None or args.allow_incomplete:
        raise InputError("--chunked reads one volume lazily; --image and --allow-incomplete are not available "
                         "with it yet. Leave out one of them.")
    chunking = CellChunkConfig() if args.max_cell_diameter is None else CellChunkConfig(
        max_cell_diameter_um=args.max_cell_diameter)
    bar = _BlockBar(quiet=args.quiet)
    try:
        return analyze_cells_chunked(
            _stack_path(args.stack), args.out, config=_config(args), chunking=chunking, chunk_px=args.chunk_size,
            max_memory=args.max_memory, channel=args.channel, time_point=args.time, voxel_size=args.voxel_size,
            workers=args.workers, scheduler=args.scheduler, progress=_stopping_on_signal_blocks(bar.update),
            say=lambda m: None if args.quiet else print(m, file=sys.stderr, flush=True), report=not args.no_report)
    finally:
        bar.close()
