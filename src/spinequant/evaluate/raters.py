"""Agreement between raters, and between a method and several raters (DeepD3, figure 2).

All functions start from :func:`~spinequant.evaluate.consensus.cluster_annotations`: each
cluster is one spine, found by the raters that annotated a point in it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import RaterClusterConfig
from .consensus import RaterClusters, cluster_annotations
from .points import as_points, match_points
from .scores import ratio

METHOD = "method"


def _recall(found_by_both: int, found_by_reference: int, found_by_other: int) -> float:
    # Fraction of the reference's spines the other also found. Empty reference: 1.0 when the
    # other found nothing either, else 0.0 (the convention of spinequant.evaluate.scores).
    return ratio(found_by_both, found_by_reference, empty=1.0 if found_by_other == 0 else 0.0)


def reliability_matrix(clusters: RaterClusters, *, method_found=None,
                       n_method_only: int = 0) -> pd.DataFrame:
    """Fraction of the spines of the row rater that the column rater also found.

    ``M[a, b]`` = (spines annotated by a and b) / (spines annotated by a), as in DeepD3's
    figure 2b (y = rater 1, x = rater 2); the diagonal is 1. With ``method_found`` (one bool
    per cluster, from :func:`compare_method`) a last row and column ``"method"`` is added:
    the column is the method's recall of each rater's spines, the row the raters' recall of
    the method's spines (``n_method_only`` method detections outside every cluster count as
    spines that only the method found).
    """
    member = clusters.membership.to_numpy(bool)
    names = list(clusters.raters)
    if method_found is not None:
        member = np.column_stack([member, np.asarray(method_found, bool)])
        names.append(METHOD)
    counts = member.sum(axis=0)
    both = member.T.astype(int) @ member.astype(int)
    if method_found is not None:
        counts[-1] += n_method_only
        both[-1, -1] += n_method_only
    m = np.array([[_recall(both[a, b], counts[a], counts[b]) for b in range(len(names))]
                  for a in range(len(names))])
    return pd.DataFrame(m, index=pd.Index(names, name="rater"), columns=names)


def inter_rater_reliability(matrix: pd.DataFrame) -> tuple[float, float]:
    """Mean and standard deviation of the off-diagonal entries among raters (the method excluded).

    Returns (1.0, 0.0) for a single rater.
    """
    names = [n for n in matrix.index if n != METHOD]
    m = matrix.loc[names, names].to_numpy(float)
    off = m[~np.eye(len(names), dtype=bool)]
    return (float(off.mean()), float(off.std())) if off.size else (1.0, 0.0)


def intra_rater_reliability(first, second, *, config: RaterClusterConfig | None = None) -> float:
    """Agreement of one rater with themself: two annotation rounds clustered together.

    The mean of the two directions of :func:`reliability_matrix` (DeepD3: 87.5 %).
    """
    clusters = cluster_annotations({"first": as_points(first), "second": as_points(second)}, config=config)
    return inter_rater_reliability(reliability_matrix(clusters))[0]


def compare_method(clusters: RaterClusters, method_points, *, max_distance_um=None,
                   matching: str = "hungarian") -> dict:
    """Judge a method's spine positions against several raters.

    The method's points (µm, z y x) are matched one-to-one to the cluster centres within
    ``max_distance_um`` (default DeepD3's limits: ``max_z_um`` in z, ``max_xy_um`` in x and
    y, as an ellipsoid).

    Returns
    -------
    dict
        ``found`` (bool per cluster: the method found this spine), ``n_method_only`` (method
        points matched to no cluster), ``per_rater`` (DataFrame ``rater, n_spines,
        method_recall`` -- fraction of the rater's spines the method found -- and
        ``rater_recall_of_method`` -- fraction of the method's spines the rater found),
        ``agreement`` (:func:`agreement_by_raters`), ``matrix`` (:func:`reliability_matrix`
        with the method), ``pairs`` (matches, ``pred_index, cluster, distance_um``).
    """
    cfg = clusters.config
    tol = max_distance_um if max_distance_um is not None else (cfg.max_z_um, cfg.max_xy_um, cfg.max_xy_um)
    centres = clusters.clusters[["z_um", "y_um", "x_um"]].to_numpy(float)
    pts = as_points(method_points, what="method's points")
    result = match_points(pts, centres, max_distance_um=tol, method=matching)
    pairs = result["pairs"]
    found = np.zeros(len(centres), dtype=bool)
    found[pairs["true_index"].to_numpy(int)] = True
    n_only = len(pts) - len(pairs)
    matrix = reliability_matrix(clusters, method_found=found, n_method_only=n_only)
    per_rater = pd.DataFrame({
        "rater": clusters.raters,
        "n_spines": clusters.membership.sum(axis=0).to_numpy(int),
        "method_recall": matrix[METHOD].drop(METHOD).to_numpy(),
        "rater_recall_of_method": matrix.loc[METHOD].drop(METHOD).to_numpy(),
    })
    pairs = pd.DataFrame({"pred_index": pairs["pred_index"],
                          "cluster": clusters.clusters["cluster"].to_numpy()[pairs["true_index"].to_numpy(int)],
                          "distance_um": pairs["distance_um"]})
    return {"found": found, "n_method_only": int(n_only), "per_rater": per_rater,
            "agreement": agreement_by_raters(clusters, found, n_method_only=n_only),
            "matrix": matrix, "pairs": pairs}


def agreement_by_raters(clusters: RaterClusters, method_found=None, *, n_method_only: int = 0) -> pd.DataFrame:
    """How many spines were found by k raters, and (optionally) how many of them the method found.

    One row per k = 1 .. number of raters: ``n_raters, n_spines, method_found,
    method_fraction`` (fraction of those spines the method found; NaN when there are none).
    With ``method_found`` a first row k = 0 holds the method's spines that no rater found.
    DeepD3's figure 2d.
    """
    n = clusters.clusters["n_raters"].to_numpy(int)
    found = np.zeros(len(n), bool) if method_found is None else np.asarray(method_found, bool)
    rows = []
    if method_found is not None:
        rows.append({"n_raters": 0, "n_spines": n_method_only, "method_found": n_method_only,
                     "method_fraction": 1.0 if n_method_only else float("nan")})
    for k in range(1, len(clusters.raters) + 1):
        sel = n == k
        count, hit = int(sel.sum()), int((found & sel).sum())
        rows.append({"n_raters": k, "n_spines": count, "method_found": hit,
                     "method_fraction": hit / count if count else float("nan")})
    table = pd.DataFrame(rows)
    if method_found is None:
        table = table.drop(columns=["method_found", "method_fraction"])
    return table
