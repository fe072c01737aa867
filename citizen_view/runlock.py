"""The warehouse's run lock: a pipeline run holds it from start to end, a backup holds it while it copies.

DuckDB lets a reader in between two steps of a run (each step opens and closes the warehouse), so the file
lock of the database alone cannot tell "no run is writing". `<root>/run.lock` can: a run takes it (waiting
while a backup copies), a backup only tries (and refuses, naming the run, when a run has it). The lock is
`fcntl.flock`, released by the kernel when its holder dies, so a crashed run never blocks a backup.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from citizen_view.layout import WarehouseLayout

LOCK_NAME = "run.lock"


class WarehouseBusy(RuntimeError):
    """Another holder (a run, or a backup) has the warehouse's run lock."""


def lock_file(layout: WarehouseLayout) -> Path:
    return layout.root / LOCK_NAME


def _write_holder(handle, what: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(f"{what}, pid {os.getpid()}, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
    handle.flush()


@contextmanager
def hold(layout: WarehouseLayout, what: str, *, wait: bool) -> Iterator[None]:
    """Hold the warehouse's run lock as `what` ("run <id>", "backup"); without `wait`, raise WarehouseBusy
    naming the holder when it is taken."""
    path = lock_file(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WarehouseBusy(f"the warehouse {layout.warehouse} is in use by {holder}") from None
        try:
            _write_holder(handle, what)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class RunLock:
    """The run lock held across a whole run (taken in the resource's setup, released in its teardown)."""

    def __init__(self, layout: WarehouseLayout, what: str) -> None:
        self._hold = hold(layout, what, wait=True)

    def acquire(self) -> None:
        self._hold.__enter__()

    def release(self) -> None:
        self._hold.__exit__(None, None, None)
