"""Settings of the evaluation stage, with defaults from the papers.

Both dataclasses are frozen and convert to a dict with :func:`dataclasses.asdict`, so the
settings can be saved beside the results they produced.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_fields

#: IoU thresholds of the matching curve (StarDist / CellSeg3D plot F1 against these).
DEFAULT_IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class EvaluationConfig:
    """How predictions are compared with a truth.

    Attributes
    ----------
    iou_threshold : float
        Smallest IoU at which a predicted object counts as a match of a true object (the
        pair needs IoU >= this value and a non-empty overlap).
    iou_thresholds : tuple of float
        Thresholds of the matching curve (F1 and mean matched IoU against IoU threshold).
    matching : str
        ``"hungarian"`` (one-to-one, maximises the summed IoU or minimises the summed
        distance) or ``"greedy"`` (best pairs first).
    max_distance_um : float or tuple of 3 floats
        Largest distance between a detected spine and an annotated point that still counts
        as a match: one number is a sphere, three numbers (z, y, x) the semi-axes of an
        ellipsoid. The default is DeepD3's tolerance: 2.5 µm in z, 0.85 µm in x and y.
    band_um : float or None
        When set, semantic scores only count voxels within this distance of the annotated
        dendrite (Vidaurre-Gallart et al. 2022 used 7.58 µm, the largest spine-to-shaft
        distance in their data), for stacks where only some dendrites were annotated.
    split_merge_overlap : float
        A predicted object belongs to a true object when at least this fraction of its
        volume lies inside it (and vice versa for merges); see :func:`split_merge_counts`.
    spine_max_distance_um, spine_min_iou : float
        Spine detection between two label images (table ``spine_detection``): a predicted
        spine matches a true one when their centres are at most this far apart or their IoU
        reaches this floor (:func:`~spinequant.evaluate.detection.match_spine_objects`), the
        rule behind every spine F1 in the README.
    """

    iou_threshold: float = 0.5
    iou_thresholds: tuple[float, ...] = DEFAULT_IOU_THRESHOLDS
    matching: str = "hungarian"
    max_distance_um: float | tuple[float, float, float] = (2.5, 0.85, 0.85)
    band_um: float | None = None
    split_merge_overlap: float = 0.5
    spine_max_distance_um: float = 1.0
    spine_min_iou: float = 0.3

    def __post_init__(self):
        check_fields(self, choices={"matching": ("hungarian", "greedy")},
                     ranges={"iou_threshold": (0, 1, True, False), "spine_min_iou": (0, 1, True, False),
                             "split_merge_overlap": (0, 1, False, False), "iou_thresholds": (0, 1, False, False),
                             "max_distance_um": (0, None, True, False), "band_um": (0, None, True, False),
                             "spine_max_distance_um": (0, None, True, False)})


@dataclass(frozen=True)
class RaterClusterConfig:
    """How several raters' point annotations are grouped into spines (Fernholz et al. 2024).

    DBSCAN runs on the pooled points in µm with z compressed by ``max_xy_um / max_z_um`` so
    that its neighbourhood is an ellipsoid of ``eps_um`` in x and y and ``eps_um *
    max_z_um / max_xy_um`` in z. The DeepD3 rules then (i) remove points farther than
    ``max_xy_um`` in the xy plane or ``max_z_um`` in z from their cluster's centre (they
    start clusters of their own), (ii) split clusters with more annotations than raters in
    two with 2-means, repeatedly, and (iii) merge clusters whose centres are closer than
    ``max_xy_um`` in xy and ``max_z_um`` in z while the merged cluster has no more
    annotations than raters.

    Attributes
    ----------
    eps_um : float
        DBSCAN neighbourhood radius in x and y, µm.
    min_samples : int
        DBSCAN core-point size. The default 1 keeps every annotation: a spine that only one
        rater marked is a cluster of one, as in DeepD3's figure 2d.
    max_xy_um, max_z_um : float
        DeepD3's distance limits from a cluster centre (0.85 µm in x and y, 2.5 µm in z).
    split_oversized, merge_close, drop_far_points : bool
        Switch the three rules on or off.
    """

    eps_um: float = 0.85
    min_samples: int = 1
    max_xy_um: float = 0.85
    max_z_um: float = 2.5
    drop_far_points: bool = True
    split_oversized: bool = True
    merge_close: bool = True
