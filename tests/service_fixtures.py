"""A real caseworker service on loopback, over a view the real pipeline published (shared by service tests)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from citizen_view.serving.app import create_app
from citizen_view.layout import WarehouseLayout

ROOT = Path(__file__).resolve().parents[1]
ACCESS = ROOT / "config" / "access.yaml"
TOKENS = {
    "benefits_caseworker": "demo-benefits-token",
    "permits_clerk": "demo-permits-token",
    "licence_officer": "demo-licences-token",
    "data_steward": "demo-steward-token",
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


def start_service(warehouse: Path, audit_log: Path) -> Service:
    layout = WarehouseLayout.of(warehouse)
    app = create_app(
        serving_folder=layout.serving_dir, access_file=ACCESS, audit_file=audit_log, decisions_file=layout.overrides_file
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("service did not start")
        time.sleep(0.05)
    return Service(f"http://127.0.0.1:{port}", warehouse, audit_log, server, thread)
