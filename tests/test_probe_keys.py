"""The resolve keys' hash: what the served view stores (SQL) equals what the service computes for an incoming record
(Python), and equals DuckDB's own `md5_number_upper`, which it replaces as a cheaper way to the same numbers."""

from __future__ import annotations

import random

import duckdb

from citizen_view.linkage.candidates import ProbeKey, first_md5_bytes


def _values(rng: random.Random, n: int) -> list[tuple[str, str]]:
    letters = "abcdeéøåß ĳ-'0123456789" + "\x1f"
    return [
        ("".join(rng.choice(letters) for _ in range(rng.randrange(0, 30))), str(rng.randrange(10**12)))
        for _ in range(n)
    ]


def test_the_stored_key_is_the_incoming_hash_and_md5_number_upper():
    rng = random.Random(7)
    rows = _values(rng, 2000)
    key = ProbeKey(3, ("family", "born"), ("family", "born"))
    con = duckdb.connect()
    con.execute("CREATE TABLE r (family VARCHAR, born VARCHAR)")
    con.executemany("INSERT INTO r VALUES (?, ?)", rows)
    stored = con.execute(
        f"SELECT family, born, {key.stored_sql()}, md5_number_upper('3' || chr(31) || family || chr(31) || born) FROM r"
    ).fetchall()
    assert len(stored) == len(rows)
    for family, born, ours, duckdbs in stored:
        assert ours == duckdbs == key.incoming_hash([family, born])


def test_the_top_bit_and_a_null_part_are_kept():
    con = duckdb.connect()
    # a text whose first 8 MD5 bytes, little-endian, exceed 2^63: a signed or narrowed cast would change it
    texts = [
        t
        for t in (f"k{i}" for i in range(200))
        if con.execute("SELECT md5_number_upper(?)", [t]).fetchall()[0][0] >= 2**63
    ]
    assert texts
    for text in texts:
        assert (
            con.execute(f"SELECT {first_md5_bytes('?')}", [text]).fetchall()[0][0]
            == con.execute("SELECT md5_number_upper(?)", [text]).fetchall()[0][0]
        )
    key = ProbeKey(0, ("a",), ("a",))
    assert con.execute(f"SELECT {key.stored_sql()} FROM (SELECT NULL::VARCHAR AS a)").fetchall() == [(None,)]
