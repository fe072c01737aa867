"""Values of name and place fields that are not evidence of identity: placeholders, titles, filler.

A register may write "unknown", "n/a", "XXX", "-" or a title such as "1st bt." where a name belongs.
Hundreds of people then share that "name", and a model that counts it as a name agreement links
them. Such values are found from the data, never from a list:

- **shape**: no letter at all ("-", "000"); one letter repeated ("xxx", "x.x."); in a person's name,
  a digit ("1st bt.", "3rd").
- **frequency** (names only): sorted by how many records hold them, names fall off smoothly (the
  top name holds 1-2 times the second; Nguyen, the most concentrated family name known, about 3.5
  times Tran). A value above a step of `STEP` (5) times the next value's count, among the five most
  frequent, stands apart from the names. Places are left to term frequencies: a capital may hold
  many times the records of the next city and still be a real place.

Linkage treats such a value as missing in every comparison (the golden record and the open data keep
what the source wrote); blocking still uses it, so such records are compared on their other fields. The list is kept with the model (`linkage_common_values`) so every scoring path masks the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.warehouse import quote, table_columns, table_exists

if TYPE_CHECKING:
    import duckdb

NAME_FIELDS = ("first_name_std", "family_name_std")
PLACE_FIELDS = ("street_std", "city_std", "birth_place_std")
FIELDS = NAME_FIELDS + PLACE_FIELDS
STEP = 5.0  # a name held by this many times the records of the next most frequent one stands apart
TOP = 5  # only this many leading values may stand apart (a field of placeholders is not a field)
MIN_RECORDS = 10  # a value held by fewer records than this is never "too common"
TABLE = "linkage_common_values"
SCHEMA = {"field": pl.String, "value": pl.String, "records": pl.Int64, "reason": pl.String}


@dataclass(frozen=True)
class CommonValue:
    field: str
    value: str
    records: int
    reason: str


def shape_reason(value: str, field: str) -> str | None:
    """Why a value's shape says it is not a name or place, or None."""
    letters = [c for c in value if c.isalpha()]
    if not letters:
        return "no letters"
    if len(value) >= 3 and len(set(letters)) == 1:
        return "one letter repeated"
    if field in NAME_FIELDS and any(c.isdigit() for c in value):
        return "a digit in a name"
    return None


def find_common_values(con: duckdb.DuckDBPyConnection) -> list[CommonValue]:
    """The values of `source_records`' name and place fields that linkage should treat as missing."""
    columns = set(table_columns(con, "source_records"))
    found: list[CommonValue] = []
    for field in FIELDS:
        if field not in columns:
            continue
        counts = con.execute(
            f"SELECT {field} AS value, count(*) AS n FROM source_records WHERE {field} IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        ).fetchall()
        by_shape = {v: r for v, _ in counts if (r := shape_reason(v, field))}
        found += [CommonValue(field, v, n, by_shape[v]) for v, n in counts if v in by_shape]
        if field not in NAME_FIELDS:
            continue
        names = [(v, n) for v, n in counts if v not in by_shape]
        # the largest step among the leading values: everything above it stands apart from the names below
        steps = [(names[k][1] / names[k + 1][1], k) for k in range(min(TOP, len(names) - 1))]
        if steps:
            ratio, k = max(steps)
            if ratio >= STEP and names[k][1] >= MIN_RECORDS:
                found += [
                    CommonValue(
                        field, v, n, f"{n / names[k + 1][1]:.1f}x the records of the next value ({names[k + 1][0]!r})"
                    )
                    for v, n in names[: k + 1]
                ]
    return found


def as_frame(values: list[CommonValue]) -> pl.DataFrame:
    return pl.DataFrame([v.__dict__ for v in values], schema=SCHEMA)


def notes(values: list[CommonValue]) -> list[str]:
    """One line per value, for the model's notes."""
    return [f"treated as missing: {v.field} = {v.value!r} ({v.records:,} records; {v.reason})" for v in values]


def store(
    con: duckdb.DuckDBPyConnection, values: list[CommonValue], *, table: str = TABLE, temporary: bool = False
) -> None:
    """Write the values into `table` (replacing it)."""
    con.register("_common_values_frame", as_frame(values))
    try:
        con.execute(
            f"CREATE OR REPLACE {'TEMP ' if temporary else ''}TABLE {quote(table)} AS SELECT * FROM _common_values_frame"
        )
    finally:
        con.unregister("_common_values_frame")


def masked_records_sql(con: duckdb.DuckDBPyConnection, table: str | None = None, *, where: str | None = None) -> str:
    """`source_records` with the common values (from `table`, default the stored list) set to null; as it is when none.
    `where`: a condition on `source_records` applied before the values are masked (so a lookup of a few records
    masks those, not every record)."""
    # Blocking still sees the names as written: records whose only name is a title are compared, on
    # everything else, instead of never meeting.
    block = "first_name_std AS first_name_block, family_name_std AS family_name_block"
    if table is None:
        table = TABLE if table_exists(con, "main", TABLE) else None
    source = f"source_records WHERE {where}" if where else "source_records"
    if table is None:
        return f"(SELECT *, {block} FROM {source})"

    def masked(field: str, column: str | None = None) -> str:
        return (
            f"CASE WHEN {field} IN (SELECT value FROM {quote(table)} WHERE field = '{field}') THEN NULL "
            f"ELSE {column or field} END AS {column or field}"
        )

    columns = set(table_columns(con, "source_records"))
    parts = [masked(f) for f in FIELDS if f in columns]
    if "initials" in columns and "first_name_std" in columns:  # initials of a placeholder are no evidence either
        parts.append(masked("first_name_std", "initials"))
    replace = f"* REPLACE ({', '.join(parts)})" if parts else "*"
    return f"(SELECT {replace}, {block} FROM {source})"
