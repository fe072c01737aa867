"""The served view: a read-only snapshot of the linked view that the caseworker service switches to."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from citizen_view.contract import SourcesFile
from citizen_view.serving import document_file
from citizen_view.serving.view_update import serve_view
from pipelines.modes import RunMode
from pipelines.resources import WarehouseResource

SERVING_GROUP = "serving"


def build_serving_assets(sources: SourcesFile, *, upstream: AssetKey) -> list[AssetsDefinition]:
    """The served view, downstream of the golden record (so the linkage gates guard it too)."""

    @asset(key=AssetKey(["serving", "view"]), group_name=SERVING_GROUP, deps=[upstream], kinds={"duckdb"})
    def served_view(context: AssetExecutionContext, config: RunMode, warehouse: WarehouseResource) -> MaterializeResult:
        """What caseworkers search and read: citizens, linked records, cases, life events and search keys in a new
        read-only DuckDB file, switched in atomically for the caseworker service (an incremental run copies the view
        served and rewrites only the citizens whose records changed, where it can)."""
        with warehouse.connect() as con:
            report = serve_view(
                con, sources, warehouse.layout.serving_dir, run_id=context.run.run_id, incremental=config.incremental
            )
        written = "whole" if report.touched is None else f"updated: {report.touched:,} citizens rewritten"
        docs = document_file.path_for(report.path)
        return MaterializeResult(
            metadata={
                "view": MetadataValue.path(str(report.path)),
                "written": written,
                # the citizens' documents again, beside the view, which the service maps (serving/document_file.py)
                "documents_file": MetadataValue.path(str(docs)),
                "documents_file_mb": round(docs.stat().st_size / 1e6, 1),
                **{f"{k}_rows": v for k, v in report.rows.items()},
            }
        )

    return [served_view]
