"""Clients that load the caseworker service (`bench serve`, `bench resolve`): every request from a pool of threads
sharing one HTTP client, after an untimed warm-up, each timed on its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

HEADERS = {"Authorization": "Bearer demo-steward-token"}
PURPOSE = {"purpose": "load test", "case_reference": "BENCH"}


@dataclass
class Load:
    """What the timed requests gave: `read`'s outcome of each (in the items' order), its latency, the wall time."""

    outcomes: list[Any]
    latencies_ms: list[float]
    wall_seconds: float

    def percentiles(self) -> dict[str, float]:
        """The median and 95th percentile latency in milliseconds."""
        import numpy as np

        lat = np.array(self.latencies_ms)
        return {"p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1)}

    def per_second(self) -> float:
        return round(len(self.latencies_ms) / self.wall_seconds, 1)


def load(
    base: str,
    items: Sequence[Any],
    send: Callable[[Any, Any], Any],
    read: Callable[[Any, Any], Any],
    *,
    warmup: int,
    concurrency: int,
    timeout: float,
) -> Load:
    """Send the first `warmup` items untimed, then every item from `concurrency` threads: `send(client, item)` makes
    the request (the only part timed) and `read(item, response)` what is kept of its answer."""
    import httpx

    def call(client: httpx.Client, item: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        response = send(client, item)
        latency = (time.perf_counter() - started) * 1000
        return latency, read(item, response)

    with httpx.Client(base_url=base, headers=HEADERS, timeout=timeout) as client:
        for item in items[:warmup]:
            call(client, item)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            timed = list(pool.map(lambda item: call(client, item), items))
        wall = time.perf_counter() - started
    return Load([outcome for _, outcome in timed], [latency for latency, _ in timed], wall)
