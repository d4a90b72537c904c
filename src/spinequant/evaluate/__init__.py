"""Evaluation: how well a segmentation or a spine detection agrees with annotations.

* :mod:`.semantic` -- voxel-wise per-class IoU, Dice, precision, recall, F1; a band around the
  annotated dendrite; several raters' masks combined by intersection or union.
* :mod:`.instances` -- one-to-one object matching by IoU, the F1-vs-IoU-threshold curve,
  split and merge counts.
* :mod:`.points` -- one-to-one matching of points within a distance in µm.
* :mod:`.consensus` and :mod:`.raters` -- several raters' point annotations clustered into
  spines (DeepD3), inter/intra-rater reliability, a method judged against each rater.
* :mod:`.resolution` -- how many annotated heads the microscope's PSF lets any detector
  separate (a recall ceiling for phantom benchmarks).
* :mod:`.readers` -- the files users have: label TIFFs, spines.csv, point CSVs, ImageJ ROI
  sets, Fiji CellCounter XML, SWC.

Every score follows :mod:`.scores` for empty inputs: 1.0 when prediction and truth are both
empty, 0.0 when only one is; nothing divides by zero.
"""

from __future__ import annotations

from .config import DEFAULT_IOU_THRESHOLDS, EvaluationConfig, RaterClusterConfig
from .consensus import RaterClusters, cluster_annotations, dbscan, pool_annotations
from .files import EvaluationReport, evaluate_files, write_report
from .instances import match_instances, matching_curve, overlaps, split_merge_counts
from .plots import plot_matching_curve, plot_rater_matrix
from .points import label_centroids, match_points, voxels_to_um
from .readers import detect_kind, read_labels, read_points
from .resolution import resolvable_heads
from .raters import (agreement_by_raters, compare_method, inter_rater_reliability,
                     intra_rater_reliability, reliability_matrix)
from .scores import detection_scores, scores_from_counts
from .semantic import combine_raters, dendrite_band, semantic_scores, semantic_scores_vs_raters
from .swc_mask import swc_to_mask

__all__ = [
    "EvaluationConfig", "RaterClusterConfig", "DEFAULT_IOU_THRESHOLDS",
    "scores_from_counts", "detection_scores",
    "semantic_scores", "semantic_scores_vs_raters", "dendrite_band", "combine_raters",
    "overlaps", "match_instances", "matching_curve", "split_merge_counts",
    "match_points", "voxels_to_um", "label_centroids", "swc_to_mask", "resolvable_heads",
    "RaterClusters", "pool_annotations", "dbscan", "cluster_annotations",
    "reliability_matrix", "inter_rater_reliability", "intra_rater_reliability",
    "compare_method", "agreement_by_raters",
    "detect_kind", "read_labels", "read_points",
    "EvaluationReport", "evaluate_files", "write_report", "plot_matching_curve", "plot_rater_matrix",
]
