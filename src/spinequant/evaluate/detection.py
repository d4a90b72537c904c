"""Spine detection: a predicted spine object finds a true spine when their centres lie
within a distance (µm) or their voxels overlap enough (IoU), one-to-one.

Centre distance forgives masks that differ in extent (blur, rater style); IoU forgives
centres displaced along long spines. Either suffices, as in the classical-method benchmark
of spinequant (1 µm or IoU 0.3).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .assign import assign_pairs
from .instances import overlaps
from .points import label_centroids
from .scores import detection_scores


def match_spine_objects(pred_labels, true_labels, *, spacing, max_distance_um: float = 1.0,
                        min_iou: float = 0.3, method: str = "hungarian") -> dict:
    """Match predicted spine objects to true ones by centre distance or IoU, one-to-one.

    Parameters
    ----------
    pred_labels, true_labels : int arrays of the same shape (0 = background)
    spacing : (z, y, x) µm
    max_distance_um : centres (voxel centroids, µm) at most this far apart match
    min_iou : objects with at least this IoU match

    Returns
    -------
    dict
        ``n_true, n_pred, tp, fp, fn, precision, recall, f1`` (values for empty inputs as in
        :mod:`spinequant.evaluate.scores`) and ``pairs``: list of (true_id, pred_id).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((3, 20, 20), int); t[1, 2:5, 2:5] = 1; t[1, 12:15, 12:15] = 2
    >>> p = np.zeros_like(t); p[1, 3:6, 3:6] = 7
    >>> r = match_spine_objects(p, t, spacing=(1, 0.1, 0.1))
    >>> r["tp"], r["fn"], r["fp"]
    (1, 1, 0)
    """
    ov = overlaps(pred_labels, true_labels)
    tc = label_centroids(true_labels, spacing=spacing).set_index("id").loc[ov.true_ids]
    pc = label_centroids(pred_labels, spacing=spacing).set_index("id").loc[ov.pred_ids]
    cols = ["z_um", "y_um", "x_um"]
    candidates: dict[tuple[int, int], float] = {}
    if len(tc) and len(pc):
        near = cKDTree(tc[cols].to_numpy()).sparse_distance_matrix(
            cKDTree(pc[cols].to_numpy()), max_distance_um, output_type="coo_matrix")
        for r, c, d in zip(near.row, near.col, near.data):
            candidates[(int(r), int(c))] = 1.0 - d / max(max_distance_um, 1e-9)
    for r, c, iou in zip(ov.pair_true, ov.pair_pred, ov.pair_iou):
        if iou >= min_iou:
            candidates[(int(r), int(c))] = max(candidates.get((int(r), int(c)), 0.0), float(iou))
    rows = np.array([k[0] for k in candidates], dtype=np.int64)
    colsi = np.array([k[1] for k in candidates], dtype=np.int64)
    score = np.array(list(candidates.values()), dtype=float)
    chosen = assign_pairs(rows, colsi, score, method=method)
    pairs = [(int(ov.true_ids[rows[k]]), int(ov.pred_ids[colsi[k]])) for k in chosen]
    return {"n_true": int(ov.true_ids.size), "n_pred": int(ov.pred_ids.size),
            **detection_scores(len(pairs), ov.pred_ids.size, ov.true_ids.size), "pairs": pairs}
