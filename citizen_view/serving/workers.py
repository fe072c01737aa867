"""Several service processes on one socket, all writing one audit chain (`citizen-view serve --workers N`).

The parent binds the socket and forks N worker processes (forked where the platform can, so a worker
starts without importing everything again; the parent holds no audit log, thread or database connection
by then). Each worker builds its own app, and so its own AuditLog on the same file: a lock belongs to an
open file, so each worker must open the log itself, and the log's file lock keeps their entries one
linear chain. The parent accepts the connections and hands each to the worker holding the fewest (see BALANCED);
a worker whose channel from the parent ends (the parent gone, even killed outright) shuts down. A worker that dies
is replaced; SIGINT or SIGTERM stops them all, each closing (and anchoring) its audit log on the way out.

Metrics (`metrics_folder`): the workers write their counters to files in one private temporary folder, which any
worker sums when scraped. Not the warehouse's scratch folder: every pipeline run empties that at its start, while the
service goes on serving, and a scrape would then see counters fall back.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import shutil
import signal
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # as metrics.MULTIPROC_ENV, named here so that module is not imported early
METRICS_PREFIX = "citizen-view-metrics-"  # then the service's pid: a folder whose process is gone is removed at start
EARLY_EXIT_SECONDS = 5.0  # a worker that fails this soon after starting, by its own exit code, could not start
EARLY_ENDS_ALLOWED = 3  # workers in a row of one slot ending this soon, for whatever reason: a crash loop


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


# Connections are balanced where the platform can hand a socket to another process (SCM_RIGHTS over a Unix socket
# pair that keeps message boundaries): the parent accepts each connection and hands it to the worker holding the
# fewest open connections. Left to the kernel (every worker accepting on the shared socket), keep-alive connections
# split by chance (8 bench clients 8:0 and 6:2 seen with `ss`; "CPU by process" up to 71/29), and the fuller worker's
# queue set the latency.
def _can_hand_over() -> bool:
    if not all(hasattr(socket, name) for name in ("send_fds", "recv_fds", "SOCK_SEQPACKET", "AF_UNIX")):
        return False
    try:
        pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:  # the constant exists, the kind of pair does not (on some platforms)
        return False
    for end in pair:
        end.close()
    return True


BALANCED = _can_hand_over()


@dataclass
class _Worker:
    """A worker process as the parent sees it: its end of the channel, and how many connections it was handed."""

    proc: Any
    started: float
    channel: socket.socket | None = None
    sent: int = 0


def run_workers(app_options: dict[str, Any], *, host: str, port: int, workers: int) -> int:
    """Serve with `workers` processes until SIGINT/SIGTERM; 0 on a requested stop, 1 when a worker could not start."""
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, not {workers}")
    import uvicorn

    config = uvicorn.Config(app=None, host=host, port=port)
    sock = config.bind_socket()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    # per worker, the connections it has seen close (written by that worker alone, read by the parent)
    closed = context.RawArray("q", workers) if BALANCED else None
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[_Worker] = []

    def start(index: int) -> _Worker:
        if closed is None:
            return _Worker(_start(context, app_options, sock, host, port), time.monotonic())
        closed[index] = 0
        parent_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # the parent's ends, its own among them: a forked worker closes its copies, so its channel ends with the parent
        others = [w.channel for w in procs if w.channel is not None] + [parent_end]
        proc = _start(context, app_options, sock, host, port, (worker_end, index, closed, others))
        worker_end.close()
        parent_end.setblocking(False)
        return _Worker(proc, time.monotonic(), parent_end)

    ends = [0] * workers  # per slot, its workers in a row that ended within EARLY_EXIT_SECONDS of starting
    try:
        for i in range(workers):
            procs.append(start(i))
        next_turn = 0
        if closed is not None:
            sock.listen(config.backlog)  # what the workers' servers did on the shared socket: here, the parent does
            sock.setblocking(False)
        while not stopping:
            if closed is None:
                time.sleep(0.2)
            elif select.select([sock], [], [], 0.2)[0]:
                next_turn = _hand_over(sock, procs, closed, next_turn)
            for i, worker in enumerate(procs):
                if worker.proc.is_alive() or stopping:
                    continue
                early = time.monotonic() - worker.started < EARLY_EXIT_SECONDS
                ends[i] = ends[i] + 1 if early else 0
                why = after_exit(worker.proc.exitcode, early=early, early_ends=ends[i])
                if why is not None:
                    log.error("service worker %s %s: stopping", worker.proc.pid, why)
                    return 1
                log.warning("service worker %s died (code %s): starting another", worker.proc.pid, worker.proc.exitcode)
                if worker.channel is not None:
                    worker.channel.close()
                    worker.channel = None
                procs[i] = start(i)
        return 0
    finally:
        for worker in procs:
            if worker.proc.is_alive():
                worker.proc.terminate()  # SIGTERM: uvicorn shuts down gracefully and the app closes its audit log
        for worker in procs:
            worker.proc.join(timeout=30)
            if worker.channel is not None:
                worker.channel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


def after_exit(code: int | None, *, early: bool, early_ends: int) -> str | None:
    """Why the service stops after a worker ended with exit `code` (negative: the signal that ended it), or None when
    another is started in its place. `early`: it ended within EARLY_EXIT_SECONDS of starting; `early_ends`: how many of
    its slot's workers in a row did. A worker that fails at start by its own exit code (its app could not be built:
    1; uvicorn's startup failed: 3) would fail again. One ended from outside (SIGTERM, which it obeys
    and exits 0 on, SIGKILL, the kernel's out-of-memory killer), however soon, is replaced, as one dying later is,
    unless its slot's workers keep ending that soon."""
    if early and code is not None and code > 0:
        return f"could not start (exit code {code})"
    if early_ends >= EARLY_ENDS_ALLOWED:
        return f"ended within {EARLY_EXIT_SECONDS:.0f} s of starting, {early_ends} in a row in its place (code {code})"
    return None


