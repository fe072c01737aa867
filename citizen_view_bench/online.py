"""The load of `citizen-view bench resolve`: records to resolve again, and clients that send them (`POST /api/resolve`)."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FIELDS = ("given_name", "family_name", "date_of_birth", "national_id", "street", "house_number", "postcode", "city")
HEADERS = {"Authorization": "Bearer demo-steward-token"}
PURPOSE = {"purpose": "load test", "case_reference": "BENCH"}


def _records(view: Path, *, seed: int, n: int) -> list[tuple[dict, str]]:
    """Records of the served view as a source would send them again, each with its citizen; a third with a typo in
    the family name, a third without the national ID (so candidates come from names, dates and addresses)."""
    import duckdb

    rng = random.Random(seed)
    con = duckdb.connect(str(view), read_only=True)
    try:
        rows = con.execute(
            f"SELECT {', '.join(FIELDS)}, citizen_id FROM records WHERE family_name IS NOT NULL "
            f"USING SAMPLE {int(n)} ROWS (reservoir, {int(seed)})"
        ).fetchall()
    finally:
        con.close()
    out = []
    for row in rows:
        record = {f: (v.isoformat() if hasattr(v, "isoformat") else v) for f, v in zip(FIELDS, row[:-1]) if v}
        kind = rng.randrange(3)
        if kind == 1 and len(record["family_name"]) > 4:
            i = rng.randrange(1, len(record["family_name"]) - 1)
            record["family_name"] = record["family_name"][:i] + record["family_name"][i + 1 :]
        elif kind == 2:
            record.pop("national_id", None)
        out.append((record, row[-1]))
    return out


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children (the service's workers)."""
    import psutil

    total = 0.0
    proc = psutil.Process(pid)
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _client(base: str):
    """One keep-alive HTTP connection (the standard library's: a cheap client, the bench shares the service's cores)."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(base)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=60)


def _run(base: str, records: list[tuple[dict, str]], *, concurrency: int, server_pid: int | None = None) -> dict:
    """Resolve every record from `concurrency` clients (one keep-alive connection each): latency percentiles,
    records/s, CPU per record (service and this client) and how answers came out."""
    import json
    import threading
    from urllib.parse import urlencode

    import numpy as np

    latencies: list[float] = []
    outcomes: list[tuple[int, str | None, bool]] = []
    local = threading.local()
    path = "/api/resolve?" + urlencode(PURPOSE)
    headers = {**HEADERS, "Content-Type": "application/json"}

    def call(item):
        record, citizen = item
        if not hasattr(local, "con"):
            local.con = _client(base)
        started = time.perf_counter()
        local.con.request("POST", path, body=json.dumps(record), headers=headers)
        r = local.con.getresponse()
        data = r.read()
        latencies.append((time.perf_counter() - started) * 1000)
        body = json.loads(data) if r.status == 200 else {}
        outcomes.append((r.status, body.get("decision"), body.get("citizen_id") == citizen))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(call, records[: min(10 * concurrency, len(records) // 4)]))  # warm-up, every connection
        latencies.clear()
        outcomes.clear()
        server_cpu = _cpu_seconds(server_pid) if server_pid else None
        client_cpu = time.process_time()
        started = time.perf_counter()
        list(pool.map(call, records))
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        server_cpu = _cpu_seconds(server_pid) - server_cpu if server_pid else None
    lat = np.array(latencies)
    ok = [o for o in outcomes if o[0] == 200]
    return {
        "records": len(lat),
        "ok": len(ok),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "records_per_s": round(len(lat) / wall, 1),
        "service_cpu_ms_per_record": round(server_cpu * 1000 / len(lat), 2) if server_cpu is not None else None,
        "client_cpu_ms_per_record": round(client_cpu * 1000 / len(lat), 2),
        "matched_to_its_citizen": round(sum(1 for o in ok if o[1] == "matched" and o[2]) / max(len(ok), 1), 4),
        "decisions": {d: sum(1 for o in ok if o[1] == d) for d in ("matched", "review", "new")},
    }
