"""Dendrite traces (SWC) and spine points to label masks, as DeepD3's ground truth was built.

* Dendrites: balls of the traced radius swept along every SWC segment (DeepD3 drew
  "interpolated spheres between the anchor points" of its NeuTube traces; this is
  :func:`spinequant.evaluate.swc_mask.swc_to_mask`). Nodes without a radius (0, negative or
  missing) get one measured in the image: half the full width at half maximum of the
  intensity across the trace, in the plane of the node, then the median of those widths
  within 3 µm along the trace (:func:`estimate_radii`).
* Spines: each point (CSV in µm or pixels, Fiji CellCounter XML, ImageJ ROI points; read by
  :func:`spinequant.evaluate.readers.read_points`) grows a region in the smoothed image:
  voxels connected to the point, within ``spine_radius_um`` of it, outside the dendrite
  mask and at least ``threshold`` of the way from the background to the point's brightness.
  Where two regions meet, a watershed on the intensity splits them (:func:`grow_spines`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import InputError
from ..evaluate.swc_mask import swc_to_mask
from ..validate import check_spacing


@dataclass(frozen=True)
class TraceConfig:
    """Settings of :func:`traces_ground_truth` (µm where they are lengths)."""

    spine_radius_um: float = 1.0      # how far a spine grows from its point
    threshold: float = 0.7            # fraction of the way from background to the point's brightness
    snap_um: float = 0.3              # a point moves to the brightest voxel within this distance
    smooth_um: float = 0.05           # Gaussian sigma of the image the spines grow in
    profile_um: float = 2.5           # half-length of the intensity profile across a trace
    min_radius_um: float = 0.1
    max_radius_um: float = 2.0
    # A radius from the image is this percentile of the widths measured within this path
    # distance along the trace: a spine or a neighbour beside the shaft only widens a profile
    # (docs/evaluation.md, "Ground truth from traces", has the comparison behind 3 µm and 50).
    radius_window_um: float = 3.0
    radius_percentile: float = 50.0


def _background(image: np.ndarray) -> float:
    return float(np.percentile(image, 50))


def estimate_radii(nodes: pd.DataFrame, image: np.ndarray, spacing,
                   config: TraceConfig = TraceConfig()) -> np.ndarray:
    """Radius (µm) of each SWC node from the image: half the FWHM across the trace.

    The profile runs in the xy-plane of the node, across the direction to its parent (or
    its first child), where the microscope resolves best. Each radius is then the
    ``radius_percentile`` of the raw widths of the nodes within ``radius_window_um`` of it
    along the trace: spines, boutons and crossing neurites beside the shaft only widen a
    profile, so the median over a few µm ignores them where they are sparse (a swelling
    shorter than half the window is drawn at the shaft's width around it).
    """
    sp = np.asarray(check_spacing(spacing), float)
    img = np.asarray(image, np.float32)
    bg = _background(img)
    ids = nodes["id"].to_numpy(int)
    parents = nodes["parent"].to_numpy(int)
    zyx = nodes[["z", "y", "x"]].to_numpy(float)
    row = {int(i): k for k, i in enumerate(ids)}
    children: dict[int, list[int]] = {}
    for k, p in enumerate(parents):
        if p in row:
            children.setdefault(row[p], []).append(k)
    step = float(sp[1:].min()) / 2
    offsets = np.arange(-config.profile_um, config.profile_um + step / 2, step)
    raw = np.full(len(nodes), np.nan)
    for k in range(len(nodes)):
        other = row.get(int(parents[k]), children.get(k, [k])[0])
        direction = zyx[k] - zyx[other]
        across = np.array([0.0, -direction[2], direction[1]])      # perpendicular in the xy-plane
        norm = np.linalg.norm(across)
        across = across / norm if norm > 1e-9 else np.array([0.0, 0.0, 1.0])
        points = (zyx[k] + offsets[:, None] * across) / sp
        profile = ndi.map_coordinates(img, points.T, order=1, mode="nearest")
        near = np.abs(offsets) <= max(config.min_radius_um, 0.3)
        peak_at = int(np.flatnonzero(near)[np.argmax(profile[near])])
        half = bg + 0.5 * (profile[peak_at] - bg)
        if profile[peak_at] <= bg:
            continue
        below = profile < half
        right = np.flatnonzero(below[peak_at:])
        left = np.flatnonzero(below[:peak_at + 1][::-1])
        if right.size and left.size:
            raw[k] = (right[0] + left[0]) * step / 2
    out = np.array([_percentile_or_nan(raw[group], config.radius_percentile)
                    for group in _within_path_distance(zyx, parents, row, config.radius_window_um)])
    if np.isnan(out).all():
        raise InputError("No radius could be measured along the trace: the image is not brighter along it "
                         "than its background. Check that the trace (µm) belongs to this image, or give "
                         "radii in the SWC file.")
    out[np.isnan(out)] = np.nanmedian(out)
    return np.clip(out, config.min_radius_um, config.max_radius_um)


def _percentile_or_nan(values: np.ndarray, q: float) -> float:
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else np.nan


def _within_path_distance(zyx: np.ndarray, parents: np.ndarray, row: dict, limit_um: float) -> list[list[int]]:
    """For each node, the nodes (itself included) within ``limit_um`` of it along the tree."""
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(len(zyx))]
    for k, p in enumerate(parents):
        if int(p) in row:
            j = row[int(p)]
            d = float(np.linalg.norm(zyx[k] - zyx[j]))
            neighbours[k].append((j, d))
            neighbours[j].append((k, d))
    groups = []
    for k in range(len(zyx)):
        reached = {k: 0.0}
        front = [k]
        while front:
            nxt = []
            for i in front:
                for j, d in neighbours[i]:
                    dist = reached[i] + d
                    if dist <= limit_um and dist < reached.get(j, np.inf):
                        reached[j] = dist
                        nxt.append(j)
            front = nxt
        groups.append(list(reached))
    return groups


def trace_mask(nodes: pd.DataFrame, *, shape, spacing, image: np.ndarray | None = None,
               config: TraceConfig = TraceConfig()):
    """``(dendrite mask, info)`` from an SWC table (µm); radii missing in it come from ``image``.

    ``info["radius_source"]`` is ``"swc"``, ``"image"`` or ``"swc+image"``;
    ``info["median_radius_um"]`` the median radius drawn.
    """
    nodes = nodes.copy()
    radius = nodes["radius"].to_numpy(float)
    missing = ~np.isfinite(radius) | (radius <= 0)
    source = "swc"
    if missing.any():
        if image is None:
            raise InputError(f"{int(missing.sum())} of {len(nodes)} SWC nodes have no radius; give the image "
                             f"so that their radius can be measured, or radii in the SWC file.")
        radius = np.where(missing, estimate_radii(nodes, image, spacing, config), radius)
        source = "image" if missing.all() else "swc+image"
        nodes["radius"] = radius
    mask = swc_to_mask(nodes, shape=shape, spacing=spacing)
    return mask, {"radius_source": source, "nodes": len(nodes),
                  "median_radius_um": round(float(np.median(radius)), 4) if len(radius) else 0.0}


def grow_spines(points_um: np.ndarray, image: np.ndarray, spacing, *, dendrite_mask: np.ndarray | None = None,
                config: TraceConfig = TraceConfig()):
    """``(spine labels, info)``: spine ``i`` grown from ``points_um[i - 1]`` (z, y, x µm).

    ``info`` lists per point its ``seed`` voxel and ``voxels``; points outside the image or
    whose region is empty are counted in ``empty``.
    """
    sp = np.asarray(check_spacing(spacing), float)
    img = np.asarray(image, np.float32)
    smooth = ndi.gaussian_filter(img, np.maximum(config.smooth_um / sp, 0.0))
    bg = _background(smooth)
    shape = img.shape
    free = np.ones(shape, bool) if dendrite_mask is None else ~np.asarray(dendrite_mask, bool)
    reach = np.ceil(config.spine_radius_um / sp).astype(int)
    regions = np.zeros(shape, np.int32)
    markers = np.zeros(shape, np.int32)
    union = np.zeros(shape, bool)
    seeds, sizes, empty = [], [], 0
    points = np.asarray(points_um, float).reshape(-1, 3)
    for index, point in enumerate(points, start=1):
        centre = np.round(point / sp).astype(int)
        if np.any(centre < 0) or np.any(centre >= shape):
            seeds.append(None)
            sizes.append(0)
            empty += 1
            continue
        lo = np.maximum(centre - reach, 0)
        hi = np.minimum(centre + reach + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grid = np.ogrid[box]
        dist = np.sqrt(sum(((g * s) - c) ** 2 for g, s, c in zip(grid, sp, point)))
        local = smooth[box]
        near = (dist <= max(config.snap_um, float(sp.max()) / 2)) & free[box]
        seed_local = np.unravel_index(np.argmax(np.where(near, local, -np.inf)), local.shape)
        level = float(local[seed_local]) if near.any() else bg
        threshold = bg + config.threshold * (level - bg)
        allowed = (dist <= config.spine_radius_um) & (local >= threshold) & free[box]
        comp, _ = ndi.label(allowed, np.ones((3, 3, 3)))
        own = (comp == comp[seed_local]) & allowed if allowed[seed_local] else np.zeros_like(allowed)
        seed = tuple(int(a + b) for a, b in zip(lo, seed_local))
        seeds.append(seed)
        sizes.append(int(own.sum()))
        if not own.any():
            empty += 1
            continue
        regions[box][own] = index            # the last point's region where two overlap, fixed below
        union[box] |= own
        markers[seed] = index
    if union.any() and markers.max() > 1:
        from skimage.segmentation import watershed

        split = watershed(-smooth, markers, mask=union)
        regions = np.where(union, split, 0).astype(np.int32)
    return regions, {"points": len(points), "empty": empty, "seeds": seeds, "voxels": sizes}


def traces_ground_truth(image: np.ndarray, spacing, *, swc: pd.DataFrame | None = None,
                        points_um: np.ndarray | None = None, config: TraceConfig = TraceConfig()):
    """``(spine labels, dendrite labels, report)`` from a trace and/or spine points.

    Dendrite ids are the connected parts of the trace mask; spines grow outside it.
    """
    image = np.asarray(image)
    if swc is None and points_um is None:
        raise InputError("Give a dendrite trace (SWC) and/or spine points to make ground truth from.")
    report: dict = {}
    dendrites = np.zeros(image.shape, np.int32)
    if swc is not None:
        mask, report["dendrites"] = trace_mask(swc, shape=image.shape, spacing=spacing, image=image, config=config)
        dendrites = ndi.label(mask, np.ones((3, 3, 3)))[0].astype(np.int32)
    spines = np.zeros(image.shape, np.int32)
    if points_um is not None:
        spines, info = grow_spines(points_um, image, spacing, dendrite_mask=dendrites > 0, config=config)
        report["spines"] = {"points": info["points"], "empty": info["empty"],
                            "median_voxels": float(np.median(info["voxels"])) if info["voxels"] else 0.0}
    return spines, dendrites, report
