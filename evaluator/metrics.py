"""Accuracy arithmetic on prediction arrays: top-k hits, intervals, the pass band, per-class and paired comparisons.

Every function is pure and vectorised; accuracies are fractions. Inputs that cannot be scored (empty sets, shapes that
do not match, ids listed twice) raise ValueError: they are programming errors of the caller, not user input.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile
FAILED_ID = -1  # top5_ids row value of an image that could not be decoded or run


def topk_hits(top5_ids: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image TOP1 and TOP5 hits (bool arrays); rows of failed images (ids -1) count as misses."""
    top5_ids = np.asarray(top5_ids)
    labels = np.asarray(labels)
    if top5_ids.ndim != 2 or top5_ids.shape[1] < 1 or labels.shape != (top5_ids.shape[0],):
        raise ValueError(f"top5_ids must be (N, k) and labels (N,); got {top5_ids.shape} and {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels must be class indices >= 0; found {labels.min()}")
    matches = top5_ids[:, :5] == labels[:, None]
    return matches[:, 0].copy(), matches.any(axis=1)


def accuracy(hits: np.ndarray) -> float:
    """Fraction of hits; refuses an empty set, whose accuracy is undefined."""
    hits = np.asarray(hits)
    if hits.size == 0:
        raise ValueError("accuracy of 0 images is undefined: nothing was scored")
    return float(np.count_nonzero(hits)) / hits.size


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95% by default)."""
    k, n = operator.index(k), operator.index(n)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"Wilson interval needs 0 <= k <= n and n > 0; got k={k}, n={n}")
    p = k / n
    z2_n = z * z / n
    centre = (p + z2_n / 2) / (1 + z2_n)
    half_width = z / (1 + z2_n) * math.sqrt(p * (1 - p) / n + z2_n / (4 * n))
    # At k == 0 or k == n the bound is exactly 0 or 1; floating point would leave ~1e-17.
    lo = 0.0 if k == 0 else max(0.0, centre - half_width)
    hi = 1.0 if k == n else min(1.0, centre + half_width)
    return lo, hi


def binomial_se(p: float, n: int, n_population: int | None = None) -> float:
    """Standard error of an accuracy p measured on n images, with the finite-population correction for n of N."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"accuracy must be a fraction in [0, 1]; got {p}")
    if n <= 0:
        raise ValueError(f"standard error needs n > 0 images; got {n}")
    se = math.sqrt(p * (1.0 - p) / n)
    if n_population is None:
        return se
    if n_population < n:
        raise ValueError(f"subset of {n} images cannot come from a population of {n_population}")
    if n_population == n:
        return 0.0
    return se * math.sqrt((n_population - n) / (n_population - 1))


