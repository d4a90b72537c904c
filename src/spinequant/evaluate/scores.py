"""Precision, recall, F1, IoU and Dice from counts, with fixed values for empty inputs.

Conventions (the same everywhere in :mod:`spinequant.evaluate`):

* nothing predicted and nothing true (``tp = fp = fn = 0``): every score is 1.0 -- the
  method agrees perfectly with an empty truth;
* only one side empty: the scores that divide by the empty side's count would be 0/0;
  precision is 0.0 when nothing was predicted but something is true, recall is 0.0 when
  something was predicted but nothing is true, and F1, IoU and Dice are 0.0;
* otherwise the usual ratios. No function divides by zero or returns NaN.
"""

from __future__ import annotations


def ratio(num: float, den: float, *, empty: float) -> float:
    """``num / den``, or ``empty`` when ``den`` is 0."""
    return float(num) / float(den) if den else float(empty)


def scores_from_counts(tp: float, fp: float, fn: float) -> dict[str, float]:
    """Precision, recall, F1, IoU (Jaccard) and Dice from true/false positive/negative counts.

    Counts may be numbers of voxels, of matched objects or of matched points; for voxels
    F1 equals Dice. See the module docstring for the values returned on empty inputs.

    Examples
    --------
    >>> s = scores_from_counts(3, 1, 2)
    >>> round(s["precision"], 3), round(s["recall"], 3), round(s["f1"], 3), round(s["iou"], 3)
    (0.75, 0.6, 0.667, 0.5)
    >>> scores_from_counts(0, 0, 0)["f1"], scores_from_counts(0, 2, 0)["f1"]
    (1.0, 0.0)
    """
    both_empty = tp == 0 and fp == 0 and fn == 0
    empty = 1.0 if both_empty else 0.0
    precision = ratio(tp, tp + fp, empty=empty)
    recall = ratio(tp, tp + fn, empty=empty)
    f1 = ratio(2 * tp, 2 * tp + fp + fn, empty=empty)
    iou = ratio(tp, tp + fp + fn, empty=empty)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
            "f1": f1, "iou": iou, "dice": f1}


def detection_scores(tp: int, n_pred: int, n_true: int) -> dict[str, float]:
    """Counts, precision, recall and F1 of ``tp`` one-to-one matches among ``n_pred`` and ``n_true`` objects."""
    s = scores_from_counts(int(tp), int(n_pred) - int(tp), int(n_true) - int(tp))
    return {k: s[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}
