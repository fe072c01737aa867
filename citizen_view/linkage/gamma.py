"""The saved model's comparison levels evaluated in Python, for one record against a few candidates online.

Splink's level conditions (SQL) are read with sqlglot, Splink's own parser, and turned into small functions with
SQL's semantics: NULL propagates, a condition that is NULL does not hold, the first level whose condition holds is
the level (as in Splink's `CASE WHEN`). String functions work on UTF-8 bytes as DuckDB's do, through jellyfish.
A condition with anything else raises `Unsupported` and the caller keeps DuckDB's SQL for that model.
tests/test_gamma.py checks identical levels to DuckDB running Splink's own CASE SQL on thousands of pairs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import jellyfish
import sqlglot
from sqlglot import exp

Row = Mapping[str, Any]
Expr = Callable[[Row], Any]


class Unsupported(ValueError):
    """A level condition this module does not evaluate (DuckDB's SQL is used for that model instead)."""


def _raw(text: str) -> str:
    """A string as its UTF-8 bytes, one character per byte (DuckDB's string distances count bytes)."""
    return text.encode("utf-8").decode("latin-1")


def _strict(fn: Callable[..., Any], *args: Expr) -> Expr:
    """A function of the values of `args`, NULL when any is NULL."""

    def call(row: Row) -> Any:
        values = [a(row) for a in args]
        return None if any(v is None for v in values) else fn(*values)

    return call


def _junction(a: Expr, b: Expr, *, decisive: bool) -> Expr:
    """SQL's three-valued AND (`decisive` False) or OR (`decisive` True): either side's decisive value decides, else
    NULL when a side is NULL, else the other value."""

    def call(row: Row) -> bool | None:
        x = a(row)
        if x is decisive:
            return decisive
        y = b(row)
        if y is decisive:
            return decisive
        return None if x is None or y is None else not decisive

    return call


def _not(a: Expr) -> Expr:
    def call(row: Row) -> bool | None:
        x = a(row)
        return None if x is None else not x

    return call


def _substring(text: str, start: int, length: int) -> str:
    return text[start - 1 : start - 1 + length]


def _intersect(a: list, b: list) -> list:
    return sorted({x for x in a if x is not None} & {x for x in b if x is not None})


COMPARE = {exp.EQ: operator.eq, exp.NEQ: operator.ne, exp.GT: operator.gt, exp.GTE: operator.ge}
COMPARE |= {exp.LT: operator.lt, exp.LTE: operator.le}
FUNCTIONS = {  # DuckDB name -> the same function in Python
    "damerau_levenshtein": lambda a, b: jellyfish.damerau_levenshtein_distance(_raw(a), _raw(b)),
    "levenshtein": lambda a, b: jellyfish.levenshtein_distance(_raw(a), _raw(b)),
    "jaro_similarity": lambda a, b: jellyfish.jaro_similarity(_raw(a), _raw(b)),
    "jaro_winkler_similarity": lambda a, b: jellyfish.jaro_winkler_similarity(_raw(a), _raw(b)),
    "list_intersect": _intersect,
}
TYPED = {  # sqlglot's own nodes for some of them
    exp.JarowinklerSimilarity: "jaro_winkler_similarity",
    exp.Levenshtein: "levenshtein",
}


def _compile(node: exp.Expression) -> Expr:
    if isinstance(node, exp.Paren):
        return _compile(node.this)
    if isinstance(node, exp.Column):
        name = node.name
        return lambda row: row[name]
    if isinstance(node, exp.Null):
        return lambda row: None
    if isinstance(node, exp.Boolean):
        value = node.this
        return lambda row: value
    if isinstance(node, exp.Literal):
        value = node.this if node.is_string else (int(node.this) if node.is_int else float(node.this))
        return lambda row: value
    if isinstance(node, exp.And | exp.Or):
        return _junction(_compile(node.this), _compile(node.expression), decisive=isinstance(node, exp.Or))
    if isinstance(node, exp.Not):
        return _not(_compile(node.this))
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        inner = _compile(node.this)
        return lambda row: inner(row) is None
    if type(node) in COMPARE:
        return _strict(COMPARE[type(node)], _compile(node.this), _compile(node.expression))
    return _function(node)


def _case(node: exp.Case) -> Expr:
    """CASE WHEN c THEN v ... ELSE d END: the value of the first condition that holds (NULL does not), else d."""
    if node.this is not None:
        raise Unsupported(f"CASE with an operand: {node.sql(dialect='duckdb')}")
    branches = [(_compile(branch.this), _compile(branch.args["true"])) for branch in node.args["ifs"]]
    default = _compile(node.args["default"]) if node.args.get("default") is not None else (lambda row: None)

    def call(row: Row) -> Any:
        for holds, value in branches:
            if holds(row) is True:
                return value(row)
        return default(row)

    return call


def _extreme(pick: Callable[..., Any], args: list[Expr]) -> Expr:
    """DuckDB's LEAST / GREATEST: NULLs are left out; NULL only when every argument is NULL."""

    def call(row: Row) -> Any:
        values = [v for v in (a(row) for a in args) if v is not None]
        return pick(values) if values else None

    return call


def _count(node: exp.Expression) -> int:
    count = node.expression
    if not (isinstance(count, exp.Literal) and count.is_int and int(count.this) >= 0):
        raise Unsupported(f"LEFT/RIGHT with other than a constant count: {node.sql(dialect='duckdb')}")
    return int(count.this)


def _function(node: exp.Expression) -> Expr:
    # characters are code points in DuckDB's LENGTH, LEFT and RIGHT, as in Python's str
    if isinstance(node, exp.Case):
        return _case(node)
    if isinstance(node, exp.Least | exp.Greatest):
        pick = min if isinstance(node, exp.Least) else max
        return _extreme(pick, [_compile(a) for a in [node.this, *node.expressions]])
    if isinstance(node, exp.Length):
        return _strict(len, _compile(node.this))
    if isinstance(node, exp.Left):
        n = _count(node)
        return _strict(lambda text: text[:n], _compile(node.this))
    if isinstance(node, exp.Right):
        n = _count(node)
        return _strict(lambda text: text[len(text) - n :], _compile(node.this))
    if isinstance(node, exp.Substring):
        start, length = node.args.get("start"), node.args.get("length")
        if not (isinstance(start, exp.Literal) and isinstance(length, exp.Literal) and start.is_int and length.is_int):
            raise Unsupported(f"SUBSTRING with other than constant positions: {node.sql()}")
        if int(start.this) < 1 or int(length.this) < 0:
            raise Unsupported(f"SUBSTRING from before the first character: {node.sql()}")
        return _strict(_substring, _compile(node.this), lambda row: int(start.this), lambda row: int(length.this))
    if isinstance(node, exp.ArraySize) and node.args.get("expression") is None:
        return _strict(len, _compile(node.this))
    name = TYPED.get(type(node)) or (node.name.lower() if isinstance(node, exp.Anonymous) else None)
    if name in FUNCTIONS:
        args = [node.this, node.expression] if type(node) in TYPED else list(node.expressions)
        if len(args) != 2 or any(a is None for a in args):
            raise Unsupported(f"{name} with other than two arguments: {node.sql()}")
        return _strict(FUNCTIONS[name], *(_compile(a) for a in args))
    raise Unsupported(f"not evaluated in Python: {node.sql(dialect='duckdb')}")


def condition(sql: str) -> Callable[[Row], bool]:
    """A level's SQL condition (DuckDB dialect, columns `<input>_l` / `<input>_r`) as a function of one pair's row:
    True when it holds (NULL does not)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise Unsupported(f"cannot read {sql!r}: {e}") from e
    fn = _compile(tree)
    return lambda row: fn(row) is True


def comparison_levels(settings: Any) -> dict[str, list[tuple[int, Callable[[Row], bool] | None]]]:
    """Per comparison (output column name), its levels in Splink's order: (gamma value, condition; None for the
    ELSE level). Raises `Unsupported` when a condition is not evaluated here."""
    out = {}
    for comparison in settings.comparisons:
        out[comparison.output_column_name] = [
            (cl.comparison_vector_value, None if cl._is_else_level else condition(cl.sql_condition))
            for cl in comparison.comparison_levels
        ]
    return out


def gammas(levels: Mapping[str, list[tuple[int, Callable[[Row], bool] | None]]], row: Row) -> dict[str, int]:
    """`gamma_<comparison>` of one pair: the first level whose condition holds (Splink's CASE WHEN)."""
    out = {}
    for name, by_level in levels.items():
        out[f"gamma_{name}"] = next((value for value, holds in by_level if holds is None or holds(row)), None)
    return out
