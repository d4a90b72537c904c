"""The traces figure: ΔF/F0 of every ROI over time, stacked (matplotlib, no pyplot)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def traces_figure(table: pd.DataFrame, *, max_rois: int = 40) -> Figure:
    """ΔF/F0 against time, one line per ROI (spines first, then dendrites), offset so they do
    not overlap; at most ``max_rois`` lines (the rest are in the CSV)."""
    rois = list(dict.fromkeys(table.sort_values(["kind", "roi_id"], ascending=[False, True])["roi"]))[:max_rois]
    fig = Figure(figsize=(10, 1.0 + 0.35 * max(len(rois), 1)))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    step = float(np.nanpercentile(table["dff"], 99)) if len(table) else 1.0
    step = step if np.isfinite(step) and step > 0 else 1.0
    for k, roi in enumerate(rois):
        rows = table[table["roi"] == roi]
        colour = "#d62728" if rows["kind"].iloc[0] == "spine" else "#e6a800"
        ax.plot(rows["time_s"], rows["dff"] + k * step, lw=0.7, color=colour)
        ax.text(rows["time_s"].iloc[0], k * step, roi, fontsize=6, va="bottom")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"ΔF/F0 (offset {step:.2g} per ROI)")
    ax.set_yticks([])
    ax.set_title("spines (red) and dendrites (yellow)", fontsize=9)
    fig.tight_layout()
    return fig
