"""All Dagster wiring for Citizen View: assets, checks, resources, jobs, sensors and schedules."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import AssetKey, AssetSelection, Definitions, define_asset_job, definitions, in_process_executor

from citizen_view.contract import load_sources
from citizen_view.layout import DEFAULT_WAREHOUSE, WarehouseLayout
from pipelines.assets.gates import area_gates, linkage_gates, publication_gates, required_source_gates
from pipelines.assets.ingest import INGEST_GROUP, build_ingest_assets, source_asset_key
from pipelines.assets.linkage import build_linkage_assets
from pipelines.assets.publication import AREA_KEY, build_publication_assets, table_key
from pipelines.assets.serving import build_serving_assets
from pipelines.resources import WarehouseResource
from pipelines.sensors import landing_sensor, nightly

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCES = PROJECT_ROOT / "sample_data" / "sources.yaml"
FULL_JOB = "citizen_view_full"
INCREMENTAL_JOB = "citizen_view_incremental"
INGEST_JOB = "ingest_all_sources"
# What an incremental run leaves out (it scores with the saved model) and how it tells the linkage steps.
RETRAINING = AssetSelection.assets("linkage_model", "match_edges")
INCREMENTAL_CONFIG = {
    "ops": {
        "source_records": {"config": {"incremental": True}},
        "citizen_source_link": {"config": {"incremental": True}},
        "citizen": {"config": {"incremental": True}},
        "serving__view": {"config": {"incremental": True}},
    }
}


def ingest_job_name(source: str) -> str:
    return f"ingest_{source}"


def landing_job_name(source: str) -> str:
    return f"land_{source}"


def build_definitions(
    *, sources_path: str | Path, warehouse_path: str | Path, loggers: dict | None = None
) -> Definitions:
    """The definitions for one sources file and one warehouse (the UI and `citizen-view run` use the same)."""
    sources = load_sources(sources_path)
    ingest = build_ingest_assets(sources)
    linkage = build_linkage_assets(sources, ingest_keys=[source_asset_key(s.name) for s in sources.sources])
    citizen_key = AssetKey("citizen")
    publication = build_publication_assets(sources, upstream=citizen_key)
    serving = build_serving_assets(sources, upstream=citizen_key)
    assets = [*ingest, *linkage, *publication, *serving]
    checks = [
        *linkage_gates(sources, citizen_key),
        *area_gates(sources, AREA_KEY),
        *required_source_gates(sources, AREA_KEY),
        *publication_gates(sources, table_key),
    ]
    full_job = define_asset_job(
        FULL_JOB, selection=AssetSelection.all(), description="Ingest, link, check and publish everything."
    )
    jobs = [
        full_job,
        define_asset_job(INGEST_JOB, selection=AssetSelection.groups(INGEST_GROUP), description="Ingest every source."),
        define_asset_job(
            INCREMENTAL_JOB,
            selection=AssetSelection.all() - RETRAINING,
            config=INCREMENTAL_CONFIG,
            description="Ingest, then link only new records with the saved model; gates, open data and the served view update.",
        ),
    ]
    sensors = []
    model_file = WarehouseLayout.of(warehouse_path).model_file
    for s in sources.sources:
        if s.landing:
            key = source_asset_key(s.name)
            jobs.append(
                define_asset_job(
                    ingest_job_name(s.name),
                    selection=AssetSelection.assets(key),
                    description=f"Ingest {s.name} only.",
                )
            )
            landed = define_asset_job(
                landing_job_name(s.name),
                selection=AssetSelection.assets(key).downstream() - RETRAINING,
                config=INCREMENTAL_CONFIG,
                description=f"Ingest {s.name}, then link its new records with the saved model; gates, open data and the served "
                "view update (started by its landing sensor).",
            )
            jobs.append(landed)
            sensors.append(landing_sensor(sources, s, job=landed, first_job=full_job, model_file=model_file))
    return Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        sensors=sensors,
        schedules=[nightly(FULL_JOB)],
        resources={"warehouse": WarehouseResource(path=str(warehouse_path))},
        # DuckDB allows one writer per file: steps run one after another in one process.
        executor=in_process_executor,
        loggers=loggers or None,
    )


@definitions
def defs() -> Definitions:
    """What `dagster dev -w workspace.yaml` loads: $CITIZEN_VIEW_SOURCES (default: the sample) into $CITIZEN_VIEW_WAREHOUSE."""
    return build_definitions(
        sources_path=os.environ.get("CITIZEN_VIEW_SOURCES", DEFAULT_SOURCES),
        warehouse_path=os.environ.get("CITIZEN_VIEW_WAREHOUSE", DEFAULT_WAREHOUSE),
    )
