"""The prediction blocking rules' pair conditions and the guarded one-edit level, evaluated by DuckDB."""

from __future__ import annotations

import random

import duckdb
import pytest

from citizen_view.linkage.model import _one_edit, plan_model, rule_sql

HELD = ["first_name_std", "initials", "family_name_std", "dob", "national_id", "postcode", "street_std", "house_number"]


def _rule(cols: str) -> str:
    """The planned prediction rule whose SQL (after its opening bracket) starts with the equalities `cols`."""
    plan = plan_model({c: 1.0 for c in HELD})
    found = [sql for sql in map(rule_sql, plan.prediction_rules) if sql.startswith(cols, 1)]
    assert len(found) == 1, [rule_sql(r) for r in plan.prediction_rules]
    return found[0]


def _pairs(rows: list[tuple], rule: str) -> set[tuple[str, str]]:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t (record_key VARCHAR, first_name_block VARCHAR, family_name_block VARCHAR, dob VARCHAR, "
        "postcode VARCHAR)"
    )
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    return set(
        con.execute(
            f"SELECT l.record_key, r.record_key FROM t l JOIN t r ON {rule} AND l.record_key < r.record_key"
        ).fetchall()
    )


def test_a_household_block_keeps_the_same_person_and_leaves_out_the_family():
    rows = [
        ("a1", "anna", "jansen", "19800512", "1234AB"),  # Anna
        ("a2", "anna", "jansen", "19800521", "1234AB"),  # Anna, day typed wrong
        ("a3", "anna", "jansen", None, "1234AB"),  # Anna on a source without birth dates
        ("a4", "ana", "jansen", "19080512", "1234AB"),  # Anna, a wrong year and a shortened name
        ("p1", "piet", "jansen", "19781130", "1234AB"),  # her partner
        ("k1", "kees", "jansen", "20100302", "1234AB"),  # their son
        ("x1", None, "jansen", "19990909", "1234AB"),  # someone whose given name is missing: compared with all
    ]
    pairs = _pairs(rows, _rule('(l."family_name_block" = r."family_name_block") AND (l."postcode" = r."postcode")'))
    assert {("a1", "a2"), ("a1", "a3"), ("a2", "a3"), ("a1", "a4"), ("a3", "a4")} <= pairs
    assert {p for p in pairs if "p1" in p} == {("a3", "p1"), ("p1", "x1")}  # Piet: no birth date, no given name
    assert len({p for p in pairs if "x1" in p}) == 6
    assert ("k1", "p1") not in pairs and ("a1", "k1") not in pairs


def test_a_same_name_block_leaves_out_namesakes_born_years_apart():
    rows = [
        ("j1", "jan", "devries", "19550101", "1000AA"),
        ("j2", "jan", "devries", "19550110", "9999ZZ"),  # the same Jan, moved, a digit off
        ("j3", "jan", "devries", None, "5555CC"),  # a Jan without a birth date: compared with both
        ("j4", "jan", "devries", "19921224", "2000BB"),  # another Jan de Vries
    ]
    pairs = _pairs(rows, _rule('(l."family_name_block" = r."family_name_block") AND (l."first_name_block"'))
    assert pairs == {("j1", "j2"), ("j1", "j3"), ("j2", "j3"), ("j3", "j4")}


def _edits(value: str, rng: random.Random) -> list[str]:
    """Every one-edit variant kind at every position, and some values further away."""
    out = []
    for i in range(len(value)):
        out.append(value[:i] + rng.choice("0123456789") + value[i + 1 :])  # substituted (or unchanged)
        out.append(value[:i] + value[i + 1 :])  # dropped
        out.append(value[:i] + rng.choice("0123456789") + value[i:])  # inserted
        if i + 1 < len(value):
            out.append(value[:i] + value[i + 1] + value[i] + value[i + 2 :])  # neighbours swapped
    out += ["".join(rng.choice("0123456789") for _ in range(len(value))) for _ in range(20)]
    return out


@pytest.mark.parametrize("length", [3, 7, 8, 9, 11])
def test_the_guarded_one_edit_level_agrees_with_damerau_levenshtein(length: int):
    rng = random.Random(length)
    level = _one_edit("national_id", "national ID one digit off").get_comparison_level("duckdb")
    rows = []
    for _ in range(30):
        value = "".join(rng.choice("0123456789") for _ in range(length))
        rows += [(value, other) for other in _edits(value, rng)]
    con = duckdb.connect()
    con.execute("CREATE TABLE p (national_id_l VARCHAR, national_id_r VARCHAR)")
    con.executemany("INSERT INTO p VALUES (?, ?)", rows)
    disagree, close = con.execute(
        f"SELECT count(*) FILTER (({level.sql_condition}) <> (damerau_levenshtein(national_id_l, national_id_r) <= 1)), "
        "count(*) FILTER (damerau_levenshtein(national_id_l, national_id_r) <= 1) FROM p"
    ).fetchone()
    assert disagree == 0
    assert 0 < close < len(rows)
