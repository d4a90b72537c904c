"""Object-level scores of instance label images: one-to-one matching by IoU.

Predicted and true objects are paired one-to-one (Hungarian or greedy) among pairs whose
IoU reaches a threshold; precision, recall, F1 and the mean IoU of matched pairs follow, and
as functions of the threshold they give the curve StarDist and CellSeg3D plot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from .assign import assign_pairs
from .config import DEFAULT_IOU_THRESHOLDS
from .scores import detection_scores
from .semantic import same_shape


@dataclass(frozen=True)
class Overlaps:
    """Voxels shared by true and predicted objects, as a sparse list of overlapping pairs.

    ``true_ids`` / ``pred_ids`` list the object ids and ``true_sizes`` / ``pred_sizes`` their
    sizes in voxels; pair k joins true object ``true_ids[pair_true[k]]`` and predicted
    object ``pred_ids[pair_pred[k]]``, which share ``pair_voxels[k]`` voxels (> 0).
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_sizes: np.ndarray
    pred_sizes: np.ndarray
    pair_true: np.ndarray
    pair_pred: np.ndarray
    pair_voxels: np.ndarray

    @property
    def pair_iou(self) -> np.ndarray:
        """IoU of each overlapping pair."""
        union = self.true_sizes[self.pair_true] + self.pred_sizes[self.pair_pred] - self.pair_voxels
        return self.pair_voxels / union

    @property
    def intersection(self) -> np.ndarray:
        """Dense (n_true, n_pred) matrix of shared voxels (for small images)."""
        m = np.zeros((self.true_ids.size, self.pred_ids.size), dtype=np.int64)
        m[self.pair_true, self.pair_pred] = self.pair_voxels
        return m

    @property
    def iou(self) -> np.ndarray:
        """Dense (n_true, n_pred) IoU matrix (for small images)."""
        m = np.zeros((self.true_ids.size, self.pred_ids.size))
        m[self.pair_true, self.pair_pred] = self.pair_iou
        return m


def overlaps(pred_labels, true_labels) -> Overlaps:
    """Count the voxels shared by each pair of true and predicted objects (label > 0)."""
    pred, true = np.asarray(pred_labels), np.asarray(true_labels)
    same_shape(pred, true, "predicted label image", "true label image")
    for name, a in (("predicted", pred), ("true", true)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise InputError(f"The {name} label image holds {a.dtype} values; an instance label "
                             f"image needs integer ids (0 = background).")
        if a.size and a.min() < 0:
            raise InputError(f"The {name} label image has negative ids; use 0 for background, 1..N for objects.")
    pred, true = pred.astype(np.int64, copy=False).ravel(), true.astype(np.int64, copy=False).ravel()
    true_ids, true_sizes = np.unique(true[true > 0], return_counts=True)
    pred_ids, pred_sizes = np.unique(pred[pred > 0], return_counts=True)
    both = (true > 0) & (pred > 0)
    n = max(pred_ids.size, 1)
    key = np.searchsorted(true_ids, true[both]) * n + np.searchsorted(pred_ids, pred[both])
    key, voxels = np.unique(key, return_counts=True)
    return Overlaps(true_ids, pred_ids, true_sizes, pred_sizes, key // n, key % n, voxels)


def match_instances(pred_labels, true_labels, *, iou_threshold: float = 0.5,
                    method: str = "hungarian", overlap: Overlaps | None = None) -> dict:
    """Match predicted to true objects one-to-one by IoU.

    Parameters
    ----------
    pred_labels, true_labels : array of int
        Instance label images (0 = background) of the same shape.
    iou_threshold : float
        A pair matches when its IoU >= this value (and the objects overlap).
    method : {"hungarian", "greedy"}
    overlap : Overlaps, optional
        Precomputed :func:`overlaps`, to score many thresholds quickly.

    Returns
    -------
    dict
        ``n_true, n_pred, tp, fp, fn, precision, recall, f1, mean_matched_iou`` and
        ``pairs`` (DataFrame ``true_id, pred_id, iou``). ``mean_matched_iou`` is 0.0 when
        nothing matched (and 1.0 when both images are empty); other scores follow
        :mod:`spinequant.evaluate.scores`.
    """
    ov = overlap if overlap is not None else overlaps(pred_labels, true_labels)
    iou = ov.pair_iou
    ok = np.flatnonzero(iou >= iou_threshold)
    chosen = ok[assign_pairs(ov.pair_true[ok], ov.pair_pred[ok], iou[ok], method=method)]
    order = chosen[np.argsort(ov.pair_true[chosen], kind="stable")]
    pairs = pd.DataFrame({"true_id": ov.true_ids[ov.pair_true[order]],
                          "pred_id": ov.pred_ids[ov.pair_pred[order]], "iou": iou[order]})
    tp = len(pairs)
    scores = detection_scores(tp, ov.pred_ids.size, ov.true_ids.size)
    both_empty = ov.pred_ids.size == 0 and ov.true_ids.size == 0
    mean_iou = float(pairs["iou"].mean()) if tp else (1.0 if both_empty else 0.0)
    return {"n_true": int(ov.true_ids.size), "n_pred": int(ov.pred_ids.size), **scores,
            "mean_matched_iou": mean_iou, "pairs": pairs}


def matching_curve(pred_labels, true_labels, *, thresholds=DEFAULT_IOU_THRESHOLDS,
                   method: str = "hungarian") -> pd.DataFrame:
    """Precision, recall, F1 and mean matched IoU against the IoU threshold.

    Returns one row per threshold with the columns of :func:`match_instances` (without
    ``pairs``) and ``iou_threshold`` first.
    """
    ov = overlaps(pred_labels, true_labels)
    rows = []
    for t in thresholds:
        result = match_instances(None, None, iou_threshold=float(t), method=method, overlap=ov)
        result.pop("pairs")
        rows.append({"iou_threshold": float(t), **result})
    return pd.DataFrame(rows)


def split_merge_counts(pred_labels, true_labels, *, min_overlap: float = 0.5,
                       overlap: Overlaps | None = None) -> dict:
    """Count over-segmented (split) true objects and under-segmented (merging) predictions.

    A predicted object *lies in* a true object when at least ``min_overlap`` of the
    predicted object's voxels are inside it; a true object is *split* when two or more
    predicted objects lie in it. Symmetrically a true object lies in a predicted object
    when at least ``min_overlap`` of the true object's voxels are inside it, and a predicted
    object *merges* when two or more true objects lie in it.

    Returns ``{"n_split": ..., "n_merge": ..., "split_true_ids": [...], "merge_pred_ids": [...]}``.
    """
    ov = overlap if overlap is not None else overlaps(pred_labels, true_labels)
    v = ov.pair_voxels
    pred_in_true = v >= min_overlap * ov.pred_sizes[ov.pair_pred]
    true_in_pred = v >= min_overlap * ov.true_sizes[ov.pair_true]
    n_in_true = np.bincount(ov.pair_true[pred_in_true], minlength=ov.true_ids.size)
    n_in_pred = np.bincount(ov.pair_pred[true_in_pred], minlength=ov.pred_ids.size)
    split = ov.true_ids[n_in_true >= 2]
    merge = ov.pred_ids[n_in_pred >= 2]
    return {"n_split": int(split.size), "n_merge": int(merge.size),
            "split_true_ids": split.tolist(), "merge_pred_ids": merge.tolist()}
