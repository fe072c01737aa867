"""`source_records`: every loaded record of every source in one table, keyed `source:source_record_id`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from citizen_view.warehouse import quote, table_exists

if TYPE_CHECKING:
    import duckdb

# Canonical columns the linkage model may compare (see model.py for how each is compared).
LINKAGE_COLUMNS = (
    "first_name_std",
    "initials",
    "family_name_std",
    "date_of_birth",
    "sex",
    "national_id",
    "street_std",
    "house_number",
    "postcode",
    "city_std",
    "birth_place_std",
    "email",
    "phone",
)
# A column counts as populated by a source when at least this share of its records have it.
POPULATED_SHARE = 0.05


def build_source_records(con: duckdb.DuckDBPyConnection, source_names: list[str]) -> int:
    """(Re)create `source_records` from the canonical tables present; returns its row count."""
    parts = [
        f"SELECT * FROM canonical.{quote(name)}" for name in source_names if table_exists(con, "canonical", name)
    ]
    if not parts:
        raise RuntimeError("no canonical source tables in the warehouse: ingest at least one source first")
    union = " UNION ALL BY NAME ".join(parts)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE source_records AS
        SELECT source || ':' || source_record_id AS record_key, *
        FROM ({union})
        ORDER BY source, source_line
        """
    )
    return con.execute("SELECT count(*) FROM source_records").fetchall()[0][0]


def populated_columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """For each linkage column, the sources that populate it (at least POPULATED_SHARE of their records)."""
    selects = ", ".join(f"avg(({quote(c)} IS NOT NULL)::INT) AS {quote(c)}" for c in LINKAGE_COLUMNS)
    rows = con.execute(f"SELECT source, {selects} FROM source_records GROUP BY source ORDER BY source").fetchall()
    out: dict[str, list[str]] = {c: [] for c in LINKAGE_COLUMNS}
    for row in rows:
        source, shares = row[0], row[1:]
        for col, share in zip(LINKAGE_COLUMNS, shares):
            if share is not None and share >= POPULATED_SHARE:
                out[col].append(source)
    return out
