"""Matching detected spines to annotated points within a distance in µm.

Points are (z, y, x) in µm. Points in voxel indices are converted with
:func:`voxels_to_um`; the voxel size then scales z apart from x and y. The tolerance is a
sphere (one radius) or an ellipsoid (semi-axes z, y, x), so a z step several times the pixel
size can be given a wider tolerance in z, as DeepD3 did (2.5 µm in z, 0.85 µm in xy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ..errors import InputError
from ..validate import check_spacing
from .assign import assign_pairs
from .scores import detection_scores


def as_points(points, *, what: str = "points") -> np.ndarray:
    """``points`` as a float array of shape (N, 3), ordered z, y, x."""
    if isinstance(points, pd.DataFrame):
        cols = [c for c in ("z_um", "y_um", "x_um") if c in points.columns]
        points = points[cols].to_numpy() if len(cols) == 3 else points.to_numpy()
    arr = np.asarray(points, dtype=float)
    if arr.size == 0:
        return np.zeros((0, 3))
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"The {what} must be a table of (z, y, x) coordinates, one row per "
                         f"point; got an array of shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise InputError(f"Some of the {what} have missing or infinite coordinates; remove those rows.")
    return arr


def voxels_to_um(points_zyx, *, spacing) -> np.ndarray:
    """Convert (z, y, x) voxel coordinates to µm with the voxel size ``spacing`` (z, y, x)."""
    return as_points(points_zyx) * np.asarray(check_spacing(spacing))


def tolerance_radii(max_distance_um) -> np.ndarray:
    """The tolerance as three semi-axes (z, y, x) in µm, from one number or three."""
    radii = np.atleast_1d(np.asarray(max_distance_um, dtype=float))
    if radii.size == 1:
        radii = np.repeat(radii, 3)
    if radii.size != 3 or not np.isfinite(radii).all() or (radii <= 0).any():
        raise InputError(
            f"The matching distance must be one positive number of µm, or three (z, y, x); "
            f"got {max_distance_um!r}."
        )
    return radii


def candidate_pairs(a, b, radii) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, scaled distance) of points of ``a`` and ``b`` within the tolerance ``radii``.

    Each axis is divided by its radius (z, y, x); pairs with a scaled distance <= 1 (plus
    rounding slack, so that a point exactly on the ellipsoid counts) are returned.
    """
    a, b, radii = as_points(a), as_points(b), np.asarray(radii, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    found = cKDTree(a / radii).sparse_distance_matrix(cKDTree(b / radii), 1.0 + 1e-9,
                                                      output_type="ndarray")
    i, j, d = found["i"].astype(int), found["j"].astype(int), found["v"].astype(float)
    return i, j, d


def match_points(pred_um, true_um, *, max_distance_um=(2.5, 0.85, 0.85),
                 method: str = "hungarian") -> dict:
    """Match predicted to annotated points one-to-one within a distance.

    Parameters
    ----------
    pred_um, true_um : array (N, 3) or DataFrame with z_um, y_um, x_um
        Points in µm, ordered (z, y, x).
    max_distance_um : float or 3 floats
        Tolerance: a sphere radius, or ellipsoid semi-axes (z, y, x) in µm. Points exactly
        at the tolerance match.
    method : {"hungarian", "greedy"}
        Hungarian maximises the number of pairs, then minimises their summed (scaled)
        distance; greedy takes the closest pair first.

    Returns
    -------
    dict
        ``n_true, n_pred, tp, fp, fn, precision, recall, f1, mean_distance_um`` and
        ``pairs`` (DataFrame ``pred_index, true_index, distance_um``: row indices into the
        inputs and the Euclidean distance in µm). ``mean_distance_um`` is NaN when nothing
        matched; the other values follow :mod:`spinequant.evaluate.scores` (F1 = 1 when both
        are empty, 0 when one is).

    Examples
    --------
    >>> r = match_points([[0, 0, 0], [0, 5, 5]], [[2, 0, 0.5]], max_distance_um=(2.5, 0.85, 0.85))
    >>> r["tp"], r["fp"], r["fn"], r["recall"], round(r["precision"], 2)
    (1, 1, 0, 1.0, 0.5)
    """
    pred, true = as_points(pred_um, what="predicted points"), as_points(true_um, what="true points")
    radii = tolerance_radii(max_distance_um)
    i, j, d = candidate_pairs(pred, true, radii)
    chosen = assign_pairs(i, j, d, method=method, larger_is_better=False)
    order = chosen[np.argsort(i[chosen], kind="stable")]
    rows, cols = i[order], j[order]
    distance = np.linalg.norm(pred[rows] - true[cols], axis=1) if len(rows) else np.zeros(0)
    pairs = pd.DataFrame({"pred_index": rows, "true_index": cols, "distance_um": distance})
    tp = len(pairs)
    return {"n_true": len(true), "n_pred": len(pred),
            **detection_scores(tp, len(pred), len(true)),
            "mean_distance_um": float(distance.mean()) if tp else float("nan"), "pairs": pairs}


def label_centroids(labels, *, spacing) -> pd.DataFrame:
    """Centroid of every object of an instance label image, in µm: ``id, z_um, y_um, x_um``.

    A 2D label image (Y, X) with ``spacing`` (y, x) gives points on its plane: ``z_um`` is 0.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        sp = np.asarray(check_spacing(spacing, ndim=2))
        flat = label_centroids(labels[None], spacing=(1.0, *sp))   # z index 0 stays 0 µm
        return flat.assign(z_um=0.0)
    sp = np.asarray(check_spacing(spacing))
    flat = labels.ravel().astype(np.int64, copy=False)
    ids = np.unique(flat[flat > 0])
    if ids.size == 0:
        return pd.DataFrame({"id": np.zeros(0, int), "z_um": [], "y_um": [], "x_um": []})
    index = np.searchsorted(ids, flat[flat > 0])
    coords = np.nonzero(labels.reshape(labels.shape) > 0)
    counts = np.bincount(index, minlength=ids.size)
    centre = [np.bincount(index, weights=c, minlength=ids.size) / counts * s for c, s in zip(coords, sp)]
    return pd.DataFrame({"id": ids, "z_um": centre[0], "y_um": centre[1], "x_um": centre[2]})
