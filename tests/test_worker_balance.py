"""`citizen-view serve --workers N`: the parent hands each connection to the worker holding the fewest, replaces a
worker that dies, and the workers stop when the parent is gone.

Which worker holds a connection is read from the kernel (each worker process's sockets, by psutil), not from the
service: a keep-alive client's connection is the one whose local port the worker's socket has as its peer.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from citizen_view.serving.workers import BALANCED, EARLY_ENDS_ALLOWED, EARLY_EXIT_SECONDS, after_exit
from tests.test_audit_workers import start_workers, wait_until_up

pytestmark = pytest.mark.skipif(not BALANCED, reason="this platform cannot hand a socket to another process")


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


@contextlib.contextmanager
def _serving(tmp_path) -> Iterator[tuple[subprocess.Popen, str, list]]:
    """`citizen-view serve --workers 2`, up: (process, base URL, a list for the connections the test opens). On the
    way out those are closed and the service is stopped with SIGTERM; it must exit 0 when the test passed."""
    proc, base = start_workers(2, *_options(tmp_path))
    opened: list = []
    try:
        wait_until_up(base, proc)
        yield proc, base, opened
    finally:
        for connection in opened:
            connection.close()
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output


def _past_early_exit(pids) -> None:
    """Wait until each worker has run longer than EARLY_EXIT_SECONDS: one that exits sooner is taken for a
    misconfigured one and stops the service."""
    latest = max(psutil.Process(pid).create_time() for pid in pids)
    time.sleep(max(0.0, latest + EARLY_EXIT_SECONDS + 1 - time.time()))


def _connect(base: str) -> http.client.HTTPConnection:
    """A keep-alive connection that has been answered once (so a worker holds it)."""
    connection = http.client.HTTPConnection(*_address(base), timeout=30)
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    return connection


def _connect_once_answered(base: str, opened: list, count: int) -> None:
    """Open connections (`_connect`) into `opened` until it holds `count`, retrying while a new worker's app starts."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(opened) < count:
        try:
            opened.append(_connect(base))
        except (OSError, http.client.HTTPException):
            time.sleep(0.5)


def _holders(proc, base: str, connections: list) -> list[int | None]:
    """The pid of the worker holding each connection (an HTTPConnection or a socket; None: no worker holds it)."""
    _, port = _address(base)
    held = {}
    for child in psutil.Process(proc.pid).children():
        for held_socket in child.net_connections(kind="tcp"):
            if held_socket.laddr and held_socket.laddr.port == port and held_socket.raddr:
                held[held_socket.raddr.port] = child.pid
    sockets = [c.sock if isinstance(c, http.client.HTTPConnection) else c for c in connections]
    return [held.get(s.getsockname()[1]) for s in sockets]


def _workers(proc) -> set[int]:
    return {child.pid for child in psutil.Process(proc.pid).children()}


def _options(tmp_path) -> list[str]:
    return ["--warehouse", str(tmp_path / "wh" / "cv.duckdb"), "--audit-log", str(tmp_path / "audit" / "log.jsonl")]


def _emptied(connections: list[http.client.HTTPConnection], holders: list[int | None]) -> tuple[int | None, list]:
    """Close the connections the first one's worker holds: (that worker, the connections left open)."""
    emptied = holders[0]
    for connection, pid in zip(connections, holders):
        if pid == emptied:
            connection.close()
    return emptied, [c for c, pid in zip(connections, holders) if pid != emptied]


def test_connections_go_to_the_worker_holding_the_fewest(tmp_path):
    with _serving(tmp_path) as (proc, base, opened):
        connections = [_connect(base) for _ in range(8)]
        opened += connections
        holders = _holders(proc, base, connections)
        assert None not in holders and len(set(holders)) == 2
        assert sorted(holders.count(pid) for pid in set(holders)) == [4, 4]  # not left to chance: 4 and 4
        # one worker's four close: the next four go to it, the one now holding none
        emptied, _ = _emptied(connections, holders)
        time.sleep(0.5)  # the worker sees them close
        fresh = [_connect(base) for _ in range(4)]
        opened += fresh
        assert _holders(proc, base, fresh) == [emptied] * 4


