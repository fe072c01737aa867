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
    sockets = _Sockets(host, port)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[tuple[Any, float]] = []
    try:
        procs = [(_start(context, app_options, sockets, i, host, port), time.monotonic()) for i in range(workers)]
        while not stopping:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                if time.monotonic() - started < EARLY_EXIT_SECONDS:
                    log.error("service worker %s exited at start (code %s): stopping", proc.pid, proc.exitcode)
                    return 1
                log.warning("service worker %s died (code %s): starting another", proc.pid, proc.exitcode)
                procs[i] = (_start(context, app_options, sockets, i, host, port), time.monotonic())
        return 0
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn shuts down gracefully and the app closes its audit log
        for proc, _ in procs:
            proc.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sockets.close()


class _Sockets:
    """The listening socket of each worker. Where the platform has SO_REUSEPORT, each worker gets a socket of its own
    on the one address, and the kernel spreads new connections over the workers' sockets (by a hash of each
    connection's addresses). On one shared socket, the worker that wakes first accepts every connection waiting:
    measured at 1M persons, the bench's 8 keep-alive connections went 8:0 or 6:2 to two workers, one worker answering
    (nearly) every request while the other idled. A socket is bound here and listens once its worker is ready, so no
    connection waits for a worker that is still starting; a dead worker's socket is closed and its successor gets a
    new one. Elsewhere: one socket, shared by all workers."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.own = hasattr(socket, "SO_REUSEPORT")
        self.held: dict[int, socket.socket] = {}

    def new(self, worker: int) -> socket.socket:
        """The socket for (a new process of) worker number `worker`."""
        if not self.own:
            if not self.held:
                import uvicorn

                self.held[0] = uvicorn.Config(app=None, host=self.host, port=self.port).bind_socket()
            return self.held[0]
        if (old := self.held.pop(worker, None)) is not None:
            old.close()  # connections waiting there had reached a dead worker: refused, as on its open connections
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]  # port 0: the port the first socket got, for the others too
        sock.set_inheritable(True)
        self.held[worker] = sock
        return sock

    def close(self) -> None:
        for sock in self.held.values():
            sock.close()


def _start(context: Any, app_options: dict[str, Any], sockets: _Sockets, worker: int, host: str, port: int) -> Any:
    sock = sockets.new(worker)
    forked = context.get_start_method() == "fork"  # a spawned worker holds none of the parent's sockets
    others = [s.fileno() for s in sockets.held.values() if s is not sock] if forked else []
    proc = context.Process(target=_serve, args=(app_options, sock, host, port, others), name="citizen-view-worker")
    proc.start()
    return proc


def _serve(
    app_options: dict[str, Any], sock: socket.socket, host: str, port: int, others: tuple[int, ...] | list[int] = ()
) -> None:
    """One worker: its own app and audit writer, serving on the socket the parent made for it. A forked worker holds
    the other workers' sockets too (`others`): closed, so a dead worker's socket closes with it."""
    for fd in others:
        os.close(fd)
    from citizen_view.serving.app import create_app
    from citizen_view.serving.server import run_server

    run_server(create_app(**app_options), host=host, port=port, sockets=[sock])
