"""The served view: a read-only snapshot of the linked view that the caseworker service switches to."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from citizen_view.contract import SourcesFile
from citizen_view.serving.snapshot import publish_view
from pipelines.resources import WarehouseResource

SERVING_GROUP = "serving"


def build_serving_assets(sources: SourcesFile, *, upstream: AssetKey) -> list[AssetsDefinition]:
    """The served view, downstream of the golden record (so the linkage gates guard it too)."""

    @asset(key=AssetKey(["serving", "view"]), group_name=SERVING_GROUP, deps=[upstream], kinds={"duckdb"})
    def served_view(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        """Citizens, linked records, cases, life events and search keys in a new DuckDB file, switched in atomically."""
        folder = warehouse.layout.serving_dir
        with warehouse.connect() as con:
            path = publish_view(con, sources, folder, run_id=context.run.run_id)
        import duckdb

        view = duckdb.connect(str(path), read_only=True)
        try:
            counts = {t: view.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("citizen", "records", "cases", "events")}
        finally:
            view.close()
        return MaterializeResult(metadata={"view": MetadataValue.path(str(path)), **{f"{k}_rows": v for k, v in counts.items()}})

    return [served_view]
