"""Run the analysis on a file or on every stack of a folder, skipping finished ones."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._atomic import atomic_path, ensure_writable_dir
from ..errors import InputError, SpinequantError
from ..io import SUPPORTED_FORMATS, open_stack, read_stack
from ..io.omezarr import is_zarr
from ..morphology import SPINE_TYPES
from .analyze import AnalysisResult, AnalyzeConfig, Progress, analyze, resolve_config, save_result
from .._json import to_json
from ..config import config_to_dict
from .runinfo import read_run_json

if TYPE_CHECKING:
    import pandas as pd   # imported where used: a run needs pandas only from its measure stage on

SUMMARY_FILE = "summary.csv"
#: The columns of summary.csv, whatever the data: a 3D stack leaves median_area_um2 empty,
#: a 2D image median_volume_um3, a failed stack every number.
SUMMARY_COLUMNS = ("stack", "status", "message", "results", "n_spines", "n_dendrites",
                   "dendrite_length_um", "density_per_um", "median_length_um", "median_volume_um3",
                   "median_area_um2", *(f"n_{kind}" for kind in SPINE_TYPES))


def analyze_file(path, out_dir, *, channel: int | None = None, time: int | None = None,
                 voxel_size=None, image=None, project: str | None = None,
                 config: AnalyzeConfig | None = None, progress: Progress | None = None,
                 allow_incomplete: bool = False, ratio_channel: int | None = None,
                 keep_maps: bool = True, lazy: bool = False) -> AnalysisResult:
    """Read one stack, analyse it and write every result into ``out_dir``.

    ``channel``, ``time`` and ``image`` (scene/series of CZI/LIF/ND2 files) choose what to
    read; ``voxel_size`` ((z, y, x) µm, (y, x) for a 2D image) overrides the file's;
    ``project`` ("max" or "mean") analyses the stack's projection along z (run.json's
    ``input.projection``). ``allow_incomplete`` analyses a truncated file with its missing
    planes as zeros (see :func:`~spinequant.io.read_stack`); run.json's ``input`` records it
    and what was missing (``incomplete``).

    ``ratio_channel`` names a second channel of the same file (e.g. a tagged protein): it is
    read like ``channel`` (same time point, same projection) and spines.csv gets its mean raw
    intensity per spine and the spine's RSDR (see :func:`analyze`'s ``tagged``); run.json's
    ``input.channels`` records which channel was the structure and which the tagged one
    (index and, when the file names its channels, name).

    ``keep_maps=False`` returns a result without the network's maps, freed once the spine
    objects are made (see :func:`analyze`): none of the files written needs them.
    ``lazy`` makes a projection chunk by chunk from a stack opened lazily (see
    :func:`~spinequant.io.read_stack`): a volume larger than memory can be projected.
    """
    new_dir = not Path(out_dir).exists()
    out_dir = ensure_writable_dir(out_dir)   # checked first: a long run must not fail at the end
    try:
        names = None
        if ratio_channel is not None:   # checked before the (long) read of the structural channel
            names = check_ratio_channel(path, ratio_channel, channel=channel, image=image,
                                        allow_incomplete=allow_incomplete)
        reading = dict(time=time, voxel_size=voxel_size, image=image, project=project, check_values=False,
                       allow_incomplete=allow_incomplete, lazy=lazy)
        # analyze() checks the voxel values itself; checking them here too would read the stack twice.
        stack = read_stack(path, channel=channel, **reading)
        tagged = None if ratio_channel is None else read_stack(path, channel=ratio_channel, **reading)
        source = {"path": str(Path(path).resolve()), "format": stack.metadata.get("format"),
                  "channel": channel, "time": time, "image": image, "projection": project,
                  "spacing_source": stack.spacing_source, "allow_incomplete": allow_incomplete,
                  "incomplete": stack.metadata.get("incomplete"), **file_stamp(path)}
        if lazy and project is not None:
            source["projected_chunk_by_chunk"] = True
        if ratio_channel is not None:
            source.update(ratio_record(names, channel, ratio_channel))
        extra = {} if tagged is None else {"tagged": tagged}
        result = analyze(stack, config=config, progress=progress, keep_maps=keep_maps, **extra)
        save_result(result, out_dir, source=source, progress=progress)
    except BaseException:
        # A run that fails on its input leaves no empty results folder behind.
        if new_dir and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return result


def ratio_record(names: list, channel: int | None, ratio_channel: int) -> dict:
    """What run.json's ``input`` records about a ratio run's two channels (``names``: one per
    channel of the file, from :func:`check_ratio_channel`)."""
    structure = 0 if channel is None else channel % len(names)
    tagged = ratio_channel % len(names)
    return {"ratio_channel": ratio_channel,
            "channels": {"structure": {"index": structure, "name": names[structure]},
                         "tagged": {"index": tagged, "name": names[tagged]}}}


def check_ratio_channel(path, ratio_channel, *, channel=None, image=None, allow_incomplete=False) -> list:
    """Check that ``ratio_channel`` is a channel of ``path`` other than ``channel``; return one
    name per channel (None where the file names none). Reads the file's layout, not its voxels."""
    if isinstance(ratio_channel, bool) or not isinstance(ratio_channel, (int, np.integer)):
        raise InputError(f"The ratio channel must be a channel index (an integer), not {ratio_channel!r}.")
    opened = open_stack(path, require_spacing=False, image=image, allow_incomplete=allow_incomplete)
    n = opened.size_of("C") if "C" in opened.axes else 1
    if n < 2:
        raise InputError(
            f"--ratio-channel {ratio_channel} needs a second channel, but '{path}' has one channel only. "
            f"Give a file with the structural and the tagged channel (e.g. an ImageJ hyperstack with a "
            f"C axis), or leave out --ratio-channel.")
    names = list(opened.channel_names) if len(opened.channel_names) == n else [None] * n
    listing = ", ".join(f"{i}: {c}" if c else str(i) for i, c in enumerate(names))
    if not -n <= ratio_channel < n:
        raise InputError(
            f"Ratio channel {ratio_channel} does not exist: '{path}' has {n} channels ({listing}). "
            f"Choose the tagged channel with --ratio-channel N (0 to {n - 1}).")
    if channel is not None and -n <= channel < n and channel % n == ratio_channel % n:
        raise InputError(
            f"The ratio channel ({ratio_channel}) is the structural channel (--channel {channel}); the "
            f"ratio compares a second, tagged channel with the segmented one. Choose another channel "
            f"({listing}).")
    return names


