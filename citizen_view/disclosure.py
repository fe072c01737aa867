"""Statistical disclosure control for published count tables: minimum cell, secondary suppression, rounding.

Tables are long format: dimension columns plus `count`, with margins as rows whose dimension value is
`Total`. A *line* is a set of cells that add up to a margin: all values of one margin dimension (its
`Total` included) with the other dimensions fixed. Primary suppression hides counts below the
minimum cell; secondary suppression then hides the smallest other cell of every line that has exactly
one hidden cell, until none has, so no hidden count can be recomputed as total minus the rest.
Rounding (optional, to base 5 like the ONS 10-5 rule) applies to the published counts afterwards.
The same functions that protect a table are the gate's evidence that it is protected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

TOTAL = "Total"
SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class DisclosureRules:
    """Parameters of the disclosure control applied to every published count."""

    min_cell: int = 10
    round_to: int | None = None
    suppress_zeros: bool = False

    def describe(self) -> dict:
        return asdict(self) | {
            "primary": f"counts below {self.min_cell} are suppressed" + ("" if self.suppress_zeros else " (zeros are published)"),
            "secondary": "in every line that adds up to a published total, a second cell is suppressed "
            "whenever exactly one is, smallest first, until no suppressed count can be derived",
            "rounding": f"published counts rounded to the nearest {self.round_to}" if self.round_to else "none",
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
    counts: pl.DataFrame, *, dims: list[str], margins: list[str], rules: DisclosureRules, count: str = "count"
) -> Protection:
    """Suppress (primary + secondary) and round a count table; adds a `flag` column ("" or "suppressed")."""
    df = counts.with_columns(pl.col(count).cast(pl.Int64))
    values = df.get_column(count).to_list()
    is_total = df.select(pl.any_horizontal(pl.col(d) == TOTAL for d in dims)).to_series().to_list()
    hidden = [(v is not None and v < rules.min_cell and (v > 0 or rules.suppress_zeros)) for v in values]
    primary = sum(hidden)
    lines = {m: _line_members(df, dims, m) for m in margins}
    secondary = 0
    changed = True
    while changed:
        changed = False
        for members_by_line in lines.values():
            for members in members_by_line:
                n_hidden = sum(hidden[i] for i in members)
                if n_hidden != 1:
                    continue
                candidates = [i for i in members if not hidden[i] and not is_total[i]] or [
                    i for i in members if not hidden[i]
                ]
                if not candidates:
                    continue
                # The smallest non-zero cell loses least information; zeros protect nothing once known.
                pick = min(candidates, key=lambda i: (values[i] == 0, values[i] or 0, i))
                hidden[pick] = True
                secondary += 1
                changed = True
    published = [
        None if h else (_round(v, rules.round_to) if v is not None else None) for v, h in zip(values, hidden)
    ]
    table = df.with_columns(
        pl.Series(count, published, dtype=pl.Int64),
        pl.Series("flag", [SUPPRESSED if h else "" for h in hidden], dtype=pl.String),
    )
    return Protection(table, primary, secondary, df.height)


def _line_members(df: pl.DataFrame, dims: list[str], margin: str) -> list[list[int]]:
    grouped = _lines(df, dims, margin).group_by("_line").agg(pl.col("_row"))
    return [sorted(rows) for rows in grouped.get_column("_row").to_list() if len(rows) > 1]


def _round(value: int, base: int | None) -> int:
    if not base or value == 0:
        return value
    return int(base * round(value / base)) or base


def cells_below_minimum(table: pl.DataFrame, rules: DisclosureRules, *, count: str = "count") -> pl.DataFrame:
    """Published (not suppressed) cells under the minimum: the rows a gate must find none of."""
    small = pl.col(count).is_not_null() & (pl.col(count) < rules.min_cell)
    if not rules.suppress_zeros:
        small = small & (pl.col(count) != 0)
    return table.filter(small)


def recoverable_cells(table: pl.DataFrame, *, dims: list[str], margins: list[str], count: str = "count") -> pl.DataFrame:
    """Suppressed cells alone in a line (derivable as total minus the rest): the rows a gate must find none of."""
    hidden = table.get_column(count).is_null().to_list()
    lonely: set[int] = set()
    for margin in margins:
        for members in _line_members(table, dims, margin):
            inside = [i for i in members if hidden[i]]
            if len(inside) == 1:
                lonely.add(inside[0])
    return table.with_row_index("_row").filter(pl.col("_row").is_in(sorted(lonely))).drop("_row")
