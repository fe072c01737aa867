"""The served view: a read-only snapshot of the linked view that the caseworker service switches to."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from citizen_view.contract import SourcesFile
from citizen_view.serving.snapshot import serve_view
from pipelines.resources import WarehouseResource

SERVING_GROUP = "serving"


def build_serving_assets(sources: SourcesFile, *, upstream: AssetKey) -> list[AssetsDefinition]:
    """The served view, downstream of the golden record (so the linkage gates guard it too)."""

    @asset(key=AssetKey(["serving", "view"]), group_name=SERVING_GROUP, deps=[upstream], kinds={"duckdb"})
    def served_view(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        """What caseworkers search and read: citizens, linked records, cases, life events and search keys in a new
        read-only DuckDB file, switched in atomically for the caseworker service."""
        with warehouse.connect() as con:
            report = serve_view(con, sources, warehouse.layout.serving_dir, run_id=context.run.run_id)
        return MaterializeResult(
            metadata={"view": MetadataValue.path(str(report.path)), **{f"{k}_rows": v for k, v in report.rows.items()}}
        )

    return [served_view]