def test_a_worker_that_dies_is_replaced_and_handed_connections(tmp_path):
    with _serving(tmp_path) as (proc, base, opened):
        first = _workers(proc)
        killed = min(first)
        _past_early_exit([killed])
        os.kill(killed, signal.SIGKILL)
        replacement = _replacement(proc, first)
        _connect_once_answered(base, opened, 4)
        holders = _holders(proc, base, opened)
        # the survivor's and the replacement's earlier connections have closed by now (idle keep-alive): 2 and 2
        assert sorted(holders) == sorted([replacement, replacement, *(first - {killed}), *(first - {killed})])


def _replacement(proc, before: set[int]) -> int:
    """The worker started in place of one of `before` (the workers before one ended): its pid, once it is there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "the service exited"
        now = _workers(proc)
        if len(now) == len(before) and now - before:
            (new,) = now - before
            return new
        time.sleep(0.05)
    raise AssertionError("no worker was started in place of the one that ended")


def _end_at_start(pid: int, how: signal.Signals) -> None:
    """End a worker while it is still within EARLY_EXIT_SECONDS of its start (checked, or the test proves nothing)."""
    assert time.time() - psutil.Process(pid).create_time() < EARLY_EXIT_SECONDS - 1
    os.kill(pid, how)


def test_a_worker_ended_from_outside_soon_after_it_started_is_replaced(tmp_path):
    """SIGTERM or SIGKILL (an operator, the out-of-memory killer) within seconds of a worker's start is not a worker
    that cannot start: it is replaced, and the service goes on (it stopped with exit code 1 before)."""
    with _serving(tmp_path) as (proc, base, opened):
        first = _workers(proc)
        _past_early_exit(first)  # so that the two ended below are the only early ends in a row
        os.kill(min(first), signal.SIGKILL)
        to_term = _replacement(proc, first)
        before = _workers(proc)
        _end_at_start(to_term, signal.SIGTERM)
        to_kill = _replacement(proc, before)
        before = _workers(proc)
        _end_at_start(to_kill, signal.SIGKILL)
        survivor = _replacement(proc, before)
        _connect_once_answered(base, opened, 4)
        assert survivor in _holders(proc, base, opened)


def test_a_slot_whose_workers_keep_ending_at_start_stops_the_service(tmp_path):
    proc, base = start_workers(2, *_options(tmp_path))
    try:
        wait_until_up(base, proc)
        first = _workers(proc)
        _past_early_exit(first)  # the first worker's end is not early: the count starts after it
        os.kill(min(first), signal.SIGKILL)
        before, ended = first, min(first)
        for n in range(1, EARLY_ENDS_ALLOWED + 1):
            started = _replacement(proc, before)
            before = _workers(proc)
            _end_at_start(started, signal.SIGKILL)
            ended = started
            if n < EARLY_ENDS_ALLOWED:  # still serving with the other worker
                assert httpx.get(f"{base}/health", timeout=10).status_code == 200
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert f"ended within {EARLY_EXIT_SECONDS:.0f} s of starting, {EARLY_ENDS_ALLOWED} in a row in its place" in output
    assert not _alive_workers(first | {ended})


def _alive_workers(pids: set[int]) -> set[int]:
    return {pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}


@pytest.mark.parametrize(
    ("code", "early", "early_ends", "stops"),
    [
        (1, True, 1, True),  # its app could not be built
        (3, True, 1, True),  # uvicorn's startup failed
        (-9, True, 1, False),  # SIGKILL at start: replaced
        (-15, True, 2, False),  # SIGTERM at start
        (0, True, 1, False),  # it obeyed a SIGTERM and exited 0
        (1, False, 0, False),  # a later failure: replaced, as always
        (-9, True, EARLY_ENDS_ALLOWED, True),  # a crash loop, whatever ends it
    ],
)
def test_which_ends_of_a_worker_stop_the_service(code, early, early_ends, stops):
    assert (after_exit(code, early=early, early_ends=early_ends) is not None) == stops


def test_the_workers_stop_when_the_parent_is_killed(tmp_path):
    """Killed outright (no SIGTERM to pass on), the parent leaves no worker behind holding its port: each worker's
    channel from it ends, and the worker shuts down."""
    proc, base = start_workers(2, *_options(tmp_path))
    try:
        wait_until_up(base, proc)
        workers = [psutil.Process(pid) for pid in _workers(proc)]
        assert len(workers) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"workers still running after their parent was killed: {[p.pid for p in alive]}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of its session, should the test fail
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)


def _request(base: str, raw: bytes, timeout: float = 5) -> bytes | None:
    """One raw request on a connection of its own: the status line answered, or None when none came in `timeout`."""
    with socket.create_connection(_address(base), timeout=timeout) as s:
        s.sendall(raw)
        try:
            return s.recv(1000).split(b"\r\n")[0]
        except TimeoutError:
            return None


def test_an_upgrade_attempt_is_counted_closed_like_any_connection(tmp_path):
    """A WebSocket upgrade hands the connection to uvicorn's WebSocket protocol (answered 403): its close must still
    count, or the worker would look busier for good and be passed over."""
    with _serving(tmp_path) as (proc, base, opened):
        connections = [_connect(base) for _ in range(8)]
        opened += connections
        _, kept = _emptied(connections, _holders(proc, base, connections))
        time.sleep(0.5)
        upgrade = (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        for _ in range(4):  # each to the worker holding none
            assert _request(base, upgrade) == b"HTTP/1.1 403 Forbidden"
        for connection in kept:
            connection.close()
        time.sleep(0.5)
        fresh = [_connect(base) for _ in range(8)]
        opened += fresh
        holders = _holders(proc, base, fresh)
        assert sorted(holders.count(pid) for pid in set(holders)) == [4, 4]


def test_a_stopped_worker_is_passed_over(tmp_path):
    """A worker that does not take what it was handed (stopped here; a stuck event loop alike) gets no more while
    another does: one connection waits for it, not every other one."""
    with _serving(tmp_path) as (proc, base, opened):
        stopped = min(_workers(proc))
        _past_early_exit([stopped])
        os.kill(stopped, signal.SIGSTOP)
        try:
            answered = 0
            for _ in range(6):  # clients one after another, each kept open (keep-alive) after its answer
                s = socket.create_connection(_address(base), timeout=2)
                opened.append(s)
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    answered += s.recv(1000).startswith(b"HTTP/1.1 200")
                except TimeoutError:
                    pass
        finally:
            os.kill(stopped, signal.SIGCONT)
        # the first handed to it waits; after that it is passed over (before: every other client, by the counts)
        assert answered >= 5, f"{6 - answered} of 6 clients waited on the stopped worker"


def test_a_worker_stopping_takes_no_new_connections(tmp_path):
    """A worker told to stop waits for its requests in flight; meanwhile the connections that arrive go to the others
    (handed to it, they would sit unread and be dropped when it exits)."""
    with _serving(tmp_path) as (proc, base, opened):
        _past_early_exit(_workers(proc))
        slow = socket.create_connection(_address(base), timeout=30)  # an upload in flight: its worker drains
        opened.append(slow)
        body = b"token=" + b"x" * 200
        slow.sendall(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
        )
        time.sleep(0.5)
        (draining,) = _holders(proc, base, [slow])
        os.kill(draining, signal.SIGTERM)
        time.sleep(0.5)
        statuses = [_request(base, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") for _ in range(6)]
        slow.sendall(body[10:])
        assert slow.recv(1000).split(b"\r\n")[0].startswith(b"HTTP/1.1 ")  # the upload is answered before it exits
        assert statuses == [b"HTTP/1.1 200 OK"] * 6
