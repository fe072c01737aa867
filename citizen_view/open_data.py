"""Open-data aggregates of the unified view, counted in citizens (not records), protected before publication.

Every table is long format with margins as `Total` rows, so disclosure control can see each line that
adds up to a published total. Area is the golden record's city (the register's municipality first).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from citizen_view.disclosure import TOTAL, DisclosureRules, Protection, protect

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

AGE_BANDS = ("0-17", "18-29", "30-44", "45-64", "65-79", "80+")
UNKNOWN = "Unknown"


@dataclass(frozen=True)
class TableInfo:
    """A published table: its columns, which are dimensions, and which dimensions carry `Total` margins."""

    name: str
    title: str
    description: str
    columns: tuple[str, ...]
    dims: tuple[str, ...]
    margins: tuple[str, ...]
    count_column: str | None = "count"
    value_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)


TABLES: dict[str, TableInfo] = {
    t.name: t
    for t in (
        TableInfo(
            "population_by_area", "Population by area, age band and sex",
            "Living citizens by municipality, age band at the reference date and sex, with totals.",
            ("area", "age_band", "sex", "count", "flag"), ("area", "age_band", "sex"), ("area", "age_band", "sex"),
            value_sets={"age_band": (*AGE_BANDS, UNKNOWN, TOTAL), "sex": ("F", "M", UNKNOWN, TOTAL)},
        ),
        TableInfo(
            "service_uptake_by_area", "Public-service uptake by area",
            "Living citizens known to each service (agency) by municipality, with the national total per service.",
            ("service", "area", "count", "flag"), ("service", "area"), ("area",),
        ),
        TableInfo(
            "agencies_per_citizen", "Citizens by number of agencies that know them",
            "How many sources (agencies) hold records of each living citizen: 1, 2 or 3 and more, with the total.",
            ("agencies", "count", "flag"), ("agencies",), ("agencies",),
            value_sets={"agencies": ("1", "2", "3+", TOTAL)},
        ),
        TableInfo(
            "duplicates_per_source", "Records, citizens and duplicate records per source",
            "Per source: records loaded, distinct citizens they belong to, and records that duplicate another "
            "record of the same citizen in that source.",
            ("source", "measure", "count", "flag"), ("source", "measure"), (),
            value_sets={"measure": ("records", "citizens", "duplicate_records")},
        ),
        TableInfo(
            "linkage_quality", "Linkage quality summary",
            "Figures describing the linkage run behind these statistics (no person counts below the national level).",
            ("metric", "value"), ("metric",), (), count_column=None,
        ),
    )
}  # fmt: skip


# Citizens with their area: the city folded to one key per place, shown in its most common spelling.
_CITIZEN_AREA = f"""
    keyed AS (SELECT *, lower(strip_accents(trim(city))) AS area_key FROM citizen),
    area_names AS (SELECT area_key, mode(city) AS area_name FROM keyed WHERE area_key IS NOT NULL GROUP BY 1),
    citizen_area AS (
        SELECT k.*, coalesce(a.area_name, '{UNKNOWN}') AS area FROM keyed k LEFT JOIN area_names a USING (area_key)
    )
"""


def _living(reference: dt.date) -> str:
    return f"(date_of_death IS NULL OR date_of_death > DATE '{reference.isoformat()}')"


def population_by_area(con: duckdb.DuckDBPyConnection, *, reference: dt.date) -> pl.DataFrame:
    """Living citizens by area x age band x sex, every margin included (GROUP BY CUBE)."""
    age = f"date_diff('year', date_of_birth, DATE '{reference.isoformat()}') - (strftime(date_of_birth, '%m%d') > '{reference:%m%d}')::INT"
    bands = " ".join(
        f"WHEN a BETWEEN {lo} AND {hi} THEN '{label}'"
        for label, lo, hi in [("0-17", 0, 17), ("18-29", 18, 29), ("30-44", 30, 44), ("45-64", 45, 64), ("65-79", 65, 79)]
    )
    return con.sql(
        f"""
        WITH {_CITIZEN_AREA},
        people AS (
            SELECT area, coalesce(sex, '{UNKNOWN}') AS sex,
                   CASE WHEN a IS NULL OR a < 0 THEN '{UNKNOWN}' {bands} ELSE '80+' END AS age_band
            FROM (SELECT *, {age} AS a FROM citizen_area WHERE {_living(reference)})
        )
        SELECT coalesce(area, '{TOTAL}') AS area, coalesce(age_band, '{TOTAL}') AS age_band,
               coalesce(sex, '{TOTAL}') AS sex, count(*) AS count
        FROM people GROUP BY CUBE (area, age_band, sex)
        ORDER BY area = '{TOTAL}', area, age_band = '{TOTAL}', age_band, sex = '{TOTAL}', sex
        """
    ).pl()


def service_uptake_by_area(con: duckdb.DuckDBPyConnection, *, services: list[str], reference: dt.date) -> pl.DataFrame:
    """Living citizens with at least one record in each service's source, by area, with per-service totals."""
    if not services:
        return pl.DataFrame(schema={"service": pl.String, "area": pl.String, "count": pl.Int64})
    listed = ", ".join(f"'{s}'" for s in services)
    return con.sql(
        f"""
        WITH {_CITIZEN_AREA},
        uses AS (
            SELECT DISTINCT l.source AS service, l.citizen_id, c.area
            FROM citizen_source_link l JOIN citizen_area c USING (citizen_id)
            WHERE l.source IN ({listed}) AND {_living(reference)}
        )
        SELECT service, coalesce(area, '{TOTAL}') AS area, count(*) AS count
        FROM uses GROUP BY service, ROLLUP (area)
        ORDER BY service, area = '{TOTAL}', area
        """
    ).pl()


