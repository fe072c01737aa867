"""Clustering keeps twins and same-name parent/child apart by the model's own evidence, not by one noise model."""

from __future__ import annotations

import polars as pl

from citizen_view.linkage.clusters import IdentityEvidence, cluster_records, swapped, within_one_edit

# Weights (log2 m/u) as a fitted model would give them: one where birth dates are reliable for the same
# person (a different date is strong evidence against), one where they are often mistyped (weak evidence).
RELIABLE_DATES = IdentityEvidence(
    dob={
        "same date of birth": 10.0,
        "day and month swapped": 7.0,
        "date of birth one digit off": 3.0,
        "same year of birth": -3.0,
        "different": -9.0,
    },
    national_id={"same national ID": 11.0, "national ID one digit off": 8.0, "different": -7.0},
)
NOISY_DATES = IdentityEvidence(
    dob={
        "same date of birth": 8.0,
        "day and month swapped": 5.0,
        "date of birth one digit off": 4.0,
        "same year of birth": 1.0,
        "different": -2.0,
    },
    national_id=RELIABLE_DATES.national_id,
)


def _records(rows):
    return pl.DataFrame(rows, schema=["record_key", "source", "national_id", "national_id_valid", "dob"], orient="row")


def _edges(rows):
    return pl.DataFrame(rows, schema=["record_key_l", "record_key_r", "match_weight"], orient="row")


def _groups(result) -> set[frozenset[str]]:
    g = result.labels.group_by("cluster").agg(pl.col("record_key"))
    return {frozenset(keys) for keys in g["record_key"].to_list()}


def test_level_rules():
    assert swapped("19800102") == "19800201" and swapped("19801302") is None and swapped("1980|502") is None
    assert within_one_edit("19800102", "19800103") and within_one_edit("19800102", "19080102")
    assert within_one_edit("1980010", "19800102") and not within_one_edit("19800102", "19650102")
    e = RELIABLE_DATES
    assert e.dob_weight("19800102", "19800102") == 10.0
    assert e.dob_weight("19800102", "19800201") == 7.0
    assert e.dob_weight("19800102", "19800112") == 3.0
    assert e.dob_weight("19800102", "19801230") == -3.0
    assert e.dob_weight("19800102", "19620714") == -9.0
    assert e.dob_weight(None, "19620714") is None and IdentityEvidence().dob_weight("1", "2") is None


def test_twins_linked_through_a_permit_record_stay_apart():
    records = _records(
        [
            ("reg:twinA", "reg", "111222333", True, "19900505"),
            ("reg:twinB", "reg", "123456782", True, "19900505"),
            ("tax:twinA", "tax", "111222333", True, "19900505"),
            ("permit:1", "permit", None, None, None),
        ]
    )
    edges = _edges([("reg:twinA", "tax:twinA", 30.0), ("reg:twinA", "permit:1", 9.0), ("permit:1", "reg:twinB", 8.0)])
    result = cluster_records(records, edges, threshold=5.0, evidence=RELIABLE_DATES)
    assert _groups(result) == {frozenset({"reg:twinA", "tax:twinA", "permit:1"}), frozenset({"reg:twinB"})}
    assert result.merges_refused == 1


def test_twins_the_model_links_directly_are_still_apart_by_their_valid_ids():
    records = _records(
        [("reg:a", "reg", "111222333", True, "19900505"), ("reg:b", "reg", "123456782", True, "19900505")]
    )
    result = cluster_records(records, _edges([("reg:a", "reg:b", 9.0)]), threshold=5.0, evidence=RELIABLE_DATES)
    assert _groups(result) == {frozenset({"reg:a"}), frozenset({"reg:b"})}


