"""Several service processes on one socket, all writing one audit chain (`citizen-view serve --workers N`).

The parent binds the socket and forks N worker processes (forked where the platform can, so a worker
starts without importing everything again; the parent holds no audit log, thread or database connection
by then). Each worker builds its own app, and so its own AuditLog on the same file: a lock belongs to an
open file, so each worker must open the log itself, and the log's file lock keeps their entries one
linear chain. A worker that dies is replaced; SIGINT
or SIGTERM stops them all, each closing (and anchoring) its audit log on the way out.

Metrics (`metrics_folder`): the workers write their counters to files in one private temporary folder, which any
worker sums when scraped. Not the warehouse's scratch folder: every pipeline run empties that at its start, while the
service goes on serving, and a scrape would then see counters fall back.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # as metrics.MULTIPROC_ENV, named here so that module is not imported early
METRICS_PREFIX = "citizen-view-metrics-"  # then the service's pid: a folder whose process is gone is removed at start
EARLY_EXIT_SECONDS = 5.0  # a worker that exits this soon after starting is misconfigured: do not restart it


@contextmanager
def metrics_folder() -> Iterator[Path]:
    """A fresh folder for the workers' metrics, named in PROMETHEUS_MULTIPROC_DIR while the block runs, then removed.

    Enter it before prometheus_client is first imported (it picks its storage on import: metrics.ServiceMetrics
    refuses to start otherwise)."""
    _remove_stale_metrics_folders(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-"))
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(folder, ignore_errors=True)


def _remove_stale_metrics_folders(parent: Path) -> None:
    """Remove the metrics folders of services that were killed before they could remove their own."""
    for stale in parent.glob(f"{METRICS_PREFIX}*"):
        pid = stale.name[len(METRICS_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def run_workers(app_options: dict[str, Any], *, host: str, port: int, workers: int) -> int:
    """Serve with `workers` processes until SIGINT/SIGTERM; 0 on a requested stop, 1 when a worker could not start."""
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, not {workers}")
    import uvicorn

    sock = uvicorn.Config(app=None, host=host, port=port).bind_socket()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[tuple[Any, float]] = []
    try:
        procs = [(_start(context, app_options, sock, host, port), time.monotonic()) for _ in range(workers)]
        while not stopping:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                if time.monotonic() - started < EARLY_EXIT_SECONDS:
                    log.error("service worker %s exited at start (code %s): stopping", proc.pid, proc.exitcode)
                    return 1
                log.warning("service worker %s died (code %s): starting another", proc.pid, proc.exitcode)
                procs[i] = (_start(context, app_options, sock, host, port), time.monotonic())
        return 0
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn shuts down gracefully and the app closes its audit log
        for proc, _ in procs:
            proc.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


def _start(context: Any, app_options: dict[str, Any], sock: socket.socket, host: str, port: int) -> Any:
    proc = context.Process(target=_serve, args=(app_options, sock, host, port), name="citizen-view-worker")
    proc.start()
    return proc


def _serve(app_options: dict[str, Any], sock: socket.socket, host: str, port: int) -> None:
    """One worker: its own app and audit writer, serving on the parent's socket."""
    from citizen_view.serving.app import create_app
    from citizen_view.serving.server import run_server

    run_server(create_app(**app_options), host=host, port=port, sockets=[sock])
