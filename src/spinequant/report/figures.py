"""Figures that let a biologist check a result at a glance (matplotlib, no display needed).

Every figure takes a 3D result (Z, Y, X) or a 2D one (Y, X: a single plane or a projection);
a 2D image and a single-plane stack have no side view.

Figures are bare :class:`matplotlib.figure.Figure` objects drawn by Agg: nothing here goes
through pyplot, so importing or calling this module never switches the backend or leaves
figures open in a napari or Jupyter session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage.measure import find_contours

#: Colour per spine type, shared by every figure and the HTML legend.
TYPE_COLOURS = {"stubby": "#1f77b4", "thin": "#2ca02c", "mushroom": "#d62728", "branched": "#ff7f0e",
                "filopodia": "#9467bd", "unknown": "#7f7f7f"}
DENDRITE_COLOUR = "#ffd92f"


def _figure(figsize, **layout):
    """``(figure, axes)`` on a canvas of its own; ``layout`` goes to ``Figure.subplots``."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**layout)


def _display_range(image: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(image, [0.5, 99.8])
    return float(lo), float(max(hi, lo + 1e-6))


def _grey_rgba(image: np.ndarray, lo: float, hi: float, rows: int = 64) -> np.ndarray:
    """The RGBA bytes ``imshow(image, cmap="gray", vmin=lo, vmax=hi)`` draws, made a band of
    rows at a time: matplotlib colours a whole grey image as float64 RGBA before resampling
    it (32 MiB for 1024 x 1024, about 120 MiB with its copies while the figure is saved);
    given the bytes, it resamples those (the same pixels: tests/test_export.py)."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    cmap, norm = colormaps["gray"], Normalize(vmin=lo, vmax=hi)
    out = np.empty((*image.shape, 4), np.uint8)
    for start in range(0, image.shape[0], rows):
        out[start:start + rows] = cmap(norm(image[start:start + rows]), bytes=True)
    return out


def _outlines(mask: np.ndarray) -> list[np.ndarray]:
    """0.5 iso-lines (row, col) of a 2D mask; padded, so outlines at the border close and a
    mask one pixel thin (a projection of a single plane) works."""
    return [c - 1 for c in find_contours(np.pad(mask, 1).astype(float), 0.5)]


def _projection(volume: np.ndarray, axis: int) -> np.ndarray:
    """Maximum projection along ``axis``; a 2D image is its own top view."""
    return volume if volume.ndim == 2 else volume.max(axis=axis)


def overlay_projection(image, spine_labels, dendrite_labels, spines: pd.DataFrame, spacing, *,
                       axis: int = 0, ids: bool = True, ax=None):
    """Maximum projection with dendrite outline and spine outlines coloured by type.

    ``axis=0`` projects along z (x-y view), ``axis=1`` along y (x-z side view); a 2D image
    (y, x spacing) is shown as it is. The aspect follows the voxel size, so what the user
    sees is in µm.
    """
    if image.ndim == 2:
        image, spine_labels, dendrite_labels = image[None], spine_labels[None], dendrite_labels[None]
        spacing, axis = (1.0, *spacing), 0
    proj = _projection(image, axis)
    lo, hi = _display_range(proj)
    sp = [s for i, s in enumerate(spacing) if i != axis]
    extent = (0, proj.shape[1] * sp[1], proj.shape[0] * sp[0], 0)
    if ax is None:
        _, ax = _figure(figsize=(10, 10 * proj.shape[0] * sp[0] / max(proj.shape[1] * sp[1], 1e-6)))
    ax.imshow(_grey_rgba(proj, lo, hi), extent=extent, interpolation="nearest")
    # Projected first, then compared: no mask of the whole volume (101 MiB on 101 x 1024 x 1024).
    for contour in _outlines(dendrite_labels.max(axis=axis) > 0):
        ax.plot(contour[:, 1] * sp[1], contour[:, 0] * sp[0], color=DENDRITE_COLOUR, lw=0.8)
    types = dict(zip(spines["id"], spines["type"])) if len(spines) and "type" in spines else {}
    spine_proj = spine_labels.max(axis=axis)
    for label in np.unique(spine_proj[spine_proj > 0]):
        colour = TYPE_COLOURS.get(types.get(label, "unknown"), TYPE_COLOURS["unknown"])
        for contour in _outlines(spine_proj == label):
            ax.plot(contour[:, 1] * sp[1], contour[:, 0] * sp[0], color=colour, lw=0.9)
    if ids and len(spines):
        cols = [c for i, c in enumerate(("centroid_z_um", "centroid_y_um", "centroid_x_um")) if i != axis]
        if "centroid_z_um" not in spines:  # a 2D table
            cols = ["centroid_y_um", "centroid_x_um"]
        anchors = spines[[cols[1], cols[0]]].to_numpy(float)
        box = (0.028 * abs(extent[1] - extent[0]), 0.014 * abs(extent[1] - extent[0]))
        for sid, (x, y), (lx, ly) in zip(spines["id"], anchors, label_positions(anchors, box)):
            if (lx, ly) != (x, y):
                ax.plot([x, lx], [y, ly], color="white", lw=0.5, alpha=0.8)
            ax.text(lx, ly, str(sid), color="white", fontsize=7.5, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.12", fc="black", alpha=0.55, lw=0))
    ax.set_xlim(extent[0], extent[1])   # outlines and labels at the border do not widen the view
    ax.set_ylim(extent[2], extent[3])
    names = "zyx"
    ax.set_xlabel(f"{names[2] if axis != 2 else names[1]} (µm)")
    ax.set_ylabel(f"{[n for i, n in enumerate(names) if i != axis][0]} (µm)")
    return ax


def label_positions(anchors: np.ndarray, box: tuple[float, float]) -> list[tuple[float, float]]:
    """Where to write each label so that no two overlap: at its anchor (x, y) when there is
    room, else the nearest of 16 spots around it (one and two label sizes away) that is free;
    ``box`` is a label's (width, height) in data units. Greedy, in the given order.

    >>> label_positions(np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]]), (1.0, 0.5))[1:]
    [(0.1, -0.75), (5.0, 5.0)]
    """
    w, h = box
    steps = [(0.0, 0.0)] + [(k * dx * w * 1.1, k * dy * h * 1.5) for k in (1, 2)
                            for dx, dy in ((0, -1), (0, 1), (1, 0), (-1, 0), (1, -1), (-1, -1), (1, 1), (-1, 1))]
    placed: list[tuple[float, float]] = []
    for x, y in np.asarray(anchors, float).reshape(-1, 2):
        spot = next(((x + dx, y + dy) for dx, dy in steps
                     if all(abs(x + dx - px) >= w or abs(y + dy - py) >= h for px, py in placed)),
                    (x, y))
        placed.append((float(spot[0]), float(spot[1])))
    return placed


def histograms(spines: pd.DataFrame):
    """Histograms of volume (area for a 2D image), length, head diameter and, for networks that
    score their spines, the detection confidence; stacked by type."""
    size = (("area_um2", "area (µm²)") if "area_um2" in spines else ("volume_um3", "volume (µm³)"))
    columns = [size, ("length_um", "length (µm)"), ("head_diameter_um", "head diameter (µm)")]
    if "confidence" in spines and spines["confidence"].notna().any():
        columns.append(("confidence", "confidence (probability a human marks it)"))
    fig, axes = _figure(nrows=1, ncols=len(columns), figsize=(4 * len(columns), 3.2))
    for ax, (col, label) in zip(axes, columns):
        if col not in spines or spines[col].dropna().empty:
            ax.text(0.5, 0.5, "no spines", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel(label)
            continue
        values = spines[col].dropna()
        bins = np.histogram_bin_edges(values, bins=min(30, max(5, len(values) // 3)))
        groups = [(t, spines.loc[spines["type"] == t, col].dropna()) for t in TYPE_COLOURS
                  if "type" in spines and (spines["type"] == t).any()]
        if groups:
            ax.hist([g for _, g in groups], bins=bins, stacked=True,
                    color=[TYPE_COLOURS[t] for t, _ in groups], label=[t for t, _ in groups])
        else:
            ax.hist(values, bins=bins, color="grey")
        ax.set_xlabel(label)
        ax.set_ylabel("spines")
    if len(spines) and "type" in spines:
        axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def density_chart(dendrites: pd.DataFrame):
    """Spine density (per µm) of each dendrite, with its length."""
    fig, ax = _figure(figsize=(6, 3))
    if len(dendrites) and "density_per_um" in dendrites:
        ids = dendrites["dendrite_id"].astype(str)
        ax.bar(ids, dendrites["density_per_um"], color="#4c72b0")
        for x, (d, length) in enumerate(zip(dendrites["density_per_um"], dendrites["length_um"])):
            ax.text(x, d, f"{length:.1f} µm", ha="center", va="bottom", fontsize=7)
        ax.set_xlabel("dendrite")
        ax.set_ylabel("spines per µm")
    else:
        ax.text(0.5, 0.5, "no dendrite found", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def overview(image, spine_labels, dendrite_labels, spines, spacing):
    """Top view (x-y) over side view (x-z), both maximum projections in µm; the top view
    alone for a 2D image or a single plane."""
    if image.ndim == 2 or image.shape[0] == 1:
        return _top_view(image, spine_labels, dendrite_labels, spines, spacing)
    zy = image.shape[0] * spacing[0]
    yy = image.shape[1] * spacing[1]
    fig, axes = _figure(nrows=2, ncols=1, figsize=(11, 11 * (yy + zy) / max(image.shape[2] * spacing[2], 1e-6) + 1),
                             gridspec_kw={"height_ratios": [max(yy, 1e-3), max(zy, 1e-3)]})
    overlay_projection(image, spine_labels, dendrite_labels, spines, spacing, axis=0, ax=axes[0])
    overlay_projection(image, spine_labels, dendrite_labels, spines, spacing, axis=1, ax=axes[1])
    _legend(axes[0])
    axes[0].set_title("top view (maximum projection along z)", fontsize=9)
    axes[1].set_title("side view (maximum projection along y)", fontsize=9)
    fig.tight_layout()
    return fig


def _top_view(image, spine_labels, dendrite_labels, spines, spacing):
    """The overview of a 2D image or a single plane: the plane itself, no side view."""
    yy, xx = (n * s for n, s in zip(image.shape[-2:], spacing[-2:]))
    fig, ax = _figure(figsize=(11, 11 * yy / max(xx, 1e-6) + 0.6))
    overlay_projection(image, spine_labels, dendrite_labels, spines, spacing, axis=0, ax=ax)
    _legend(ax)
    ax.set_title("the image (a single plane or a projection)" if image.ndim == 2
                 else "the single plane of the stack", fontsize=9)
    fig.tight_layout()
    return fig


def _legend(ax) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=DENDRITE_COLOUR, label="dendrite")] + [
        Line2D([], [], color=c, label=t) for t, c in TYPE_COLOURS.items() if t != "unknown"]
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.6, ncol=5)
