"""Dagster resources: the warehouse file every asset reads and writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from citizen_view import warehouse
from citizen_view.layout import WarehouseLayout, prepare
from citizen_view.runlock import RunLock


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file (one writer at a time: the jobs run in-process).

    A run holds the warehouse's run lock from setup to teardown (a backup waits for no run and a run waits
    for a backup), and its first connection migrates an older warehouse or refuses a newer one."""

    path: str
    _run_lock: RunLock | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """At the start of every run: claim the warehouse's folder, take the run lock, remove what killed runs left in
        its scratch, and migrate an older warehouse (or refuse a newer one)."""
        run_id = context.run.run_id if context.run else "(outside a job)"
        self.layout.claim()  # before the lock file is made in the folder: a folder owned by another file is refused
        lock = RunLock(self.layout, f"pipeline run {run_id}")
        lock.acquire()
        self._run_lock = lock
        try:
            removed = prepare(self.layout)
            if removed and context.log is not None:
                context.log.info(f"removed {len(removed)} scratch folder(s) left by an interrupted run")
            steps = warehouse.prepare(self.layout.warehouse)
        except BaseException:
            self.teardown_after_execution(context)
            raise
        if steps and context.log is not None:
            context.log.info(f"warehouse migrated: {'; '.join(steps)}")

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

    @property
    def layout(self) -> WarehouseLayout:
        """Every path that belongs to this warehouse (model, review, serving, audit, exports)."""
        return WarehouseLayout.of(self.path)

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.path, read_only=read_only) as con:
            yield con
