"""Traces from files: a movie and the ROIs of a structural spinequant result, written to a folder.

What ``spinequant traces`` runs. The movie's frames are its T axis; a file without one (a
plain multi-page TIFF, which readers take for a z-stack) has its planes taken as frames when
the ROIs are 2D, and says so. The ROIs are ``labels_spines.tif`` and ``labels_dendrites.tif``
of the result; the movie is registered to the result's image (``results.ome.zarr``) when it
has the frames' shape, so the ROIs and the frames are aligned, else to the movie's own mean.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path, ensure_writable_dir
from ..config import check_fields
from ..errors import InputError
from .traces import extract_traces, wide


@dataclass(frozen=True)
class TraceConfig:
    """Settings of ``spinequant traces`` (see :func:`~spinequant.timelapse.extract_traces`).

    ``baseline`` (first, last frame) or ``percentile`` with ``window_s`` set F0; neither:
    the 10th percentile of the whole trace. ``neuropil_r`` subtracts r x the parent dendrite's
    trace from each spine's. ``register`` corrects rigid motion. ``background`` (detector
    offset, in the movie's units) is subtracted before ΔF/F0. ``psf_fwhm_um`` (the Gaussian
    PSF's FWHM in µm: (z, xy) for 3D ROIs, (xy,) for 2D) turns on the per-frame demixing of the
    ROIs with their blurred footprints (:mod:`~spinequant.timelapse.demixing`; it then fits
    the background per frame), unless ``demix`` is false; not with ``neuropil_r``.
    """

    frame_rate_hz: float = 1.0
    baseline: tuple[int, int] | None = None
    percentile: float | None = None
    window_s: float | None = None
    neuropil_r: float = 0.0
    smooth_frames: int = 1
    register: bool = True
    background: float = 0.0
    psf_fwhm_um: tuple[float, ...] | None = None
    demix: bool = True

    def __post_init__(self):
        check_fields(self, ranges={"frame_rate_hz": (0, None, True, False),
                                   "percentile": (0, 100, False, False),
                                   "window_s": (0, None, True, False),
                                   "smooth_frames": (1, None, False, False),
                                   "psf_fwhm_um": (0, None, True, False)})
        if self.psf_fwhm_um is not None and len(self.psf_fwhm_um) not in (1, 2):
            raise InputError(f"The PSF FWHM is two values (Z XY, µm) for a 3D movie or one (XY) for a 2D "
                             f"one, not {len(self.psf_fwhm_um)} ({list(self.psf_fwhm_um)}).")
        if self.demixes and self.neuropil_r:
            raise InputError("The demixing (a PSF given) separates each spine from its dendrite already: the "
                             "dendrite subtraction (neuropil_r / --neuropil) applies only without it "
                             "(--no-demix, or no PSF).")

    @property
    def demixes(self) -> bool:
        """Whether the ROIs are demixed: a PSF is given and ``demix`` is on."""
        return self.psf_fwhm_um is not None and self.demix


def read_movie(path, *, channel: int | None = None, voxel_size=None, roi_ndim: int) -> tuple[np.ndarray, tuple, list[str]]:
    """(frames (T, ...), spacing, notes) of a movie whose frames have ``roi_ndim`` dimensions."""
    from ..io import open_stack

    stack = open_stack(path, voxel_size=voxel_size, require_spacing=False)
    notes = []
    if "C" in stack.axes:
        stack = _select_channel(stack, channel)
    data, axes = np.asarray(stack.data), stack.axes
    spatial = stack.spatial_axes
    if "T" in axes:
        frames = data
        spacing = stack.spacing
    elif roi_ndim == 2 and "Z" in axes:
        frames, spacing = data, stack.spacing[1:]
        notes.append(f"'{Path(path).name}' has no time axis: its {data.shape[0]} planes are taken as "
                     f"frames (the ROIs are 2D)")
    else:
        raise InputError(f"'{path}' holds one {'image' if stack.is_2d else 'volume'} ({spatial}), not a "
                         f"movie: give a file with a time axis (an OME-TIFF or ImageJ hyperstack with "
                         f"frames), or for 2D ROIs a multi-page TIFF of the frames.")
    if frames.ndim - 1 != roi_ndim:
        raise InputError(f"The movie's frames have {frames.ndim - 1} dimensions but the ROIs {roi_ndim}: "
                         f"use a result made from an image like the movie's frames (2D ROIs for a "
                         f"movie of planes).")
    return frames, tuple(float(s) for s in spacing), notes


def _select_channel(stack, channel):
    from ..stack import Stack

    c = stack.axes.index("C")
    n = stack.data.shape[c]
    if channel is None and n > 1:
        raise InputError(f"The movie has {n} channels; choose one with --channel (0 to {n - 1}).")
    index = channel or 0
    if not 0 <= index < n:
        raise InputError(f"--channel {index} is out of range: the movie has channels 0 to {n - 1}.")
    return Stack(np.take(np.asarray(stack.data), index, axis=c), stack.spacing,
                 axes=stack.axes.replace("C", ""), metadata=stack.metadata)


def read_rois(result_dir) -> tuple[np.ndarray, np.ndarray, tuple, np.ndarray | None]:
    """(spine labels, dendrite labels, spacing, the result's image or None) of a result folder."""
    from ..evaluate.readers import read_labels

    result_dir = Path(result_dir)
    files = [result_dir / "labels_spines.tif", result_dir / "labels_dendrites.tif"]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise InputError(f"'{result_dir}' is not a spinequant result folder with ROIs ({', '.join(missing)} "
                         f"missing): run 'spinequant analyze' on the structural image first.")
    spines, spacing = read_labels(files[0])
    dendrites, _ = read_labels(files[1])
    image = None
    zarr_path = result_dir / "results.ome.zarr"
    if zarr_path.exists():
        from ..io import open_stack

        image = np.asarray(open_stack(zarr_path, require_spacing=False).data)
        if image.shape != spines.shape:
            image = None
    return spines, dendrites, tuple(spacing), image


def traces_from_files(movie, result_dir, out_dir, *, config: TraceConfig = TraceConfig(),
                      channel: int | None = None, voxel_size=None) -> dict:
    """Write ``traces.csv`` (one row per frame per ROI), ``dff.csv`` (one column per ROI),
    ``shifts.csv`` (µm per frame), ``traces.png``, ``traces.html`` (a page with the figures and a
    row per ROI) and ``traces.json`` (settings, notes) into
    ``out_dir``; return what was written and the notes."""
    from .plots import traces_figure
    from .trace_page import write_trace_page

    spines, dendrites, roi_spacing, image = read_rois(result_dir)
    if config.demixes:
        from ..morphology.unmixing import psf_sigma_px

        psf_sigma_px(config.psf_fwhm_um, roi_spacing)    # a PSF that does not fit the ROIs: refused now
    frames, spacing, notes = read_movie(movie, channel=channel, voxel_size=voxel_size, roi_ndim=spines.ndim)
    if not np.all(np.isfinite(spacing)):
        spacing = roi_spacing
        notes.append("the movie records no pixel size: the ROIs' is used")
    if frames.shape[1:] != spines.shape:
        raise InputError(f"The movie's frames are {frames.shape[1:]} but the ROIs {spines.shape}: the "
                         f"structural result must be of the same field of view and pixel grid.")
    if image is None:
        notes.append("registered to the movie's own mean image (the result has no image of the frames' shape)")
    table, shifts = extract_traces(frames, spines, dendrites, spacing, frame_rate_hz=config.frame_rate_hz,
                                   register=config.register, reference=image, baseline=config.baseline,
                                   percentile=config.percentile, window_s=config.window_s,
                                   neuropil_r=config.neuropil_r, smooth_frames=config.smooth_frames,
                                   background=config.background,
                                   psf_fwhm_um=config.psf_fwhm_um if config.demixes else None)
    out = ensure_writable_dir(out_dir)
    axes = "zyx"[-shifts.shape[1]:] if shifts.size else ""
    shifts_table = pd.DataFrame(shifts, columns=[f"shift_{a}_um" for a in axes])
    shifts_table.insert(0, "frame", np.arange(len(shifts_table)))
    written = {}
    for name, frame in (("traces.csv", table), ("dff.csv", wide(table)), ("shifts.csv", shifts_table)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=name == "dff.csv")
        written[name] = out / name
    fig = traces_figure(table)
    with atomic_path(out / "traces.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    written["traces.png"] = out / "traces.png"
    settings = {"movie": str(movie), "rois": str(result_dir), "config": asdict(config),
                "demixed": config.demixes,
                "frames": int(frames.shape[0]), "spacing_um": list(spacing), "notes": notes}
    written["traces.html"] = write_trace_page(out / "traces.html", table, shifts_table, fig, settings)
    with atomic_path(out / "traces.json") as tmp:
        Path(tmp).write_text(json.dumps(settings, indent=1, default=str))
    written["traces.json"] = out / "traces.json"
    return {"written": written, "notes": notes, "n_spines": int((table["kind"] == "spine").sum() // max(len(frames), 1))}