def test_each_component_with_a_conflict_is_clustered_on_its_own_records_wherever_they_sit():
    """Many components get the careful pass, their records interleaved in the extract's order with clean components
    between: each comes out exactly as it does alone (its records found by component, none of another's)."""

    def scenario(n: int) -> tuple[list, list]:
        records = [
            (f"reg:twinA{n}", "reg", "111222333", True, "19900505"),
            (f"reg:twinB{n}", "reg", "123456782", True, "19900505"),
            (f"tax:twinA{n}", "tax", "111222333", True, "19900505"),
            (f"permit:{n}", "permit", None, None, None),
            (f"reg:father{n}", "reg", None, None, "19620314"),
            (f"reg:son{n}", "reg", None, None, "19910822"),
            (f"lic:father{n}", "lic", None, None, "19620314"),
            (f"permit:jan{n}", "permit", None, None, None),
            (f"reg:clean{n}", "reg", None, None, "19700101"),
            (f"tax:clean{n}", "tax", None, None, "19700101"),
        ]
        edges = [
            (f"reg:twinA{n}", f"tax:twinA{n}", 30.0 - n),
            (f"reg:twinA{n}", f"permit:{n}", 9.0),
            (f"permit:{n}", f"reg:twinB{n}", 8.0),
            (f"reg:father{n}", f"lic:father{n}", 18.0),
            (f"permit:jan{n}", f"reg:son{n}", 9.0),
            (f"permit:jan{n}", f"reg:father{n}", 8.5),
            (f"reg:clean{n}", f"tax:clean{n}", 12.0),
        ]
        return records, edges

    alone, refused = set(), 0
    all_records, all_edges = [], []
    for n in range(5):
        records, edges = scenario(n)
        result = cluster_records(_records(records), _edges(edges), threshold=5.0, evidence=RELIABLE_DATES)
        alone |= _groups(result)
        refused += result.merges_refused
        all_records.append(records)
        all_edges += edges
    interleaved = [row for rows in zip(*all_records) for row in rows]  # record k of every scenario, then k + 1
    together = cluster_records(_records(interleaved), _edges(all_edges), threshold=5.0, evidence=RELIABLE_DATES)
    assert together.components_with_conflicts == 10  # twins and father/son in each of five
    assert _groups(together) == alone and together.merges_refused == refused == 10
    assert frozenset({"reg:twinB3"}) in alone and frozenset({"reg:son2", "permit:jan2"}) in alone


def test_same_name_parent_and_child_stay_apart_where_the_model_trusts_birth_dates():
    records = _records(
        [
            ("reg:father", "reg", None, None, "19620314"),
            ("reg:son", "reg", None, None, "19910822"),
            ("tax:father", "tax", None, None, "19621403"),  # day and month swapped... as text, not a real date
            ("lic:father", "lic", None, None, "19620314"),
            ("permit:jan", "permit", None, None, None),
        ]
    )
    edges = _edges(
        [
            ("reg:father", "tax:father", 20.0),
            ("reg:father", "lic:father", 18.0),
            ("permit:jan", "reg:son", 9.0),
            ("permit:jan", "reg:father", 8.5),
        ]
    )
    result = cluster_records(records, edges, threshold=5.0, evidence=RELIABLE_DATES)
    assert _groups(result) == {
        frozenset({"reg:father", "tax:father", "lic:father"}),
        frozenset({"reg:son", "permit:jan"}),
    }


def test_a_birth_date_error_the_generator_never_makes_does_not_break_a_strong_true_link():
    # Two digits wrong: neither a typo, a swap nor the same year. Linked directly by the model (same ID,
    # same name): the pair's own weight already counts the disagreement, so the link stands even where
    # the model trusts birth dates.
    records = _records([("a:1", "a", "X17", None, "19900215"), ("b:1", "b", "X17", None, "19902751")])
    result = cluster_records(records, _edges([("a:1", "b:1", 14.0)]), threshold=5.0, evidence=RELIABLE_DATES)
    assert _groups(result) == {frozenset({"a:1", "b:1"})}


def test_a_chained_date_disagreement_refuses_only_when_the_model_says_it_outweighs_the_link():
    records = _records(
        [
            ("a:1", "a", None, None, "19900215"),
            ("b:1", "b", None, None, None),
            ("c:1", "c", None, None, "19651107"),
        ]
    )
    edges = _edges([("a:1", "b:1", 20.0), ("b:1", "c:1", 9.0)])
    apart = cluster_records(records, edges, threshold=5.0, evidence=RELIABLE_DATES)
    assert _groups(apart) == {frozenset({"a:1", "b:1"}), frozenset({"c:1"})}  # -9 + 9 < 5: refused
    together = cluster_records(records, edges, threshold=5.0, evidence=NOISY_DATES)
    assert _groups(together) == {frozenset({"a:1", "b:1", "c:1"})}  # -2 + 9 >= 5: the link wins


