"""Scores of a cell segmentation: semantic Dice, instance F1 against the IoU threshold, and
detection of cells annotated as points (one-to-one within a distance in µm).

These are CellSeg3D's measures (Achard et al. 2024: Dice of the foreground; F1 of instances
matched one-to-one at IoU thresholds 0.1-0.9, StarDist's matching), plus point matching for
the cells most data sets annotate only as a point (a centre) each.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .config import DEFAULT_IOU_THRESHOLDS, EvaluationConfig
from .instances import match_instances, matching_curve, overlaps, split_merge_counts
from .points import label_centroids, match_points
from .scores import scores_from_counts

#: Default distance (µm) within which a detected cell's centroid matches an annotated centre:
#: the radius of a small (10 µm) nucleus, so a detection inside the cell counts.
CELL_MATCH_DISTANCE_UM = 5.0


def dice(pred_labels, true_labels) -> float:
    """Dice of the foregrounds (label > 0) of two label images (1.0 when both are empty)."""
    p, t = np.asarray(pred_labels) > 0, np.asarray(true_labels) > 0
    if p.shape != t.shape:
        raise InputError(f"The predicted labels {p.shape} and the truth {t.shape} differ in shape.")
    tp = int(np.count_nonzero(p & t))
    return scores_from_counts(tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(t)) - tp)["dice"]


def score_cell_points(pred_labels, true_points_um, *, spacing, max_distance_um=CELL_MATCH_DISTANCE_UM,
                      matching: str = "hungarian") -> dict:
    """Point-matching scores of the predicted cells' centroids against annotated centres (µm, z y x).

    Returns :func:`~spinequant.evaluate.points.match_points`'s dict (``tp, fp, fn, precision,
    recall, f1, mean_distance_um, pairs``)."""
    pred = label_centroids(pred_labels, spacing=spacing)
    return match_points(pred[["z_um", "y_um", "x_um"]], true_points_um, max_distance_um=max_distance_um,
                        method=matching)


def score_cells(pred_labels, true_labels, *, spacing, max_distance_um=CELL_MATCH_DISTANCE_UM,
                thresholds=DEFAULT_IOU_THRESHOLDS, iou_threshold: float = 0.5,
                matching: str = "hungarian") -> dict:
    """Every cell score of a predicted label image against a true one.

    Returns a dict: ``dice`` (foreground), ``instances`` (:func:`match_instances` at
    ``iou_threshold`` without its pairs, plus split and merge counts), ``curve`` (F1 and
    mean matched IoU at each of ``thresholds``), ``points`` (the centroids of both matched
    within ``max_distance_um``, :func:`score_cell_points` without pairs).
    """
    pred, true = np.asarray(pred_labels), np.asarray(true_labels)
    ov = overlaps(pred, true)
    inst = match_instances(pred, true, iou_threshold=iou_threshold, method=matching, overlap=ov)
    inst.pop("pairs")
    inst.update({k: v for k, v in split_merge_counts(pred, true, overlap=ov).items() if k.startswith("n_")})
    points = score_cell_points(pred, label_centroids(true, spacing=spacing)[["z_um", "y_um", "x_um"]],
                               spacing=spacing, max_distance_um=max_distance_um, matching=matching)
    points.pop("pairs")
    return {"dice": dice(pred, true), "instances": inst,
            "curve": matching_curve(pred, true, thresholds=thresholds, method=matching), "points": points}


def evaluate_cell_files(pred, truths, *, voxel_size=None, config: EvaluationConfig | None = None,
                        units: str | None = None):
    """``spinequant evaluate --objects cells``: a cell label image against label images or point lists.

    Label-image truths get the Dice, the instance table and curve and the point scores of
    centroids; point truths (CSV, ROI sets, CellCounter XML) the point scores. The matching
    distance is ``config.max_distance_um`` (:data:`CELL_MATCH_DISTANCE_UM` when the config
    keeps the spine default).
    """
    from .files import EvaluationReport
    from .readers import detect_kind, read_labels, read_points

    config = config or EvaluationConfig()
    if config.max_distance_um == EvaluationConfig().max_distance_um:
        config = replace(config, max_distance_um=CELL_MATCH_DISTANCE_UM)
    truths = list(truths)
    if not truths:
        raise InputError("Give at least one annotation file (TRUTH) to compare the cells with.")
    if detect_kind(pred) != "instances":
        raise InputError(f"With --objects cells the prediction must be a cell label image "
                         f"(labels_cells.tif), not '{pred}'.")
    labels, spacing = read_labels(pred, voxel_size=voxel_size)
    if labels.ndim != 3 or not np.all(np.isfinite(spacing)):
        raise InputError(f"'{pred}' must be a 3D label image with its voxel size (give --voxel-size Z Y X).")
    report = EvaluationReport(settings={"evaluation": asdict(config), "objects": "cells"})
    summary, points, curves = [], [], []
    for path in truths:
        name = Path(path).stem
        kind = detect_kind(path)
        if kind == "instances":
            truth, _ = read_labels(path, voxel_size=spacing)
            s = score_cells(labels, truth, spacing=spacing, max_distance_um=config.max_distance_um,
                            thresholds=config.iou_thresholds, iou_threshold=config.iou_threshold,
                            matching=config.matching)
            summary.append({"truth": name, "dice": s["dice"], **s["instances"]})
            points.append({"truth": name, **s["points"]})
            report.curves[name] = s["curve"]
            curves.append(s["curve"].assign(truth=name))
        elif kind == "points":
            r = score_cell_points(labels, read_points(path, spacing=spacing, units=units), spacing=spacing,
                                  max_distance_um=config.max_distance_um, matching=config.matching)
            r.pop("pairs")
            points.append({"truth": name, **r})
        else:
            raise InputError(f"'{path}' is neither a label image nor a point list; cells are compared "
                             f"with cell label images or points (CSV, ROI set, CellCounter XML).")
    if summary:
        report.tables["cell_scores"] = pd.DataFrame(summary)
        report.tables["instance_curve"] = pd.concat(curves, ignore_index=True)
    report.tables["cell_points"] = pd.DataFrame(points)
    report.notes.append(f"cells: centroids matched one-to-one within {config.max_distance_um} µm; instances "
                        f"at IoU >= {config.iou_threshold}; dice = foreground Dice")
    return report