def agencies_per_citizen(con: duckdb.DuckDBPyConnection, *, reference: dt.date) -> pl.DataFrame:
    """Living citizens known to 1, 2, or 3+ sources, and the total: the single view's benefit in one table."""
    return con.sql(
        f"""
        WITH k AS (
            SELECT CASE WHEN source_count >= 3 THEN '3+' ELSE source_count::VARCHAR END AS agencies
            FROM citizen WHERE {_living(reference)}
        )
        SELECT coalesce(agencies, '{TOTAL}') AS agencies, count(*) AS count
        FROM k GROUP BY ROLLUP (agencies) ORDER BY agencies = '{TOTAL}', agencies
        """
    ).pl()


def duplicates_per_source(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per source: records, the citizens they belong to, and the duplicates found among them."""
    return con.sql(
        """
        WITH s AS (SELECT source, count(*) AS records, count(DISTINCT citizen_id) AS citizens
                   FROM citizen_source_link GROUP BY source)
        UNPIVOT (SELECT source, records, citizens, records - citizens AS duplicate_records FROM s)
        ON records, citizens, duplicate_records INTO NAME measure VALUE count
        ORDER BY source, measure
        """
    ).pl()


def linkage_quality(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Run-level linkage figures (national totals and rates only)."""
    row = con.execute(
        """
        SELECT (SELECT count(*) FROM citizen_source_link)::DOUBLE,
               (SELECT count(*) FROM citizen)::DOUBLE,
               (SELECT avg((source_count >= 2)::INT) FROM citizen),
               (SELECT median(match_probability) FROM citizen_source_link),
               (SELECT threshold_weight FROM linkage_threshold)
        """
    ).fetchall()[0]
    names = ["records_linked", "citizens", "share_of_citizens_in_two_or_more_sources", "median_match_probability",
             "link_threshold_match_weight"]  # fmt: skip
    return pl.DataFrame({"metric": names, "value": [float(v) if v is not None else None for v in row]})


@dataclass
class PublishedTable:
    """A protected, publishable table and the disclosure-control figures for the SDC report."""

    info: TableInfo
    table: pl.DataFrame
    primary: int = 0
    secondary: int = 0
    cells: int = 0


def build_table(con: duckdb.DuckDBPyConnection, name: str, sources: SourcesFile, *, reference: dt.date) -> PublishedTable:
    """Compute and protect one published table."""
    info = TABLES[name]
    if name == "population_by_area":
        raw = population_by_area(con, reference=reference)
    elif name == "service_uptake_by_area":
        raw = service_uptake_by_area(con, services=sources.service_sources(), reference=reference)
    elif name == "agencies_per_citizen":
        raw = agencies_per_citizen(con, reference=reference)
    elif name == "duplicates_per_source":
        raw = duplicates_per_source(con)
    elif name == "linkage_quality":
        return PublishedTable(info, linkage_quality(con))
    else:
        raise KeyError(name)
    rules = DisclosureRules(**sources.disclosure.model_dump())
    result: Protection = protect(raw, dims=list(info.dims), margins=list(info.margins), rules=rules)
    return PublishedTable(info, result.table.select(info.columns), result.primary, result.secondary, result.cells)
