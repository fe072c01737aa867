"""Dagster resources: the warehouse file every asset reads and writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster import ConfigurableResource, InitResourceContext

from citizen_view import warehouse
from citizen_view.layout import WarehouseLayout, prepare


class WarehouseResource(ConfigurableResource):
    """The DuckDB warehouse file (one writer at a time: the jobs run in-process)."""

    path: str

    @property
    def layout(self) -> WarehouseLayout:
        """Every path that belongs to this warehouse (model, review, serving, audit, exports)."""
        return WarehouseLayout.of(self.path)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """At the start of every run: claim the warehouse's folder, remove what killed runs left in its scratch."""
        removed = prepare(self.layout)
        if removed and context.log is not None:
            context.log.info(f"removed {len(removed)} scratch folder(s) left by an interrupted run")

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.path, read_only=read_only) as con:
            yield con
