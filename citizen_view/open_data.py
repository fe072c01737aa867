"""Open-data aggregates of the unified view, counted in citizens (not records), protected before publication.

Every table is long format with margins as `Total` rows, so disclosure control can see each line that
adds up to a published total. Area is the golden record's city (the register's municipality first).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import polars as pl

from citizen_view.disclosure import TOTAL, Protection, hierarchy_of, protect
from citizen_view.quality.expectations import TableSpec
from citizen_view.warehouse import column_exists, table_exists, transaction

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

AGE_BANDS = ("0-17", "18-29", "30-44", "45-64", "65-79", "80+")
UNKNOWN = "Unknown"
# The area levels a row can be at: a municipality, the region one level up (province, county), the country,
# and the citizens matched to no official area (counted nationally, never an area of their own).
LEVELS = ("municipality", "region", "country", "unknown")
UNKNOWN_AREA = "UNKNOWN"


def living_citizens(reference: dt.date) -> str:
    """SQL of the citizens alive at the reference date (every published population count is of them)."""
    return f"SELECT * FROM citizen WHERE date_of_death IS NULL OR date_of_death > DATE '{reference.isoformat()}'"


@dataclass(frozen=True)
class Scope:
    """What a table is built for: the reference date, the country and the services whose uptake is counted."""

    reference: dt.date
    country: str = "ALL"
    country_name: str = "All"
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReferenceTotal:
    """A published total and the query that counts the same thing straight from the linked view.

    `truth` gives SQL returning rows of (key, count): one row per total (key NULL when there is one), and `row`
    selects the published row holding that key's total; `what` names it (`{key}` is filled in).
    """

    what: str
    truth: Callable[[Scope], str]
    row: Callable[[Any], pl.Expr]
    column: str = "count"


@dataclass(frozen=True)
class NoReferenceTotals:
    """The explicit declaration that a table has no total to compare with the linked view, and why."""

    reason: str


Builder = Callable[["duckdb.DuckDBPyConnection", Scope], pl.DataFrame]


@dataclass(frozen=True)
class TableInfo:
    """A published table: its columns, which are dimensions, which dimensions carry `Total` margins, how it is built
    from the linked view and the reference totals its published totals must equal."""

    name: str
    title: str
    description: str
    columns: tuple[str, ...]
    dims: tuple[str, ...]
    margins: tuple[str, ...]
    build: Builder
    totals: tuple[ReferenceTotal, ...] | NoReferenceTotals
    count_column: str | None = "count"  # None: no person counts, so no disclosure control
    value_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # dimensions whose values nest: fixed ones here, and `area_code` read from the table's `parent_code`
    hierarchies: dict[str, dict[str, str]] = field(default_factory=dict)
    area_hierarchy: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.totals, NoReferenceTotals) and not self.totals:
            raise ValueError(f"table {self.name!r}: declare its reference totals, or NoReferenceTotals(reason)")

    def hierarchies_of(self, table: pl.DataFrame) -> dict[str, dict[str, str]]:
        """Every hierarchy the table's lines follow (the area's read from the table itself)."""
        out = dict(self.hierarchies)
        if self.area_hierarchy:
            out["area_code"] = hierarchy_of(table)
        return out

    @property
    def spec(self) -> TableSpec:
        """The Great Expectations spec of the table (quality/expectations.py)."""
        counted = self.count_column is not None
        return TableSpec(
            name=self.name,
            columns=self.columns,
            not_null=self.dims,
            value_sets=dict(self.value_sets),
            count_columns=(self.count_column,) if counted else (),
            unique_together=self.dims,
            flag_column="flag" if counted else None,
        )


def _areas_sql(country: str, people: str, extra: str = "") -> str:
    """Each person of `people` (citizen_id, area_code, region_code + `extra` columns) once at every level."""
    cols = f", {extra}" if extra else ""
    return f"""
        SELECT 'municipality' AS level, area_code, region_code AS parent_code{cols} FROM {people} WHERE area_code IS NOT NULL
        UNION ALL SELECT 'region', region_code, '{country}'{cols} FROM {people} WHERE area_code IS NOT NULL
        UNION ALL SELECT 'unknown', '{UNKNOWN_AREA}', '{country}'{cols} FROM {people} WHERE area_code IS NULL
        UNION ALL SELECT 'country', '{country}', NULL{cols} FROM {people}
    """


def _area_names(country: str, country_name: str) -> str:
    """SQL of (area_code, area_name) for every level."""
    return f"""
        SELECT DISTINCT area_code, area_name FROM citizen_area WHERE area_code IS NOT NULL
        UNION SELECT DISTINCT region_code, region_name FROM citizen_area WHERE region_code IS NOT NULL
        UNION SELECT '{country}', '{country_name.replace("'", "''")}'
        UNION SELECT '{UNKNOWN_AREA}', 'not matched to an official area'
    """


def population_by_area(
    con: duckdb.DuckDBPyConnection, *, reference: dt.date, country: str = "ALL", country_name: str = "All"
) -> pl.DataFrame:
    """Living citizens by official area (municipality, region, country) x age band x sex, every margin included.

    People whose sex (or age) is unknown are counted in the `Unknown` cell of the area's age (or sex) total only.
    """
    age = f"date_diff('year', date_of_birth, DATE '{reference.isoformat()}') - (strftime(date_of_birth, '%m%d') > '{reference:%m%d}')::INT"
    bands = " ".join(
        f"WHEN x BETWEEN {lo} AND {hi} THEN '{label}'"
        for label, lo, hi in [
            ("0-17", 0, 17),
            ("18-29", 18, 29),
            ("30-44", 30, 44),
            ("45-64", 45, 64),
            ("65-79", 65, 79),
        ]
    )
    return con.sql(
        f"""
        WITH people AS (
            SELECT a.area_code, a.region_code, coalesce(c.sex, '{UNKNOWN}') AS sex,
                   CASE WHEN x IS NULL OR x < 0 THEN '{UNKNOWN}' {bands} ELSE '80+' END AS age_band
            FROM (SELECT *, {age} AS x FROM ({living_citizens(reference)})) c JOIN citizen_area a USING (citizen_id)
        ),
        levels AS ({_areas_sql(country, "people", "age_band, sex")}),
        names AS ({_area_names(country, country_name)})
        SELECT level, area_code, n.area_name, parent_code, coalesce(age_band, '{TOTAL}') AS age_band,
               coalesce(sex, '{TOTAL}') AS sex, count(*) AS count
        FROM levels LEFT JOIN names n USING (area_code)
        GROUP BY level, area_code, n.area_name, parent_code, CUBE (age_band, sex)
        -- an unknown sex or age is counted in the area's totals, not crossed with the other dimension: those cells
        -- would be small everywhere and each would take a large neighbour down with it by secondary suppression
        HAVING NOT (grouping(levels.age_band, levels.sex) = 0 AND '{UNKNOWN}' IN (levels.age_band, levels.sex))
        ORDER BY list_position({list(LEVELS)}, level), area_code, age_band = '{TOTAL}', age_band, sex = '{TOTAL}', sex
        """
    ).pl()


def service_uptake_by_area(
    con: duckdb.DuckDBPyConnection,
    *,
    services: list[str],
    reference: dt.date,
    country: str = "ALL",
    country_name: str = "All",
) -> pl.DataFrame:
    """Living citizens with at least one record in each service's source, by official area at every level."""
    schema = {
        "service": pl.String,
        "level": pl.String,
        "area_code": pl.String,
        "area_name": pl.String,
        "parent_code": pl.String,
        "count": pl.Int64,
    }
    if not services:
        return pl.DataFrame(schema=schema)
    listed = ", ".join(f"'{s}'" for s in services)
    return con.sql(
        f"""
        WITH people AS (
            SELECT DISTINCT l.source AS service, l.citizen_id, a.area_code, a.region_code
            FROM citizen_source_link l JOIN ({living_citizens(reference)}) c USING (citizen_id)
            JOIN citizen_area a USING (citizen_id)
            WHERE l.source IN ({listed})
        ),
        levels AS ({_areas_sql(country, "people", "service")}),
        names AS ({_area_names(country, country_name)})
        SELECT service, level, area_code, n.area_name, parent_code, count(*) AS count
        FROM levels LEFT JOIN names n USING (area_code)
        GROUP BY service, level, area_code, n.area_name, parent_code
        ORDER BY service, list_position({list(LEVELS)}, level), area_code
        """
    ).pl()


