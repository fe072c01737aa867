"""A real caseworker service on loopback, over a view the real pipeline published (shared by service tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from citizen_view.layout import WarehouseLayout
from citizen_view.serving.access import EXAMPLE_ACCESS_FILE
from citizen_view.serving.app import create_app
from citizen_view.serving.server import server_config
from citizen_view_app.runner import run_pipeline

ACCESS = EXAMPLE_ACCESS_FILE
TOKENS = {
    "benefits_caseworker": "demo-benefits-token",
    "permits_clerk": "demo-permits-token",
    "licence_officer": "demo-licences-token",
    "data_steward": "demo-steward-token",
    "citizen_portal": "demo-portal-token",
}


@dataclass
class Service:
    url: str
    warehouse: Path
    audit_log: Path
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(warehouse: Path, audit_log: Path, **options) -> Service:
    """The service over a warehouse's served views, on a free loopback port, as `citizen-view serve` runs it."""
    layout = WarehouseLayout.of(warehouse)
    options.setdefault("anchor_sinks", [f"file:{layout.anchor_copy(audit_log)}"])  # as `citizen-view serve` does
    options.setdefault("access_file", ACCESS)
    app = create_app(
        serving_folder=layout.serving_dir, audit_file=audit_log, decisions_file=layout.overrides_file, **options
    )
    port = free_port()
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("service did not start")
        time.sleep(0.05)
    return Service(f"http://127.0.0.1:{port}", warehouse, audit_log, server, thread)


@contextmanager
def running_service(warehouse: Path, audit_log: Path, **options) -> Iterator[Service]:
    """`start_service` for the length of a `with` block: stopped however the block ends."""
    service = start_service(warehouse, audit_log, **options)
    try:
        yield service
    finally:
        service.stop()


def serve_pipeline_output(sources_file: Path, root: Path) -> Service:
    """Run the whole pipeline on `sources_file` into root/wh and serve its view, auditing to root/audit."""
    warehouse = root / "wh" / "cv.duckdb"
    outcome = run_pipeline(sources_path=sources_file, warehouse_path=warehouse)
    assert outcome.success and "serving/view" in outcome.materialized, outcome
    return start_service(warehouse, root / "audit" / "access.jsonl")


def serve_linked_world(world, root: Path, **options) -> Service:
    """Serve a copy of the session's linked world (`tests.conftest.linked_world`) at root, auditing to root/audit."""
    from tests.conftest import copy_world

    _, warehouse = copy_world(world, root / "world")
    return start_service(warehouse, root / "audit" / "access.jsonl", **options)
