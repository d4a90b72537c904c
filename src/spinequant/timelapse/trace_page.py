"""``traces.html``: one self-contained page (figures embedded) for ``spinequant traces``:
the ΔF/F0 traces, the motion that was corrected, and a row of numbers per ROI."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._atomic import atomic_path


def shifts_figure(shifts: pd.DataFrame) -> Figure:
    """The rigid shift per axis (µm) against the frame."""
    fig = Figure(figsize=(10, 2.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for col in [c for c in shifts.columns if c.startswith("shift_")]:
        ax.plot(shifts["frame"], shifts[col], lw=0.8, label=col.split("_")[1])
    ax.set_xlabel("frame")
    ax.set_ylabel("shift (µm)")
    ax.legend(fontsize=7, frameon=False, ncol=3)
    fig.tight_layout()
    return fig


def roi_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per ROI: its kind, parent dendrite, mean raw F, and the peak, mean and standard
    deviation of its ΔF/F0 over the movie."""
    grouped = table.groupby(["kind", "roi_id", "roi"], sort=False)
    out = grouped.agg(dendrite_id=("dendrite_id", "first"), mean_raw=("raw", "mean"), peak_dff=("dff", "max"),
                      mean_dff=("dff", "mean"), sd_dff=("dff", "std")).reset_index()
    return out.sort_values(["kind", "roi_id"], ascending=[False, True]).drop(columns="roi_id")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_trace_page(path, table: pd.DataFrame, shifts: pd.DataFrame, traces_fig: Figure, settings: dict) -> Path:
    """Write ``traces.html`` (atomically) from the long trace table, the shifts table, the
    traces figure and the run's settings."""
    summary = roi_summary(table)
    n_frames = int(table["frame"].nunique()) if len(table) else 0
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v)) if not isinstance(v, float) else f'{v:.3g}'}</td>"
                         for v in r) + "</tr>" for r in summary.itertuples(index=False))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in summary.columns)
    moved = ""
    if len(shifts):
        values = shifts[[c for c in shifts.columns if c.startswith("shift_")]].to_numpy(float)
        moved = (f"<p>Largest shift {float(np.abs(values).max()):.2f} µm; "
                 f"RMS {float(np.sqrt((values ** 2).sum(axis=1).mean())):.2f} µm.</p>"
                 f'<img src="data:image/png;base64,{_png(shifts_figure(shifts))}" style="max-width:100%">')
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in settings.get("notes", []))
    body = [
        "<h1>spinequant traces</h1>",
        f"<p><b>Movie:</b> {html.escape(str(settings.get('movie')))} &nbsp; <b>ROIs:</b> "
        f"{html.escape(str(settings.get('rois')))} &nbsp; <b>{n_frames} frames</b> at "
        f"{settings.get('config', {}).get('frame_rate_hz')} Hz</p>",
        f"<ul>{notes}</ul>" if notes else "",
        "<h2>ΔF/F0</h2>", f'<img src="data:image/png;base64,{_png(traces_fig)}" style="max-width:100%">',
        "<h2>Motion corrected</h2>", moved or "<p>No registration.</p>",
        "<h2>Per ROI</h2>", f"<table border=1 cellspacing=0 cellpadding=3><tr>{head}</tr>{rows}</table>",
        "<p>All values per frame are in traces.csv (long) and dff.csv (a column per ROI).</p>",
    ]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>spinequant traces</title>"
            "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}td,th{font-size:12px}</style>"
            "</head><body>" + "\n".join(body) + "</body></html>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return Path(path)
