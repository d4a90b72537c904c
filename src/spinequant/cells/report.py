"""The report of a cell run: projections with cell outlines, histograms, report.html."""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..config import config_to_dict
from ..report.figures import _display_range, _figure, _outlines
from ..report.html import _save_png

FIGURES = {"overview.png": "Cells: maximum projections with outlines", "histograms.png": "Cell measurements"}


def cell_overview(result):
    """Top view (along z) over side view (along y): maximum projections in µm with every
    cell's outline in a colour of its own, so that touching cells show where they were split."""
    image, labels, spacing = result.image, result.labels, result.spacing
    zy, yy, xx = (n * s for n, s in zip(image.shape, spacing))
    fig, axes = _figure(nrows=2, ncols=1, figsize=(9, 9 * (yy + zy) / max(xx, 1e-6) + 1),
                        gridspec_kw={"height_ratios": [max(yy, 1e-3), max(zy, 1e-3)]})
    colours = matplotlib.colormaps["tab20"].colors
    for ax, axis, title in ((axes[0], 0, "top view (maximum projection along z)"),
                            (axes[1], 1, "side view (maximum projection along y)")):
        proj = image.max(axis=axis)
        rows, cols = [s for i, s in enumerate(spacing) if i != axis]
        lo, hi = _display_range(proj)
        # voxel (i, j) is centred at (i * dy, j * dx), as the coordinates in cells.csv
        ax.imshow(proj, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                  extent=(-cols / 2, (proj.shape[1] - 0.5) * cols, (proj.shape[0] - 0.5) * rows, -rows / 2))
        # the nearest cell to the viewer along the axis decides the outline (first in the projection)
        front = _front_labels(labels, axis)
        for i in np.unique(front[front > 0]):
            for c in _outlines(front == i):
                ax.plot(c[:, 1] * cols, c[:, 0] * rows, color=colours[int(i) % len(colours)], lw=0.8)
        ax.set_xlabel("x (µm)")
        ax.set_ylabel("y (µm)" if axis == 0 else "z (µm)")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _front_labels(labels: np.ndarray, axis: int) -> np.ndarray:
    """The first non-zero label along ``axis`` at every position of the projection."""
    first = np.argmax(labels > 0, axis=axis)
    return np.take_along_axis(labels, np.expand_dims(first, axis), axis=axis).squeeze(axis)


def cell_histograms(cells: pd.DataFrame):
    columns = [("volume_um3", "volume (µm³)"), ("equivalent_diameter_um", "equivalent diameter (µm)"),
               ("sphericity", "sphericity")]
    fig, axes = _figure(nrows=1, ncols=len(columns), figsize=(4 * len(columns), 3.2))
    for ax, (col, label) in zip(axes, columns):
        values = cells[col].dropna() if col in cells else pd.Series(dtype=float)
        if values.empty:
            ax.text(0.5, 0.5, "no cells", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.hist(values, bins=min(40, max(5, len(values) // 4)), color="#4c72b0")
        ax.set_xlabel(label)
        ax.set_ylabel("cells")
    fig.tight_layout()
    return fig


def write_cell_report(out_dir, result, *, source: dict | None = None) -> Path:
    """overview.png, histograms.png and a self-contained report.html in ``out_dir``."""
    from .. import __version__

    out_dir = Path(out_dir)
    images = {"overview.png": _save_png(cell_overview(result), out_dir / "overview.png"),
              "histograms.png": _save_png(cell_histograms(result.cells), out_dir / "histograms.png")}
    s = result.summary
    body = [
        "<h1>spinequant cells report</h1>",
        f"<p><b>Volume:</b> {html.escape(str((source or {}).get('path', 'array')))} &nbsp; <b>shape</b> "
        f"{result.image.shape} (z, y, x) &nbsp; <b>voxel</b> {' × '.join(f'{v:g}' for v in result.spacing)} µm</p>",
        f"<p><b>{s['n_cells']} cells</b> in {s['imaged_volume_mm3']:.4g} mm³: <b>{s['density_per_mm3']:.4g} per "
        f"mm³</b>; median volume {s['median_volume_um3']:.4g} µm³, median equivalent diameter "
        f"{s['median_equivalent_diameter_um']:.3g} µm; {s['n_touching_border']} cells touch the border of the "
        f"volume (counted, their volume is cut).</p>",
    ]
    for name, title in FIGURES.items():
        b64 = base64.b64encode(images[name]).decode()
        body.append(f"<h2>{title}</h2><img src=\"data:image/png;base64,{b64}\" alt=\"{name}\">")
    if len(result.cells):
        body.append("<h2>Cells</h2>" + result.cells.head(500).to_html(index=False, float_format="%.4g")
                    + ("<p>(first 500 rows; all of them are in cells.csv)</p>" if len(result.cells) > 500 else ""))
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    body.append(f"<h2>Run</h2><p>spinequant {__version__}, {time.strftime('%Y-%m-%d %H:%M')}. Stage times: "
                f"{timings}</p>")
    params = json.dumps({"config": config_to_dict(result.config), "found": result.diagnostics}, indent=1,
                        default=str)
    body.append(f"<details><summary>All parameters</summary><pre>{html.escape(params)}</pre></details>")
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>spinequant cells report</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}img{max-width:100%}"
            "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;"
            "text-align:right}</style></head><body>" + "\n".join(body) + "</body></html>")
    path = out_dir / "report.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return path
