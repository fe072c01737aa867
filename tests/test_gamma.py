"""Comparison levels evaluated in Python (linkage/gamma.py) against DuckDB running the same SQL, on hand-made pairs
that reach SQL's corners: NULLs in AND/OR/NOT, bytes against characters, SUBSTRING, list intersections."""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import pytest

from citizen_view.linkage.gamma import Mismatch, Unsupported, condition, gammas

CONDITIONS = [
    '"a_l" IS NULL OR "a_r" IS NULL',
    '"a_l" = "a_r"',
    'NOT ("a_l" = "a_r")',
    '"a_l" = "a_r" AND "b_l" = "b_r"',
    '("a_l" = "a_r") OR ("b_l" = "b_r")',
    'jaro_winkler_similarity("a_l", "a_r") >= 0.92',
    'jaro_winkler_similarity("a_l", "a_r") >= 0.8',
    'damerau_levenshtein("a_l", "a_r") <= 1',
    'levenshtein("a_l", "a_r") <= 2',
    'jaro_similarity("a_l", "a_r") > 0.7',
    'SUBSTRING("a_l", 1, 1) = SUBSTRING("a_r", 1, 1)',
    'SUBSTRING("a_l", 2, 3) = SUBSTRING("a_r", 2, 3)',
    'array_length(list_intersect("w_l", "w_r")) >= 1',
    '"a_l" = "b_r" AND "b_l" = "a_r"',
    # a guarded edit distance (the model's one-error levels): CASE, LEAST of LENGTHs, LEFT and RIGHT
    'CASE WHEN LEAST(LENGTH("a_l"), LENGTH("a_r")) < 6 OR LEFT("a_l", 3) = LEFT("a_r", 3) '
    'OR RIGHT("a_l", 3) = RIGHT("a_r", 3) THEN DAMERAU_LEVENSHTEIN("a_l", "a_r") <= 1 ELSE FALSE END',
    'GREATEST(LENGTH("a_l"), LENGTH("b_l")) > 4',
    'LEAST(LENGTH("a_l"), LENGTH("b_l")) <= 1',
    'CASE WHEN "a_l" = "a_r" THEN "b_l" = "b_r" END',
    'RIGHT("a_l", 1) = RIGHT("a_r", 1)',
    'RIGHT("a_l", 3) = "a_r"',  # a count beyond the text's length: the whole text
]
TEXTS = [
    None,
    "",
    "a",
    "anna",
    "ana",
    "hanna",
    "jan",
    "jna",
    "janssen",
    "jansen",
    "ødegård",
    "odegard",
    "é",
    "e",
    "ab c",
    "ab",
    "jansens",
    "johansen",
    "e\u0301rik",
    "erikx",
]
WORDS = [None, [], ["van", "berg"], ["berg"], ["x", None], [None]]


def _pairs():
    for a_l, a_r, b_l in itertools.product(TEXTS, TEXTS, TEXTS[:6]):
        yield {"a_l": a_l, "a_r": a_r, "b_l": b_l, "b_r": a_l, "w_l": WORDS[len(a_r or "") % 6], "w_r": WORDS[2]}


def test_each_condition_holds_exactly_where_duckdb_says_it_does():
    pairs = list(_pairs())
    con = duckdb.connect()
    con.execute("CREATE TABLE p (a_l VARCHAR, a_r VARCHAR, b_l VARCHAR, b_r VARCHAR, w_l VARCHAR[], w_r VARCHAR[])")
    con.executemany("INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)", [list(p.values()) for p in pairs])
    rows = con.execute("SELECT * FROM p").fetchall()
    names = ["a_l", "a_r", "b_l", "b_r", "w_l", "w_r"]
    for sql in CONDITIONS:
        expected = [r[0] for r in con.execute(f"SELECT CASE WHEN {sql} THEN true ELSE false END FROM p").fetchall()]
        holds = condition(sql)
        got = [holds(dict(zip(names, row))) for row in rows]
        assert got == expected, sql
        assert True in got and False in got, sql  # the pairs reach both outcomes of every condition


@pytest.mark.parametrize(
    "sql",
    [
        "regexp_matches(\"a_l\", 'x')",
        '"a_l" LIKE "a_r"',
        'SUBSTRING("a_l", "n_l", 1) = "a_r"',
        "a_l =",
        'LEFT("a_l", "n_l") = "a_r"',
        'CASE "a_l" WHEN "a_r" THEN TRUE END',
    ],
)
def test_a_condition_not_evaluated_here_is_refused_not_guessed(sql):
    with pytest.raises(Unsupported):
        condition(sql)


# SQL's three-valued logic: every operand NULL, TRUE or FALSE, as a boolean column or as a comparison of texts
LOGIC = [
    "p_l AND q_l",
    "p_l OR q_l",
    "NOT p_l",
    "p_l AND q_l OR r_l",
    "p_l AND (q_l OR r_l)",
    "NOT (p_l AND q_l)",
    "NOT (p_l OR NOT q_l)",
    "p_l AND NULL",
    "p_l OR NULL",
    "NOT NULL OR q_l",
    "p_l AND TRUE",
    "q_l OR FALSE",
    "p_l IS NULL OR q_l",
    "NOT (p_l IS NULL) AND q_l",
    "p_l = q_l",
    "p_l <> q_l",
    "(p_l AND q_l) = r_l",
    "(p_l OR q_l) IS NULL",
    "CASE WHEN p_l THEN q_l ELSE r_l END",
    "CASE WHEN p_l AND q_l THEN TRUE WHEN r_l THEN NULL ELSE FALSE END",
    '"a_l" = "a_r" AND p_l',
    '("a_l" = "a_r") OR NOT q_l',
    'NOT ("a_l" = "a_r" OR "b_l" = "b_r")',
    '"a_l" = "a_r" AND "b_l" = "b_r" OR "a_l" = "b_r"',
]
TRUTH = [None, True, False]
SOME = [None, "x", "y"]