def _hand_over(sock: socket.socket, procs: list[_Worker], closed: Any, turn: int) -> int:
    """Accept every connection waiting and hand each to the live worker holding the fewest (ties in turn); a
    connection no worker takes is closed (its client sees a reset and retries). Returns the next turn."""
    while True:
        try:
            connection, _address = sock.accept()
        except BlockingIOError:
            return turn
        except OSError as exc:  # out of descriptors, or the client gave up while queued: the loop goes on
            log.warning("accepting a connection failed: %s", exc)
            time.sleep(0.05)  # not a busy loop while descriptors are short
            return turn
        try:
            # a worker that has not yet taken what it was handed (stopped, stuck, or its loop busy) comes last
            order = sorted(
                (i for i, w in enumerate(procs) if w.channel is not None and w.proc.is_alive()),
                key=lambda i: (_unread(procs[i].channel) > 0, procs[i].sent - closed[i], (i - turn) % len(procs)),
            )
            for i in order:
                try:
                    socket.send_fds(procs[i].channel, [b"c"], [connection.fileno()])
                except OSError:  # its channel is full or gone (a worker stuck or dying): the next one
                    continue
                procs[i].sent += 1
                turn = (i + 1) % len(procs)
                break
            else:
                log.warning("no service worker took a connection: closed")
        finally:
            connection.close()  # the worker holds its own descriptor of it now


def _unread(channel: socket.socket) -> int:
    """Bytes handed to a worker that it has not read yet (the channel's send queue: SIOCOUTQ); 0 where not known."""
    try:
        import fcntl
        import termios

        return struct.unpack("i", fcntl.ioctl(channel.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (ImportError, OSError, AttributeError):
        return 0


def _start(
    context: Any, app_options: dict[str, Any], sock: socket.socket, host: str, port: int, handed: tuple | None = None
) -> Any:
    proc = context.Process(target=_serve, args=(app_options, sock, host, port, handed), name="citizen-view-worker")
    proc.start()
    return proc


def _serve(app_options: dict[str, Any], sock: socket.socket, host: str, port: int, handed: tuple | None) -> None:
    """One worker: its own app and audit writer, serving the connections the parent hands it (`handed`: its end of the
    channel, its number, the shared counts of closed connections, the parent's ends of the other workers' channels),
    or, where connections cannot be handed over, accepting on the parent's socket itself."""
    # A forked worker inherited the parent's handlers, which only set the parent's flag: a SIGTERM before uvicorn sets
    # its own would be lost (the worker starting up regardless, and the parent's stop waiting on it). Until then, a
    # signal ends it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    from citizen_view.serving.app import create_app
    from citizen_view.serving.server import HandedOver, run_server

    if handed is None:
        run_server(create_app(**app_options), host=host, port=port, sockets=[sock])
        return
    channel, index, closed, others = handed
    sock.close()  # the parent accepts; a worker holding the socket would keep the port open after the parent is gone
    for other in others:
        other.close()  # the parent's ends of the channels: this worker's own ends when the parent's does

    def one_closed() -> None:
        closed[index] += 1

    run_server(create_app(**app_options), host=host, port=port, handed=HandedOver(channel, one_closed))
