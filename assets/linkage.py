"""Linkage assets: all records in one table, the trained model, scored pairs, citizens and their golden record."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, Config, MaterializeResult, MetadataValue, asset

from citizen_view.contract import SourcesFile
from citizen_view.linkage.evaluate import evaluate_links, load_truth
from citizen_view.linkage.golden import build_citizen
from citizen_view.linkage.records import build_source_records
from citizen_view.linkage.steps import link_citizens, score_pairs, train_and_store
from pipelines.resources import WarehouseResource

LINKAGE_GROUP = "linkage"


class LinkMode(Config):
    """`incremental`: link only records not linked yet with the saved model, and rebuild only the citizens they touch."""

    incremental: bool = False


def build_linkage_assets(sources: SourcesFile, *, ingest_keys: list[AssetKey]) -> list[AssetsDefinition]:
    """The linkage chain for one sources file (truth, when the set ships one, only feeds evaluation metadata)."""
    names = [s.name for s in sources.sources]
    truth_dir = sources.base_dir / "truth"

    @asset(group_name=LINKAGE_GROUP, deps=ingest_keys, kinds={"duckdb"})
    def source_records(warehouse: WarehouseResource) -> MaterializeResult:
        """Every loaded record of every source in one table, keyed `source:source_record_id`."""
        with warehouse.connect() as con:
            n = build_source_records(con, names)
            per_source = dict(con.execute("SELECT source, count(*) FROM source_records GROUP BY 1 ORDER BY 1").fetchall())
        return MaterializeResult(metadata={"dagster/row_count": n, "records_per_source": MetadataValue.json(per_source)})

    @asset(group_name=LINKAGE_GROUP, deps=[source_records], kinds={"splink", "duckdb"})
    def linkage_model(warehouse: WarehouseResource) -> MaterializeResult:
        """The Splink model, fitted without ground truth; saved as JSON with its charts beside the warehouse."""
        with warehouse.connect() as con:
            trained, path = train_and_store(con, warehouse.layout, linkage=sources.linkage)
        reports = warehouse.layout.linkage_dir
        return MaterializeResult(
            metadata={
                "model_json": MetadataValue.path(str(path)),
                "fields_compared": MetadataValue.json(trained.fields_used),
                "fields_skipped": MetadataValue.json(trained.fields_skipped),
                "training": MetadataValue.json(trained.training_notes),
                "match_weights_chart": MetadataValue.path(str(reports / "match_weights_chart.html")),
                "m_u_parameters_chart": MetadataValue.path(str(reports / "m_u_parameters_chart.html")),
                "seconds": round(trained.seconds, 2),
            }
        )

    @asset(group_name=LINKAGE_GROUP, deps=[linkage_model], kinds={"splink", "duckdb"})
    def match_edges(warehouse: WarehouseResource) -> MaterializeResult:
        """Scored candidate pairs with per-field match weights (the evidence behind every link)."""
        with warehouse.connect() as con:
            report = score_pairs(con, warehouse.layout, linkage=sources.linkage)
        peak = max((c for _, c in report.histogram), default=0) or 1
        rows = "\n".join(
            f"| {b:+.0f}{' ◀ threshold' if b <= report.threshold < b + 1 else ''} | {'█' * max(1 if c else 0, round(24 * c / peak))} {c:,} |"
            for b, c in report.histogram
        )
        return MaterializeResult(
            metadata={
                "dagster/row_count": report.pairs_kept,
                "threshold_match_weight": report.threshold,
                "threshold_method": report.threshold_method,
                "pairs_above_threshold": report.links_above_threshold,
                "match_weight_histogram": MetadataValue.md(f"| match weight | scored pairs |\n|---|---|\n{rows}"),
                "seconds": round(report.seconds, 2),
            }
        )

    # source_records too: the incremental job skips match_edges and must still link after ingest
    @asset(group_name=LINKAGE_GROUP, deps=[match_edges, source_records], kinds={"duckdb"})
    def citizen_source_link(context: AssetExecutionContext, config: LinkMode, warehouse: WarehouseResource) -> MaterializeResult:
        """Every loaded source record assigned to exactly one citizen, under a stable opaque citizen ID."""
        with warehouse.connect() as con:
            report = link_citizens(
                con, warehouse.layout, run_id=context.run.run_id, linkage=sources.linkage,
                review_band=sources.review.band, max_citizen_records=sources.quality.max_citizen_records,
                incremental=config.incremental,
            )
            links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
        metadata = {
            "dagster/row_count": report.records,
            "citizens": report.citizens,
            "ids_minted": report.created + report.split,
            "ids_split_off": report.split,
            "ids_merged": report.merged,
            "ids_retired": report.retired,
            "components_checked_for_conflicts": report.components_with_conflicts,
            "merges_refused_as_conflicting": report.merges_refused,
            "reviewer_decisions_same": report.overrides_same,
            "reviewer_decisions_different": report.overrides_different,
            "review_queue": report.review_queue,
            "match_rate": round(1 - report.citizens / report.records, 4) if report.records else 0.0,
            "seconds": round(report.seconds, 2),
            "mode": "incremental" if report.incremental else "full",
            "new_records": report.new_records,
            "records_relinked": report.records_relinked,
        }
        if truth_dir.is_dir():
            figures = evaluate_links(links, load_truth(truth_dir))
            metadata |= {f"eval_{k}": v for k, v in figures.items()}
        return MaterializeResult(metadata=metadata)

    @asset(group_name=LINKAGE_GROUP, deps=[citizen_source_link], kinds={"duckdb"})
    def citizen(config: LinkMode, warehouse: WarehouseResource) -> MaterializeResult:
        """The golden record: one row per citizen, each attribute with the source record it came from."""
        with warehouse.connect() as con:
            n = build_citizen(con, sources, only_changed=config.incremental)
            multi = con.execute("SELECT count(*) FROM citizen WHERE source_count > 1").fetchall()[0][0]
        return MaterializeResult(metadata={"dagster/row_count": n, "citizens_in_several_sources": multi})

    return [source_records, linkage_model, match_edges, citizen_source_link, citizen]
