"""Multi-rater clustering (DeepD3 rules) and rater statistics on a small hand-made example."""

import numpy as np
import pandas as pd
import pytest

from spinequant.errors import InputError
from spinequant.evaluate import (RaterClusterConfig, agreement_by_raters, cluster_annotations,
                                 compare_method, dbscan, inter_rater_reliability,
                                 intra_rater_reliability, reliability_matrix)
from spinequant.evaluate.consensus import two_means

# Four spines, three raters (µm, z y x):
#   S1 ~ (5, 10, 10): A, B, C     S2 ~ (5.5, 20, 20): A, B
#   S3 (10, 30, 30): C only       S4 (0, 40, 40): A only
RATERS = {
    "A": [(5, 10, 10), (5, 20, 20), (0, 40, 40)],
    "B": [(5.5, 10.2, 10), (6, 20.3, 20)],
    "C": [(4.5, 9.9, 10.1), (10, 30, 30)],
}


def test_dbscan_core_and_noise():
    pts = np.array([[0, 0, 0], [0, 0, 0.5], [0, 0, 1.0], [0, 0, 5.0]])
    assert dbscan(pts, eps=0.6, min_samples=1).tolist() == [0, 0, 0, 1]
    assert dbscan(pts, eps=0.6, min_samples=2).tolist() == [0, 0, 0, -1]
    # with 3 needed only the middle point is core; the ends join it as border points
    assert dbscan(pts, eps=0.6, min_samples=3).tolist() == [0, 0, 0, -1]
    assert dbscan(np.zeros((0, 3)), eps=1).tolist() == []


def test_dbscan_border_point_goes_to_the_first_cluster():
    # Two clusters of four core points, and between them a point that reaches one of each
    # (3 points within eps, fewer than 4): a border point of the cluster numbered first.
    a = [[0, 0, x] for x in (0.0, 0.1, 0.2, 0.25)]
    b = [[0, 0, x] for x in (1.25, 1.3, 1.4, 1.5)]
    border = [[0, 0, 0.75]]
    assert dbscan(np.array(a + border + b), eps=0.5, min_samples=4).tolist() == [0] * 5 + [1] * 4
    assert dbscan(np.array(b + border + a), eps=0.5, min_samples=4).tolist() == [0] * 5 + [1] * 4
    assert dbscan(np.array(border + b + a), eps=0.5, min_samples=4).tolist() == [0] * 5 + [1] * 4


def test_two_means():
    pts = np.array([[0, 0, 0], [0, 0, 0.3], [0, 0, 0.9], [0, 0, 1.2]])
    assert two_means(pts).tolist() == [0, 0, 1, 1]
    assert two_means(np.ones((3, 3))).tolist() == [0, 0, 0]  # identical points: no split


def test_known_clusters():
    c = cluster_annotations(RATERS)
    t = c.clusters
    # numbered by centre (z, y, x): S4, S1, S2, S3
    assert t["raters"].tolist() == ["A", "A;B;C", "A;B", "C"]
    assert t["n_raters"].tolist() == [1, 3, 2, 1]
    np.testing.assert_allclose(t.loc[1, ["z_um", "y_um", "x_um"]].astype(float), [5.0, 30.1 / 3, 30.1 / 3])
    assert c.membership.to_numpy().tolist() == [[True, False, False], [True, True, True],
                                                [True, True, False], [False, False, True]]
    assert (c.annotations["cluster"] > 0).all()


def test_reliability_matrix_by_hand():
    m = reliability_matrix(cluster_annotations(RATERS))
    # A found S1 S2 S4, B found S1 S2, C found S1 S3
    expected = [[1, 2 / 3, 1 / 3], [1, 1, 1 / 2], [1 / 2, 1 / 2, 1]]
    np.testing.assert_allclose(m.to_numpy(), expected)
    mean, sd = inter_rater_reliability(m)
    off = [2 / 3, 1 / 3, 1, 1 / 2, 1 / 2, 1 / 2]
    assert mean == pytest.approx(np.mean(off)) and sd == pytest.approx(np.std(off))


def test_method_against_raters_by_hand():
    c = cluster_annotations(RATERS)
    r = compare_method(c, [(5, 10, 10), (10, 30, 30.2), (100, 100, 100)])
    assert r["found"].tolist() == [False, True, False, True]
    assert r["n_method_only"] == 1
    per = r["per_rater"].set_index("rater")
    assert per["n_spines"].tolist() == [3, 2, 2]
    np.testing.assert_allclose(per["method_recall"], [1 / 3, 1 / 2, 1])
    # the method has 3 spines: S1, S3 and one no rater marked
    np.testing.assert_allclose(per["rater_recall_of_method"], [1 / 3, 1 / 3, 2 / 3])
    a = r["agreement"]
    assert a["n_raters"].tolist() == [0, 1, 2, 3]
    assert a["n_spines"].tolist() == [1, 2, 1, 1]
    assert a["method_found"].tolist() == [1, 1, 0, 1]
    np.testing.assert_allclose(a["method_fraction"], [1, 0.5, 0, 1])
    assert r["matrix"].loc["method", "method"] == 1.0
    assert sorted(r["pairs"]["cluster"]) == [2, 4]


def test_agreement_without_method():
    a = agreement_by_raters(cluster_annotations(RATERS))
    assert a.columns.tolist() == ["n_raters", "n_spines"]
    assert a["n_spines"].tolist() == [2, 1, 1]


