"""Linkage assets: all records in one table, the trained model, scored pairs, citizens and their golden record."""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from citizen_view.contract import SourcesFile
from citizen_view.linkage import Linkage, common_values
from citizen_view.linkage.scoring import TrainedModel
from citizen_view.linkage.steps import EdgeReport, LinkReport
from pipelines.metadata import chart_link, counts, table
from pipelines.modes import RunMode
from pipelines.resources import WarehouseResource

LINKAGE_GROUP = "linkage"


def build_linkage_assets(sources: SourcesFile, *, ingest_keys: list[AssetKey]) -> list[AssetsDefinition]:
    """The linkage chain for one sources file (truth, when the set ships one, only feeds evaluation metadata)."""
    truth_dir = sources.base_dir / "truth"

    @asset(group_name=LINKAGE_GROUP, deps=ingest_keys, kinds={"duckdb"})
    def source_records(config: RunMode, warehouse: WarehouseResource) -> MaterializeResult:
        """Every loaded record of every source in one table, keyed `source:source_record_id`: what linkage compares.
        An incremental run writes only the records of the sources whose canonical records changed."""
        with warehouse.connect() as con:
            report = Linkage(con, warehouse.layout, sources).collect(keep_unchanged=config.incremental)
        return MaterializeResult(
            metadata={
                "dagster/row_count": report.records,
                "written_whole": report.whole,
                "sources_written": MetadataValue.json(report.rewritten),
                "records_per_source": counts(report.per_source, key="source", value="records"),
                **{f"records_{s}": n for s, n in report.per_source.items()},
            }
        )

    @asset(group_name=LINKAGE_GROUP, deps=[source_records], kinds={"splink", "duckdb"})
    def linkage_model(warehouse: WarehouseResource) -> MaterializeResult:
        """The Splink model, fitted without ground truth: which fields are compared and what each level weighs.
        Saved as JSON with Splink's charts (open offline) in the warehouse's linkage folder; data engineers read it."""
        with warehouse.connect() as con:
            trained, path = Linkage(con, warehouse.layout, sources).train()
        return MaterializeResult(metadata=_model_metadata(trained, path, warehouse.layout.linkage_dir))

    @asset(group_name=LINKAGE_GROUP, deps=[linkage_model], kinds={"splink", "duckdb"})
    def match_edges(warehouse: WarehouseResource) -> MaterializeResult:
        """Scored candidate pairs with per-field match weights: the evidence behind every link, `explain` and review."""
        with warehouse.connect() as con:
            report = Linkage(con, warehouse.layout, sources).score()
        return MaterializeResult(metadata=_edges_metadata(report))

    # source_records too: the incremental job skips match_edges and must still link after ingest
    @asset(group_name=LINKAGE_GROUP, deps=[match_edges, source_records], kinds={"duckdb"})
    def citizen_source_link(
        context: AssetExecutionContext, config: RunMode, warehouse: WarehouseResource
    ) -> MaterializeResult:
        """Every loaded source record assigned to exactly one citizen, under a stable opaque citizen ID; uncertain
        links queued for clerical review (`review_queue`)."""
        with warehouse.connect() as con:
            report = Linkage(con, warehouse.layout, sources).link(
                run_id=context.run.run_id, incremental=config.incremental, truth_dir=truth_dir
            )
        return MaterializeResult(metadata=_link_metadata(report))

    @asset(group_name=LINKAGE_GROUP, deps=[citizen_source_link], kinds={"duckdb"})
    def citizen(config: RunMode, warehouse: WarehouseResource) -> MaterializeResult:
        """The golden record: one row per citizen, each attribute with the source record it came from; the linked
        view the open data and the caseworkers' service are built from."""
        with warehouse.connect() as con:
            report = Linkage(con, warehouse.layout, sources).golden(only_changed=config.incremental)
        return MaterializeResult(
            metadata={"dagster/row_count": report.citizens, "citizens_in_several_sources": report.in_several_sources}
        )

    return [source_records, linkage_model, match_edges, citizen_source_link, citizen]


def _model_metadata(trained: TrainedModel, path: Path, reports: Path) -> dict:
    """What a data engineer reads about a fitted model: the fields compared and skipped, and the charts."""
    return {
        "model_json": MetadataValue.path(str(path)),
        "fields_compared": MetadataValue.json(trained.fields_used),
        "fields_skipped": MetadataValue.json(trained.fields_skipped),
        "training": MetadataValue.json(trained.training_notes),
        "treated_as_missing": table(common_values.as_frame(trained.common_values), limit=100),
        "match_weights_chart": chart_link(reports / "match_weights_chart.html"),
        "m_u_parameters_chart": chart_link(reports / "m_u_parameters_chart.html"),
        "seconds": round(trained.seconds, 2),
    }


def _edges_metadata(report: EdgeReport) -> dict:
    """The scored pairs: how many, the threshold and how it was chosen, and the match-weight histogram."""
    last = len(report.histogram) - 1
    histogram = [
        {
            "match weight from": lo,
            "to": hi,
            "scored pairs": c,
            "threshold": "◀" if lo <= report.threshold < hi or (i == last and report.threshold == hi) else "",
        }
        for i, (lo, hi, c) in enumerate(report.histogram)
    ]
    return {
        "dagster/row_count": report.pairs_kept,
        "threshold_match_weight": report.threshold,
        "threshold_method": report.threshold_method,
        "pairs_above_threshold": report.links_above_threshold,
        "match_weight_histogram": table(histogram, limit=len(histogram)),
        "match_weight_chart": chart_link(report.chart),
        "seconds": round(report.seconds, 2),
    }


def _link_metadata(report: LinkReport) -> dict:
    """One linkage run in figures: citizens, ID events, conflicts refused, reviewer decisions, the review queue."""
    metadata = {
        "dagster/row_count": report.records,
        "citizens": report.citizens,
        "ids_minted": report.created + report.split,
        "ids_split_off": report.split,
        "ids_merged": report.merged,
        "ids_retired": report.retired,
        "components_checked_for_conflicts": report.components_with_conflicts,
        "merges_refused_as_conflicting": report.merges_refused,
        "weak_bridges_cut": report.bridges_cut,
        "reviewer_decisions_same": report.overrides_same,
        "reviewer_decisions_different": report.overrides_different,
        "review_queue": report.review_queue,
        "match_rate": round(1 - report.citizens / report.records, 4) if report.records else 0.0,
        "seconds": round(report.seconds, 2),
        "mode": "incremental" if report.incremental else "full",
        "new_records": report.new_records,
        "changed_records": report.changed_records,  # changed under their key since linked, re-linked like new ones
        "records_relinked": report.records_relinked,  # new and earlier records whose citizen was re-formed
    }
    if report.incremental:
        metadata |= {
            "earlier_records_relinked": report.records_relinked - report.new_records,
            "records_left_alone": report.records - report.records_relinked,
        }
    if report.size_bound is not None:
        metadata["citizen_size_bound"] = report.size_bound
    if report.evaluation is not None:
        metadata |= {f"eval_{k}": v for k, v in report.evaluation.items()}
    return metadata