def _level_sql(conditions: list[str]) -> str:
    whens = " ".join(f"WHEN {c} THEN {len(conditions) - i}" for i, c in enumerate(conditions))
    return f"CASE {whens} ELSE 0 END"


def test_three_valued_logic_gives_duckdbs_level_for_every_null_true_false_operand():
    names = ["p_l", "q_l", "r_l", "a_l", "a_r", "b_l", "b_r"]
    rows = list(itertools.product(TRUTH, TRUTH, TRUTH, SOME, SOME, SOME, SOME[:2]))
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE g (p_l BOOLEAN, q_l BOOLEAN, r_l BOOLEAN, a_l VARCHAR, a_r VARCHAR, b_l VARCHAR, b_r VARCHAR)"
    )
    con.executemany("INSERT INTO g VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    rows = con.execute(f"SELECT {', '.join(names)} FROM g").fetchall()
    pairs = [dict(zip(names, row)) for row in rows]
    for sql in LOGIC:
        held = []
        for each in (sql, f"NOT ({sql})"):
            expected = [
                r[0] for r in con.execute(f"SELECT CASE WHEN {each} THEN true ELSE false END FROM g").fetchall()
            ]
            holds = condition(each)
            assert [holds(p) for p in pairs] == expected, each
            held.append(expected)
        values = {True if yes else False if no else None for yes, no in zip(*held)}  # the condition's SQL value
        assert len(values) >= 2, sql  # the grid reaches two of TRUE, FALSE and NULL at least
    # levels as Splink writes them: the first condition that holds, in order (a NULL condition does not hold)
    for start in range(0, len(LOGIC), 4):
        group = LOGIC[start : start + 4]
        levels = {"c": [(len(group) - i, condition(c)) for i, c in enumerate(group)] + [(0, None)]}
        expected = [r[0] for r in con.execute(f"SELECT {_level_sql(group)} FROM g").fetchall()]
        assert [gammas(levels, p)["gamma_c"] for p in pairs] == expected, group


# values of two kinds: DuckDB casts one to the other's type (or refuses); Python's == would say False, its < raise
MIXED = [
    "n_l = '5'",
    "'5' = n_l",
    "s_l = 5",
    "d_l = '1990-01-01'",
    "d_l >= '1990-01-01'",
    "p_l = 'true'",
    "p_l = 1",
    "n_l = f_l",
    "n_l < 2.5",
    "n_l AND p_l",
    "CASE WHEN n_l THEN TRUE END",
    "NOT n_l",
    "s_l OR p_l",
    "LEAST(n_l, 2.5) < 3",
    "GREATEST(s_l, 'b') = 'b'",
    "s_l = s_l",
    "d_l = d_l",
]
MIXED_ROWS = list(
    itertools.product(
        [None, 0, 5],
        [None, "5", "abc", "true"],
        [None, dt.date(1990, 1, 1), dt.date(1989, 12, 31)],
        TRUTH,
        [None, 5.0, 2.5],
    )
)


def test_values_of_two_kinds_are_left_to_duckdb_never_answered_otherwise():
    """Per pair: the compiled condition gives DuckDB's answer, or raises `Mismatch` (the caller then lets DuckDB
    evaluate it); where DuckDB refuses the pair, it raises `Mismatch`. Same-kind pairs are never refused."""
    names = ["n_l", "s_l", "d_l", "p_l", "f_l"]
    con = duckdb.connect()
    con.execute("CREATE TABLE m (i INTEGER, n_l INTEGER, s_l VARCHAR, d_l DATE, p_l BOOLEAN, f_l DOUBLE)")
    con.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?, ?)", [[i, *row] for i, row in enumerate(MIXED_ROWS)])
    left_to_duckdb = 0
    for sql in MIXED:
        holds = condition(sql)
        query = f"SELECT CASE WHEN {sql} THEN true ELSE false END FROM m WHERE i >= ? AND i < ? ORDER BY i"
        try:
            answers = [r[0] for r in con.execute(query, [0, len(MIXED_ROWS)]).fetchall()]
        except duckdb.Error:  # refused for some row: row by row, "refused" where DuckDB refuses
            answers = []
            for i in range(len(MIXED_ROWS)):
                try:
                    answers.append(con.execute(query, [i, i + 1]).fetchall()[0][0])
                except duckdb.Error:
                    answers.append("refused")
        for row, expected in zip(MIXED_ROWS, answers):
            try:
                got = holds(dict(zip(names, row)))
            except Mismatch:
                left_to_duckdb += 1
                continue
            assert got == expected, (sql, row)
    assert left_to_duckdb
    for sql in ("s_l = s_l", "d_l = d_l", "n_l = f_l", "n_l < 2.5", "LEAST(n_l, 2.5) < 3"):  # one kind: answered
        assert all(isinstance(condition(sql)(dict(zip(names, row))), bool) for row in MIXED_ROWS), sql
