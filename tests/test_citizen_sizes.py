"""`citizen_sizes` learns its bound from the records per citizen and names citizens that look chained."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from citizen_view.contract import QualityConfig
from citizen_view.linkage.clusters import _percentiles, bridges, size_bound
from citizen_view.quality import rules


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "wh.duckdb"))
    yield c
    c.close()


def _linked(con, citizens: dict[str, int], links: list[tuple[str, str, float]], *, threshold: float = 5.0) -> None:
    """citizen_source_link for {citizen: record count} (records `<citizen>:<i>`), match_edges and the threshold."""
    rows = [(c, "reg", f"{c}-{i}", f"{c}:{i}") for c, n in citizens.items() for i in range(n)]
    con.execute(
        "CREATE TABLE citizen_source_link (citizen_id VARCHAR, source VARCHAR, source_record_id VARCHAR, record_key VARCHAR)"
    )
    con.executemany("INSERT INTO citizen_source_link VALUES (?, ?, ?, ?)", rows)
    con.execute("CREATE TABLE match_edges (record_key_l VARCHAR, record_key_r VARCHAR, match_weight DOUBLE)")
    if links:
        con.executemany("INSERT INTO match_edges VALUES (?, ?, ?)", links)
    con.execute("CREATE TABLE linkage_threshold AS SELECT ?::DOUBLE AS threshold_weight", [threshold])


def _pairs(citizen: str, n: int) -> list[tuple[str, str, float]]:
    return [(f"{citizen}:{i}", f"{citizen}:{j}", 12.0) for i in range(n) for j in range(i + 1, n)]


def test_the_bound_follows_the_records_per_citizen():
    assert size_bound([1] * 50 + [2] * 40) == 8  # one or two records a person
    assert 40 <= size_bound([5, 8, 10, 12, 15, 20] * 10) <= 80  # a dense historical register
    assert size_bound([5, 8, 10, 12, 15, 20] * 10, cap=30) == 30
    assert size_bound([1, 2, 3]) is None and size_bound([1, 2, 3], cap=4) == 4


def test_the_bound_from_counted_sizes_is_the_bound_from_every_citizen():
    # an update passes (size, citizens of that size) instead of a million sizes: the same fence, ties and all
    rng = np.random.default_rng(7)
    for trial in range(500):
        sizes = np.unique(rng.integers(1, 120, size=rng.integers(1, 10)))
        counts = rng.integers(1, 3000 if trial % 2 else 4, size=len(sizes))
        every = np.repeat(sizes, counts)
        assert size_bound(sizes, counts=counts) == size_bound(every), (sizes, counts)
        multi = every[every > 1]
        if multi.size:  # the quartiles themselves are numpy's, interpolated between the two nearest sizes
            kept = sizes > 1
            quartiles = _percentiles(np.log2(sizes[kept].astype(float)), counts[kept], (0.25, 0.75))
            assert quartiles == pytest.approx(list(np.percentile(np.log2(multi), [25, 75])), abs=1e-12)
        assert size_bound(sizes, counts=counts, cap=9) == size_bound(every, cap=9)
        shuffled = rng.permutation(len(sizes))  # the order sizes come in does not matter
        assert size_bound(sizes[shuffled], counts=counts[shuffled]) == size_bound(every)


def test_a_chained_citizen_is_flagged_by_the_bound_from_the_data(con):
    # 40 people with two records, 20 with one, and one "citizen" of 20 records joined in a chain
    citizens = {f"p{k}": 2 for k in range(40)} | {f"s{k}": 1 for k in range(20)} | {"chain": 20}
    links = [e for c, n in citizens.items() if c != "chain" for e in _pairs(c, n)]
    links += [(f"chain:{i}", f"chain:{i + 1}", 6.0) for i in range(19)]
    _linked(con, citizens, links)
    r = rules.citizen_sizes(con, QualityConfig())
    assert r.passed is False
    assert r.figures["bound"] == 8 and r.figures["chained"] == 1
    assert r.sample == [
        {
            "citizen_id": "chain",
            "records": "20",
            "density": "0.1",
            "pieces": "1",
            "bridges": "19",
            "why": "more than 8 records",
        }
    ]


def test_a_citizen_its_links_do_not_connect_is_flagged_whatever_its_size(con):
    citizens = {f"p{k}": 3 for k in range(12)} | {"glued": 4}
    links = [e for c, n in citizens.items() if c != "glued" for e in _pairs(c, n)] + [
        ("glued:0", "glued:1", 9.0),
        ("glued:2", "glued:3", 9.0),
    ]
    _linked(con, citizens, links)
    r = rules.citizen_sizes(con, QualityConfig())
    assert r.passed is False
    assert r.sample[0]["citizen_id"] == "glued" and r.sample[0]["pieces"] == "2"
    assert r.sample[0]["why"] == "records not connected by links"


def test_well_formed_citizens_pass(con):
    citizens = {f"p{k}": 2 + k % 5 for k in range(30)}
    _linked(con, citizens, [e for c, n in citizens.items() for e in _pairs(c, n)])
    r = rules.citizen_sizes(con, QualityConfig())
    assert r.passed is True and r.sample == [], r.summary


def test_bridges():
    assert sorted(bridges(5, {(0, 1), (1, 2), (0, 2), (2, 3), (3, 4)})) == [(2, 3), (3, 4)]
    assert bridges(3, {(0, 1), (1, 2), (0, 2)}) == []
