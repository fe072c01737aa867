"""Landing-folder sensors (one per source with `landing:`) and the nightly full run."""

from __future__ import annotations

import json

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

from citizen_view.contract import SourceConfig, SourcesFile
from citizen_view.landing import look


def landing_sensor(sources: SourcesFile, source: SourceConfig, job_name: str) -> SensorDefinition:
    """Starts `job_name` once for every new, complete extract file in the source's landing folder."""

    @sensor(
        name=f"landing_{source.name}", job_name=job_name, minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"New complete extract files in {source.landing} start an ingest of {source.name}.",
    )  # fmt: skip
    def _landing(context: SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        new_cursor, ready, waiting = look(sources, source, cursor)
        context.update_cursor(json.dumps(new_cursor, sort_keys=True))
        for item in ready:
            yield RunRequest(run_key=item.run_key, tags={"source": source.name, "file": item.path, "sha256": item.sha256})
        if not ready:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(waiting.items())) or "no new files"
            yield SkipReason(detail)

    return _landing


def nightly(job_name: str) -> ScheduleDefinition:
    """The whole pipeline every night at 02:00 (Europe/Amsterdam); stopped until switched on in the UI."""
    return ScheduleDefinition(
        name="nightly_full_run", job_name=job_name, cron_schedule="0 2 * * *",
        execution_timezone="Europe/Amsterdam", default_status=DefaultScheduleStatus.STOPPED,
    )  # fmt: skip
