"""The table of cells (one row per cell, µm) and a summary of a volume."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.measure import marching_cubes

from ..errors import InputError
from ..evaluate.points import label_centroids
from ..validate import check_spacing

#: Columns of cells.csv before the intensity columns (``mean_intensity_<channel>``, ``max_intensity_<channel>``).
CELL_COLUMNS = ["id", "centroid_z_um", "centroid_y_um", "centroid_x_um", "volume_um3", "equivalent_diameter_um",
                "surface_um2", "sphericity", "n_voxels", "touches_border"]


def measure_cells(labels, spacing, *, intensities: dict | None = None) -> pd.DataFrame:
    """One row per cell of the label image ``labels`` (Z, Y, X; ids > 0), in µm.

    ``volume_um3`` counts the voxels; ``surface_um2`` is the area of the marching-cubes
    surface of the cell's mask (µm, anisotropic voxels), and ``sphericity`` = π^(1/3) (6V)^(2/3)
    / A with V and A of that same closed surface (1 for a sphere, lower for elongated or
    ragged cells; cells of a few voxels get a rough value). ``intensities`` maps a channel
    name to a volume of the labels' shape: each gets ``mean_intensity_<name>`` and
    ``max_intensity_<name>`` (raw values).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputError(f"Cell labels must be a 3D volume (Z, Y, X); got shape {labels.shape}.")
    spacing = check_spacing(spacing, ndim=3, where="the cell labels")
    centres = label_centroids(labels, spacing=spacing)
    ids = centres["id"].to_numpy(np.int64)
    counts = np.bincount(labels.ravel(), minlength=int(ids.max(initial=0)) + 1)[ids]
    voxel = float(np.prod(spacing))
    volume = counts * voxel
    surface, sphericity = _surfaces(labels, ids, spacing)
    table = pd.DataFrame({
        "id": ids, "centroid_z_um": centres["z_um"], "centroid_y_um": centres["y_um"],
        "centroid_x_um": centres["x_um"], "volume_um3": volume,
        "equivalent_diameter_um": np.cbrt(6 * volume / np.pi), "surface_um2": surface, "sphericity": sphericity,
        "n_voxels": counts, "touches_border": np.isin(ids, _border_ids(labels))}, columns=CELL_COLUMNS)
    for name, data in (intensities or {}).items():
        data = np.asarray(data)
        if data.shape != labels.shape:
            raise InputError(f"The intensity channel '{name}' has shape {data.shape}, the labels {labels.shape}; "
                             f"both must come from the same stack.")
        values = data.astype(np.float64, copy=False)
        table[f"mean_intensity_{name}"] = ndi.mean(values, labels, ids) if len(ids) else []
        table[f"max_intensity_{name}"] = ndi.maximum(values, labels, ids) if len(ids) else []
    return table


def _border_ids(labels: np.ndarray) -> np.ndarray:
    faces = [labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]]
    return np.unique(np.concatenate([f.ravel() for f in faces]))


def _surfaces(labels, ids, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes area (µm²) and sphericity of each cell (its mask padded by one voxel, so
    a cell cut by the volume's border is closed there)."""
    boxes = ndi.find_objects(labels)
    area = np.full(len(ids), np.nan)
    sphericity = np.full(len(ids), np.nan)
    for row, cell_id in enumerate(ids):
        mask = np.pad(labels[boxes[cell_id - 1]] == cell_id, 1).astype(np.float32)
        verts, faces, _, _ = marching_cubes(mask, 0.5, spacing=spacing)
        triangles = verts[faces]
        normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        surface = 0.5 * float(np.linalg.norm(normals, axis=1).sum())
        # enclosed volume by the divergence theorem (signed tetrahedra from the origin)
        enclosed = abs(float(np.einsum("ij,ij->i", triangles[:, 0],
                                       np.cross(triangles[:, 1], triangles[:, 2])).sum()) / 6.0)
        area[row] = surface
        sphericity[row] = np.pi ** (1 / 3) * (6 * enclosed) ** (2 / 3) / surface if surface > 0 else np.nan
    return area, sphericity


def summarize_cells(cells: pd.DataFrame, shape, spacing) -> dict:
    """Counts and density per mm³ of the imaged volume (the whole stack, µm -> mm)."""
    spacing = check_spacing(spacing, ndim=3, where="the cell volume")
    volume_mm3 = float(np.prod(np.asarray(shape) * np.asarray(spacing))) * 1e-9
    n = int(len(cells))
    med = (lambda c: float(cells[c].median()) if n else float("nan"))
    return {"n_cells": n, "imaged_volume_mm3": volume_mm3, "density_per_mm3": n / volume_mm3,
            "n_touching_border": int(cells["touches_border"].sum()) if n else 0,
            "median_volume_um3": med("volume_um3"), "median_equivalent_diameter_um": med("equivalent_diameter_um"),
            "median_sphericity": med("sphericity"),
            "cell_volume_fraction": float(cells["volume_um3"].sum()) * 1e-9 / volume_mm3 if n else 0.0}
