"""Clustering refuses chains that would join twins, or a parent and child with the same name."""

from __future__ import annotations

import polars as pl

from citizen_view.linkage.clusters import cluster_records, near_dates


def _records(rows):
    return pl.DataFrame(rows, schema=["record_key", "national_id", "national_id_valid", "dob"], orient="row")


def _edges(rows):
    return pl.DataFrame(rows, schema=["record_key_l", "record_key_r", "match_weight"], orient="row")


def _groups(result) -> set[frozenset[str]]:
    g = result.labels.group_by("cluster").agg(pl.col("record_key"))
    return {frozenset(keys) for keys in g["record_key"].to_list()}


def test_near_dates():
    assert near_dates("19800102", "19800102")
    assert near_dates("19800102", "19800201")  # day and month swapped
    assert near_dates("19800102", "19800103")  # one digit
    assert near_dates("19800102", "19080102")  # adjacent transposition
    assert not near_dates("19800102", "19650102")
    assert not near_dates("19800102", "20100102")


def test_twins_linked_through_a_permit_record_stay_apart():
    records = _records([
        ("reg:twinA", "111222333", True, "19900505"),
        ("reg:twinB", "123456782", True, "19900505"),
        ("tax:twinA", "111222333", True, "19900505"),
        ("permit:1", None, None, None),
    ])  # fmt: skip
    edges = _edges([("reg:twinA", "tax:twinA", 30.0), ("reg:twinA", "permit:1", 9.0), ("permit:1", "reg:twinB", 8.0)])
    result = cluster_records(records, edges, threshold=5.0)
    assert _groups(result) == {frozenset({"reg:twinA", "tax:twinA", "permit:1"}), frozenset({"reg:twinB"})}
    assert result.merges_refused == 1


def test_same_name_parent_and_child_stay_apart_but_typo_dates_join():
    records = _records([
        ("reg:father", None, None, "19600101"),
        ("reg:son", None, None, "19900101"),
        ("tax:father", None, None, "19600110"),  # day/month swapped
        ("lic:father", None, None, "19600107"),  # one digit off from the register date
        ("permit:jan", None, None, None),
    ])  # fmt: skip
    edges = _edges([
        ("reg:father", "tax:father", 20.0), ("reg:father", "lic:father", 18.0),
        ("permit:jan", "reg:son", 9.0), ("permit:jan", "reg:father", 8.5),
    ])  # fmt: skip
    result = cluster_records(records, edges, threshold=5.0)
    assert _groups(result) == {
        frozenset({"reg:father", "tax:father", "lic:father"}),
        frozenset({"reg:son", "permit:jan"}),
    }


def test_links_below_threshold_are_not_used_and_singletons_get_labels():
    records = _records([("a", None, None, None), ("b", None, None, None), ("c", None, None, None)])
    result = cluster_records(records, _edges([("a", "b", 4.9)]), threshold=5.0)
    assert _groups(result) == {frozenset({"a"}), frozenset({"b"}), frozenset({"c"})}