def test_an_opaque_identifier_never_refuses_a_merge():
    records = _records(
        [
            ("a:1", "a", "AB-1", None, "19900215"),
            ("b:1", "b", None, None, None),
            ("c:1", "c", "ZZ-9", None, "19900215"),
        ]
    )
    result = cluster_records(
        records, _edges([("a:1", "b:1", 9.0), ("b:1", "c:1", 9.0)]), threshold=5.0, evidence=RELIABLE_DATES
    )
    assert _groups(result) == {frozenset({"a:1", "b:1", "c:1"})}


def test_link_only_keeps_at_most_one_record_of_each_source():
    records = _records([("a:1", "a", None, None, None), ("b:1", "b", None, None, None), ("a:2", "a", None, None, None)])
    edges = _edges([("a:1", "b:1", 12.0), ("b:1", "a:2", 11.0)])
    assert _groups(cluster_records(records, edges, threshold=5.0)) == {frozenset({"a:1", "b:1", "a:2"})}
    result = cluster_records(records, edges, threshold=5.0, duplicate_free={"a", "b"})
    assert _groups(result) == {frozenset({"a:1", "b:1"}), frozenset({"a:2"})}


def test_links_below_threshold_are_not_used_and_singletons_get_labels():
    records = _records([("a", "s", None, None, None), ("b", "s", None, None, None), ("c", "s", None, None, None)])
    result = cluster_records(records, _edges([("a", "b", 4.9)]), threshold=5.0)
    assert _groups(result) == {frozenset({"a"}), frozenset({"b"}), frozenset({"c"})}


def _clique(prefix: str, n: int, weight: float) -> list[tuple[str, str, float]]:
    return [(f"{prefix}{a}", f"{prefix}{b}", weight) for a in range(n) for b in range(a + 1, n)]


def test_a_cluster_bridged_by_one_weak_record_is_split():
    # two people of five records each, every record linked to its own; one record links weakly to one of each
    keys = [f"a{k}" for k in range(5)] + [f"b{k}" for k in range(5)] + ["w"]
    records = _records([(k, "register", None, None, None) for k in keys])
    edges = _edges(_clique("a", 5, 15.0) + _clique("b", 5, 14.0) + [("w", "a0", 6.0), ("w", "b0", 6.5)])
    result = cluster_records(records, edges, threshold=5.0)
    groups = _groups(result)
    assert frozenset(f"a{k}" for k in range(5)) <= next(g for g in groups if "a0" in g)
    assert not any("a0" in g and "b0" in g for g in groups)
    assert result.bridges_cut >= 1


def test_a_chain_of_single_links_or_a_strong_bridge_is_not_cut():
    keys = ["x0", "x1", "x2", "x3"]
    chain = cluster_records(
        _records([(k, "register", None, None, None) for k in keys]),
        _edges([("x0", "x1", 9.0), ("x1", "x2", 6.0), ("x2", "x3", 9.0)]),
        threshold=5.0,
    )
    assert len(_groups(chain)) == 1
    keys = [f"a{k}" for k in range(4)] + [f"b{k}" for k in range(4)]
    strong = cluster_records(
        _records([(k, "register", None, None, None) for k in keys]),
        _edges(_clique("a", 4, 12.0) + _clique("b", 4, 12.0) + [("a0", "b0", 11.0)]),
        threshold=5.0,
    )
    assert len(_groups(strong)) == 1
    reviewed = cluster_records(
        _records([(k, "register", None, None, None) for k in keys]),
        _edges(_clique("a", 4, 12.0) + _clique("b", 4, 12.0)),
        threshold=5.0,
        same=[("a0", "b0")],
    )
    assert len(_groups(reviewed)) == 1