@dataclass(frozen=True)
class BatchItem:
    path: Path
    out_dir: Path
    status: str  # "done", "skipped", "failed"
    message: str = ""
    n_spines: int | None = None


def file_stamp(path) -> dict:
    """Size and modification time of an input, to tell whether it changed since a run."""
    st = Path(path).stat()
    return {"size_bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def find_stacks(folder, *, recursive: bool = False) -> list[Path]:
    """Stack files (and Zarr folders) inside ``folder``, sorted by name; with ``recursive``
    also those in its sub-folders (never inside a Zarr folder, which is one stack)."""
    folder = Path(folder)
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.suffix.lower() in SUPPORTED_FORMATS or p.name.lower().endswith((".ome.tif", ".ome.tiff")):
            out.append(p)
        elif recursive and p.is_dir() and not is_zarr(p):
            out += find_stacks(p, recursive=True)
    return out


def stack_name(path: Path) -> str:
    name = path.name
    for ext in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def analyze_folder(folder, out_dir, *, channel=None, time=None, voxel_size=None, image=None,
                   project=None, config: AnalyzeConfig | None = None, progress: Progress | None = None,
                   on_item=None, force: bool = False, allow_incomplete: bool = False,
                   recursive: bool = False, ratio_channel: int | None = None) -> pd.DataFrame:
    """Analyse every stack in ``folder``; write ``out_dir/<stack>/`` and ``summary.csv``.

    With ``recursive`` the stacks of sub-folders are analysed too, their results in the same
    sub-folders of ``out_dir`` (``out_dir/<sub>/<stack>/``). ``summary.csv`` has the same
    columns whatever the data (:data:`SUMMARY_COLUMNS`; counts are empty for failed stacks).

    A stack whose folder already holds a complete run of the same settings on the same file
    (size and modification time) is skipped unless ``force``; a stack that fails is reported in the summary and the others continue.
    ``on_item(BatchItem)`` is called after each stack. ``ratio_channel``: as in
    :func:`analyze_file`, for every stack.
    """
    folder = Path(folder)
    stacks = find_stacks(folder, recursive=recursive)
    if not stacks:
        where = "in that folder or its sub-folders" if recursive else \
            "directly in that folder, or use --recursive (recursive=True) for sub-folders"
        raise InputError(
            f"The folder '{folder}' holds no stacks spinequant reads (looked for "
            f"{', '.join(SUPPORTED_FORMATS)}). Put the stacks {where}."
        )
    out_dir = ensure_writable_dir(out_dir)
    resolve_config(config)       # a setting's error stops the batch before its first stack
    rows = []
    for path in stacks:
        target = out_dir / path.parent.relative_to(folder) / stack_name(path)
        item = _run_one(path, target, dict(channel=channel, time=time, voxel_size=voxel_size, image=image,
                                           project=project, allow_incomplete=allow_incomplete,
                                           ratio_channel=ratio_channel),
                        config, progress, force)
        rows.append(_summary_row(item, folder))
        if on_item:
            on_item(item)
    import pandas as pd

    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS).astype(
        {c: "Int64" for c in SUMMARY_COLUMNS if c.startswith("n_")})
    with atomic_path(out_dir / SUMMARY_FILE) as tmp:
        summary.to_csv(tmp, index=False)
    return summary


