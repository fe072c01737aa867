"""Publication assets: protected open-data tables and the versioned export bundle built from them."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from citizen_view.areas import areas_for, match_areas
from citizen_view.contract import SourcesFile
from citizen_view.export import build_bundle
from citizen_view.open_data import TABLES, publish_table
from pipelines.metadata import counts, table
from pipelines.resources import WarehouseResource

PUBLICATION_GROUP = "publication"


def table_key(name: str) -> AssetKey:
    """The asset key of a published table: `open_data/<name>`."""
    return AssetKey(["open_data", name])


AREA_KEY = AssetKey("citizen_area")


def build_publication_assets(sources: SourcesFile, *, upstream: AssetKey) -> list[AssetsDefinition]:
    """Each citizen's official area, one asset per open-data table (downstream of both) and the bundle asset."""

    @asset(key=AREA_KEY, group_name=PUBLICATION_GROUP, deps=[upstream], kinds={"duckdb"})
    def citizen_area(warehouse: WarehouseResource) -> MaterializeResult:
        """Each citizen's official area (municipality code and its province or county), and how it was found:
        what open data is published by. Citizens matched to no area are counted only nationally."""
        with warehouse.connect() as con:
            report = match_areas(con, areas_for(sources, refreshed=warehouse.layout.areas_dir))
        return MaterializeResult(
            metadata={
                "dagster/row_count": report.citizens,
                "areas": report.areas,
                "unmatched": report.unmatched,
                "unmatched_share": round(report.unmatched_share, 5),
                "by_method": counts(report.by_method, key="method", value="citizens"),
                "unmatched_values": table(
                    [{"city": c, "postcode": p, "citizens": n} for c, p, n in report.unmatched_values],
                    columns=("city", "postcode", "citizens"),
                ),
            }
        )

    assets = [_table_asset(sources, name, AREA_KEY) for name in TABLES]

    @asset(
        key=AssetKey(["open_data", "bundle"]),
        group_name=PUBLICATION_GROUP,
        deps=[a.key for a in assets],
        kinds={"csv", "parquet", "json"},
        description="The versioned export bundle (CSV + Parquet, Frictionless datapackage.json, DCAT-AP, "
        "GX Data Docs, sdc-report.json, gates.json, checksums.sha256). Runs only when every gate upstream passed.",
    )
    def open_data_bundle(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.connect() as con:
            report = build_bundle(con, sources, warehouse.layout, run_id=context.run.run_id)
        return MaterializeResult(
            metadata={
                "bundle": MetadataValue.path(str(report.bundle)),
                "files": MetadataValue.json(report.files),
                "gates_passed": report.gates_passed,
                "cells_suppressed": report.cells_suppressed,
            }
        )

    return [citizen_area, *assets, open_data_bundle]


def _table_asset(sources: SourcesFile, name: str, upstream: AssetKey) -> AssetsDefinition:
    info = TABLES[name]

    @asset(
        key=table_key(name),
        group_name=PUBLICATION_GROUP,
        deps=[upstream],
        kinds={"duckdb"},
        description=info.description,
    )
    def _table(warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.connect() as con:
            published = publish_table(con, name, sources)
        return MaterializeResult(
            metadata={
                "dagster/row_count": published.table.height,
                "primary_suppressed": published.primary,
                "secondary_suppressed": published.secondary,
                **published.information_loss(),
                "preview": table(published.table, limit=12),
            }
        )

    return _table
