"""An analysis result as napari layer data (data, metadata, layer type), in the voxel scale.

Points and paths are in voxel coordinates (µm divided by the spacing) so that every layer
shares one ``scale``, the voxel size in µm, and the viewer shows µm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Layer names the widgets look the results up by.
IMAGE, SPINES, DENDRITES, HEADS, CENTRELINES = "image", "spines", "dendrites", "spine heads", "centrelines"
SPINE_MAP, DENDRITE_MAP = "spine map", "dendrite map"

#: Colours of the spine types (points and labels coloured by type).
TYPE_COLOURS = {"mushroom": "#e6194b", "thin": "#3cb44b", "stubby": "#4363d8", "filopodia": "#f58231",
                "branched": "#911eb4"}


def head_points(spines: pd.DataFrame, spacing) -> np.ndarray:
    """Head centres of the spine table as voxel coordinates, one row per spine."""
    axes = "zyx"[3 - len(spacing):]
    cols = [f"head_{a}_um" for a in axes]
    if not len(spines):
        return np.zeros((0, len(spacing)))
    return spines[cols].to_numpy(float) / np.asarray(spacing, float)


def centreline_paths(centrelines: pd.DataFrame, spacing) -> list[np.ndarray]:
    """SWC nodes (x, y, z in µm) as unbranched paths of voxel coordinates (z, y, x) or (y, x)."""
    if centrelines is None or not len(centrelines):
        return []
    ids = centrelines["id"].to_numpy(int)
    parent = dict(zip(ids, centrelines["parent"].to_numpy(int)))
    coords = dict(zip(ids, centrelines[["z", "y", "x"]].to_numpy(float)[:, 3 - len(spacing):]
                      / np.asarray(spacing, float)))
    children: dict[int, list[int]] = {}
    for node, par in parent.items():
        children.setdefault(par, []).append(node)
    paths = []
    starts = [(None, n) for n in children.get(-1, [])]
    while starts:
        prev, node = starts.pop()
        path = [coords[prev]] if prev is not None else []
        while True:
            path.append(coords[node])
            kids = children.get(node, [])
            if len(kids) != 1:
                starts += [(node, k) for k in kids]
                break
            node = kids[0]
        if len(path) >= 2:
            paths.append(np.array(path))
    return paths


def heads_layer(spines: pd.DataFrame, spacing) -> tuple:
    meta = {"name": HEADS, "scale": tuple(spacing), "features": spines.reset_index(drop=True),
            "size": 5, "border_width": 0, "opacity": 0.8, "face_color": "white"}
    return head_points(spines, spacing), meta, "points"


def result_layers(result) -> list[tuple]:
    """Layer data tuples for every part of ``result`` (an AnalysisResult) that is present."""
    scale = tuple(result.spacing)
    layers = [(result.image, {"name": IMAGE, "scale": scale, "colormap": "gray"}, "image")]
    for data, name, colour in ((result.dendrite_prob, DENDRITE_MAP, "green"),
                               (result.spine_prob, SPINE_MAP, "magenta")):
        if data is not None:
            layers.append((data, {"name": name, "scale": scale, "colormap": colour, "blending": "additive",
                                  "visible": False, "contrast_limits": (0, 1)}, "image"))
    layers.append((np.asarray(result.dendrite_labels), {"name": DENDRITES, "scale": scale, "opacity": 0.3},
                   "labels"))
    layers.append((np.array(result.spine_labels, copy=True), {"name": SPINES, "scale": scale, "opacity": 0.6},
                   "labels"))
    layers.append(heads_layer(result.spines, scale))
    paths = centreline_paths(result.centrelines, scale)
    if paths:
        layers.append((paths, {"name": CENTRELINES, "scale": scale, "shape_type": "path", "edge_color": "yellow",
                               "edge_width": 1.0}, "shapes"))
    return layers
