"""Voxel-wise scores of semantic segmentations (per class IoU, Dice, precision, recall, F1).

Optionally only voxels within a distance of the annotated dendrite count (Vidaurre-Gallart
et al. 2022), and several raters' masks can be combined by intersection or union as in
DeepD3 (Fernholz et al. 2024).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import edt
import numpy as np
import pandas as pd

from ..errors import InputError
from ..validate import check_spacing
from .scores import scores_from_counts

#: Class values of spinequant's semantic label images.
SEMANTIC_CLASSES = {1: "dendrite", 2: "spine"}


def semantic_scores(pred, truth, *, classes: Mapping[int, str] | None = None,
                    mask=None) -> pd.DataFrame:
    """Compare two semantic label images class by class.

    Parameters
    ----------
    pred, truth : array of int or bool
        Label images of the same shape (0 = background). Boolean masks are one class,
        ``"foreground"``.
    classes : dict {value: name}, optional
        Classes to score; default ``{1: "dendrite", 2: "spine"}`` for label images and
        ``{1: "foreground"}`` when both inputs are boolean.
    mask : array of bool, optional
        Only voxels where ``mask`` is True count (e.g. :func:`dendrite_band`).

    Returns
    -------
    pandas.DataFrame
        One row per class: ``class, tp, fp, fn`` (voxel counts), ``precision, recall, f1,
        iou, dice``. Empty classes follow :mod:`spinequant.evaluate.scores`: 1.0 when the
        class is absent from both images, 0.0 when it is absent from one only.

    Examples
    --------
    >>> t = np.array([[0, 1, 1, 2]]); p = np.array([[1, 1, 0, 2]])
    >>> semantic_scores(p, t)[["class", "tp", "fp", "fn", "iou"]].to_dict("records")[0]
    {'class': 'dendrite', 'tp': 1, 'fp': 1, 'fn': 1, 'iou': 0.3333333333333333}
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    same_shape(pred, truth, "prediction", "truth")
    if classes is None:
        classes = {1: "foreground"} if pred.dtype == bool and truth.dtype == bool else SEMANTIC_CLASSES
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        same_shape(mask, truth, "mask", "truth")
        pred, truth = pred[mask], truth[mask]
    rows = []
    for value, name in classes.items():
        p, t = pred == value, truth == value
        tp = int(np.count_nonzero(p & t))
        rows.append({"class": name, **scores_from_counts(tp, int(np.count_nonzero(p)) - tp,
                                                         int(np.count_nonzero(t)) - tp)})
    return pd.DataFrame(rows, columns=["class", "tp", "fp", "fn", "precision", "recall",
                                       "f1", "iou", "dice"])


def dendrite_band(dendrite_mask, *, spacing, max_distance_um: float) -> np.ndarray:
    """Voxels within ``max_distance_um`` (µm, anisotropic) of the dendrite, the dendrite included.

    Distances are Euclidean in µm with the voxel size ``spacing`` (z, y, x), or (y, x) for a
    2D mask. A stack without any dendrite voxel gives an all-False band.

    Examples
    --------
    >>> d = np.zeros((1, 1, 7), bool); d[0, 0, 3] = True
    >>> dendrite_band(d, spacing=(1, 1, 0.5), max_distance_um=1.0).astype(int)
    array([[[0, 1, 1, 1, 1, 1, 0]]])
    """
    dendrite = np.asarray(dendrite_mask) > 0
    if dendrite.ndim not in (2, 3):
        raise InputError(f"The dendrite mask must be 3D (Z, Y, X) or 2D (Y, X); it has shape {dendrite.shape}.")
    spacing = check_spacing(spacing, ndim=dendrite.ndim)
    if max_distance_um < 0:
        raise InputError(f"The band width must be 0 µm or more; {max_distance_um} was given.")
    if not dendrite.any():
        return np.zeros(dendrite.shape, dtype=bool)
    distance = edt.edt(~dendrite, anisotropy=spacing, black_border=False)
    # A tiny tolerance so that a band of exactly n voxel steps includes the n-th voxel.
    return distance <= max_distance_um * (1 + 1e-6)


def combine_raters(masks: Sequence, *, how: str = "intersection") -> np.ndarray:
    """Combine several raters' masks or label images of one class into one mask.

    ``how`` is ``"intersection"`` (all raters), ``"union"`` (any rater) or ``"majority"``
    (more than half). Label images are first turned into ``label > 0``; to combine one
    class of semantic images pass ``[m == value for m in masks]``.
    """
    if len(masks) == 0:
        raise InputError("Give at least one rater's mask to combine.")
    stack = [np.asarray(m) > 0 for m in masks]
    for m in stack[1:]:
        same_shape(m, stack[0], "a rater's mask", "the first rater's mask")
    count = np.sum(stack, axis=0)
    if how == "intersection":
        return count == len(stack)
    if how == "union":
        return count > 0
    if how == "majority":
        return count * 2 > len(stack)
    raise InputError(f"Unknown way to combine raters: {how!r}; use 'intersection', 'union' or 'majority'.")


def semantic_scores_vs_raters(pred, truths: Sequence, *, names: Sequence[str] | None = None,
                              classes: Mapping[int, str] | None = None, mask=None) -> pd.DataFrame:
    """Score ``pred`` against each rater's semantic labels and their intersection and union.

    Each class is combined separately (DeepD3's U ∩ V ∩ W and U ∪ V ∪ W). Returns the rows
    of :func:`semantic_scores` with a first column ``truth`` (each rater's name, then
    ``"intersection"`` and ``"union"`` when there are two raters or more).
    """
    truths = [np.asarray(t) for t in truths]
    names = list(names) if names is not None else [f"rater {i + 1}" for i in range(len(truths))]
    if classes is None:
        classes = SEMANTIC_CLASSES if any(t.dtype != bool for t in truths) else {1: "foreground"}
    pred = np.asarray(pred)
    tables = [semantic_scores(pred, t, classes=classes, mask=mask).assign(truth=n)
              for t, n in zip(truths, names)]
    if len(truths) > 1:
        for how in ("intersection", "union"):
            combined = np.zeros(truths[0].shape, dtype=np.int32)
            # Later classes win where a voxel is in several combined classes (spine over dendrite).
            for value in classes:
                combined[combine_raters([t == value for t in truths], how=how)] = value
            tables.append(semantic_scores(pred, combined, classes=classes, mask=mask).assign(truth=how))
    table = pd.concat(tables, ignore_index=True)
    return table[["truth", *table.columns[:-1]]]


def same_shape(a, b, what_a: str, what_b: str) -> None:
    """Raise :class:`InputError` unless the arrays ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise InputError(
            f"The {what_a} has shape {a.shape} but the {what_b} has shape {b.shape}; they must "
            f"cover the same voxels. Check that both come from the same stack (and crop)."
        )
