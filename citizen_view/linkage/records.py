"""`source_records`: every loaded record of every source in one table, keyed `source:source_record_id`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from citizen_view.warehouse import quote, table_exists

if TYPE_CHECKING:
    import duckdb

# The columns the linkage model compares, computed from `source_records`: canonical columns as they are,
# the birth date as yyyymmdd text (also for a date that did not parse: its characters in place), with
# day and month swapped, and the national ID as given (compacted), whether or not it passed its checksum.
LINKAGE_INPUT_SQL = """
    SELECT record_key, source, first_name_std, initials, family_name_std, string_split(family_name_std, ' ') AS family_name_words, sex,
           national_id_text AS national_id, street_std, house_number, postcode, city_std, birth_place_std, email, phone,
           date_of_birth_text AS dob,
           CASE WHEN day(date_of_birth) <= 12
                THEN strftime(date_of_birth, '%Y') || lpad(day(date_of_birth)::VARCHAR, 2, '0')
                     || lpad(month(date_of_birth)::VARCHAR, 2, '0') END AS dob_swapped,
           enc_national_id, enc_initial, blk_date_of_birth, blk_year_family, blk_names,
           enc_given_name, enc_family_name, enc_date_of_birth, enc_address
    FROM source_records
"""
LINKAGE_COLUMNS = (
    "first_name_std", "initials", "family_name_std", "sex", "national_id", "street_std", "house_number", "postcode",
    "city_std", "birth_place_std", "email", "phone", "dob",
    "enc_national_id", "enc_initial", "enc_given_name", "enc_family_name", "enc_date_of_birth", "enc_address",
    "blk_date_of_birth", "blk_year_family", "blk_names",
)  # fmt: skip


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
        ORDER BY source, source_file, source_line, source_record_id
        """
    )
    return con.execute("SELECT count(*) FROM source_records").fetchall()[0][0]


def field_shares(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """For each column the model may compare, the share of all loaded records that hold a value."""
    selects = ", ".join(f"avg(({quote(c)} IS NOT NULL)::INT) AS {quote(c)}" for c in LINKAGE_COLUMNS)
    row = con.execute(f"SELECT {selects} FROM ({LINKAGE_INPUT_SQL})").fetchall()[0]
    return {c: float(v or 0.0) for c, v in zip(LINKAGE_COLUMNS, row)}


@dataclass
class SourceRecordsReport:
    records: int
    per_source: dict[str, int]


def collect_source_records(con: duckdb.DuckDBPyConnection, source_names: list[str]) -> SourceRecordsReport:
    """Build `source_records` and say how many records each source put in."""
    n = build_source_records(con, source_names)
    per_source = dict(con.execute("SELECT source, count(*) FROM source_records GROUP BY 1 ORDER BY 1").fetchall())
    return SourceRecordsReport(n, per_source)
