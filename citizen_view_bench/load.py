"""Clients that load the caseworker service (`bench serve`, `bench resolve`): every request from a pool of threads,
each thread with its own keep-alive connection (the standard library's: a cheap client, since the bench shares the
service's cores), after an untimed warm-up, each request timed on its own; the service's CPU
time (its processes) and this client's over the timed requests."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

HEADERS = {"Authorization": "Bearer demo-steward-token"}
PURPOSE = {"purpose": "load test", "case_reference": "BENCH"}


@dataclass
class Answer:
    status_code: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive HTTP/1.1 connection to the service, with the bench's bearer token."""

    def __init__(self, base: str, *, timeout: float) -> None:
        url = urlsplit(base)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Answer:
        return self._send("GET", path, params, None)

    def post(self, path: str, params: dict[str, Any] | None = None, json_body: Any = None) -> Answer:
        return self._send("POST", path, params, json_body)

    def _send(self, method: str, path: str, params: dict[str, Any] | None, body: Any) -> Answer:
        target = f"{path}?{urlencode(params)}" if params else path
        headers = dict(HEADERS)
        if body is not None:
            headers["Content-Type"] = "application/json"
        payload = json.dumps(body) if body is not None else None
        self.connection.request(method, target, body=payload, headers=headers)
        response = self.connection.getresponse()
        return Answer(response.status, response.read())

    def close(self) -> None:
        self.connection.close()


@dataclass
class Load:
    """What the timed requests gave: `read`'s outcome of each (in the items' order), its latency, the wall time, and
    the CPU seconds the service (when its pid was given) and this client spent meanwhile."""

    outcomes: list[Any]
    latencies_ms: list[float]
    wall_seconds: float
    service_cpu_seconds: float | None = None
    client_cpu_seconds: float | None = None
    worker_cpu_seconds: list[float] | None = None  # each service process's share of service_cpu_seconds, largest first

    def percentiles(self) -> dict[str, float]:
        """The median and 95th percentile latency in milliseconds."""
        import numpy as np

        lat = np.array(self.latencies_ms)
        return {"p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1)}

    def per_second(self) -> float:
        return round(len(self.latencies_ms) / self.wall_seconds, 1)

    def cpu_per_request(self) -> dict[str, float | None]:
        """CPU milliseconds per request of the service (all its processes) and of this client."""
        n = max(len(self.latencies_ms), 1)
        service = self.service_cpu_seconds
        return {
            "service_cpu_ms_per_request": round(service * 1000 / n, 2) if service is not None else None,
            "client_cpu_ms_per_request": round((self.client_cpu_seconds or 0.0) * 1000 / n, 2),
        }

    def worker_shares(self) -> list[float] | None:
        """Each service process's share of the service's CPU over the timed requests, largest first: how evenly the
        workers shared the load (the parent, which only supervises, is one of them)."""
        if not self.worker_cpu_seconds:
            return None
        total = sum(self.worker_cpu_seconds) or 1.0
        return [round(s / total, 3) for s in self.worker_cpu_seconds]


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children (the service's workers)."""
    return sum(cpu_seconds_by_process(pid).values())


def cpu_seconds_by_process(pid: int) -> dict[int, float]:
    """CPU time (user + system) of a process and of each of its children, by pid."""
    import psutil

    seconds = {}
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[proc.pid] = times.user + times.system
    return seconds


def _spent(before: dict[int, float], after: dict[int, float]) -> list[float]:
    """CPU seconds each process spent between two readings, largest first (a process gone meanwhile counts 0)."""
    return sorted((after[pid] - before.get(pid, 0.0) for pid in after), reverse=True)


def wait_until_idle(pid: int, *, share: float = 0.05, window: float = 0.5, timeout: float = 120.0) -> float:
    """Wait until a service (the process `pid` and its workers) has used under `share` of a core for two windows in a
    row, at most `timeout` seconds; the seconds waited. A service answers as soon as one worker is ready, while the
    others may still be reading their view (at 1M ~9 s of CPU each): timed requests would pay for that otherwise."""
    started, quiet = time.monotonic(), 0
    used = process_cpu_seconds(pid)
    while quiet < 2 and time.monotonic() - started < timeout:
        time.sleep(window)
        now = process_cpu_seconds(pid)
        quiet, used = (quiet + 1 if now - used < share * window else 0), now
    return time.monotonic() - started


def load(
    base: str,
    items: Sequence[Any],
    send: Callable[[Client, Any], Answer],
    read: Callable[[Any, Answer], Any],
    *,
    warmup: int,
    concurrency: int,
    timeout: float,
    service_pid: int | None = None,
) -> Load:
    """Send the first `warmup` items untimed, then every item from `concurrency` threads:
    `send(client, item)` makes the request (the only part timed) and `read(item, answer)` what is kept of it."""
    local, clients, lock = threading.local(), [], threading.Lock()

    def call(item: Any) -> tuple[float, Any]:
        if not hasattr(local, "client"):
            local.client = Client(base, timeout=timeout)
            with lock:
                clients.append(local.client)
        started = time.perf_counter()
        answer = send(local.client, item)
        latency = (time.perf_counter() - started) * 1000
        return latency, read(item, answer)

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(call, items[:warmup]))
            before = cpu_seconds_by_process(service_pid) if service_pid else None
            client_cpu, started = time.process_time(), time.perf_counter()
            timed = list(pool.map(call, items))
            wall, client_cpu = time.perf_counter() - started, time.process_time() - client_cpu
            workers = _spent(before, cpu_seconds_by_process(service_pid)) if before is not None else None
    finally:
        for client in clients:
            client.close()
    service_cpu = sum(workers) if workers is not None else None
    return Load([o for _, o in timed], [lat for lat, _ in timed], wall, service_cpu, client_cpu, workers)