def agencies_per_citizen(con: duckdb.DuckDBPyConnection, *, reference: dt.date) -> pl.DataFrame:
    """Living citizens known to 1, 2, or 3+ sources, and the total: the single view's benefit in one table."""
    return con.sql(
        f"""
        WITH k AS (
            SELECT CASE WHEN source_count >= 3 THEN '3+' ELSE source_count::VARCHAR END AS agencies
            FROM ({living_citizens(reference)})
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
    """Run-level linkage figures (national totals and rates only): counts in `value` as whole numbers, shares,
    probabilities and weights in `decimal` (one column cannot be both in Parquet, and a count is not `5433.0`).

    No count of records linked: it is the sum of `duplicates_per_source`'s records over the sources, a total that
    table's disclosure control does not publish, so with one source's records suppressed it would give them back
    (the total less the others; red-team pass, 2026-12-05)."""
    citizens = con.execute("SELECT count(*) FROM citizen").fetchall()[0][0]
    decimals = con.execute(
        """
        SELECT (SELECT avg((source_count >= 2)::INT) FROM citizen),
               (SELECT median(match_probability) FROM citizen_source_link),
               (SELECT threshold_weight FROM linkage_threshold)
        """
    ).fetchall()[0]
    whole = {"citizens": citizens}
    fractional = dict(
        zip(
            ("share_of_citizens_in_two_or_more_sources", "median_match_probability", "link_threshold_match_weight"),
            decimals,
        )
    )
    return pl.DataFrame(
        {
            "metric": [*whole, *fractional],
            "value": [*(int(v) for v in whole.values()), *(None for _ in fractional)],
            "decimal": [*(None for _ in whole), *(float(v) if v is not None else None for v in fractional.values())],
        },
        schema={"metric": pl.String, "value": pl.Int64, "decimal": pl.Float64},
    )


def _living_total(scope: Scope) -> str:
    return f"SELECT NULL, count(*) FROM ({living_citizens(scope.reference)})"


def _service_users(scope: Scope) -> str:
    """Living citizens with a record in each service's source (a service nobody uses counts 0)."""
    return f"""
        SELECT s.service, (SELECT count(DISTINCT l.citizen_id) FROM citizen_source_link l
                           JOIN ({living_citizens(scope.reference)}) c USING (citizen_id) WHERE l.source = s.service)
        FROM unnest({list(scope.services)}::VARCHAR[]) AS s(service)
    """


def _metric_counts(what: str, metric: str, table: str) -> ReferenceTotal:
    """A linkage-quality figure (`metric`) that must equal the number of rows of a table of the linked view."""
    return ReferenceTotal(
        what, lambda _: f"SELECT NULL, count(*) FROM {table}", lambda _: pl.col("metric") == metric, column="value"
    )


NATIONAL = pl.col("level") == "country"

TABLES: dict[str, TableInfo] = {
    t.name: t
    for t in (
        TableInfo(
            "population_by_area",
            "Population by official area, age band and sex",
            "Living citizens by municipality, by province or county, and nationally (official area codes, each row with "
            "the code one level up), by age band at the reference date and sex, with totals.",
            ("level", "area_code", "area_name", "parent_code", "age_band", "sex", "count", "flag"),
            ("area_code", "age_band", "sex"),
            ("area_code", "age_band", "sex"),
            build=lambda con, s: population_by_area(
                con, reference=s.reference, country=s.country, country_name=s.country_name
            ),
            totals=(
                ReferenceTotal(
                    "living citizens",
                    _living_total,
                    lambda _: NATIONAL & (pl.col("age_band") == TOTAL) & (pl.col("sex") == TOTAL),
                ),
            ),
            value_sets={"level": LEVELS, "age_band": (*AGE_BANDS, UNKNOWN, TOTAL), "sex": ("F", "M", UNKNOWN, TOTAL)},
            area_hierarchy=True,
        ),
        TableInfo(
            "service_uptake_by_area",
            "Public-service uptake by official area",
            "Living citizens known to each service (agency) by municipality, by province or county, and nationally.",
            ("service", "level", "area_code", "area_name", "parent_code", "count", "flag"),
            ("service", "area_code"),
            ("area_code",),
            build=lambda con, s: service_uptake_by_area(
                con, services=list(s.services), reference=s.reference, country=s.country, country_name=s.country_name
            ),
            totals=(
                ReferenceTotal(
                    "{key} users", _service_users, lambda service: (pl.col("service") == service) & NATIONAL
                ),
            ),
            value_sets={"level": LEVELS},
            area_hierarchy=True,
        ),
        TableInfo(
            "agencies_per_citizen",
            "Citizens by number of agencies that know them",
            "How many sources (agencies) hold records of each living citizen: 1, 2 or 3 and more, with the total.",
            ("agencies", "count", "flag"),
            ("agencies",),
            ("agencies",),
            build=lambda con, s: agencies_per_citizen(con, reference=s.reference),
            totals=(ReferenceTotal("living citizens", _living_total, lambda _: pl.col("agencies") == TOTAL),),
            value_sets={"agencies": ("1", "2", "3+", TOTAL)},
        ),
        TableInfo(
            "duplicates_per_source",
            "Records, citizens and duplicate records per source",
            "Per source: records loaded, distinct citizens they belong to, and records that duplicate another "
            "record of the same citizen in that source.",
            ("source", "measure", "count", "flag"),
            ("source", "measure"),
            ("measure",),
            build=lambda con, s: duplicates_per_source(con),
            totals=(
                ReferenceTotal(
                    "{key} records",
                    lambda s: "SELECT source, count(*) FROM citizen_source_link GROUP BY 1",
                    lambda source: (pl.col("source") == source) & (pl.col("measure") == "records"),
                ),
            ),
            value_sets={"measure": ("records", "citizens", "duplicate_records")},
            hierarchies={
                "measure": {"citizens": "records", "duplicate_records": "records"}
            },  # records = citizens + duplicates
        ),
        TableInfo(
            "linkage_quality",
            "Linkage quality summary",
            "Figures describing the linkage run behind these statistics (no person counts below the national level).",
            ("metric", "value", "decimal"),
            ("metric",),
            (),
            build=lambda con, s: linkage_quality(con),
            totals=(_metric_counts("citizens", "citizens", "citizen"),),
            count_column=None,
        ),
    )
}


@dataclass
class PublishedTable:
    """A protected, publishable table and the disclosure-control figures for the SDC report."""

    info: TableInfo
    table: pl.DataFrame
    primary: int = 0
    secondary: int = 0
    cells: int = 0
    persons: int = 0  # people counted in the finest cells (a municipality, no total), before protection
    persons_published: int = 0  # of them, those in a cell that is published
    reference: dt.date | None = None  # the date ages and living status were taken at when the table was built

    @property
    def suppressed(self) -> int:
        return int(self.table.get_column("count").null_count()) if self.info.count_column else 0

    def information_loss(self) -> dict[str, float | int]:
        """The share of cells suppressed and the share of people counted in published finest cells."""
        return {
            "cells": self.cells,
            "cells_suppressed": self.suppressed,
            "suppressed_cell_share": round(self.suppressed / self.cells, 5) if self.cells else 0.0,
            "persons_in_finest_cells": self.persons,
            "persons_in_published_finest_cells": self.persons_published,
            "published_person_share": round(self.persons_published / self.persons, 5) if self.persons else 1.0,
        }


PROTECTION_LOG = "open_data.protection"


def scope_of(sources: SourcesFile, reference: dt.date) -> Scope:
    """The scope tables are built in for a sources.yaml at a reference date."""
    from citizen_view.areas import country_name

    return Scope(reference, sources.country or "ALL", country_name(sources), tuple(sources.service_sources()))


def reference_date(sources: SourcesFile) -> dt.date:
    """The date ages and living status are taken at: configured, or today (UTC)."""
    return sources.publication.reference_date or dt.datetime.now(dt.timezone.utc).date()


def publish_table(con: duckdb.DuckDBPyConnection, name: str, sources: SourcesFile) -> PublishedTable:
    """Build, protect and store one published table (`open_data.<name>` and its row of `open_data.protection`), at once.
    The reference date is stored with it, so its gates and its export use the date it was built at (a run can cross
    midnight, and "today" is the default)."""
    reference = reference_date(sources)
    published = build_table(con, name, sources, reference=reference)
    con.execute("CREATE SCHEMA IF NOT EXISTS open_data")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {PROTECTION_LOG} (name VARCHAR PRIMARY KEY, primary_suppressed BIGINT, "
        "secondary_suppressed BIGINT, cells BIGINT, persons BIGINT, persons_published BIGINT, reference_date DATE)"
    )
    for column, kind in (("persons", "BIGINT"), ("persons_published", "BIGINT"), ("reference_date", "DATE")):
        con.execute(f"ALTER TABLE {PROTECTION_LOG} ADD COLUMN IF NOT EXISTS {column} {kind}")  # an older warehouse
    with transaction(con, _published=published.table):
        con.execute(f'CREATE OR REPLACE TABLE open_data."{name}" AS SELECT * FROM _published')
        con.execute(
            f"INSERT OR REPLACE INTO {PROTECTION_LOG} (name, primary_suppressed, secondary_suppressed, cells, persons, "
            "persons_published, reference_date) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                published.primary,
                published.secondary,
                published.cells,
                published.persons,
                published.persons_published,
                reference,
            ],
        )
    return replace(published, reference=reference)


