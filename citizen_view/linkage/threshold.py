"""The link threshold, chosen without truth: the one whose clusters the fitted model itself expects to be best.

For a candidate threshold, the scored pairs at or above it are joined into clusters (connected components:
what linking at that threshold would put together). Under the model's own match probabilities p, the
clusters' expected pairwise outcome is

- true links: the sum of p over scored pairs inside a cluster;
- false links: every pair of records inside a cluster (scored or not) less those expected true links, so a
  pair the model never scored, or scored below the edge floor, counts as different people;
- missed links: the sum of p over scored pairs left in different clusters;

and the threshold with the highest expected F1 (2 TP / (2 TP + FP + FN)) is taken. Where candidate pairs
are mostly non-matches with a clear valley (FEBRL) this lands where the valley is; where one person has
many records (a dense register) it rises until households and twins stop chaining into one cluster, which
a histogram of pair weights cannot see.
"""

from __future__ import annotations

import numpy as np

from citizen_view.linkage.clusters import components

# The threshold is looked for in this weight range (probability ~0.2 .. ~0.999), in steps of STEP.
THRESHOLD_RANGE = (-2.0, 10.0)
STEP = 0.25
MIN_PAIRS = 50  # fewer scored pairs: no basis for a choice, probability 0.5 (weight 0)


def expected_f1(n: int, left: np.ndarray, right: np.ndarray, p: np.ndarray, linked: np.ndarray) -> float:
    """Expected pairwise F1 of the clusters the `linked` pairs make among `n` records, under match probabilities `p`."""
    _, label = components(n, left[linked], right[linked])
    sizes = np.bincount(label).astype(np.float64)
    together = label[left] == label[right]
    tp = float(p[together].sum())
    pairs = float((sizes * (sizes - 1) / 2).sum())
    fn = float(p[~together].sum())
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
    candidates = np.arange(lo, hi + STEP / 2, STEP)
    scores = np.array([expected_f1(n, left, right, p, weights >= t) for t in candidates])
    best = _middle_of_best(scores)
    return (
        float(round(candidates[best], 2)),
        f"highest expected F1 of the clusters ({scores[best]:.4f}) under the model's probabilities, "
        f"{weights.size:,} scored pairs, weights {lo}..{hi} in steps of {STEP}",
    )


def _middle_of_best(scores: np.ndarray) -> int:
    """The middle of the run of candidates that share the best score (an empty stretch of weights between the
    matches and the rest scores the same throughout: its middle moves least when the model is refitted)."""
    top = int(np.argmax(scores))
    tied = np.isclose(scores, scores[top], rtol=0, atol=1e-9)
    end = top
    while end + 1 < len(scores) and tied[end + 1]:
        end += 1
    return (top + end) // 2
