"""Progress of a run as it happens: one line when an asset step starts, one when any step ends, with its time."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from dagster import LoggerDefinition, logger

_ENDS = {"STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}


class _ProgressHandler(logging.Handler):
    def __init__(self, stream: TextIO, asset_steps: set[str]):
        super().__init__(level=logging.DEBUG)
        self.stream = stream
        self.asset_steps = asset_steps
        self.started: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None or event.step_key is None:
            return
        kind, step = event.event_type_value, event.step_key
        name = step.replace("__", "/")
        if kind == "STEP_START":
            self.started[step] = time.perf_counter()
            if step in self.asset_steps:
                self._line(f"  > {name} ...")
        elif kind in _ENDS:
            seconds = time.perf_counter() - self.started.get(step, time.perf_counter())
            what = name if step in self.asset_steps else f"gate {name}"
            self._line(f"  {'+' if kind == 'STEP_SUCCESS' else '!'} {what} {_ENDS[kind]} ({seconds:.1f} s)")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def progress_logger(asset_steps: set[str], stream: TextIO | None = None) -> LoggerDefinition:
    """A Dagster logger that writes each step's start and end to `stream` (standard output) as they happen."""

    @logger(description="Each step's start and end, with its time, as the run goes.")
    def _progress(_init_context) -> logging.Logger:
        log = logging.Logger("citizen_view.progress", level=logging.DEBUG)
        log.addHandler(_ProgressHandler(stream or sys.stdout, asset_steps))
        return log

    return _progress


class Progress:
    """A progress bar on a terminal (tqdm), plain lines at each tenth in a log (CI): `progress(done, total)`."""

    def __init__(self, label: str, *, unit: str = "persons", stream: TextIO | None = None):
        self.label, self.unit = label, unit
        self.stream = stream or sys.stdout
        self._bar = None
        self._tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if self.stream.isatty():
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=self.label, unit=f" {self.unit}", unit_scale=True, file=self.stream)
            self._bar.update(done - self._bar.n)
            if done >= total:
                self._bar.close()
            return
        tenth = (10 * done) // max(total, 1)
        if tenth != self._tenth:
            self._tenth = tenth
            self.stream.write(f"  {self.label}: {done:,} of {total:,} {self.unit} ({done / max(total, 1):.0%})\n")
            self.stream.flush()
