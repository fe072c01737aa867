"""Statistical disclosure control for published count tables: minimum cell, secondary suppression, rounding.

Tables are long format: dimension columns plus `count`, with margins as rows whose dimension value is
`Total`. A *line* is a set of cells that add up to a margin: all values of one margin dimension (its
`Total` included) with the other dimensions fixed. Primary suppression hides counts below the
minimum cell; secondary suppression then hides another cell of every line that has exactly one hidden
cell, until none has, so no hidden count can be recomputed as total minus the rest. The partner is the
cell that leaves the fewest new lines with a single hidden cell (net of those it completes), then the
smallest: a greedy heuristic in the spirit of tau-Argus's hypercube method, not an optimum.
Rounding (optional, to base 5 like the ONS 10-5 rule) applies to the published counts afterwards.
The same functions that protect a table are the gate's evidence that it is protected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from citizen_view.contract import DisclosureConfig

TOTAL = "Total"
SUPPRESSED = "suppressed"


def describe(rules: DisclosureConfig) -> dict:
    """The rules and parameters, as published with the data (sdc-report.json)."""
    return rules.model_dump() | {
        "primary": f"counts below {rules.min_cell} are suppressed"
        + ("" if rules.suppress_zeros else " (zeros are published)"),
        "secondary": "in every line that adds up to a published total, a second cell is suppressed "
        "whenever exactly one is (the cell that leaves the fewest other lines with a single suppressed cell, then the "
        "smallest), until no suppressed count can be derived",
        "rounding": f"published counts rounded to the nearest {rules.round_to}" if rules.round_to else "none",
    }


@dataclass
class Protection:
    """A protected table and what was done to it."""

    table: pl.DataFrame
    primary: int
    secondary: int
    cells: int


def _lines(df: pl.DataFrame, dims: list[str], margin: str) -> pl.DataFrame:
    """Row indexes grouped by line along `margin` (all other dimensions fixed)."""
    others = [d for d in dims if d != margin]
    keyed = df.with_row_index("_row")
    if not others:
        return keyed.select(pl.lit(0).alias("_line"), "_row")
    return keyed.select(pl.struct(others).rank("dense").alias("_line"), "_row")


def protect(
    counts: pl.DataFrame,
    *,
    dims: list[str],
    margins: list[str],
    rules: DisclosureConfig,
    count: str = "count",
    hierarchies: dict[str, dict[str, str]] | None = None,
) -> Protection:
    """Suppress (primary + secondary) and round a count table; adds a `flag` column ("" or "suppressed").

    `hierarchies`: for a dimension whose values nest (municipality -> province -> country), each value's
    parent; its lines are a parent with its children, at every level, instead of one line with `Total`.
    """
    hierarchies = hierarchies or {}
    df = counts.with_columns(pl.col(count).cast(pl.Int64))
    values = df.get_column(count).to_list()
    parents = {v for h in hierarchies.values() for v in h.values()}
    is_total = (
        df.select(
            pl.any_horizontal(
                [pl.col(d) == TOTAL for d in dims] + [pl.col(d).is_in(sorted(parents)) for d in hierarchies]
            )
        )
        .to_series()
        .to_list()
    )
    hidden = [(v is not None and v < rules.min_cell and (v > 0 or rules.suppress_zeros)) for v in values]
    primary = sum(hidden)
    # Lines in a fixed order (by their smallest row): the greedy's choices must not depend on how a group-by ordered them.
    lines = sorted(members for m in margins for members in _line_members(df, dims, m, hierarchies.get(m)))
    lines_of: list[list[int]] = [[] for _ in values]
    for k, members in enumerate(lines):
        for i in members:
            lines_of[i].append(k)
    n_hidden = [sum(hidden[i] for i in members) for members in lines]

    def cost(i: int, line: int) -> tuple:
        """Hiding cell i to protect `line`: first the fewest other lines it leaves with one hidden cell (each would need
        a partner of its own) net of the lines it completes, then the smallest non-zero count (zeros protect nothing once
        known). Without the first term a small municipality's cells pull a large neighbour's whole table after them."""
        others = [n_hidden[k] for k in lines_of[i] if k != line]
        return (others.count(0) - others.count(1), values[i] == 0, values[i] or 0, i)

    secondary = 0
    changed = True
    while changed:
        changed = False
        for k, members in enumerate(lines):
            if n_hidden[k] != 1:
                continue
            candidates = [i for i in members if not hidden[i] and not is_total[i]] or [
                i for i in members if not hidden[i]
            ]
            if not candidates:
                continue
            pick = min(candidates, key=lambda i: cost(i, k))
            hidden[pick] = True
            secondary += 1
            changed = True
            for line in lines_of[pick]:
                n_hidden[line] += 1
    published = [None if h else (_round(v, rules.round_to) if v is not None else None) for v, h in zip(values, hidden)]
    table = df.with_columns(
        pl.Series(count, published, dtype=pl.Int64),
        pl.Series("flag", [SUPPRESSED if h else "" for h in hidden], dtype=pl.String),
    )
    return Protection(table, primary, secondary, df.height)


def _line_members(
    df: pl.DataFrame, dims: list[str], margin: str, hierarchy: dict[str, str] | None = None
) -> list[list[int]]:
    """Row indexes of every line along `margin`: all its values with the other dimensions fixed, or, for a
    hierarchy, each parent value with its children (a province with its municipalities; the country with its provinces)."""
    if hierarchy is None:
        grouped = _lines(df, dims, margin).group_by("_line", maintain_order=True).agg(pl.col("_row"))
        return [sorted(rows) for rows in grouped.get_column("_row").to_list() if len(rows) > 1]
    others = [d for d in dims if d != margin]
    keyed = df.with_row_index("_row")
    as_child = keyed.with_columns(
        pl.col(margin).replace_strict(hierarchy, default=None, return_dtype=df.schema[margin]).alias("_parent")
    ).filter(pl.col("_parent").is_not_null())
    as_parent = keyed.filter(pl.col(margin).is_in(sorted(set(hierarchy.values())))).with_columns(
        pl.col(margin).alias("_parent")
    )
    both = pl.concat([as_child.select(*others, "_parent", "_row"), as_parent.select(*others, "_parent", "_row")])
    grouped = both.group_by([*others, "_parent"], maintain_order=True).agg(pl.col("_row"))
    return [sorted(rows) for rows in grouped.get_column("_row").to_list() if len(rows) > 1]


def hierarchy_of(table: pl.DataFrame, *, value: str = "area_code", parent: str = "parent_code") -> dict[str, str]:
    """A table's own hierarchy: each value's parent, read from its columns (what the gate checks against)."""
    pairs = table.select(value, parent).drop_nulls().unique()
    return dict(pairs.iter_rows())


def _round(value: int, base: int | None) -> int:
    if not base or value == 0:
        return value
    return int(base * round(value / base)) or base


def cells_below_minimum(table: pl.DataFrame, rules: DisclosureConfig, *, count: str = "count") -> pl.DataFrame:
    """Published (not suppressed) cells under the minimum: the rows a gate must find none of."""
    small = pl.col(count).is_not_null() & (pl.col(count) < rules.min_cell)
    if not rules.suppress_zeros:
        small = small & (pl.col(count) != 0)
    return table.filter(small)


def recoverable_cells(
    table: pl.DataFrame,
    *,
    dims: list[str],
    margins: list[str],
    count: str = "count",
    hierarchies: dict[str, dict[str, str]] | None = None,
) -> pl.DataFrame:
    """Suppressed cells alone in a line (derivable as total minus the rest): the rows a gate must find none of."""
    hierarchies = hierarchies or {}
    hidden = table.get_column(count).is_null().to_list()
    lonely: set[int] = set()
    for margin in margins:
        for members in _line_members(table, dims, margin, hierarchies.get(margin)):
            inside = [i for i in members if hidden[i]]
            if len(inside) == 1:
                lonely.add(inside[0])
    return table.with_row_index("_row").filter(pl.col("_row").is_in(sorted(lonely))).drop("_row")
