"""Group several raters' point annotations into spines (DeepD3's clustering).

Fernholz et al. (2024) pooled seven raters' spine annotations, clustered them with DBSCAN and
corrected the clusters with three rules (see :class:`RaterClusterConfig`). We do the same in
µm: DBSCAN as connected components of a :class:`scipy.spatial.cKDTree` distance graph,
2-means (:func:`scipy.cluster.vq.kmeans2`) for the split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.cluster.vq import kmeans2
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import InputError
from .config import RaterClusterConfig
from .points import as_points

NOISE = -1


@dataclass(frozen=True)
class RaterClusters:
    """Clusters of pooled annotations; each cluster is one spine.

    Attributes
    ----------
    annotations : DataFrame
        One row per annotation: ``rater, z_um, y_um, x_um, cluster`` (``cluster`` is -1
        for DBSCAN noise, which only occurs with ``min_samples`` > 1).
    clusters : DataFrame
        One row per cluster, numbered 1..K in order of their centres (z, y, x):
        ``cluster, z_um, y_um, x_um`` (mean of its annotations), ``n_annotations,
        n_raters`` (distinct raters) and ``raters`` (their names joined by ``;``).
    membership : DataFrame of bool
        Index = cluster, one column per rater: did the rater annotate this spine.
    raters : list of str
    config : RaterClusterConfig
    """

    annotations: pd.DataFrame
    clusters: pd.DataFrame
    membership: pd.DataFrame
    raters: list
    config: RaterClusterConfig


def pool_annotations(annotations) -> pd.DataFrame:
    """Pool annotations into one table ``rater, z_um, y_um, x_um``.

    ``annotations`` is a dict ``{rater name: points (N, 3) in µm, z y x}`` or a DataFrame
    with those columns. ``rater`` is categorical with the raters in the order given.
    """
    if isinstance(annotations, pd.DataFrame):
        missing = [c for c in ("rater", "z_um", "y_um", "x_um") if c not in annotations.columns]
        if missing:
            raise InputError(f"The annotation table needs the columns rater, z_um, y_um, x_um; missing {missing}.")
        table = annotations[["rater", "z_um", "y_um", "x_um"]].copy()
        names = list(dict.fromkeys(table["rater"].astype(str)))
        table["rater"] = pd.Categorical(table["rater"].astype(str), categories=names)
        return table.reset_index(drop=True)
    if not isinstance(annotations, Mapping) or not annotations:
        raise InputError("Give the raters' annotations as {rater name: points in µm (z, y, x)}, at least one rater.")
    parts = []
    for name, pts in annotations.items():
        p = as_points(pts, what=f"points of rater {name!r}")
        parts.append(pd.DataFrame({"rater": [str(name)] * len(p), "z_um": p[:, 0], "y_um": p[:, 1],
                                   "x_um": p[:, 2]}))
    table = pd.concat(parts, ignore_index=True)
    # Categorical, so that a rater who marked nothing keeps a place in every table.
    table["rater"] = pd.Categorical(table["rater"], categories=[str(n) for n in annotations])
    return table


def dbscan(points, *, eps: float, min_samples: int = 1) -> np.ndarray:
    """DBSCAN (Ester et al. 1996) on Euclidean points; labels 0..K-1, noise -1.

    A point is a core point when at least ``min_samples`` points (itself included) lie
    within ``eps``; clusters are the connected components of the core points' ``eps``
    graph, numbered in the order of their first point, plus the non-core points within
    ``eps`` of them (each given to the lowest-numbered cluster that reaches it).
    """
    pts = np.asarray(points, dtype=float)
    n = len(pts)
    labels = np.full(n, NOISE, dtype=int)
    if n == 0:
        return labels
    pairs = cKDTree(pts).query_pairs(eps, output_type="ndarray").reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    core = np.bincount(pairs.ravel(), minlength=n) + 1 >= min_samples
    both = core[i] & core[j]
    graph = sparse.coo_matrix((np.ones(int(both.sum())), (i[both], j[both])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # Number the clusters by their first core point, as a scan over the points finds them.
    _, first = np.unique(component[core], return_index=True)
    number = np.full(n, NOISE, dtype=int)
    number[component[core][np.sort(first)]] = np.arange(len(first))
    labels[core] = number[component[core]]
    border = np.full(n, len(first), dtype=int)
    for a, b in ((i, j), (j, i)):
        reach = core[a] & ~core[b]
        np.minimum.at(border, b[reach], labels[a[reach]])
    claimed = ~core & (border < len(first))
    labels[claimed] = border[claimed]
    return labels


def two_means(points, *, max_iter: int = 100) -> np.ndarray:
    """Split points in two with k-means (k = 2), deterministically; returns 0/1 labels.

    Starts from the point farthest from the centroid and the point farthest from that one.
    """
    pts = np.asarray(points, dtype=float)
    a = pts[np.argmax(np.linalg.norm(pts - pts.mean(axis=0), axis=1))]
    b = pts[np.argmax(np.linalg.norm(pts - a, axis=1))]
    if np.array_equal(a, b):  # all points identical: nothing to split
        return np.zeros(len(pts), dtype=int)
    # Both clusters start with a member and, for k = 2, never lose all of them, so
    # kmeans2 never meets an empty cluster.
    _, labels = kmeans2(pts, np.stack([a, b]), iter=max_iter, minit="matrix")
    return labels.astype(int)


def cluster_annotations(annotations, *, config: RaterClusterConfig | None = None,
                        n_raters: int | None = None) -> RaterClusters:
    """Cluster pooled raters' annotations into spines with DBSCAN and DeepD3's rules.

    Parameters
    ----------
    annotations : dict or DataFrame
        See :func:`pool_annotations`; coordinates in µm.
    config : RaterClusterConfig, optional
    n_raters : int, optional
        Largest number of annotations a cluster may hold (rules ii and iii); default the
        number of raters pooled.

    Returns
    -------
    RaterClusters
    """
    config = config or RaterClusterConfig()
    table = pool_annotations(annotations)
    raters = list(table["rater"].cat.categories)
    capacity = int(n_raters or len(raters))
    zyx = table[["z_um", "y_um", "x_um"]].to_numpy(float)
    # z compressed so that the limits (max_z_um, max_xy_um) become one radius.
    scale = np.array([config.max_xy_um / config.max_z_um, 1.0, 1.0])
    labels = dbscan(zyx * scale, eps=config.eps_um, min_samples=config.min_samples)
    groups = [list(np.flatnonzero(labels == k)) for k in range(labels.max(initial=-1) + 1)]
    if config.drop_far_points:
        groups = _drop_far_points(groups, zyx, config)
    if config.split_oversized:
        groups = _split_oversized(groups, zyx * scale, capacity)
    if config.merge_close:
        groups = _merge_close(groups, zyx, config, capacity)
    return _result(table, raters, groups, labels, config)


def _limit_ratio(points, centre, config) -> np.ndarray:
    """Per point: the larger of (xy distance / max_xy_um) and (|dz| / max_z_um); > 1 is too far."""
    d = np.asarray(points) - centre
    return np.maximum(np.hypot(d[..., 1], d[..., 2]) / config.max_xy_um, np.abs(d[..., 0]) / config.max_z_um)


def _drop_far_points(groups, zyx, config):
    # Rule (i). Points are removed one at a time, the farthest first, so that one outlier
    # cannot pull the centre away from the points that agree; each removed point becomes a
    # spine of its own (rule iii may join it to a close cluster again).
    out = []
    for g in groups:
        g = list(g)
        while len(g) > 1:
            ratio = _limit_ratio(zyx[g], zyx[g].mean(axis=0), config)
            worst = int(np.argmax(ratio))
            if ratio[worst] <= 1:
                break
            out.append([g.pop(worst)])
        out.append(g)
    return out


def _split_oversized(groups, scaled, capacity):
    # Rule (ii): a spine cannot have more annotations than there are raters.
    out, todo = [], list(groups)
    while todo:
        g = todo.pop()
        if len(g) <= capacity:
            out.append(g)
            continue
        halves = two_means(scaled[g])
        if halves.min() == halves.max():  # identical points cannot be split
            out.append(g)
            continue
        todo += [[i for i, h in zip(g, halves) if h == k] for k in (0, 1)]
    return out


def _merge_close(groups, zyx, config, capacity):
    # Rule (iii): join the closest pair of clusters whose centres are within the limits,
    # as long as the joined cluster has no more annotations than raters; repeat.
    groups = [list(g) for g in groups]
    scale = np.array([config.max_xy_um / config.max_z_um, 1.0, 1.0])
    # Centres within the limits are at most sqrt(2) * max_xy_um apart in the z-compressed space.
    reach = np.sqrt(2.0) * config.max_xy_um * (1 + 1e-9)
    while len(groups) > 1:
        centres = np.array([zyx[g].mean(axis=0) for g in groups])
        pairs = cKDTree(centres * scale).query_pairs(reach, output_type="ndarray")
        if len(pairs) == 0:
            break
        i, j = pairs[:, 0], pairs[:, 1]
        sizes = np.array([len(g) for g in groups])
        ratio = _limit_ratio(centres[i], centres[j], config)
        ok = (ratio <= 1) & (sizes[i] + sizes[j] <= capacity)
        if not ok.any():
            break
        # Closest first; ties go to the lowest indices, so the result does not depend on the tree.
        best = np.lexsort((j[ok], i[ok], ratio[ok]))[0]
        a, b = int(i[ok][best]), int(j[ok][best])
        a, b = min(a, b), max(a, b)
        groups[a] = groups[a] + groups[b]
        del groups[b]
    return groups


def _result(table, raters, groups, dbscan_labels, config) -> RaterClusters:
    zyx = table[["z_um", "y_um", "x_um"]].to_numpy(float)
    groups = [sorted(g) for g in groups if g]
    centres = np.array([zyx[g].mean(axis=0) for g in groups]).reshape(-1, 3)
    order = np.lexsort((centres[:, 2], centres[:, 1], centres[:, 0])) if len(groups) else []
    cluster = np.full(len(table), NOISE, dtype=int)
    rows, member = [], []
    for new_id, k in enumerate(order, start=1):
        g = groups[k]
        cluster[g] = new_id
        present = set(table["rater"].iloc[g])
        who = [r for r in raters if r in present]
        rows.append({"cluster": new_id, "z_um": centres[k, 0], "y_um": centres[k, 1], "x_um": centres[k, 2],
                     "n_annotations": len(g), "n_raters": len(who), "raters": ";".join(who)})
        member.append([r in who for r in raters])
    annotations = table.assign(cluster=cluster)
    clusters = pd.DataFrame(rows, columns=["cluster", "z_um", "y_um", "x_um", "n_annotations",
                                           "n_raters", "raters"])
    membership = pd.DataFrame(np.array(member, dtype=bool).reshape(-1, len(raters)),
                              index=pd.Index(clusters["cluster"], name="cluster"), columns=raters)
    return RaterClusters(annotations, clusters, membership, raters, config)
