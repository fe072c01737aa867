"""Stable citizen IDs: re-runs keep every ID; merges and splits follow the documented overlap rule."""

from __future__ import annotations

import itertools

import polars as pl

from citizen_view.linkage.citizen_ids import assign_checked, assign_citizen_ids, mint_citizen_id


def _clusters(groups: list[list[str]]) -> pl.DataFrame:
    rows = [(key, i) for i, keys in enumerate(groups) for key in keys]
    return pl.DataFrame(rows, schema={"record_key": pl.String, "cluster": pl.Int64}, orient="row")


def _counter():
    n = itertools.count(1)
    return lambda: f"NEW{next(n)}"


def _by_record(links: pl.DataFrame) -> dict[str, str]:
    return dict(zip(links["record_key"], links["citizen_id"]))


def test_first_run_mints_opaque_ids():
    links, history = assign_citizen_ids(_clusters([["tax:1", "reg:1"], ["tax:2"]]), None)
    ids = set(links["citizen_id"])
    assert len(ids) == 2
    assert all(i.startswith("CV-") and "tax" not in i and "1" != i for i in ids)
    assert history["event"].to_list() == ["created", "created"]


def test_rerun_on_same_clusters_changes_no_id():
    clusters = _clusters([["a", "b"], ["c"], ["d", "e", "f"]])
    first, _ = assign_citizen_ids(clusters, None)
    # cluster labels are arbitrary between runs: relabel them
    relabelled = clusters.with_columns((100 - pl.col("cluster")).alias("cluster"))
    second, history = assign_citizen_ids(relabelled, first, mint=_counter())
    assert _by_record(second) == _by_record(first)
    assert history.height == 0


def test_merge_keeps_the_id_with_the_largest_overlap_and_retires_the_other():
    previous = pl.DataFrame({"record_key": ["a", "b", "c", "d"], "citizen_id": ["OLD1", "OLD1", "OLD1", "OLD2"]})
    links, history = assign_citizen_ids(_clusters([["a", "b", "c", "d"]]), previous, mint=_counter())
    assert set(_by_record(links).values()) == {"OLD1"}
    assert history.to_dicts() == [{"citizen_id": "OLD2", "event": "merged", "related_citizen_id": "OLD1", "records": 1}]


def test_split_keeps_the_id_on_the_larger_part_and_records_where_the_rest_came_from():
    previous = pl.DataFrame({"record_key": ["a", "b", "c"], "citizen_id": ["OLD1"] * 3})
    links, history = assign_citizen_ids(_clusters([["c"], ["a", "b"]]), previous, mint=_counter())
    got = _by_record(links)
    assert got["a"] == got["b"] == "OLD1"
    assert got["c"] == "NEW1"
    assert history.to_dicts() == [{"citizen_id": "NEW1", "event": "split", "related_citizen_id": "OLD1", "records": 1}]


def test_ties_go_to_the_older_id_and_new_records_leave_other_ids_alone():
    previous = pl.DataFrame({"record_key": ["a", "b", "x"], "citizen_id": ["OLD2", "OLD1", "OLD9"]})
    links, history = assign_citizen_ids(_clusters([["a", "b", "new"], ["x"], ["y"]]), previous, mint=_counter())
    got = _by_record(links)
    assert got["a"] == got["b"] == got["new"] == "OLD1"
    assert got["x"] == "OLD9" and got["y"] == "NEW1"
    events = {(r["citizen_id"], r["event"], r["related_citizen_id"]) for r in history.to_dicts()}
    assert events == {("NEW1", "created", None), ("OLD2", "merged", "OLD1")}


def test_records_that_disappear_retire_their_id():
    previous = pl.DataFrame({"record_key": ["a", "gone"], "citizen_id": ["OLD1", "OLD2"]})
    _, history = assign_citizen_ids(_clusters([["a"]]), previous, mint=_counter())
    assert history.to_dicts() == [{"citizen_id": "OLD2", "event": "retired", "related_citizen_id": None, "records": 1}]


def test_minting_avoids_ids_used_before():
    seq = iter(["USED", "USED", "FRESH"])
    links, _ = assign_citizen_ids(_clusters([["a"]]), None, taken={"USED"}, mint=lambda: next(seq))
    assert links["citizen_id"].to_list() == ["FRESH"]
    assert len({mint_citizen_id() for _ in range(1000)}) == 1000


def test_an_id_found_used_after_minting_is_minted_again():
    history = {"USED", "OLDER"}
    seq = iter(["USED", "FRESH", "USED", "OTHER", "THIRD"])
    asked: list[list[str]] = []

    def used_before(ids: list[str]) -> set[str]:
        asked.append(ids)
        return history & set(ids)

    links, events = assign_checked(_clusters([["a"], ["b"]]), None, used_before=used_before, mint=lambda: next(seq))
    assert sorted(links["citizen_id"].to_list()) == ["OTHER", "THIRD"]
    assert not history & set(events["citizen_id"].to_list())
    assert asked == [["USED", "FRESH"], ["OTHER", "THIRD"]]  # a clash: all minted again without it, checked again
