"""The service benches' load generator against a real HTTP server on loopback: warm-up untimed, every item sent once
timed, outcomes kept in the items' order."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from citizen_view_bench.load import HEADERS, load


def test_every_item_is_sent_once_timed_after_an_untimed_warm_up():
    seen: list[tuple[str, str | None]] = []

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self):  # the name the standard library calls
            seen.append((self.path, self.headers.get("Authorization")))
            body = json.dumps({"path": self.path}).encode()
            self.send_response(200 if "bad" not in self.path else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        items = ["a", "b", "bad", "c", "d"]
        run = load(
            f"http://127.0.0.1:{server.server_address[1]}",
            items,
            lambda client, item: client.get(f"/{item}"),
            lambda item, r: (item, r.status_code),
            warmup=2,
            concurrency=3,
            timeout=10,
            service_pid=os.getpid(),  # the server runs in this process
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert run.outcomes == [("a", 200), ("b", 200), ("bad", 404), ("c", 200), ("d", 200)]
    assert len(run.latencies_ms) == 5 and all(ms > 0 for ms in run.latencies_ms)
    assert sorted(path for path, _ in seen) == sorted(["/a", "/b"] + [f"/{i}" for i in items])  # 2 warm-up + 5
    assert {auth for _, auth in seen} == {HEADERS["Authorization"]}
    figures = run.percentiles()
    assert set(figures) == {"p50_ms", "p95_ms"} and figures["p50_ms"] <= figures["p95_ms"]
    assert run.per_second() > 0
    cpu = run.cpu_per_request()
    assert cpu["service_cpu_ms_per_request"] is not None and cpu["service_cpu_ms_per_request"] >= 0
    assert cpu["client_cpu_ms_per_request"] >= 0
