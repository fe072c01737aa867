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
            f"USING SAMPLE {int(n)} ROWS"
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


def _run(base: str, records: list[tuple[dict, str]], *, concurrency: int) -> dict:
    """Resolve every record from `concurrency` clients: latency percentiles, records/s and how answers came out."""
    import httpx
    import numpy as np

    latencies: list[float] = []
    outcomes: list[tuple[int, str | None, bool]] = []

    def call(item, client):
        record, citizen = item
        started = time.perf_counter()
        r = client.post("/api/resolve", params=PURPOSE, json=record)
        latencies.append((time.perf_counter() - started) * 1000)
        body = r.json() if r.status_code == 200 else {}
        outcomes.append((r.status_code, body.get("decision"), body.get("citizen_id") == citizen))

    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as client:
        for item in records[:10]:  # warm-up
            call(item, client)
        latencies.clear()
        outcomes.clear()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda item: call(item, client), records))
        wall = time.perf_counter() - started
    lat = np.array(latencies)
    ok = [o for o in outcomes if o[0] == 200]
    return {
        "records": len(lat),
        "ok": len(ok),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "records_per_s": round(len(lat) / wall, 1),
        "matched_to_its_citizen": round(sum(1 for o in ok if o[1] == "matched" and o[2]) / max(len(ok), 1), 4),
        "decisions": {d: sum(1 for o in ok if o[1] == d) for d in ("matched", "review", "new")},
    }
