"""Sessions from files: stacks or result folders in, tracks and turnover out.

What ``spinequant track`` runs. Each session is a stack (analysed with
:func:`~spinequant.pipeline.analyze_file` into ``OUT/sessions/session_NN``) or an existing
``spinequant analyze`` result folder (reused as it is). Every session is registered to the
first (:func:`~.alignment.align_sessions`, on the result's image), its spines are tracked
(:func:`~.tracking.track_spines`) and the turnover summarised (:func:`~.turnover.summarise`).
Written atomically: ``tracks.csv``, ``summary.csv``, ``transforms.json``, ``kymograph.png``,
then ``run.json`` (last: it marks a complete run). A session analysed here also keeps its
spine probability map (``spine_map.tif``, probability x 255) for the check of losses and gains
(:mod:`.presence`); result folders without one are tracked without that check. 2D images
(planes or projections) are registered and tracked in the plane (``ref_z_um`` 0).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path, ensure_writable_dir, undo_on_failure
from ..errors import InputError
from .alignment import AlignConfig, SessionTransform, align_sessions
from .tracking import SessionSpines, TrackConfig, as_3d, track_spines
from .turnover import along_dendrite, summarise

RESULT_FILES = ("spines.csv", "labels_dendrites.tif")
#: The spine probability map of a session analysed by ``track`` (uint8, probability x 255),
#: kept beside its results so that a later run on the folder checks losses the same way.
SPINE_MAP = "spine_map.tif"


def is_result_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and all((path / f).exists() for f in RESULT_FILES)


def read_session(result_dir) -> tuple[SessionSpines, np.ndarray]:
    """A result folder's spines, dendrite labels, centrelines and image (for registration)."""
    from ..evaluate.readers import read_labels
    from ..io import open_stack, read_stack
    from ..io.swc import read_swc
    from ..pipeline.runinfo import read_run_json

    result_dir = Path(result_dir)
    if not is_result_folder(result_dir):
        raise InputError(f"'{result_dir}' is neither a stack file nor a spinequant result folder (it lacks "
                         f"{' or '.join(RESULT_FILES)}): give stacks or folders written by 'spinequant analyze'.")
    spines = pd.read_csv(result_dir / "spines.csv")
    dendrites, spacing = read_labels(result_dir / "labels_dendrites.tif")
    swc = result_dir / "dendrites.swc"
    centrelines = read_swc(swc) if swc.exists() else None
    image = None
    zarr_path = result_dir / "results.ome.zarr"
    if zarr_path.exists():
        image = np.asarray(open_stack(zarr_path, require_spacing=False).data)
    if image is None or image.shape != dendrites.shape:
        run = read_run_json(result_dir) or {}
        source = run.get("input", {}).get("path")
        if not source or not Path(source).exists():
            raise InputError(f"'{result_dir}' holds no image (results.ome.zarr) and its run.json names no "
                             f"readable input stack: re-run 'spinequant analyze' with the Zarr export.")
        image = np.asarray(read_stack(source, channel=run["input"].get("channel"),
                                      time=run["input"].get("time")).data)
    spine_prob = None
    if (result_dir / SPINE_MAP).exists():
        spine_prob = read_labels(result_dir / SPINE_MAP)[0].astype(np.float32) / 255.0
    return SessionSpines(spines, dendrites, tuple(float(s) for s in spacing), centrelines, spine_prob), image


def _check_grids(sessions: list[SessionSpines], names: list[str]) -> None:
    first = np.asarray(sessions[0].spacing)
    for s, name in zip(sessions[1:], names[1:]):
        if len(s.spacing) != len(first):
            raise InputError(f"Session '{name}' is {len(s.spacing)}D but the first is {len(first)}D: track "
                             f"2D images (planes or projections) or 3D stacks, not both.")
        if not np.allclose(s.spacing, first, rtol=0.01):
            raise InputError(f"Session '{name}' has voxels of {tuple(s.spacing)} µm, the first "
                             f"{tuple(first)} µm: sessions must share the voxel size (resample first or give "
                             f"--voxel-size when analysing).")


