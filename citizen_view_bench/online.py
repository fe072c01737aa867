"""The load of `citizen-view bench resolve`: records to resolve again, and clients that send them (`POST /api/resolve`)."""

from __future__ import annotations

import random
from pathlib import Path

from citizen_view_bench.load import PURPOSE, load

FIELDS = ("given_name", "family_name", "date_of_birth", "national_id", "street", "house_number", "postcode", "city")


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


def _until_read(base: str, record: dict, *, answers: int = 10, limit: float = 600.0) -> None:
    """Wait until the service's processes hold the view's model: a resolve answers 503 while its process reads it (at
    1M ~4 s after start), so `answers` requests in a row on new connections (spread over the processes) must answer
    200 before the timed runs start."""
    import time

    from citizen_view_bench.load import Client

    deadline, in_a_row = time.monotonic() + limit, 0
    while in_a_row < answers:
        client = Client(base, timeout=60)
        try:
            status = client.post("/api/resolve", PURPOSE, record).status_code
        finally:
            client.close()
        in_a_row = in_a_row + 1 if status == 200 else 0
        if status != 200:
            if status != 503 or time.monotonic() > deadline:
                raise RuntimeError(f"the service answers a resolve with {status}")
            time.sleep(0.5)


def _run(base: str, records: list[tuple[dict, str]], *, concurrency: int, server_pid: int | None = None) -> dict:
    """Resolve every record from `concurrency` clients (one keep-alive connection each): latency percentiles,
    records/s, CPU per record (service and this client) and how answers came out."""

    def send(client, item):
        return client.post("/api/resolve", PURPOSE, item[0])

    def read(item, r) -> tuple[int, str | None, bool]:
        body = r.json() if r.status_code == 200 else {}
        return r.status_code, body.get("decision"), body.get("citizen_id") == item[1]

    _until_read(base, records[0][0])
    run = load(base, records, send, read, warmup=10, concurrency=concurrency, timeout=60, service_pid=server_pid)
    ok = [o for o in run.outcomes if o[0] == 200]
    cpu = run.cpu_per_request()
    return {
        "records": len(run.latencies_ms),
        "ok": len(ok),
        **run.percentiles(),
        "records_per_s": run.per_second(),
        "service_cpu_ms_per_record": cpu["service_cpu_ms_per_request"],
        "client_cpu_ms_per_record": cpu["client_cpu_ms_per_request"],
        "matched_to_its_citizen": round(sum(1 for o in ok if o[1] == "matched" and o[2]) / max(len(ok), 1), 4),
        "decisions": {d: sum(1 for o in ok if o[1] == d) for d in ("matched", "review", "new")},
        "service_cpu_shares": run.worker_shares(),
    }
