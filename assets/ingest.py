"""Ingest assets: one per source declared in sources.yaml, each loading raw, canonical and rejected rows."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from citizen_view.contract import SourceConfig, SourcesFile
from citizen_view.ingest import ingest_source
from pipelines.metadata import figures
from pipelines.resources import WarehouseResource

INGEST_GROUP = "ingest"


def source_asset_key(name: str) -> AssetKey:
    """The asset key of a source's ingest: `source/<name>`."""
    return AssetKey(["source", name])


def build_ingest_assets(sources: SourcesFile) -> list[AssetsDefinition]:
    """One ingest asset per configured source."""
    return [_ingest_asset(sources, s) for s in sources.sources]


def _ingest_asset(sources: SourcesFile, source: SourceConfig) -> AssetsDefinition:
    description = (
        f"{source.description or source.name}: `{source.path}` ({source.format}) loaded into "
        f"`raw.{source.name}` (rows as received) and `canonical.{source.name}` (standardised records); "
        f"malformed rows go to `rejected_records` with their reason."
    )

    @asset(
        key=source_asset_key(source.name),
        group_name=INGEST_GROUP,
        description=description,
        kinds={"duckdb", "polars"},
        tags={"source": source.name},
    )
    def _ingest(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.connect() as con:
            report = ingest_source(con, sources, source.name)
        context.log.info(
            f"{source.name}: {report.rows_in} rows in = {report.rows_loaded} loaded + {report.rows_rejected} rejected"
        )
        metadata = {
            "rows_in": report.rows_in,
            "rows_loaded": report.rows_loaded,
            "rows_rejected": report.rows_rejected,
            "dagster/row_count": report.rows_loaded,
            "files": MetadataValue.json(report.files),
            "rejected_by_reason": figures(report.rejected_by_reason),
            "field_issues_per_field": figures(report.field_issues),
            "field_issues": sum(report.field_issues.values()),
            "tables": MetadataValue.json([f"raw.{source.name}", f"canonical.{source.name}", "rejected_records"]),
            "seconds": round(report.seconds, 3),
        }
        if report.national_id_valid_rate is not None:
            metadata["national_id_valid_rate"] = round(report.national_id_valid_rate, 4)
        if report.date_of_birth_filled_rate is not None:
            metadata["date_of_birth_filled_rate"] = round(report.date_of_birth_filled_rate, 4)
        return MaterializeResult(metadata=metadata)

    return _ingest
