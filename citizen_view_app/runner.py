"""Run the Dagster job in-process (the same definitions the UI shows) and summarise what it did."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dagster import DagsterInstance, ExecuteInProcessResult, LoggerDefinition, colored_console_logger


@dataclass
class RunOutcome:
    """What one pipeline run materialised, what failed and why."""

    run_id: str
    success: bool
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    result: ExecuteInProcessResult | None = None


def instance_for_cli() -> DagsterInstance:
    """The persistent instance under $DAGSTER_HOME when set (so the UI shows CLI runs), else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


def run_pipeline(
    *,
    sources_path: str | Path,
    warehouse_path: str | Path,
    job_name: str | None = None,
    instance: DagsterInstance | None = None,
    log_level: str = "CRITICAL",
    progress: TextIO | None = None,
    listeners: dict[str, LoggerDefinition] | None = None,
) -> RunOutcome:
    """Materialise the job's assets for one sources file into one warehouse.

    `progress`: a stream that gets a line as each step starts and ends (the CLI passes standard output).
    `listeners`: more Dagster loggers that see every event as it happens (`bench pipeline` meters each step with one).
    """
    from citizen_view_app.progress import progress_logger
    from pipelines.definitions import FULL_JOB, build_definitions

    loggers = {"console": {"config": {"log_level": log_level}}}
    extra: dict[str, LoggerDefinition] = dict(listeners or {})
    loggers |= {name: {"config": {}} for name in extra}
    if extra:  # own loggers replace Dagster's default ones: keep its console logger beside them
        extra["console"] = colored_console_logger
    if progress is not None:
        plain = build_definitions(sources_path=sources_path, warehouse_path=warehouse_path)
        asset_steps = {
            "__".join(k.path) for k in plain.resolve_job_def(job_name or FULL_JOB).asset_layer.executable_asset_keys
        }
        extra |= {"console": colored_console_logger, "progress": progress_logger(asset_steps, progress)}
        loggers["progress"] = {"config": {}}
    defs = build_definitions(sources_path=sources_path, warehouse_path=warehouse_path, loggers=extra)
    job = defs.resolve_job_def(job_name or FULL_JOB)
    result = job.execute_in_process(
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"loggers": loggers},
    )
    return summarise(result)


def summarise(result: ExecuteInProcessResult) -> RunOutcome:
    """Per-asset metadata, failures with their messages, skipped steps and check outcomes."""
    outcome = RunOutcome(run_id=result.run_id, success=result.success, result=result)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        outcome.materialized[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            outcome.step_seconds[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 3)
        if event.event_type_value == "STEP_FAILURE":
            err = event.step_failure_data.error
            if err is not None and err.cls_name == "DagsterAssetCheckFailedError":
                continue  # a failed gate: reported with the checks, not as a crash
            outcome.failed[event.step_key] = _root_message(err)
        elif event.event_type_value == "STEP_SKIPPED":
            outcome.skipped.append(event.step_key)
        elif event.event_type_value in ("RESOURCE_INIT_FAILURE", "PIPELINE_FAILURE"):
            # before any step: e.g. a warehouse of a newer schema version, refused when the run opens it
            err = getattr(event.event_specific_data, "error", None)
            if err is not None and not outcome.failed:
                outcome.failed["run"] = _root_message(err)
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        outcome.checks[name] = {
            "passed": evaluation.passed,
            "severity": evaluation.severity.value if evaluation.severity else None,
            "metadata": {k: v.value for k, v in evaluation.metadata.items()},
        }
    return outcome


def _root_message(err) -> str:
    """The innermost error message (the user's problem, not Dagster's wrapper)."""
    while err is not None and err.cause is not None:
        err = err.cause
    return err.message.strip() if err is not None else "unknown error"
