"""The link threshold, chosen without truth: the one whose clusters the fitted model itself expects to be best.

For a candidate threshold, the scored pairs at or above it are joined into clusters (connected components:
what linking at that threshold would put together). Under the model's own match probabilities p, the
clusters' expected pairwise outcome is

- true links: the sum of p over scored pairs inside a cluster;
- false links: every pair of records inside a cluster (scored or not) less those expected true links, so a
  pair the model never scored, or scored below the edge floor, counts as different people;
- missed links: the sum of p over scored pairs left in different clusters;

The threshold starts at the emptiest valley of the pairs' weight histogram (the least populated stretch
between non-matches and matches, where a small move changes fewest decisions). The candidate with the
highest expected F1 (2 TP / (2 TP + FP + FN)) replaces it only when it is clearly better, by more than
MIN_GAIN: where candidate pairs are mostly non-matches (FEBRL) the expected F1 is flat around the valley
(differences of 0.0002, below what the model's calibration can tell apart) and the valley stays; where one
person has many records (a dense register) the pairs are mostly matches, the histogram has no valley above
the household links, and the valley's clusters chain households, which the expected F1 sees (0.60 against
0.92 on 300 persons).

Where the valley stands, it is lowered candidate by candidate while the expected F1 stays within TIE (0.002) of the
valley's (stopping at the first that falls below), never below weight 0 (probability 0.5). The expected F1 above is that of connected components, which chain
(a record without a birth date joins two people of one household); the clusters actually made refuse such merges
where the model's own birth-date or national-ID evidence contradicts them, so the components' expected F1 undercounts
what linking more pairs gains, while a larger drop still warns of chains the veto cannot see (no birth dates to
contradict). At 200,000 generated persons: F1 0.9918 at the valley 4.67, 0.9927 at 3.5, 0.9941 at weight 0; on the
public us-agencies set weight 0 cost 0.008 while its 3.0 gained a little: hence the bound, not weight 0 outright.
Where a higher candidate is clearly better (the dense register's chained households), it still wins.
"""

from __future__ import annotations

import numpy as np

from citizen_view.linkage.clusters import components

# The threshold is looked for in this weight range (probability ~0.2 .. ~0.999), in steps of STEP.
THRESHOLD_RANGE = (-2.0, 10.0)
STEP = 0.25
MIN_PAIRS = 50  # fewer scored pairs: no basis for a choice, probability 0.5 (weight 0)
MIN_GAIN = 0.01  # expected F1 a candidate must gain over the valley to replace it
# A standing valley is lowered as far as the expected F1 stays within TIE of the valley's, never below weight LINK_AT
# (probability 0.5): linking more of the pairs the model finds more likely matches than not, whose chains clustering
# (clusters.py) refuses where a birth date or a checksum-valid ID contradicts them.
TIE = 0.002
LINK_AT = 0.0
HISTOGRAM_BINS = 60


def expected_f1(n: int, left: np.ndarray, right: np.ndarray, p: np.ndarray, linked: np.ndarray) -> float:
    """Expected pairwise F1 of the clusters the `linked` pairs make among `n` records, under match probabilities `p`."""
    _, label = components(n, left[linked], right[linked])
    return _expected_f1_of(label, left, right, p)