def _run_one(path, target, reading: dict, config, progress, force) -> BatchItem:
    previous = read_run_json(target)
    if previous and previous.get("complete") and not force:
        stamp = {k: previous.get("input", {}).get(k) for k in ("size_bytes", "mtime_ns")}
        same_input = (stamp == file_stamp(path)
                      and previous.get("input", {}).get("projection") == reading.get("project")
                      and previous.get("input", {}).get("ratio_channel") == reading.get("ratio_channel"))
        # as analyze resolves the settings for the image (2D or 3D) the earlier run analysed
        ndim = len(previous.get("input", {}).get("shape") or (0, 0, 0))
        if previous.get("config") == to_json(config_to_dict(resolve_config(config, ndim=ndim))) and same_input:
            return BatchItem(path, target, "skipped", "complete results already present",
                             previous.get("counts", {}).get("spines"))
    try:
        result = analyze_file(path, target, config=config, progress=progress, keep_maps=False, **reading)
    except SpinequantError as exc:
        return BatchItem(path, target, "failed", str(exc))
    except OSError as exc:  # the drive or the network, not spinequant: no bug report
        where = f" ({exc.filename})" if exc.filename else ""
        return BatchItem(path, target, "failed",
                         f"the operating system reported an error{where}: {exc.strerror or exc}")
    except Exception as exc:  # one broken stack must not stop a batch of hundreds
        return BatchItem(path, target, "failed",
                         f"unexpected error ({type(exc).__name__}: {exc}); this is a bug, please report it "
                         f"with this trace: {traceback.format_exc(limit=3)}")
    return BatchItem(path, target, "done", "", len(result.spines))


def _summary_row(item: BatchItem, folder: Path) -> dict:
    row = {"stack": str(item.path.relative_to(folder)), "status": item.status, "message": item.message,
           "results": str(item.out_dir)}
    dend_file = item.out_dir / "dendrites.csv"
    if item.status != "failed" and dend_file.exists():
        import pandas as pd

        dendrites = pd.read_csv(dend_file)
        spines_file = item.out_dir / "spines.csv"
        spines = pd.read_csv(spines_file) if spines_file.exists() else pd.DataFrame()
        length = float(dendrites["length_um"].sum()) if "length_um" in dendrites else float("nan")
        row.update({
            "n_spines": int(len(spines)),
            "n_dendrites": int(len(dendrites)),
            "dendrite_length_um": length,
            "density_per_um": len(spines) / length if length else float("nan"),
            "median_length_um": float(spines["length_um"].median()) if len(spines) else float("nan"),
        })
        for size in ("volume_um3", "area_um2"):  # a 2D image's spines have areas
            if size in spines:
                row[f"median_{size}"] = float(spines[size].median()) if len(spines) else float("nan")
        if "type" in spines:
            counts = spines["type"].value_counts()
            for kind in SPINE_TYPES:
                row[f"n_{kind}"] = int(counts.get(kind, 0))
    return row