def band(expected: float, n: int, n_population: int | None, tolerance: float, z: float = 1.96) -> float:
    """Half-width of the pass band: tolerance + z * SE(expected, n, N) (DESIGN "Pass/fail rule")."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance}")
    return tolerance + z * binomial_se(expected, n, n_population)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs: min(1, 2 * BinomCDF(min(b, c); b + c, 1/2))."""
    b, c = operator.index(b), operator.index(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0; got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    # Exact integer sum of binomial coefficients; Python's int / int is correctly rounded even for 2**50000.
    term = 1  # comb(n, 0)
    tail = 1
    for i in range(min(b, c)):
        term = term * (n - i) // (i + 1)
        tail += term
    return min(1.0, tail / (1 << (n - 1)))


# ---- paired comparison of two prediction tables -------------------------------------------------------------------


class PredictionTable(Protocol):
    """What paired_compare reads: artifacts.Predictions or any object with these arrays."""

    image_ids: np.ndarray  # str (N,)
    labels: np.ndarray  # int (N,)
    top5_ids: np.ndarray  # int (N, 5), -1 for failed images


@dataclass(frozen=True)
class LostImage:
    """An image the baseline got right (TOP1) and the candidate got wrong."""

    image_id: str
    label: int  # also the baseline's top-1 prediction, since the baseline got it right
    candidate_top1: int
    candidate_rank: int | None  # 1-based position of the label in the candidate's top 5, None when absent

    def describe(self, class_names=None) -> str:
        """E.g. "ILSVRC2012_val_00001234 label 12 'goldfinch' -> 57 'garter snake' (label not in top 5)"."""
        where = "label not in top 5" if self.candidate_rank is None else f"label at rank {self.candidate_rank}"
        predicted = "failed" if self.candidate_top1 == FAILED_ID else _class_label(self.candidate_top1, class_names)
        return f"{self.image_id} label {_class_label(self.label, class_names)} -> {predicted} ({where})"


@dataclass(frozen=True)
class PairedComparison:
    """Per-image flips between a baseline (A) and a candidate (B) on the images both scored."""

    n_common: int
    top1_lost: int  # hit in A, miss in B
    top1_gained: int  # miss in A, hit in B
    top1_p: float  # exact McNemar p-value of top1_lost vs top1_gained
    top5_lost: int
    top5_gained: int
    top5_p: float
    lost_ids: tuple[str, ...]  # TOP1 lost, worst first (label furthest down the candidate's top 5)
    gained_ids: tuple[str, ...]  # TOP1 gained, by id
    lost_details: tuple[LostImage, ...]  # same order as lost_ids
    identical_predictions: bool  # top-5 ids identical on every common image

    def summary(self, worst: int = 3, class_names=None) -> str:
        """One line: flip counts with p-values, then the worst TOP1 losses (label -> candidate's top-1)."""
        if self.n_common == 0:
            return "no common images to compare"
        if self.identical_predictions:
            return f"identical top-5 predictions on {self.n_common:,} common images"
        text = (
            f"top1 lost {self.top1_lost}, gained {self.top1_gained}, {_format_p(self.top1_p)}; "
            f"top5 lost {self.top5_lost}, gained {self.top5_gained}, {_format_p(self.top5_p)}; "
            f"{self.n_common:,} common images"
        )
        shown = self.lost_details[:worst]
        if shown:
            text += "; worst: " + ", ".join(lost.describe(class_names) for lost in shown)
        return text


def _format_p(p: float) -> str:
    if p == 0.0:
        return "p<1e-300"  # below the smallest float: 2 * tail / 2**(b+c) underflowed
    return f"p={p:.3g}" if p >= 0.001 else f"p={p:.1e}"


def _class_label(class_index: int, class_names) -> str:
    if class_names is None or not 0 <= class_index < len(class_names):
        return str(class_index)
    return f"{class_index} '{class_names[class_index].split(',')[0]}'"


def _unique_ids(ids: np.ndarray, which: str) -> np.ndarray:
    ids = np.asarray(ids).astype(str)
    unique, counts = np.unique(ids, return_counts=True)
    if unique.size != ids.size:
        raise ValueError(f"{which} lists image ids more than once, e.g. {unique[counts > 1][0]!r}")
    return ids


def paired_compare(baseline: PredictionTable, candidate: PredictionTable) -> PairedComparison:
    """Compare two prediction tables image by image on the ids both contain (aligned by id, not by position)."""
    ids_a = _unique_ids(baseline.image_ids, "baseline")
    ids_b = _unique_ids(candidate.image_ids, "candidate")
    common_ids, index_a, index_b = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    labels = np.asarray(baseline.labels)[index_a]
    differing = labels != np.asarray(candidate.labels)[index_b]
    if differing.any():
        raise ValueError(
            f"baseline and candidate disagree on the label of {np.count_nonzero(differing)} common images "
            f"(e.g. {common_ids[differing][0]!r}): they were scored against different ground truth"
        )
    top5_a = np.asarray(baseline.top5_ids)[index_a]
    top5_b = np.asarray(candidate.top5_ids)[index_b]
    top1_a, top5_hit_a = topk_hits(top5_a, labels)
    top1_b, top5_hit_b = topk_hits(top5_b, labels)

    lost = top1_a & ~top1_b
    gained = ~top1_a & top1_b
    top5_lost = int(np.count_nonzero(top5_hit_a & ~top5_hit_b))
    top5_gained = int(np.count_nonzero(~top5_hit_a & top5_hit_b))

    lost_rows = np.flatnonzero(lost)
    in_candidate_top5 = top5_b[lost_rows, :5] == labels[lost_rows, None]
    rank = np.where(in_candidate_top5.any(axis=1), in_candidate_top5.argmax(axis=1) + 1, 6)
    # Worst first: label absent from the candidate's top 5, then lower ranks; ties by id (common_ids is sorted).
    worst_first = np.argsort(-rank, kind="stable")
    lost_rows, rank = lost_rows[worst_first], rank[worst_first]
    lost_details = tuple(
        LostImage(
            image_id=str(common_ids[row]),
            label=int(labels[row]),
            candidate_top1=int(top5_b[row, 0]),
            candidate_rank=None if r == 6 else int(r),
        )
        for row, r in zip(lost_rows, rank)
    )
    return PairedComparison(
        n_common=int(common_ids.size),
        top1_lost=int(lost_rows.size),
        top1_gained=int(np.count_nonzero(gained)),
        top1_p=mcnemar_exact(int(lost_rows.size), int(np.count_nonzero(gained))),
        top5_lost=top5_lost,
        top5_gained=top5_gained,
        top5_p=mcnemar_exact(top5_lost, top5_gained),
        lost_ids=tuple(lost.image_id for lost in lost_details),
        gained_ids=tuple(str(image_id) for image_id in common_ids[gained]),
        lost_details=lost_details,
        identical_predictions=bool(np.array_equal(top5_a, top5_b)),
    )


# ---- per class -------------------------------------------------------------------------------------------------------


def per_class_accuracy(labels: np.ndarray, hits: np.ndarray, n_classes: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy per class (nan where a class has no images) and the image count per class."""
    labels = np.asarray(labels)
    hits = np.asarray(hits, dtype=bool)
    if labels.shape != hits.shape or labels.ndim != 1:
        raise ValueError(f"labels and hits must be 1-D of equal length; got {labels.shape} and {hits.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}); found {labels.min()}..{labels.max()}")
    counts = np.bincount(labels, minlength=n_classes)
    hit_counts = np.bincount(labels, weights=hits, minlength=n_classes)
    class_accuracy = np.full(n_classes, np.nan)
    np.divide(hit_counts, counts, out=class_accuracy, where=counts > 0)
    return class_accuracy, counts


def largest_class_changes(
    labels_a: np.ndarray, hits_a: np.ndarray, labels_b: np.ndarray, hits_b: np.ndarray, k: int = 10,
    n_classes: int = 1000,
) -> list[tuple[int, float, float, int]]:
    """The k classes whose accuracy moved most from A to B: (class_index, acc_a, acc_b, n), largest |change| first.

    Only classes present in both runs and whose accuracy changed are listed; n is the smaller of the two image counts
    (equal when both runs cover the same images). Ties keep class order.
    """
    acc_a, counts_a = per_class_accuracy(labels_a, hits_a, n_classes)
    acc_b, counts_b = per_class_accuracy(labels_b, hits_b, n_classes)
    change = np.abs(acc_b - acc_a)  # nan where a class is absent from either run
    candidates = np.flatnonzero(np.nan_to_num(change, nan=0.0) > 0)
    order = candidates[np.argsort(-change[candidates], kind="stable")][:k]
    return [
        (int(c), float(acc_a[c]), float(acc_b[c]), int(min(counts_a[c], counts_b[c])))
        for c in order
    ]