def _protection_log(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Each stored table's row of the protection log: (primary, secondary, cells, persons, persons_published,
    reference_date); the date is None in a warehouse written before it was recorded."""
    dated = column_exists(con, "open_data", "protection", "reference_date")
    return {
        r[0]: r[1:]
        for r in con.execute(
            f"SELECT name, primary_suppressed, secondary_suppressed, cells, persons, persons_published, "
            f"{'reference_date' if dated else 'NULL::DATE'} FROM {PROTECTION_LOG}"
        ).fetchall()
    }


def built_reference(con: duckdb.DuckDBPyConnection, name: str, sources: SourcesFile) -> dt.date:
    """The reference date table `name` was built at (as stored with it), or the configured one / today."""
    stored = _protection_log(con).get(name) if table_exists(con, "open_data", "protection") else None
    return stored[-1] if stored and stored[-1] is not None else reference_date(sources)


def load_published(con: duckdb.DuckDBPyConnection) -> list[PublishedTable]:
    """The protected tables as stored, with their disclosure-control counts."""
    stats = _protection_log(con)
    out = []
    for name, info in TABLES.items():
        df = con.sql(f'SELECT * FROM open_data."{name}"').pl()
        primary, secondary, cells, persons, published, reference = stats.get(name, (0, 0, df.height, 0, 0, None))
        out.append(PublishedTable(info, df, primary, secondary, cells, persons or 0, published or 0, reference))
    return out


def build_table(
    con: duckdb.DuckDBPyConnection, name: str, sources: SourcesFile, *, reference: dt.date
) -> PublishedTable:
    """Compute and protect one published table."""
    info = TABLES[name]
    raw = info.build(con, scope_of(sources, reference))
    if info.count_column is None:  # no person counts: nothing to protect
        return PublishedTable(info, raw.select(info.columns))
    result: Protection = protect(
        raw,
        dims=list(info.dims),
        margins=list(info.margins),
        rules=sources.disclosure,
        hierarchies=info.hierarchies_of(raw),
    )
    finest = ~pl.any_horizontal([pl.col(d) == TOTAL for d in info.dims if d != "area_code"] + [pl.lit(False)])
    if "level" in raw.columns:
        finest = finest & (pl.col("level") == "municipality")
    elif info.hierarchies:
        parents = {v for h in info.hierarchies.values() for v in h.values()}
        finest = finest & ~pl.any_horizontal([pl.col(d).is_in(sorted(parents)) for d in info.hierarchies])
    mask = raw.select(finest.alias("f")).to_series()
    true_counts = raw.get_column("count").filter(mask)
    published = true_counts.filter(result.table.get_column("count").filter(mask).is_not_null())
    return PublishedTable(
        info,
        result.table.select(info.columns),
        result.primary,
        result.secondary,
        result.cells,
        int(true_counts.sum() or 0),
        int(published.sum() or 0),
    )


def information_loss(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, float | int]:
    """A stored table's information loss (cells suppressed, people in published finest cells)."""
    row = _protection_log(con).get(name)
    if row is None:
        raise KeyError(f"no protected table {name!r} stored yet")
    df = con.sql(f'SELECT * FROM open_data."{name}"').pl()
    return PublishedTable(TABLES[name], df, *row).information_loss()
