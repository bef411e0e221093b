"""Tests for evaluator/metrics.py: known values from the literature and independent recomputation."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from evaluator.metrics import (
    accuracy,
    band,
    binomial_se,
    largest_class_changes,
    mcnemar_exact,
    paired_compare,
    per_class_accuracy,
    topk_hits,
    wilson_interval,
)


def table(image_ids, labels, top5_ids):
    return SimpleNamespace(image_ids=np.asarray(image_ids), labels=np.asarray(labels), top5_ids=np.asarray(top5_ids))


# ---- top-k and accuracy ----------------------------------------------------------------------------------------------


def test_topk_hits_counts_failed_rows_as_misses():
    top5_ids = np.array([[3, 1, 2, 4, 5], [1, 3, 2, 4, 5], [1, 2, 4, 5, 6], [-1] * 5])
    labels = np.array([3, 3, 3, 3])
    top1, top5 = topk_hits(top5_ids, labels)
    assert top1.tolist() == [True, False, False, False]
    assert top5.tolist() == [True, True, False, False]
    assert top1.dtype == bool and top5.dtype == bool


def test_topk_hits_refuses_mismatched_shapes_and_negative_labels():
    with pytest.raises(ValueError, match=r"\(N, k\)"):
        topk_hits(np.zeros((3, 5), int), np.zeros(2, int))
    with pytest.raises(ValueError, match="class indices"):
        topk_hits(np.full((1, 5), -1), np.array([-1]))


def test_accuracy_is_a_fraction_and_refuses_empty():
    assert accuracy(np.array([True, False, True, True])) == 0.75
    with pytest.raises(ValueError, match="0 images"):
        accuracy(np.array([], dtype=bool))


# ---- intervals and bands ---------------------------------------------------------------------------------------------


def test_wilson_matches_newcombe_1998_examples():
    # Newcombe (1998), Statistics in Medicine 17:857, Table I: 81/263 -> 0.2553-0.3662; 0/10 -> 0-0.2775.
    lo, hi = wilson_interval(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and round(hi, 4) == 0.2775
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and round(lo, 4) == 0.7225


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="n > 0"):
        wilson_interval(0, 0)


def test_binomial_se_with_and_without_finite_population_correction():
    assert binomial_se(0.7, 700) == pytest.approx(math.sqrt(0.7 * 0.3 / 700))
    corrected = binomial_se(0.7, 700, 50_000)
    assert corrected == pytest.approx(math.sqrt(0.7 * 0.3 / 700) * math.sqrt(49_300 / 49_999))
    assert corrected < binomial_se(0.7, 700)
    assert binomial_se(0.7, 50_000, 50_000) == 0.0
    with pytest.raises(ValueError, match="population of 10"):
        binomial_se(0.5, 20, 10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binomial_se(75.0, 100)


def test_band_is_tolerance_plus_z_standard_errors():
    se = math.sqrt(0.75 * 0.25 / 1000) * math.sqrt(49_000 / 49_999)
    assert band(0.75, 1000, 50_000, 0.002) == pytest.approx(0.002 + 1.96 * se)
    # The full set is judged by the plain tolerance.
    assert band(0.75, 50_000, 50_000, 0.002) == pytest.approx(0.002)


# ---- McNemar ---------------------------------------------------------------------------------------------------------


def reference_mcnemar(b, c):
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


def test_mcnemar_exact_known_value():
    # 2 * (1 + 12 + 66) / 4096 = 0.03857421875
    assert mcnemar_exact(10, 2) == pytest.approx(0.03857421875, rel=1e-12)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    for b, c in [(0, 1), (0, 7), (3, 9), (25, 40), (100, 60)]:
        assert mcnemar_exact(b, c) == pytest.approx(reference_mcnemar(b, c), rel=1e-12)


def test_mcnemar_equal_and_empty_counts_give_one():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(7, 7) == 1.0
    assert mcnemar_exact(np.int64(3), np.int64(4)) == 1.0


def test_mcnemar_large_counts_are_finite_and_symmetric():
    p = mcnemar_exact(900, 1100)
    assert 0.0 < p < 1e-4
    assert p == mcnemar_exact(1100, 900)
    assert p == pytest.approx(reference_mcnemar(900, 1100), rel=1e-12)
    assert mcnemar_exact(1000, 1000) == 1.0


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError, match="b=-1"):
        mcnemar_exact(-1, 3)


# ---- paired comparison -----------------------------------------------------------------------------------------------


def make_paired_tables(seed=0):
    """Baseline and candidate over 8 shared ids (+1 own id each), candidate shuffled; 2 TOP1 lost, 1 gained."""
    ids = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 9)]
    labels = [10, 11, 12, 13, 14, 15, 16, 17]
    base_top5 = [[10, 1, 2, 3, 4], [11, 1, 2, 3, 4], [12, 1, 2, 3, 4], [13, 1, 2, 3, 4],
                 [0, 1, 14, 3, 4], [15, 1, 2, 3, 4], [16, 1, 2, 3, 4], [-1] * 5]
    cand_top5 = [row[:] for row in base_top5]
    cand_top5[1] = [57, 1, 2, 3, 4]  # lost, label absent from the candidate's top 5 (TOP5 lost too)
    cand_top5[3] = [58, 1, 2, 13, 4]  # lost, label at rank 4
    cand_top5[4] = [14, 1, 2, 3, 4]  # gained
    cand_top5[7] = [17, 1, 2, 3, 4]  # gained (baseline failed on this image)
    cand_top5[6] = [16, 5, 2, 3, 4]  # changed below rank 1, same hits
    baseline = table(ids + ["ILSVRC2012_val_00000099"], labels + [1], base_top5 + [[1, 2, 3, 4, 5]])
    order = np.random.default_rng(seed).permutation(len(ids) + 1)
    cand_ids = np.array(ids + ["ILSVRC2012_val_00000100"])[order]
    cand_labels = np.array(labels + [2])[order]
    candidate = table(cand_ids, cand_labels, np.array(cand_top5 + [[2, 0, 0, 0, 0]])[order])
    return baseline, candidate


def test_paired_compare_aligns_by_id_not_position():
    baseline, candidate = make_paired_tables()
    comparison = paired_compare(baseline, candidate)
    assert comparison.n_common == 8
    assert (comparison.top1_lost, comparison.top1_gained) == (2, 2)
    assert (comparison.top5_lost, comparison.top5_gained) == (1, 1)
    assert comparison.top1_p == pytest.approx(reference_mcnemar(2, 2))
    assert comparison.top5_p == 1.0
    assert comparison.lost_ids == ("ILSVRC2012_val_00000002", "ILSVRC2012_val_00000004")  # worst first
    assert comparison.gained_ids == ("ILSVRC2012_val_00000005", "ILSVRC2012_val_00000008")
    worst = comparison.lost_details[0]
    assert (worst.label, worst.candidate_top1, worst.candidate_rank) == (11, 57, None)
    assert comparison.lost_details[1].candidate_rank == 4
    assert comparison.identical_predictions is False


def test_paired_compare_same_table_shuffled_is_identical():
    baseline, _ = make_paired_tables()
    order = np.random.default_rng(1).permutation(len(baseline.image_ids))
    shuffled = table(baseline.image_ids[order], baseline.labels[order], baseline.top5_ids[order])
    comparison = paired_compare(baseline, shuffled)
    assert comparison.identical_predictions is True
    assert (comparison.top1_lost, comparison.top1_gained, comparison.top1_p) == (0, 0, 1.0)
    assert comparison.summary() == "identical top-5 predictions on 9 common images"


def test_paired_summary_names_counts_and_worst_images():
    baseline, candidate = make_paired_tables()
    comparison = paired_compare(baseline, candidate)
    class_names = [f"class{i}, alias" for i in range(100)]
    text = comparison.summary(worst=1, class_names=class_names)
    assert text.startswith("top1 lost 2, gained 2, p=1; top5 lost 1, gained 1, p=1; 8 common images")
    assert "worst: ILSVRC2012_val_00000002 label 11 'class11' -> 57 'class57' (label not in top 5)" in text
    assert "00000004" not in text
    assert "label 13 -> 58 (label at rank 4)" in comparison.summary(worst=2)


def test_paired_summary_of_a_large_loss_and_of_no_overlap():
    ids = np.array([f"id{i:05d}" for i in range(2000)])
    labels = np.zeros(2000, int)
    baseline = table(ids, labels, np.zeros((2000, 5), int))
    candidate = table(ids, labels, np.full((2000, 5), -1))
    text = paired_compare(baseline, candidate).summary(worst=1)
    assert text.startswith("top1 lost 2000, gained 0, p<1e-300; top5 lost 2000, gained 0, p<1e-300")
    assert text.endswith("worst: id00000 label 0 -> failed (label not in top 5)")
    elsewhere = table(np.char.add("x", ids), labels, np.zeros((2000, 5), int))
    assert paired_compare(baseline, elsewhere).summary() == "no common images to compare"


def test_paired_compare_refuses_duplicate_ids_and_conflicting_labels():
    baseline, candidate = make_paired_tables()
    doubled = table(np.r_[baseline.image_ids, baseline.image_ids[:1]], np.r_[baseline.labels, baseline.labels[:1]],
                    np.r_[baseline.top5_ids, baseline.top5_ids[:1]])
    with pytest.raises(ValueError, match="more than once.*00000001"):
        paired_compare(doubled, candidate)
    relabelled = table(baseline.image_ids, baseline.labels + 1, baseline.top5_ids)
    with pytest.raises(ValueError, match="different ground truth"):
        paired_compare(relabelled, candidate)


# ---- per class -------------------------------------------------------------------------------------------------------


def test_per_class_accuracy_marks_absent_classes_nan():
    labels = np.array([0, 0, 0, 2, 2, 4])
    hits = np.array([True, False, True, True, True, False])
    class_accuracy, counts = per_class_accuracy(labels, hits, n_classes=5)
    assert counts.tolist() == [3, 0, 2, 0, 1]
    assert class_accuracy[0] == pytest.approx(2 / 3)
    assert class_accuracy[2] == 1.0 and class_accuracy[4] == 0.0
    assert np.isnan(class_accuracy[[1, 3]]).all()
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        per_class_accuracy(np.array([5]), np.array([True]), n_classes=5)


def test_largest_class_changes_orders_by_absolute_change():
    labels = np.repeat(np.arange(5), 4)  # 4 images per class
    hits_a = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    hits_b = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    # class 0: 1.0 -> 0.75, class 1: 0.5 -> 1.0, class 2 unchanged, class 3: 0.75 -> 0.0, class 4 unchanged
    changes = largest_class_changes(labels, hits_a, labels, hits_b, k=10, n_classes=6)
    assert [c for c, *_ in changes] == [3, 1, 0]
    assert changes[0] == (3, 0.75, 0.0, 4)
    assert len(largest_class_changes(labels, hits_a, labels, hits_b, k=2, n_classes=6)) == 2
