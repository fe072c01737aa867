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
import time

import psutil
import pytest

from citizen_view.serving.workers import BALANCED, EARLY_EXIT_SECONDS
from tests.test_audit_workers import start_workers, wait_until_up

pytestmark = pytest.mark.skipif(not BALANCED, reason="this platform cannot hand a socket to another process")


def _connect(base: str) -> http.client.HTTPConnection:
    """A keep-alive connection that has been answered once (so a worker holds it)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    return connection


def _holders(proc, base: str, connections: list[http.client.HTTPConnection]) -> list[int | None]:
    """The pid of the worker holding each connection (None: no worker holds it)."""
    port = int(base.rsplit(":", 1)[1])
    held = {}
    for child in psutil.Process(proc.pid).children():
        for socket in child.net_connections(kind="tcp"):
            if socket.laddr and socket.laddr.port == port and socket.raddr:
                held[socket.raddr.port] = child.pid
    return [held.get(c.sock.getsockname()[1]) for c in connections]


def _workers(proc) -> set[int]:
    return {child.pid for child in psutil.Process(proc.pid).children()}


def _options(tmp_path) -> list[str]:
    return ["--warehouse", str(tmp_path / "wh" / "cv.duckdb"), "--audit-log", str(tmp_path / "audit" / "log.jsonl")]


def test_connections_go_to_the_worker_holding_the_fewest(tmp_path):
    proc, base = start_workers(2, *_options(tmp_path))
    connections: list[http.client.HTTPConnection] = []
    try:
        wait_until_up(base, proc)
        connections = [_connect(base) for _ in range(8)]
        holders = _holders(proc, base, connections)
        assert None not in holders and len(set(holders)) == 2
        assert sorted(holders.count(pid) for pid in set(holders)) == [4, 4]  # not left to chance: 4 and 4
        # one worker's four close: the next four go to it, the one now holding none
        emptied = holders[0]
        for connection, pid in zip(connections, holders):
            if pid == emptied:
                connection.close()
        connections = [c for c, pid in zip(connections, holders) if pid != emptied]
        time.sleep(0.5)  # the worker sees them close
        fresh = [_connect(base) for _ in range(4)]
        connections += fresh
        assert _holders(proc, base, fresh) == [emptied] * 4
    finally:
        for connection in connections:
            connection.close()
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output


def test_a_worker_that_dies_is_replaced_and_handed_connections(tmp_path):
    proc, base = start_workers(2, *_options(tmp_path))
    connections: list[http.client.HTTPConnection] = []
    try:
        wait_until_up(base, proc)
        first = _workers(proc)
        killed = min(first)
        # a worker that exits in its first seconds is taken for a misconfigured one and stops the service
        time.sleep(max(0.0, psutil.Process(killed).create_time() + EARLY_EXIT_SECONDS + 1 - time.time()))
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (killed in _workers(proc) or len(_workers(proc)) < 2):
            time.sleep(0.2)
        (replacement,) = _workers(proc) - first
        deadline = time.monotonic() + 60  # the replacement answers once its app has started
        while time.monotonic() < deadline and len(connections) < 4:
            try:
                connections.append(_connect(base))
            except (OSError, http.client.HTTPException):
                time.sleep(0.5)
        holders = _holders(proc, base, connections)
        # the survivor's and the replacement's earlier connections have closed by now (idle keep-alive): 2 and 2
        assert sorted(holders) == sorted([replacement, replacement, *(first - {killed}), *(first - {killed})])
    finally:
        for connection in connections:
            connection.close()
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output


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
