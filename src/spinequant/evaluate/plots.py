"""Figures of the evaluation: the F1-vs-IoU curve and the rater agreement matrix (PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .._atomic import atomic_path


def _figure(size):
    # A bare Figure draws with Agg and leaves pyplot's global backend alone (safe in Jupyter).
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots()


def _save(fig, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    return path


def plot_matching_curve(curve: pd.DataFrame, path: str | os.PathLike, *, title: str = "") -> Path:
    """Plot precision, recall, F1 and mean matched IoU against the IoU threshold; write a PNG."""
    fig, ax = _figure((5, 4))
    for column, style in (("f1", "o-"), ("precision", "s--"), ("recall", "^--"), ("mean_matched_iou", "d:")):
        ax.plot(curve["iou_threshold"], curve[column], style, label=column.replace("_", " "))
    ax.set(xlabel="IoU threshold", ylabel="score", ylim=(-0.02, 1.02), xlim=(0, 1),
           title=title or "Instance matching")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_rater_matrix(matrix: pd.DataFrame, path: str | os.PathLike, *, title: str = "") -> Path:
    """Heat map of a reliability matrix (row rater's spines found by the column rater), PNG."""
    n = len(matrix)
    fig, ax = _figure((1.6 + 0.6 * n, 1.2 + 0.6 * n))
    image = ax.imshow(matrix.to_numpy(float), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(n), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(i) for i in matrix.index])
    for i in range(n):
        for j in range(n):
            v = matrix.iat[i, j]
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=8,
                    color="black" if v > 0.6 else "white")
    ax.set(xlabel="found by (rater 2)", ylabel="spines of (rater 1)",
           title=title or "Spines of rater 1 found by rater 2 (%)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction")
    return _save(fig, path)
