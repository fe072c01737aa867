"""`citizen-view bench resolve`: one record online (`POST /api/resolve`), sequential latency and records/s at concurrency."""

from __future__ import annotations

import argparse
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
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


def bench_resolve(args: argparse.Namespace) -> dict:
    """Publish a served view of a linked warehouse, serve it, and resolve records of it again: one at a time, then
    from `--concurrency` clients. The resolutions land in the warehouse's `online/` folder like any others."""
    from citizen_view.contract import load_sources
    from citizen_view.layout import WarehouseLayout
    from citizen_view.serving.snapshot import publish_view
    from citizen_view.warehouse import connect
    from citizen_view_bench.bench import Stage, _generated, _start_service, measure

    stages: list[Stage] = []
    print(f"bench resolve: {args.persons:,} persons, seed {args.seed}, {args.country}")
    data = _generated(args, stages)
    warehouse = (
        Path(args.warehouse)
        if args.warehouse
        else Path(args.workdir) / f"bench_link_{args.persons}_{args.country.lower()}.duckdb"
    )
    if not warehouse.is_file():
        raise SystemExit(f"no linked warehouse at {warehouse}: run `citizen-view bench link` or pass --warehouse")
    with measure(stages, "publish served view") as st, connect(warehouse) as con:
        view = publish_view(
            con, load_sources(data / "sources.yaml"), WarehouseLayout.of(warehouse).serving_dir, run_id="bench"
        )
        st.extra = {"view_mb": int(view.stat().st_size / 2**20)}
    n = args.requests or 1200  # a third one at a time, the rest from `--concurrency` clients
    records = _records(view, seed=args.seed, n=n)
    server, base = _start_service(warehouse, Path(args.workdir) / "bench_resolve_audit.jsonl")
    try:
        results = {
            "sequential": _run(base, records[: n // 3], concurrency=1),
            f"concurrency {args.concurrency}": _run(base, records[n // 3 :], concurrency=args.concurrency),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    for label, r in results.items():
        print(
            f"  {label:<16} {r['records']:>5} records ({r['ok']} ok)  p50 {r['p50_ms']:>6.1f} ms  p95 {r['p95_ms']:>6.1f} ms  "
            f"{r['records_per_s']:>6.1f} records/s  matched to its own citizen {r['matched_to_its_citizen']:.1%}  {r['decisions']}"
        )
    return {"stages": [asdict(s) for s in stages], "concurrency": args.concurrency, "results": results}
