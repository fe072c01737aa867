"""Landing-folder sensors (one per source with `landing:`) and the nightly full run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from citizen_view.landing import look

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

    from citizen_view.contract import SourceConfig, SourcesFile


# Seconds between two looks at a landing folder; a file is ready when two looks agree.
INTERVAL_ENV = "CITIZEN_VIEW_LANDING_INTERVAL"


def landing_interval() -> int:
    """How often the landing sensors look, from $CITIZEN_VIEW_LANDING_INTERVAL (default 30 s)."""
    value = os.environ.get(INTERVAL_ENV, "30")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{INTERVAL_ENV}={value!r}: expected a whole number of seconds, at least 1")
    return int(value)


def landing_sensor(
    sources: SourcesFile,
    source: SourceConfig,
    *,
    job: UnresolvedAssetJobDefinition,
    first_job: UnresolvedAssetJobDefinition,
    model_file: Path,
) -> SensorDefinition:
    """Starts `job` (ingest this source, link its new records) once for every new, complete extract file in the
    source's landing folder; `first_job` (everything, training included) while no linkage model is saved yet."""

    @sensor(
        name=f"landing_{source.name}",
        jobs=[job, first_job],
        minimum_interval_seconds=landing_interval(),
        default_status=DefaultSensorStatus.RUNNING,
        description=f"New complete extract files in {source.landing} start {job.name}: ingest {source.name} and link "
        f"its new records with the saved model ({first_job.name} while none is saved).",
    )
    def _landing(context: SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        new_cursor, ready, waiting = look(sources, source, cursor)
        context.update_cursor(json.dumps(new_cursor, sort_keys=True))
        job_name = job.name if model_file.exists() else first_job.name
        for item in ready:
            tags = {"source": source.name, "file": item.path, "sha256": item.sha256}
            yield RunRequest(run_key=item.run_key, job_name=job_name, tags=tags)
        if not ready:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(waiting.items())) or "no new files"
            yield SkipReason(detail)

    return _landing


def nightly(job_name: str) -> ScheduleDefinition:
    """The whole pipeline every night at 02:00 (Europe/Amsterdam); stopped until switched on in the UI."""
    return ScheduleDefinition(
        name="nightly_full_run",
        job_name=job_name,
        cron_schedule="0 2 * * *",
        execution_timezone="Europe/Amsterdam",
        default_status=DefaultScheduleStatus.STOPPED,
    )