def f1_by_threshold(
    n: int, left: np.ndarray, right: np.ndarray, weights: np.ndarray, p: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """expected_f1 of linking at each threshold (the pairs with weight >= it), the same numbers at a fraction of the
    work: from the highest threshold down, each step joins the clusters of the step above along the pairs in its
    band of weights only, on a graph of clusters instead of all records and all links again; a pair once in one
    cluster stays there, so each step looks only at the pairs still apart, and cluster sizes are added up per
    cluster, not counted over all records."""
    scores = np.empty(len(thresholds))
    label, count, upper = np.arange(n, dtype=np.int64), n, np.inf
    sizes = np.ones(n, dtype=np.float64)  # records per cluster, by cluster label
    apart = np.arange(len(left))  # the pairs whose records are in different clusters
    tp = 0.0
    for k in np.argsort(thresholds)[::-1]:
        band = (weights >= thresholds[k]) & (weights < upper)
        if band.any():
            count, joined = components(count, label[left[band]], label[right[band]])
            label = joined[label]
            sizes = np.bincount(joined, weights=sizes, minlength=count)
            now_together = label[left[apart]] == label[right[apart]]
            tp += float(p[apart[now_together]].sum())
            apart = apart[~now_together]
        upper = thresholds[k]
        scores[k] = _f1(tp, float((sizes * (sizes - 1) / 2).sum()), float(p[apart].sum()))
    return scores


def _expected_f1_of(label: np.ndarray, left: np.ndarray, right: np.ndarray, p: np.ndarray) -> float:
    sizes = np.bincount(label).astype(np.float64)
    together = label[left] == label[right]
    return _f1(float(p[together].sum()), float((sizes * (sizes - 1) / 2).sum()), float(p[~together].sum()))


def _f1(tp: float, pairs: float, fn: float) -> float:
    """Expected F1 from the expected true links, the pairs inside clusters and the expected missed links."""
    fp = max(pairs - tp, 0.0)
    return 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0


def choose_threshold(
    left: np.ndarray, right: np.ndarray, weights: np.ndarray, probabilities: np.ndarray
) -> tuple[float, str]:
    """The match-weight threshold (and how it was chosen) for scored pairs (left[k], right[k]) given as record
    positions 0..n-1, with their match weights and probabilities."""
    finite = np.isfinite(weights) & np.isfinite(probabilities)
    left, right, weights, p = left[finite], right[finite], weights[finite], probabilities[finite]
    if weights.size < MIN_PAIRS:
        return 0.0, "too few scored pairs to choose from: probability 0.5 (weight 0)"
    n = int(max(left.max(), right.max())) + 1
    lo, hi = THRESHOLD_RANGE
    valley = histogram_valley(weights)
    candidates = np.arange(lo, hi + STEP / 2, STEP)
    scores, at_valley = np.split(f1_by_threshold(n, left, right, weights, p, np.append(candidates, valley)), [-1])
    at_valley = float(at_valley[0])
    best = _middle_of_best(scores)
    if scores[best] - at_valley <= MIN_GAIN:
        chosen = _lowered(valley, candidates, scores, at_valley)
        return chosen, (
            f"{'histogram valley' if chosen == valley else f'weight {chosen:g}, lowered from the histogram valley {valley}'}"
            f" of {weights.size:,} scored pairs in [{lo}, {hi}] (expected F1 of the valley's clusters "
            f"{at_valley:.4f}; the best candidate, {scores[best]:.4f}, gains no more than {MIN_GAIN})"
        )
    return float(round(candidates[best], 2)), (
        f"highest expected F1 of the clusters under the model's probabilities ({scores[best]:.4f}, against "
        f"{at_valley:.4f} at the histogram valley {valley}), {weights.size:,} scored pairs"
    )


def _lowered(valley: float, candidates: np.ndarray, scores: np.ndarray, at_valley: float) -> float:
    """The valley lowered candidate by candidate while the expected F1 stays within TIE of the valley's, but not below
    weight LINK_AT (probability 0.5); the valley itself when it lies lower. It stops at the first candidate below the
    bound: a dip in between is the chaining the bound is there to stop at, even if lower candidates recover."""
    chosen = valley
    for i in np.flatnonzero((candidates >= LINK_AT) & (candidates < valley))[::-1]:
        if scores[i] < at_valley - TIE:
            break
        chosen = float(round(candidates[i], 2))
    return chosen


def histogram_valley(weights: np.ndarray) -> float:
    """The emptiest stretch of the weight histogram within THRESHOLD_RANGE (smoothed over three bins); weight 0
    (probability 0.5) when no bin lies in the range."""
    lo, hi = THRESHOLD_RANGE
    counts, edges = np.histogram(weights, bins=HISTOGRAM_BINS, range=(min(weights.min(), lo), max(weights.max(), hi)))
    smooth = np.convolve(counts, np.ones(3) / 3, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    inside = np.flatnonzero((centres >= lo) & (centres <= hi))
    if not inside.size:
        return 0.0
    return float(round(centres[inside[np.argmin(smooth[inside])]], 2))


def _middle_of_best(scores: np.ndarray) -> int:
    """The middle of the run of candidates that share the best score (an empty stretch of weights between the
    matches and the rest scores the same throughout: its middle moves least when the model is refitted)."""
    top = int(np.argmax(scores))
    tied = np.isclose(scores, scores[top], rtol=0, atol=1e-9)
    end = top
    while end + 1 < len(scores) and tied[end + 1]:
        end += 1
    return (top + end) // 2
