"""The saved model's comparison levels evaluated in Python, for one record against a few candidates online.

Splink's level conditions (SQL) are read with sqlglot, Splink's own parser, and translated once into one Python
function each (its source built from the tree and compiled: no tree is walked per pair) with SQL's semantics: NULL
propagates, a condition that is NULL does not hold, the first level whose condition holds is the level (as in
Splink's `CASE WHEN`). String functions work on UTF-8 bytes as DuckDB's do, through jellyfish.
A condition with anything else raises `Unsupported` and the caller keeps DuckDB's SQL for that model. Values of two
kinds met in a comparison, LEAST/GREATEST or as a truth value (a number or text where SQL casts to BOOLEAN, `5 = '5'`,
a date against a text) raise `Mismatch` when the pair is evaluated: DuckDB casts them by its own rules (or refuses),
Python would answer otherwise or raise a TypeError, so the caller lets DuckDB's SQL evaluate that record's pairs.
tests/test_gamma.py checks identical levels to DuckDB running Splink's own CASE SQL on thousands of pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jellyfish
import sqlglot
from sqlglot import exp

Row = Mapping[str, Any]
Expr = Callable[[Row], Any]


class Unsupported(ValueError):
    """A level condition this module does not evaluate (DuckDB's SQL is used for that model instead)."""


class Mismatch(Unsupported):
    """A pair whose values this module does not evaluate as DuckDB would: two kinds of value compared, or a value other
    than a boolean used as one (DuckDB's SQL is used for that pair instead)."""


def _alike(*values: Any) -> bool:
    """True when the values (none NULL) are of one kind: DuckDB compares them as Python does. Raises `Mismatch`
    otherwise (DuckDB would cast one to the other's type by its own rules, or refuse the condition)."""
    kinds = {float if type(v) is int else type(v) for v in values}
    if len(kinds) > 1:
        raise Mismatch(f"values of {len(kinds)} kinds compared: {', '.join(sorted(k.__name__ for k in kinds))}")
    return True


def _truth(x: Any) -> bool | None:
    """A value where SQL needs a truth value (AND, OR, NOT, CASE WHEN, the condition itself): a boolean or NULL as it
    is; anything else raises `Mismatch` (DuckDB casts it to BOOLEAN by its own rules, or refuses it)."""
    if x is None or type(x) is bool:
        return x
    raise Mismatch(f"a {type(x).__name__} used as a truth value")


def _raw(text: str) -> str:
    """A string as its UTF-8 bytes, one character per byte (DuckDB's string distances count bytes)."""
    return text.encode("utf-8").decode("latin-1")


def _junction(x: Any, y: Any, decisive: bool) -> bool | None:
    """SQL's three-valued AND (`decisive` False) or OR (`decisive` True): either side's decisive value decides, else
    NULL when a side is NULL, else the other value."""
    if x is decisive or y is decisive:
        return decisive
    return None if x is None or y is None else not decisive


def _extreme(pick: Callable[..., Any], *values: Any) -> Any:
    """DuckDB's LEAST / GREATEST: NULLs are left out; NULL only when every argument is NULL."""
    present = [v for v in values if v is not None]
    return pick(present) if present and _alike(*present) else None


def _intersect(a: list, b: list) -> list:
    return sorted({x for x in a if x is not None} & {x for x in b if x is not None})


COMPARE = {exp.EQ: "==", exp.NEQ: "!=", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
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
NAMESPACE = {
    "_junction": _junction,
    "_extreme": _extreme,
    "_alike": _alike,
    "_truth": _truth,
    **{f"_f_{k}": v for k, v in FUNCTIONS.items()},
}


class _Source:
    """A condition's tree as one Python expression over the pair's row `r` (compiled once per level: no tree is
    walked per pair). Each operand is bound once (`:=`), so an operand is evaluated once, as in SQL."""

    def __init__(self) -> None:
        self.names = 0

    def _bind(self, value: str) -> tuple[str, str]:
        self.names += 1
        name = f"_v{self.names}"
        return f"({name} := {value})", name

    def strict(self, template: str, *args: exp.Expression) -> str:
        """`template` formatted with the values of `args`; NULL when any is NULL."""
        bound = [self._bind(self.of(a)) for a in args]
        nulls = " or ".join(f"{b} is None" for b, _ in bound)
        return f"(None if {nulls} else {template.format(*(n for _, n in bound))})"

    def of(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Paren):
            return self.of(node.this)
        if isinstance(node, exp.Column):
            return f"r[{node.name!r}]"
        if isinstance(node, exp.Null):
            return "None"
        if isinstance(node, exp.Boolean):
            return repr(bool(node.this))
        if isinstance(node, exp.Literal):
            return repr(node.this if node.is_string else (int(node.this) if node.is_int else float(node.this)))
        if isinstance(node, exp.And | exp.Or):
            return f"_junction({self.truth(node.this)}, {self.truth(node.expression)}, {isinstance(node, exp.Or)})"
        if isinstance(node, exp.Not):
            bound, name = self._bind(self.truth(node.this))
            return f"(None if {bound} is None else not {name})"
        if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
            return f"({self.of(node.this)} is None)"
        if type(node) in COMPARE:
            op = COMPARE[type(node)]  # values of one type compared at once; `_alike` checks any others
            return self.strict(
                f"({{0}} {op} {{1}} if type({{0}}) is type({{1}}) or _alike({{0}}, {{1}}) else None)",
                node.this,
                node.expression,
            )
        return self.function(node)

    def truth(self, node: exp.Expression) -> str:
        """`node` where SQL needs a truth value: a predicate as it is, any other value checked by `_truth`."""
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, (exp.And, exp.Or, exp.Not, exp.Is, exp.Boolean, exp.Null, *COMPARE)):
            return self.of(node)
        return f"_truth({self.of(node)})"

    def case(self, node: exp.Case) -> str:
        """CASE WHEN c THEN v ... ELSE d END: the value of the first condition that holds (NULL does not), else d."""
        if node.this is not None:
            raise Unsupported(f"CASE with an operand: {node.sql(dialect='duckdb')}")
        default = node.args.get("default")
        out = self.of(default) if default is not None else "None"
        for branch in reversed(node.args["ifs"]):
            out = f"({self.of(branch.args['true'])} if {self.truth(branch.this)} is True else {out})"
        return out

    def function(self, node: exp.Expression) -> str:
        # characters are code points in DuckDB's LENGTH, LEFT and RIGHT, as in Python's str
        if isinstance(node, exp.Case):
            return self.case(node)
        if isinstance(node, exp.Least | exp.Greatest):
            pick = "min" if isinstance(node, exp.Least) else "max"
            return f"_extreme({pick}, {', '.join(self.of(a) for a in [node.this, *node.expressions])})"
        if isinstance(node, exp.Length) or (isinstance(node, exp.ArraySize) and node.args.get("expression") is None):
            return self.strict("len({0})", node.this)
        if isinstance(node, exp.Left):
            return self.strict(f"{{0}}[:{_count(node)}]", node.this)
        if isinstance(node, exp.Right):
            return self.strict(f"{{0}}[max(len({{0}}) - {_count(node)}, 0):]", node.this)
        if isinstance(node, exp.Substring):
            start, length = node.args.get("start"), node.args.get("length")
            if not (
                isinstance(start, exp.Literal) and isinstance(length, exp.Literal) and start.is_int and length.is_int
            ):
                raise Unsupported(f"SUBSTRING with other than constant positions: {node.sql()}")
            if int(start.this) < 1 or int(length.this) < 0:
                raise Unsupported(f"SUBSTRING from before the first character: {node.sql()}")
            first = int(start.this) - 1
            return self.strict(f"{{0}}[{first}:{first + int(length.this)}]", node.this)
        name = TYPED.get(type(node)) or (node.name.lower() if isinstance(node, exp.Anonymous) else None)
        if name in FUNCTIONS:
            args = [node.this, node.expression] if type(node) in TYPED else list(node.expressions)
            if len(args) != 2 or any(a is None for a in args):
                raise Unsupported(f"{name} with other than two arguments: {node.sql()}")
            return self.strict(f"_f_{name}({{0}}, {{1}})", *args)
        raise Unsupported(f"not evaluated in Python: {node.sql(dialect='duckdb')}")


def _count(node: exp.Expression) -> int:
    count = node.expression
    if not (isinstance(count, exp.Literal) and count.is_int and int(count.this) >= 0):
        raise Unsupported(f"LEFT/RIGHT with other than a constant count: {node.sql(dialect='duckdb')}")
    return int(count.this)


def condition(sql: str) -> Callable[[Row], bool]:
    """A level's SQL condition (DuckDB dialect, columns `<input>_l` / `<input>_r`) as a function of one pair's row:
    True when it holds (NULL does not)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise Unsupported(f"cannot read {sql!r}: {e}") from e
    source = f"def holds(r):\n    return {_Source().truth(tree)} is True\n"
    namespace = dict(NAMESPACE)
    exec(compile(source, "<level condition>", "exec"), namespace)  # noqa: S102 (our own translation of the tree)
    return namespace["holds"]


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
