"""Publication assets: protected open-data tables and the versioned export bundle built from them."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

import datetime as dt
from pathlib import Path

import polars as pl
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from citizen_view.contract import SourcesFile
from citizen_view.disclosure import DisclosureRules
from citizen_view.export import bundle_dirs, write_bundle
from citizen_view.open_data import TABLES, PublishedTable, build_table
from pipelines.resources import WarehouseResource
from citizen_view.quality.expectations import validate_tables
from citizen_view.quality.results import run_results

PUBLICATION_GROUP = "publication"
PROTECTION_LOG = "open_data.protection"


def table_key(name: str) -> AssetKey:
    """The asset key of a published table: `open_data/<name>`."""
    return AssetKey(["open_data", name])


def reference_date(sources: SourcesFile) -> dt.date:
    """The date ages and living status are taken at: configured, or today (UTC)."""
    return sources.publication.reference_date or dt.datetime.now(dt.timezone.utc).date()


def load_published(con, sources: SourcesFile) -> list[PublishedTable]:
    """The protected tables as written by their assets, with their disclosure-control counts."""
    stats = {r[0]: r[1:] for r in con.execute(f"SELECT name, primary_suppressed, secondary_suppressed, cells FROM {PROTECTION_LOG}").fetchall()}
    out = []
    for name, info in TABLES.items():
        df = con.sql(f'SELECT * FROM open_data."{name}"').pl()
        primary, secondary, cells = stats.get(name, (0, 0, df.height))
        out.append(PublishedTable(info, df, primary, secondary, cells))
    return out


def build_publication_assets(sources: SourcesFile, *, upstream: AssetKey) -> list[AssetsDefinition]:
    """One asset per open-data table (downstream of the linked view) and the bundle asset."""
    assets = [_table_asset(sources, name, upstream) for name in TABLES]

    @asset(
        key=AssetKey(["open_data", "bundle"]), group_name=PUBLICATION_GROUP, deps=[a.key for a in assets],
        kinds={"csv", "parquet", "json"},
        description="The versioned export bundle (CSV + Parquet, Frictionless datapackage.json, DCAT-AP, "
        "GX Data Docs, sdc-report.json, gates.json, checksums.sha256). Runs only when every gate upstream passed.",
    )  # fmt: skip
    def open_data_bundle(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        rules = DisclosureRules(**sources.disclosure.model_dump())
        with warehouse.connect() as con:
            tables = load_published(con, sources)
            gates = run_results(con, context.run.run_id)
        specs = {t.info.name: suite_spec(t.info) for t in tables}
        frames = {t.info.name: t.table for t in tables}

        def data_docs(folder: Path) -> None:
            validate_tables(frames, specs, min_cell=rules.min_cell, allow_zero=not rules.suppress_zeros, data_docs_dir=folder)

        report = sdc_report(tables, rules, reference=reference_date(sources))
        bundle = write_bundle(
            tables, exports_dir=bundle_dirs(sources, warehouse.layout)[0], run_id=context.run.run_id, sources=sources,
            sdc_report=report, gates=gates, data_docs=data_docs,
        )  # fmt: skip
        files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file() and "data-docs" not in p.parts)
        return MaterializeResult(
            metadata={
                "bundle": MetadataValue.path(str(bundle)),
                "files": MetadataValue.json(files),
                "gates_passed": sum(g["passed"] for g in gates),
                "cells_suppressed": report["totals"]["suppressed"],
            }
        )

    return [*assets, open_data_bundle]


def _table_asset(sources: SourcesFile, name: str, upstream: AssetKey) -> AssetsDefinition:
    info = TABLES[name]

    @asset(key=table_key(name), group_name=PUBLICATION_GROUP, deps=[upstream], kinds={"duckdb"}, description=info.description)
    def _table(warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.connect() as con:
            published = build_table(con, name, sources, reference=reference_date(sources))
            con.execute("CREATE SCHEMA IF NOT EXISTS open_data")
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {PROTECTION_LOG} (name VARCHAR PRIMARY KEY, primary_suppressed BIGINT, "
                "secondary_suppressed BIGINT, cells BIGINT)"
            )
            con.execute("BEGIN TRANSACTION")
            con.register("_published", published.table)
            con.execute(f'CREATE OR REPLACE TABLE open_data."{name}" AS SELECT * FROM _published')
            con.unregister("_published")
            con.execute(
                f"INSERT OR REPLACE INTO {PROTECTION_LOG} VALUES (?, ?, ?, ?)",
                [name, published.primary, published.secondary, published.cells],
            )
            con.execute("COMMIT")
        return MaterializeResult(
            metadata={
                "dagster/row_count": published.table.height,
                "primary_suppressed": published.primary,
                "secondary_suppressed": published.secondary,
                "preview": MetadataValue.md(_markdown(published.table.head(12))),
            }
        )

    return _table


def suite_spec(info):
    """The Great Expectations spec of a published table."""
    from citizen_view.quality.expectations import TableSpec

    counted = info.count_column is not None
    return TableSpec(
        name=info.name, columns=info.columns, not_null=info.dims, value_sets=dict(info.value_sets),
        count_columns=(info.count_column,) if counted else (), unique_together=info.dims,
        flag_column="flag" if counted else None,
    )  # fmt: skip


def sdc_report(tables: list[PublishedTable], rules: DisclosureRules, *, reference: dt.date) -> dict:
    """What disclosure control did, for `sdc-report.json`."""
    per_table = {
        t.info.name: {"cells": t.cells, "primary_suppressed": t.primary, "secondary_suppressed": t.secondary,
                      "published_suppressed": int(t.table.get_column("count").null_count()) if t.info.count_column else 0}
        for t in tables
    }  # fmt: skip
    return {
        "rules": rules.describe(),
        "unit": "citizens (people after linkage), not records",
        "reference_date": reference.isoformat(),
        "tables": per_table,
        "totals": {
            "cells": sum(v["cells"] for v in per_table.values()),
            "suppressed": sum(v["published_suppressed"] for v in per_table.values()),
        },
    }


def _markdown(df: pl.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "\n".join("| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in df.iter_rows())


