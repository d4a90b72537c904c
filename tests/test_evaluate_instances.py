"""Instance matching by IoU, the matching curve and split/merge counts, by hand."""

import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.evaluate import match_instances, matching_curve, overlaps, split_merge_counts
from spinequant.evaluate.assign import match_by_score


def _line(**objects):
    """A 1 x 1 x 20 label image; objects given as id=(start, stop)."""
    a = np.zeros((1, 1, 20), np.int32)
    for name, (lo, hi) in objects.items():
        a[0, 0, lo:hi] = int(name[1:])
    return a


# truth A (id 1) = x 0..9, B (id 2) = x 10..13; pred P (id 7) = x 2..11, Q (id 9) = x 0..1
TRUTH = _line(t1=(0, 10), t2=(10, 14))
PRED = _line(t7=(2, 12), t9=(0, 2))
IOU_AP, IOU_AQ, IOU_BP = 8 / 12, 2 / 10, 2 / 12


def test_overlaps_and_iou_by_hand():
    ov = overlaps(PRED, TRUTH)
    assert ov.true_ids.tolist() == [1, 2] and ov.pred_ids.tolist() == [7, 9]
    assert ov.intersection.tolist() == [[8, 2], [2, 0]]
    np.testing.assert_allclose(ov.iou, [[IOU_AP, IOU_AQ], [IOU_BP, 0.0]])


def test_hungarian_versus_greedy():
    h = match_instances(PRED, TRUTH, iou_threshold=0.15, method="hungarian")
    assert h["tp"] == 2 and h["f1"] == 1.0
    assert h["mean_matched_iou"] == pytest.approx((IOU_AQ + IOU_BP) / 2)
    assert sorted(zip(h["pairs"]["true_id"], h["pairs"]["pred_id"])) == [(1, 9), (2, 7)]
    g = match_instances(PRED, TRUTH, iou_threshold=0.15, method="greedy")
    assert g["tp"] == 1 and g["fp"] == 1 and g["fn"] == 1
    assert g["precision"] == 0.5 and g["recall"] == 0.5 and g["f1"] == 0.5
    assert g["mean_matched_iou"] == pytest.approx(IOU_AP)
    with pytest.raises(InputError):
        match_instances(PRED, TRUTH, method="best")


def test_matching_curve_by_hand():
    curve = matching_curve(PRED, TRUTH, thresholds=(0.1, 0.5, 0.7)).set_index("iou_threshold")
    assert curve["tp"].tolist() == [2, 1, 0]
    assert curve["f1"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert curve["mean_matched_iou"].tolist() == pytest.approx([(IOU_AQ + IOU_BP) / 2, IOU_AP, 0.0])


def test_threshold_is_inclusive():
    truth, pred = _line(t1=(0, 4)), _line(t1=(0, 2))   # IoU exactly 0.5
    assert match_instances(pred, truth, iou_threshold=0.5)["tp"] == 1
    assert match_instances(pred, truth, iou_threshold=0.51)["tp"] == 0


def test_anisotropic_voxels_do_not_change_iou():
    # IoU counts voxels; every voxel has the same volume whatever the spacing, so a 3D
    # case with a thick z step gives the same as counting by hand.
    truth = np.zeros((3, 4, 4), np.int32)
    truth[0:2, 0:2, 0:2] = 1                  # 8 voxels
    pred = np.zeros_like(truth)
    pred[1:3, 0:2, 0:2] = 4                   # 8 voxels, 4 shared
    r = match_instances(pred, truth, iou_threshold=0.3)
    assert r["pairs"]["iou"].tolist() == pytest.approx([4 / 12])


@pytest.mark.parametrize("pred_empty, truth_empty, f1, recall, precision, mean_iou", [
    (True, True, 1.0, 1.0, 1.0, 1.0),
    (True, False, 0.0, 0.0, 0.0, 0.0),
    (False, True, 0.0, 0.0, 0.0, 0.0),
])
def test_empty_images(pred_empty, truth_empty, f1, recall, precision, mean_iou):
    pred = np.zeros((2, 3, 3), np.int32) if pred_empty else np.ones((2, 3, 3), np.int32)
    truth = np.zeros((2, 3, 3), np.int32) if truth_empty else np.ones((2, 3, 3), np.int32)
    r = match_instances(pred, truth)
    assert (r["f1"], r["recall"], r["precision"], r["mean_matched_iou"]) == (f1, recall, precision, mean_iou)
    curve = matching_curve(pred, truth)
    assert np.isfinite(curve[["precision", "recall", "f1", "mean_matched_iou"]].to_numpy()).all()
    assert split_merge_counts(pred, truth)["n_split"] == 0


def test_split_and_merge_counts():
    truth = _line(t1=(0, 10), t2=(12, 15), t3=(15, 18))
    pred = _line(t1=(0, 5), t2=(5, 10), t5=(12, 18))
    r = split_merge_counts(pred, truth)
    assert r == {"n_split": 1, "n_merge": 1, "split_true_ids": [1], "merge_pred_ids": [5]}
    # a small prediction that pokes into a true object does not make it split
    pred2 = _line(t1=(0, 10), t2=(9, 14))
    assert split_merge_counts(pred2, _line(t1=(0, 10)))["n_split"] == 0


def test_bad_label_inputs():
    with pytest.raises(InputError, match="integer"):
        overlaps(np.zeros((2, 2), float), np.zeros((2, 2), int))
    with pytest.raises(InputError, match="shape"):
        overlaps(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_match_by_score_distances():
    d = np.array([[0.5, 0.9], [0.9, 2.3]])
    rows, cols = match_by_score(d, 1.0, larger_is_better=False)
    assert list(zip(rows, cols)) == [(0, 1), (1, 0)]
    rows, cols = match_by_score(d, 1.0, larger_is_better=False, method="greedy")
    assert list(zip(rows, cols)) == [(0, 0)]


def test_sparse_hungarian_equals_dense_assignment():
    from scipy.optimize import linear_sum_assignment

    from spinequant.evaluate.assign import assign_pairs

    rng = np.random.default_rng(3)
    for _ in range(20):
        score = rng.random((30, 25)) * (rng.random((30, 25)) < 0.08)
        rows, cols = np.nonzero(score)
        chosen = assign_pairs(rows, cols, score[rows, cols])
        assert len(set(rows[chosen])) == len(chosen) == len(set(cols[chosen]))
        # dense reference: most pairs first (big bonus), then the largest total score
        dense = np.where(score > 0, 1000 + score, 0)
        r, c = linear_sum_assignment(dense, maximize=True)
        keep = score[r, c] > 0
        assert len(chosen) == keep.sum()
        assert score[rows[chosen], cols[chosen]].sum() == pytest.approx(score[r, c][keep].sum())


def test_overlaps_many_objects_sparse():
    # 2000 objects each: never a dense 2000 x 2000 matrix
    truth = np.arange(1, 2001, dtype=np.int32).repeat(4).reshape(1, 1, 8000)
    pred = truth.copy()
    pred[0, 0, ::4] = 0
    r = match_instances(pred, truth)
    assert r["tp"] == 2000 and r["mean_matched_iou"] == pytest.approx(0.75)