def test_intra_rater():
    first = [(5, 10, 10), (5, 20, 20), (10, 30, 30)]
    second = [(5, 10, 10.1), (5, 20, 20)]
    assert intra_rater_reliability(first, second) == pytest.approx((2 / 3 + 1) / 2)


def test_rule_i_drops_far_points():
    # a chain linked by DBSCAN (0.8 µm steps): the centre is 1.2 µm from both ends
    chain = {"A": [(0, 50, 0)], "B": [(0, 50, 0.8)], "C": [(0, 50, 1.6)], "D": [(0, 50, 2.4)]}
    c = cluster_annotations(chain)
    assert sorted(c.clusters["n_annotations"]) == [1, 3]
    assert c.clusters.set_index("raters").loc["A", "x_um"] == 0.0
    off = cluster_annotations(chain, config=RaterClusterConfig(drop_far_points=False))
    assert off.clusters["n_annotations"].tolist() == [4]


def test_rule_ii_splits_oversized():
    pts = {"A": [(0, 0, 0), (0, 0, 0.9)], "B": [(0, 0, 0.3), (0, 0, 1.2)]}
    c = cluster_annotations(pts)
    assert c.clusters["n_annotations"].tolist() == [2, 2]
    assert c.clusters["raters"].tolist() == ["A;B", "A;B"]
    np.testing.assert_allclose(c.clusters["x_um"], [0.15, 1.05])
    off = cluster_annotations(pts, config=RaterClusterConfig(split_oversized=False))
    assert off.clusters["n_annotations"].tolist() == [4]


def test_rule_iii_merges_close_clusters_within_capacity():
    # 2 µm in z and 0.8 µm in x: outside DBSCAN's ellipsoid, inside DeepD3's limits
    pts = {"A": [(0, 60, 0)], "B": [(2.0, 60, 0.8)], "C": []}
    c = cluster_annotations(pts)
    assert c.clusters["n_annotations"].tolist() == [2]
    assert cluster_annotations(pts, config=RaterClusterConfig(merge_close=False)).clusters["n_annotations"].tolist() == [1, 1]
    # a merge may not exceed the number of raters
    assert cluster_annotations(pts, n_raters=1).clusters["n_annotations"].tolist() == [1, 1]


def test_empty_rater_and_empty_method():
    c = cluster_annotations({"A": [(0, 0, 0)], "B": np.zeros((0, 3))})
    m = reliability_matrix(c)
    assert m.loc["B", "A"] == 0.0 and m.loc["B", "B"] == 1.0 and m.loc["A", "B"] == 0.0
    r = compare_method(c, np.zeros((0, 3)))
    per = r["per_rater"].set_index("rater")
    assert per.loc["A", "method_recall"] == 0.0 and per.loc["B", "method_recall"] == 1.0
    assert per.loc["A", "rater_recall_of_method"] == 0.0 and per.loc["B", "rater_recall_of_method"] == 1.0
    assert np.isfinite(r["matrix"].to_numpy()).all()
    # no rater marked anything: the method's one point is a spine only the method found
    nobody = cluster_annotations({"A": [], "B": np.zeros((0, 3))})
    assert len(nobody.clusters) == 0 and nobody.membership.shape == (0, 2)
    r = compare_method(nobody, [(0, 0, 0)])
    assert r["matrix"].loc["A", "B"] == 1.0 and r["matrix"].loc["A", "method"] == 0.0
    assert r["agreement"]["n_spines"].tolist() == [1, 0, 0]


def test_table_input_and_errors():
    table = pd.DataFrame({"rater": ["x", "y"], "z_um": [0, 0], "y_um": [0, 0], "x_um": [0, 0.1]})
    assert cluster_annotations(table).clusters["n_raters"].tolist() == [2]
    with pytest.raises(InputError):
        cluster_annotations(table.drop(columns="rater"))
    with pytest.raises(InputError):
        cluster_annotations({})


def test_seven_raters_recover_known_spines():
    # 60 spines on a grid (4 µm apart in xy, 6 µm in z); each of 7 raters marks ~80 % of
    # them with a jitter of at most 1 µm in z and 0.3 µm in xy.
    rng = np.random.default_rng(7)
    grid = np.array([(z, y, x) for z in (0, 6, 12) for y in range(0, 20, 4) for x in range(0, 16, 4)], float)
    found_by = rng.random((7, len(grid))) < 0.8
    ann, origin = {}, {}
    for r in range(7):
        idx = np.flatnonzero(found_by[r])
        jitter = np.clip(rng.normal(0, [0.5, 0.15, 0.15], (len(idx), 3)), [-1, -0.3, -0.3], [1, 0.3, 0.3])
        ann[f"r{r}"] = grid[idx] + jitter
        origin[f"r{r}"] = idx
    c = cluster_annotations(ann)
    spine_of = np.concatenate([origin[f"r{r}"] for r in range(7)])
    # every cluster holds the annotations of exactly one spine, and every marked spine is one cluster
    per_cluster = pd.Series(spine_of).groupby(c.annotations["cluster"].to_numpy()).nunique()
    assert (per_cluster == 1).all()
    assert len(c.clusters) == int(found_by.any(axis=0).sum())
    expected = np.bincount(found_by.sum(axis=0), minlength=8)[1:]
    assert agreement_by_raters(c)["n_spines"].tolist() == expected.tolist()
    m = reliability_matrix(c).to_numpy()
    both = found_by.astype(int) @ found_by.T.astype(int)
    np.testing.assert_allclose(m, both / found_by.sum(axis=1)[:, None])
