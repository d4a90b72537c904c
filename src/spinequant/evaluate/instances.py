"""Object-level scores of instance label images: one-to-one matching by IoU.

Predicted and true objects are paired one-to-one (Hungarian or greedy) among pairs whose
IoU reaches a threshold; precision, recall, F1 and the mean IoU of matched pairs follow, and
as functions of the threshold they give the curve StarDist and CellSeg3D plot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from ..errors import InputError
from .config import DEFAULT_IOU_THRESHOLDS
from .scores import detection_scores


@dataclass(frozen=True)
class Overlaps:
    """Overlap of every true object with every predicted object.

    ``true_ids`` and ``pred_ids`` list the object ids; ``intersection[i, j]`` is the number
    of voxels shared by true object ``true_ids[i]`` and predicted object ``pred_ids[j]``;
    ``true_sizes`` and ``pred_sizes`` are object sizes in voxels.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    intersection: np.ndarray
    true_sizes: np.ndarray
    pred_sizes: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        union = self.true_sizes[:, None] + self.pred_sizes[None, :] - self.intersection
        return np.divide(self.intersection, union, out=np.zeros(self.intersection.shape),
                         where=union > 0)


def overlaps(pred_labels, true_labels) -> Overlaps:
    """Count the voxels shared by each pair of true and predicted objects (label > 0)."""
    pred, true = np.asarray(pred_labels), np.asarray(true_labels)
    if pred.shape != true.shape:
        raise InputError(
            f"The predicted labels have shape {pred.shape} but the true labels {true.shape}; "
            f"they must cover the same voxels."
        )
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
    inter = np.zeros((true_ids.size, pred_ids.size), dtype=np.int64)
    if both.any():
        ti = np.searchsorted(true_ids, true[both])
        pj = np.searchsorted(pred_ids, pred[both])
        np.add.at(inter, (ti, pj), 1)
    return Overlaps(true_ids, pred_ids, inter, true_sizes, pred_sizes)


def match_by_score(score: np.ndarray, threshold: float, *, method: str = "hungarian",
                   larger_is_better: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (rows, cols) of a score matrix whose score passes ``threshold``.

    With ``larger_is_better`` a pair needs ``score >= threshold`` and ``score > 0``; otherwise
    ``score <= threshold``. ``"hungarian"`` maximises the number of pairs and then the total
    score (minimum total for distances); ``"greedy"`` takes the best remaining pair first.
    """
    score = np.asarray(score, dtype=float)
    ok = (score >= threshold) & (score > 0) if larger_is_better else score <= threshold
    if not ok.any():
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    if method == "greedy":
        rows, cols = np.nonzero(ok)
        order = np.argsort(-score[rows, cols] if larger_is_better else score[rows, cols], kind="stable")
        used_r, used_c, keep = set(), set(), []
        for k in order:
            r, c = rows[k], cols[k]
            if r not in used_r and c not in used_c:
                used_r.add(r), used_c.add(c), keep.append(k)
        keep = np.array(keep, dtype=int)
        pairs = (rows[keep], cols[keep])
    elif method == "hungarian":
        # Every allowed pair is worth more than any sum of score differences, so the
        # assignment first maximises the number of pairs, then their total score.
        lo, hi = float(score[ok].min()), float(score[ok].max())
        spread = hi - lo + 1.0
        bonus = spread * (min(score.shape) + 1)
        gain = np.where(ok, bonus + (score - lo if larger_is_better else hi - score), 0.0)
        rows, cols = linear_sum_assignment(gain, maximize=True)
        pairs = (rows, cols)
    else:
        raise InputError(f"Unknown matching method {method!r}; use 'hungarian' or 'greedy'.")
    rows, cols = pairs
    keep = ok[rows, cols]
    order = np.argsort(rows[keep], kind="stable")
    return rows[keep][order], cols[keep][order]


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
    iou = ov.iou
    rows, cols = match_by_score(iou, iou_threshold, method=method)
    pairs = pd.DataFrame({"true_id": ov.true_ids[rows], "pred_id": ov.pred_ids[cols],
                          "iou": iou[rows, cols]})
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
    inter = ov.intersection.astype(float)
    pred_in_true = inter >= min_overlap * ov.pred_sizes[None, :]
    true_in_pred = inter >= min_overlap * ov.true_sizes[:, None]
    pred_in_true &= inter > 0
    true_in_pred &= inter > 0
    split = ov.true_ids[pred_in_true.sum(axis=1) >= 2]
    merge = ov.pred_ids[true_in_pred.sum(axis=0) >= 2]
    return {"n_split": int(split.size), "n_merge": int(merge.size),
            "split_true_ids": split.tolist(), "merge_pred_ids": merge.tolist()}
