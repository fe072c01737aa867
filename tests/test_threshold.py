"""The link threshold from the scored pairs alone: the one whose clusters the model expects to be best."""

from __future__ import annotations

import numpy as np

from citizen_view.linkage.clusters import components
from citizen_view.linkage.threshold import choose_threshold, expected_f1, f1_by_threshold


def _probability(w: np.ndarray) -> np.ndarray:
    return 1 / (1 + 2.0 ** (-w))


def _scored(pairs: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    left, right, w = (np.array(x) for x in zip(*pairs))
    return left.astype(np.int64), right.astype(np.int64), w.astype(float), _probability(w.astype(float))


def _dense_register(rng: np.random.Generator) -> list[tuple[int, int, float]]:
    """Households of 3 people with 10 records each: every pair of one person's records is scored high (6..14);
    a record of one person meets the others of its household at weight 2..5 (shared surname and address, no
    birth date to tell them apart): few links, but enough to chain the household into one cluster."""
    pairs = []
    for household in range(20):
        people = [list(range(household * 30 + p * 10, household * 30 + p * 10 + 10)) for p in range(3)]
        for records in people:
            pairs += [(a, b, rng.uniform(6, 14)) for k, a in enumerate(records) for b in records[k + 1 :]]
        for p, q in ((0, 1), (1, 2)):
            pairs += [(people[p][0], b, rng.uniform(2, 5)) for b in people[q]]
    return pairs


def test_a_dense_register_is_not_chained_through_its_households():
    """A histogram of these weights has no valley above the household links; the clusters' expected F1 does."""
    left, right, w, p = _scored(_dense_register(np.random.default_rng(1)))
    threshold, method = choose_threshold(left, right, w, p)
    assert "expected F1" in method
    n = 600
    count, labels = components(n, left[w >= threshold], right[w >= threshold])
    assert count == 60 and all(len(set(labels[k * 10 : k * 10 + 10])) == 1 for k in range(60)), threshold
    assert expected_f1(n, left, right, p, w >= threshold) > expected_f1(n, left, right, p, w >= 2)


def test_pairs_of_duplicates_get_a_threshold_between_matches_and_non_matches():
    """FEBRL-like: originals with one duplicate each (weights 8..16) among random non-matching pairs (-4..0)."""
    rng = np.random.default_rng(2)
    pairs = [(2 * k, 2 * k + 1, rng.uniform(8, 16)) for k in range(500)]
    pairs += [(int(a), int(b), rng.uniform(-4, 0)) for a, b in rng.integers(0, 1000, size=(3000, 2)) if a != b]
    left, right, w, p = _scored(pairs)
    threshold, _ = choose_threshold(left, right, w, p)
    assert 0 <= threshold <= 8
    assert ((w >= threshold) == (np.arange(len(w)) < 500)).all()  # every duplicate linked, no random pair


def test_pairs_the_model_finds_more_likely_matches_are_linked_below_the_valley():
    """Duplicates scored 8..16, and a few (a source without birth dates) 0.05..3, among non-matches
    scored -6..-0.05: the emptiest stretch of the histogram lies above the weak duplicates; they are still linked, as
    each is more likely a match than not; the non-matches are not."""
    rng = np.random.default_rng(4)
    pairs = [(2 * k, 2 * k + 1, rng.uniform(8, 16)) for k in range(800)]
    pairs += [(2 * k, 2 * k + 1, rng.uniform(0.05, 3)) for k in range(800, 812)]
    pairs += [(int(a), int(b), rng.uniform(-6, -0.05)) for a, b in rng.integers(0, 1800, size=(4000, 2)) if a != b]
    left, right, w, p = _scored(pairs)
    threshold, method = choose_threshold(left, right, w, p)
    assert threshold == 0.0 and "lowered from the histogram valley" in method, (threshold, method)
    assert ((w >= threshold) == (np.arange(len(w)) < 812)).all()


def test_too_few_pairs_fall_back_to_probability_one_half():
    threshold, method = choose_threshold(*_scored([(0, 1, 5.0), (1, 2, -1.0)]))
    assert threshold == 0.0 and "too few" in method


def test_the_sweep_from_the_top_gives_each_thresholds_expected_f1():
    """Joining clusters band by band from the highest threshold down gives what linking all records at each
    threshold gives, on a dense register and on random pairs (thresholds unsorted, one repeated, one above all)."""
    rng = np.random.default_rng(3)
    random_pairs = [(int(a), int(b), rng.uniform(-4, 14)) for a, b in rng.integers(0, 400, size=(2000, 2)) if a != b]
    for pairs, n in ((_dense_register(np.random.default_rng(1)), 600), (random_pairs, 400)):
        left, right, w, p = _scored(pairs)
        thresholds = np.array([3.0, -2.0, 9.5, 3.0, 0.25, 20.0, 6.0])
        swept = f1_by_threshold(n, left, right, w, p, thresholds)
        one_by_one = [expected_f1(n, left, right, p, w >= t) for t in thresholds]
        assert np.allclose(swept, one_by_one, rtol=0, atol=1e-12), (swept, one_by_one)
        assert len(set(np.round(one_by_one, 6))) > 2  # the thresholds do give different clusters


def test_the_valley_is_lowered_only_while_the_expected_f1_stays_near_it():
    from citizen_view.linkage.threshold import TIE, _lowered

    candidates = np.arange(-2.0, 10.25, 0.25)
    scores = np.full(candidates.size, 0.95)
    # a dip at 3.0-3.5 (the chaining the bound stops at), recovered lower down at 0.25
    scores[(candidates >= 3.0) & (candidates <= 3.5)] = 0.95 - 2 * TIE
    assert _lowered(4.5, candidates, scores, 0.95) == 3.75
    scores[:] = 0.95  # no dip: down to weight 0, never below
    assert _lowered(4.5, candidates, scores, 0.95) == 0.0
    assert _lowered(-1.0, candidates, scores, 0.95) == -1.0  # a valley below weight 0 stays
