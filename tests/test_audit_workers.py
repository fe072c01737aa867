"""`citizen-view serve --workers 4` under concurrent load: one linear audit chain, one entry per request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from citizen_view.audit import GENESIS
from citizen_view.serving.access import EXAMPLE_ACCESS_FILE
from citizen_view_app.cli import main
from tests.service_fixtures import free_port

REQUESTS, CONCURRENCY, WORKERS = 2000, 32, 4
CLI = Path(sys.executable).with_name("citizen-view")


def start_workers(workers: int, *options: str) -> tuple[subprocess.Popen, str]:
    """`citizen-view serve --workers N` with the example access file on a free loopback port: (process, base URL);
    the caller waits for it (`wait_until_up`) and stops it with SIGTERM."""
    base = f"http://127.0.0.1:{free_port()}"
    command = [str(CLI), "serve", "--workers", str(workers), "--access", str(EXAMPLE_ACCESS_FILE)]
    proc = subprocess.Popen(
        [*command, "--port", base.rsplit(":", 1)[1], *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, base


def wait_until_up(base: str, proc: subprocess.Popen, *, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "the service exited"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:  # /health is not audited
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the service did not start")


async def send_requests(base: str) -> list[int]:
    """REQUESTS searches without a token (each refused and audited), CONCURRENCY at a time, each with a marker."""
    limit = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY)  # the kernel spreads the connections over the workers
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one(n: int) -> int:
            async with limit:
                response = await client.get("/api/search", params={"name": "x", "marker": f"request-{n}"})
                return response.status_code

        return await asyncio.gather(*(one(n) for n in range(REQUESTS)))


def test_four_workers_keep_one_chain_with_exactly_one_entry_per_request(tmp_path):
    audit, sink = tmp_path / "audit" / "access.jsonl", tmp_path / "elsewhere" / "anchors.jsonl"
    options = [
        "--audit-log",
        str(audit),
        "--anchor-sink",
        f"file:{sink}",
        "--warehouse",
        str(tmp_path / "wh" / "cv.duckdb"),
    ]
    proc, base = start_workers(WORKERS, *options)
    try:
        wait_until_up(base, proc)
        workers = {int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == proc.pid}
        statuses = asyncio.run(send_requests(base))
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert len(workers) == WORKERS and proc.returncode == 0, output
    assert statuses == [401] * REQUESTS

    entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    # the readiness probe's own /health looks are audited too (every response is): they are not the load
    probes = [e for e in entries if e["query"].get("path") == "/health"]
    markers = sorted(e["query"].get("marker", "") for e in entries if e not in probes)
    assert markers == sorted(f"request-{n}" for n in range(REQUESTS))  # none lost, none twice, nothing else
    total = REQUESTS + len(probes)
    assert [e["seq"] for e in entries] == list(range(1, total + 1))
    assert [e["prev_hash"] for e in entries] == [GENESIS] + [e["hash"] for e in entries[:-1]]  # no fork
    last = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()][-1]
    assert (last["seq"], last["hash"]) == (total, entries[-1]["hash"]) and "recovered_from" not in last
    assert main(["audit", "verify", *options]) == 0


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_workers_accept_the_purpose_and_forms_another_worker_signed(linked_world, tmp_path):
    """A browser's remembered purpose (and its form token) is signed by whichever worker served the page; the next
    request may land on any other worker, which must accept it: the workers share one session key."""
    from tests.conftest import copy_world

    _, warehouse = copy_world(linked_world, tmp_path / "world")
    citizen = a_citizen(warehouse)
    proc, base = start_workers(
        3, "--warehouse", str(warehouse), "--audit-log", str(tmp_path / "audit" / "access.jsonl")
    )
    try:
        wait_until_up(base, proc)
        session = {"cv_token": "demo-steward-token"}
        first = httpx.get(f"{base}/citizens/{citizen}", params={"purpose": "benefit review"}, cookies=session)
        assert first.status_code == 200 and "cv_purpose" in first.cookies
        remembered = {**session, "cv_purpose": first.cookies["cv_purpose"]}
        statuses = []
        for _ in range(24):  # a new connection each: the kernel spreads them over the three workers
            with httpx.Client(base_url=base, cookies=remembered) as client:
                statuses.append(client.get(f"/citizens/{citizen}").status_code)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert statuses == [200] * 24


def a_citizen(warehouse: Path) -> str:
    """The first citizen of a linked warehouse (read only)."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT citizen_id FROM citizen ORDER BY citizen_id LIMIT 1").fetchall()[0][0]
    finally:
        con.close()
