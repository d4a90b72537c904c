"""The tracking figure: a dendrite map over sessions (position along the dendrite against the
session day), one panel per centreline tree of the first session (matplotlib, no pyplot)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STATUS_STYLE = {"initial": ("o", "#444444"), "stable": ("o", "#444444"), "gained": ("^", "#2ca02c"),
                "lost": ("x", "#d62728"), "entered_view": ("o", "#bbbbbb"), "left_view": ("x", "#bbbbbb"),
                "missed": ("s", "#ff7f0e"), "reappeared": ("o", "#ff7f0e"),
                "undetected": ("s", "#1f77b4"), "first_detected": ("o", "#1f77b4")}


def kymograph_figure(tracks: pd.DataFrame, *, max_panels: int = 6) -> Figure:
    """Each track a horizontal line at its position along the dendrite (``along_um``, from
    :func:`~.turnover.along_dendrite`) from the first to the last session it was seen, a dot
    per session: grey present, green triangle gained, red cross lost (pale: in or out of view),
    orange missed for one session and seen again, blue not an object but in the spine map."""
    placed = tracks[tracks["tree"] >= 0]
    trees = sorted(placed["tree"].unique())[:max_panels] or [-1]
    fig = Figure(figsize=(3.2 * len(trees) + 1, 6))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(trees), sharey=False))
    days = sorted(tracks["day"].unique())
    for ax, tree in zip(axes, trees):
        rows = placed[placed["tree"] == tree]
        for _, t in rows.groupby("track_id"):
            t = t.sort_values("session")
            ax.plot(t["day"], t["along_um"], lw=0.6, color="#999999", zorder=1)
        for status, (marker, colour) in STATUS_STYLE.items():
            s = rows[rows["status"] == status]
            ax.scatter(s["day"], s["along_um"], marker=marker, c=colour, s=14, lw=0.8, zorder=2,
                       label=status if len(s) else None)
        ax.set_xticks(days)
        ax.set_xlabel("day")
        ax.set_title(f"dendrite {tree + 1}" if tree >= 0 else "no centreline", fontsize=9)
    axes[0].set_ylabel("position along the dendrite (µm, first session)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    return fig