def track_sessions(inputs, out_dir, *, days=None, config: TrackConfig = TrackConfig(),
                   align: AlignConfig = AlignConfig(), analyze_config=None, reading: dict | None = None,
                   say=lambda message: None) -> dict:
    """Analyse (or read) every session, register, track and write the results (see the module
    docstring). ``days``: one per session (default 0, 1, 2, ...). Returns the tables and paths."""
    from ..io import write_tiff
    from ..pipeline import analyze_file
    from ..pipeline.runinfo import peak_memory_mb, versions, write_run_json

    inputs = [Path(p) for p in inputs]
    if len(inputs) < 2:
        raise InputError("Give at least two sessions (stacks or result folders) to track spines over.")
    days = list(range(len(inputs))) if days is None else [float(d) for d in days]
    if len(days) != len(inputs):
        raise InputError(f"{len(days)} days given for {len(inputs)} sessions: give one day per session (--days).")
    if np.any(np.diff(days) <= 0):
        raise InputError(f"The session days {days} must increase, in the order of the sessions.")
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise InputError(f"No such session: {', '.join(missing)}.")
    out = ensure_writable_dir(out_dir)
    timings = {}
    with undo_on_failure():
        folders = []
        for k, path in enumerate(inputs):
            if is_result_folder(path):
                folders.append(path)
                continue
            target = out / "sessions" / f"session_{k:02d}"
            say(f"session {k}: analysing {path.name}")
            t = time.perf_counter()
            result = analyze_file(path, target, config=analyze_config, **(reading or {}))
            # a network's map is a probability; the classical method's maps are not calibrated
            if result.config.method != "classical" and result.spine_prob is not None \
                    and result.spine_prob.shape == result.spine_labels.shape:
                write_tiff(target / SPINE_MAP, np.rint(np.clip(result.spine_prob, 0, 1) * 255).astype(np.uint8),
                           result.spacing)
            timings[f"analyze_{k}"] = time.perf_counter() - t
            folders.append(target)
        loaded = [read_session(f) for f in folders]
        sessions = [s for s, _ in loaded]
        _check_grids(sessions, [str(p) for p in inputs])
        transforms, infos = [SessionTransform.identity()], [{}]
        for k in range(1, len(sessions)):
            say(f"session {k}: registering to session 0")
            t = time.perf_counter()
            tr, info = align_sessions(loaded[0][1], loaded[k][1], sessions[0].spacing, config=align)
            timings[f"register_{k}"] = time.perf_counter() - t
            transforms.append(tr)
            infos.append(info)
        tracks = track_spines(sessions, transforms, days, config=config)
        tracks = along_dendrite(tracks, as_3d(sessions[0]).centrelines)
        summary = summarise(tracks, sessions, transforms, days, margin_um=config.edge_margin_um)
        written = _write_outputs(out, tracks, summary, transforms, infos, days)
        record = {"spinequant_command": "track", "complete": True,
                  "sessions": [{"input": str(p.resolve()), "result": str(Path(f).resolve()), "day": d}
                               for p, f, d in zip(inputs, folders, days)],
                  "config": {"track": asdict(config), "align": asdict(align),
                             "analyze": asdict(analyze_config) if analyze_config is not None else None},
                  "counts": {"tracks": int(tracks["track_id"].nunique()), "rows": int(len(tracks))},
                  "timings_s": {k: round(v, 2) for k, v in timings.items()},
                  "peak_memory_mb": round(peak_memory_mb(), 1), "versions": versions()}
        written["run.json"] = write_run_json(out, record)
    return {"tracks": tracks, "summary": summary, "transforms": transforms, "written": written}


def _write_outputs(out: Path, tracks, summary, transforms, infos, days) -> dict:
    from .track_plots import kymograph_figure

    written = {}
    for name, table in (("tracks.csv", tracks), ("summary.csv", summary)):
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
        written[name] = out / name
    record = {"frame": "the first session's (z, y, x µm from its first voxel)",
              "sessions": [{"session": k, "day": d, **tr.to_dict(), "diagnostics": info}
                           for k, (tr, info, d) in enumerate(zip(transforms, infos, days))]}
    with atomic_path(out / "transforms.json") as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, default=float), encoding="utf-8")
    written["transforms.json"] = out / "transforms.json"
    fig = kymograph_figure(tracks)
    with atomic_path(out / "kymograph.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    written["kymograph.png"] = out / "kymograph.png"
    return written


def read_transforms(path) -> list[SessionTransform]:
    """The transforms of a ``transforms.json`` written by :func:`track_sessions`."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    return [SessionTransform.from_dict(s) for s in record["sessions"]]
