"""Per step of a Dagster run in this process: wall time, CPU time and peak memory, metered from the run's own events."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dagster import LoggerDefinition, logger

_ENDS = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "failed", "STEP_SKIPPED": "skipped"}


@dataclass
class StepFigures:
    """One step's wall seconds, CPU seconds (every thread of this process) and peak memory (with child processes)."""

    step: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    status: str


class StepMeter:
    """A Dagster logger (`listener`) that meters each step between its STEP_START and its end event.

    Steps of the in-process executor run one at a time in this process, so the process's CPU time between the two
    events is the step's (its DuckDB and Polars threads included). `sampler`: bench's memory sampler (its `run`,
    `stop`, `restart` and `current_peak`); `cpu`: bench's clock of work, which leaves the sampler's own CPU out."""

    def __init__(self, sampler, cpu: Callable[[], float]) -> None:
        self.steps: list[StepFigures] = []
        self._open: dict[str, tuple[float, float]] = {}
        self._sampler = sampler
        self._cpu = cpu
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StepMeter:
        self._sampler.restart()
        self._thread = threading.Thread(target=self._sampler.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._sampler.stop()
        if self._thread is not None:
            self._thread.join()

    def on_event(self, kind: str, step: str) -> None:
        if kind == "STEP_START":
            self._sampler.restart()
            self._open[step] = (time.perf_counter(), self._cpu())
        elif kind in _ENDS and step in self._open:
            started, cpu = self._open.pop(step)
            peak = self._sampler.current_peak()
            self.steps.append(
                StepFigures(
                    step,
                    round(time.perf_counter() - started, 3),
                    round(self._cpu() - cpu, 3),
                    round(peak / 2**20, 1),
                    _ENDS[kind],
                )
            )

    def listener(self) -> LoggerDefinition:
        meter = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
                if event is not None and event.step_key is not None:
                    meter.on_event(event.event_type_value, event.step_key)

        @logger(description="Wall time, CPU time and peak memory of each step.")
        def _step_meter(_init_context) -> logging.Logger:
            log = logging.Logger("citizen_view_bench.steps", level=logging.DEBUG)
            log.addHandler(_Handler(level=logging.DEBUG))
            return log

        return _step_meter


def phase(step: str, asset_steps: set[str]) -> str:
    """The part of the run a step belongs to: ingest, linkage, open data, served view, or a gate (an asset check)."""
    if step not in asset_steps:
        return "gates (asset checks)"
    if step.startswith("source__"):
        return "ingest"
    if step.startswith("open_data__"):
        return "open data"
    if step.startswith("serving__"):
        return "served view"
    return "linkage"
