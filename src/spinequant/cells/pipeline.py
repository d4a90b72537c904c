"""From a volume to cells: segment, measure, and save everything (like the spine pipeline)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from .._atomic import ensure_writable_dir, undo_on_failure, write_error
from ..config import config_to_dict
from ..errors import InputError, SpinequantWarning
from ..stack import Stack
from ..validate import check_spacing
from .config import CellConfig
from .measure import measure_cells, summarize_cells
from .voronoi_otsu import MIN_FOREGROUND_SEPARATION, voronoi_otsu

STAGES = ("segment", "measure", "export", "report")
Progress = Callable[[str], None]


@dataclass
class CellResult:
    """Everything a cell analysis produced, in memory."""

    image: np.ndarray                  # (Z, Y, X), the segmented channel
    spacing: tuple[float, float, float]
    labels: np.ndarray                 # int32, 0 = background, cells 1..N
    cells: pd.DataFrame                # one row per cell (cells.csv)
    summary: dict                      # counts and density per mm³
    config: CellConfig
    timings: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)


def analyze_cells(image, *, spacing=None, config: CellConfig | None = None, intensities: dict | None = None,
                  progress: Progress | None = None) -> CellResult:
    """Segment the cells of a 3D volume (Voronoi-Otsu labelling in µm) and measure each one.

    ``image`` is a (Z, Y, X) array with ``spacing`` (z, y, x) µm, or a one-channel
    :class:`~spinequant.stack.Stack`. ``intensities`` maps channel names to volumes of the
    same shape whose mean and maximum per cell go into the table; by default the segmented
    image itself, as channel ``c0``.
    """
    config = config or CellConfig()
    if isinstance(image, Stack):
        spacing = image.spacing if spacing is None else spacing
        image = image.data
    image = np.asarray(image)
    if image.ndim != 3:
        raise InputError(f"Cell segmentation needs one 3D volume (Z, Y, X); got an array of shape {image.shape}. "
                         f"Choose one channel and time point (--channel, --time); 2D images are not supported yet.")
    spacing = check_spacing(spacing, ndim=3, where="the cell volume")
    step = progress or (lambda name: None)
    timings = {}
    step("segment")
    t = time.perf_counter()
    if config.method == "classical":
        labels, found = voronoi_otsu(image, spacing, config)
    else:
        from .predict import cell_probability
        from .voronoi_otsu import cells_from_probability

        probability, model_info = cell_probability(image, spacing, config.method)
        labels, found = cells_from_probability(image, probability, spacing, config,
                                               self_supervised=model_info["architecture"] == "cells_wnet3d",
                                               calibrated=model_info["calibrated_threshold"])
        found = {**found, "network": model_info}
    timings["segment"] = time.perf_counter() - t
    warning = _weak_foreground(found.get("foreground_separation"))
    if warning:
        found["warning"] = warning
        warnings.warn(warning, SpinequantWarning, stacklevel=2)
    step("measure")
    t = time.perf_counter()
    cells = measure_cells(labels, spacing, intensities=intensities if intensities is not None else {"c0": image})
    summary = summarize_cells(cells, image.shape, spacing)
    timings["measure"] = time.perf_counter() - t
    return CellResult(image=image, spacing=tuple(spacing), labels=labels, cells=cells, summary=summary,
                      config=config, timings=timings, diagnostics={"segment": found})


def save_cells(result: CellResult, out_dir, *, source: dict | None = None, progress: Progress | None = None,
               report: bool = True) -> Path:
    """Write labels_cells.tif, results.ome.zarr, cells.csv, the report and run.json (last).

    Every file is written atomically; when writing fails or is interrupted, the files this
    call had written are removed again.
    """
    from ..export.tables import write_table
    from ..io import write_ome_zarr, write_tiff
    from ..pipeline.runinfo import RUN_FILE, array_sha256, peak_memory_mb, versions, write_run_json

    out_dir = ensure_writable_dir(out_dir)
    step = progress or (lambda name: None)
    with undo_on_failure():
        try:
            (out_dir / RUN_FILE).unlink(missing_ok=True)
        except OSError as exc:
            raise write_error(exc, out_dir / RUN_FILE) from exc
        step("export")
        t = time.perf_counter()
        write_tiff(out_dir / "labels_cells.tif", result.labels, result.spacing)
        write_ome_zarr(out_dir / "results.ome.zarr", result.image, result.spacing, labels={"cells": result.labels})
        write_table(out_dir / "cells.csv", result.cells, parquet=False)
        result.timings["export"] = time.perf_counter() - t
        if report:
            from .report import write_cell_report

            step("report")
            t = time.perf_counter()
            write_cell_report(out_dir, result, source=source)
            result.timings["report"] = time.perf_counter() - t
        record = {
            "spinequant": __version__, "complete": True, "analysis": "cells",
            "input": {**(source or {}), "shape": list(result.image.shape), "dtype": str(result.image.dtype),
                      "spacing_um": list(result.spacing), "data_sha256": array_sha256(result.image)},
            "config": config_to_dict(result.config), "summary": result.summary,
            "diagnostics": result.diagnostics,
            "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
            "peak_memory_mb": round(peak_memory_mb(), 1), "versions": versions(),
        }
        write_run_json(out_dir, record)
    return out_dir


def analyze_cells_file(path, out_dir, *, channel: int | None = None, time: int | None = None, voxel_size=None,
                       image=None, allow_incomplete: bool = False, config: CellConfig | None = None,
                       progress: Progress | None = None, report: bool = True) -> CellResult:
    """Read one volume, segment and measure its cells and write every result into ``out_dir``.

    ``channel`` is the channel that is segmented (needed when the file has several); the mean
    and maximum intensity per cell are measured in every channel of the file (``c0``, ``c1``...).
    """
    from ..io import open_stack, read_stack
    from ..pipeline.batch import file_stamp

    new_dir = not Path(out_dir).exists()
    out_dir = ensure_writable_dir(out_dir)
    try:
        reading = dict(time=time, voxel_size=voxel_size, image=image, allow_incomplete=allow_incomplete)
        stack = read_stack(path, channel=channel, **reading)
        if stack.is_2d:
            raise InputError(f"'{path}' is a 2D image; cells are segmented in 3D volumes only (for now).")
        opened = open_stack(path, voxel_size=voxel_size, require_spacing=False, image=image,
                            allow_incomplete=allow_incomplete)
        n_channels = opened.size_of("C") if "C" in opened.axes else 1
        intensities = {"c0": stack.data} if n_channels == 1 else {
            f"c{c}": (stack.data if channel is not None and c == channel % n_channels
                      else read_stack(path, channel=c, check_values=False, **reading).data)
            for c in range(n_channels)}
        source = {"path": str(Path(path).resolve()), "format": stack.metadata.get("format"), "channel": channel,
                  "time": time, "image": image, "spacing_source": stack.spacing_source,
                  "allow_incomplete": allow_incomplete, "incomplete": stack.metadata.get("incomplete"),
                  "intensity_channels": list(intensities), **file_stamp(path)}
        result = analyze_cells(stack, config=config, intensities=intensities, progress=progress)
        save_cells(result, out_dir, source=source, progress=progress, report=report)
    except BaseException:
        if new_dir and out_dir.exists() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    return result


def _weak_foreground(separation) -> str | None:
    """The warning for a volume whose foreground barely stands out (None when it does)."""
    if separation is None or not separation < MIN_FOREGROUND_SEPARATION:
        return None
    return (f"The foreground barely stands out from the background (it lies {separation:.1f} background "
            f"standard deviations above it; noise alone gives about 2.7, the cell phantoms 6.6 or more): "
            f"the volume may hold no cells, or the wrong channel was chosen. Check the report before "
            f"trusting the cell count.")
