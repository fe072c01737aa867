"""What a platform reads from the service on loopback: /ready (200, or 503 with the reason) and /metrics (Prometheus
text format: latency by route template, refusals by reason, audit writes, the served view's age), with one worker and
with several."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from citizen_view.layout import WarehouseLayout
from citizen_view.serving.access import EXAMPLE_ACCESS_FILE
from citizen_view.serving.deps import CITIZEN_ID
from citizen_view.serving.snapshot import current_view
from tests.conftest import linked_copy
from tests.service_fixtures import TOKENS, free_port, running_service, start_service
from tests.test_audit_workers import a_citizen as _a_citizen
from tests.test_audit_workers import wait_until_up

METRICS_TOKEN = "scraper-secret-0123456789"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}
PURPOSE = {"purpose": "benefit application check", "case_reference": "CASE-7"}
CITIZEN_ID_ANYWHERE = CITIZEN_ID.pattern.strip("^$")


@pytest.fixture(scope="module")
def linked(linked_world, tmp_path_factory):
    """A warehouse the real pipeline linked and published a view for."""
    return linked_copy(linked_world, tmp_path_factory, "health")[1]


@pytest.fixture(scope="module")
def service(linked, tmp_path_factory):
    svc = start_service(linked, tmp_path_factory.mktemp("health-audit") / "access.jsonl", metrics_token=METRICS_TOKEN)
    yield svc
    svc.stop()


def _scrape(svc) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser: (name, sorted labels) -> value."""
    r = httpx.get(f"{svc.url}/metrics", headers=SCRAPER, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _entries(audit_log: Path) -> list[dict]:
    return [json.loads(line) for line in audit_log.read_text(encoding="utf-8").splitlines()]


def test_ready_names_the_served_view_and_its_age_and_is_audited(service):
    r = httpx.get(f"{service.url}/ready", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    view = current_view(WarehouseLayout.of(service.warehouse).serving_dir)
    assert body["status"] == "ready" and body["view"] == view.name
    assert 0 <= body["view_age_seconds"] < 24 * 3600  # published by this test session
    last = _entries(service.audit_log)[-1]
    assert (last["action"], last["status"], last["query"]["path"], last["user"]) == ("ready", 200, "/ready", None)
    # where the documents are read from: the view's documents file, once it is read in after the switch
    deadline = time.monotonic() + 60
    while body["documents"] == "reading" and time.monotonic() < deadline:
        time.sleep(0.2)
        body = httpx.get(f"{service.url}/ready", timeout=30).json()
    assert body["documents"] == "file", body


def test_ready_is_503_with_the_reason_when_no_view_is_published_or_it_cannot_be_read(tmp_path):
    warehouse = tmp_path / "wh" / "cv.duckdb"
    serving = WarehouseLayout.of(warehouse).serving_dir
    serving.mkdir(parents=True)
    with running_service(warehouse, tmp_path / "audit" / "access.jsonl") as svc:
        r = httpx.get(f"{svc.url}/ready", timeout=30)
        assert r.status_code == 503 and "no view has been published" in r.json()["error"], r.text
        (serving / "CURRENT").write_text("view-gone.duckdb\n", encoding="utf-8")  # names a file that is not there
        r = httpx.get(f"{svc.url}/ready", timeout=30)
        assert r.status_code == 503 and "the served view cannot be read" in r.json()["error"], r.text
        assert str(tmp_path) not in r.text  # a reason, not the server's paths
        assert [(e["action"], e["status"]) for e in _entries(svc.audit_log)] == [("refused:ready", 503)] * 2


def _a_caseworker_gets_no_answer(svc, linked: Path) -> None:
    """A caseworker's look at a citizen is not answered at all (500): nothing is shown that is not audited."""
    citizen = _a_citizen(linked)
    headers = {"Authorization": f"Bearer {TOKENS['benefits_caseworker']}"}
    r = httpx.get(f"{svc.url}/api/citizens/{citizen}", params=PURPOSE, headers=headers, timeout=30)
    assert r.status_code == 500 and citizen not in r.text


def test_ready_is_503_when_the_audit_log_cannot_be_written(linked, tmp_path):
    full = tmp_path / "full" / "access.jsonl"
    full.parent.mkdir()
    full.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    with running_service(linked, full) as svc:
        r = httpx.get(f"{svc.url}/ready", timeout=30)
        assert r.status_code == 503 and "audit log cannot be written" in r.json()["error"], r.text
        # a caseworker's request is not answered at all (500), as before: nothing is shown that is not audited
        _a_caseworker_gets_no_answer(svc, linked)


def test_ready_is_503_when_the_audit_log_was_removed_under_the_service(linked, tmp_path):
    audit_log = tmp_path / "audit" / "access.jsonl"
    with running_service(linked, audit_log) as svc:
        assert httpx.get(f"{svc.url}/ready", timeout=30).status_code == 200
        audit_log.unlink()  # entries would go on into a file nobody can read
        r = httpx.get(f"{svc.url}/ready", timeout=30)
        assert r.status_code == 503 and "removed or replaced" in r.json()["error"], r.text
        # nor is a caseworker answered: the entry would go into a file nobody can read, so nothing is shown
        _a_caseworker_gets_no_answer(svc, linked)
        assert not audit_log.exists()  # and no new log was started in its place, without its chain


def test_metrics_show_latency_by_route_template_refusals_by_reason_audit_writes_and_view_age(service):
    citizen = _a_citizen(service.warehouse)
    caseworker = {"Authorization": f"Bearer {TOKENS['benefits_caseworker']}"}
    before = _scrape(service)
    requests = [
        (f"/api/citizens/{citizen}", PURPOSE, caseworker, 200),
        (f"/api/citizens/{citizen}/access-log", PURPOSE, caseworker, 403),  # only the citizen portal may
        ("/api/citizens/CV-NOT-AN-ID", PURPOSE, caseworker, 422),
        (f"/api/citizens/{citizen}", {}, caseworker, 400),  # no purpose
        (f"/api/citizens/{citizen}", PURPOSE, {}, 401),  # no token
        (f"/no/such/page/{citizen}", PURPOSE, caseworker, 404),
    ]
    for path, params, headers, status in requests:
        assert httpx.get(service.url + path, params=params, headers=headers, timeout=30).status_code == status, path
    lines_before_scrape = len(_entries(service.audit_log))
    after = _scrape(service)

    def grew(name, **labels) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    profile = "/api/citizens/{citizen_id}"
    assert grew("citizen_view_request_duration_seconds_count", method="GET", route=profile) == 4
    assert grew("citizen_view_request_duration_seconds_bucket", method="GET", route=profile, le="+Inf") == 4
    assert _value(after, "citizen_view_request_duration_seconds_sum", method="GET", route=profile) > 0
    assert grew("citizen_view_request_duration_seconds_count", method="GET", route="unmatched") == 1
    assert grew("citizen_view_refusals_total", status="403", reason="forbidden") == 1
    assert grew("citizen_view_refusals_total", status="422", reason="invalid_input") == 1
    assert grew("citizen_view_refusals_total", status="400", reason="no_purpose") == 1
    assert grew("citizen_view_refusals_total", status="401", reason="no_token") == 1
    assert grew("citizen_view_refusals_total", status="404", reason="not_found") == 1
    # every entry this service wrote, counted: the log's lines when scraped (this scrape's own entry comes after)
    assert _value(after, "citizen_view_audit_writes_total", outcome="written") == lines_before_scrape
    assert grew("citizen_view_audit_writes_total", outcome="written") == len(requests) + 1  # and the first scrape
    ready = httpx.get(f"{service.url}/ready", timeout=30).json()
    age = _value(after, "citizen_view_served_view_age_seconds")
    assert 0 < age <= ready["view_age_seconds"] + 1  # scraped just before /ready was asked


def test_no_label_carries_a_citizen_identifier_or_an_input_value(service):
    citizen = _a_citizen(service.warehouse)
    caseworker = {"Authorization": f"Bearer {TOKENS['benefits_caseworker']}"}
    httpx.get(f"{service.url}/api/citizens/{citizen}", params=PURPOSE, headers=caseworker, timeout=30)
    httpx.get(f"{service.url}/{citizen}", params={"name": "Jansen"}, headers=caseworker, timeout=30)
    search = {**PURPOSE, "name": "Jansen", "date_of_birth": "1980-01-01"}
    httpx.get(f"{service.url}/api/search", params=search, headers=caseworker, timeout=30)
    httpx.request("PROPFIND", f"{service.url}/api/search/{citizen}", timeout=30)  # a method no route has: "other"
    unreadable = _value(_scrape(service), "citizen_view_refusals_total", status="400", reason="unreadable_request")
    httpx.request("BREW", f"{service.url}/api/search/{citizen}", timeout=30)  # not HTTP: uvicorn's parser answers 400
    samples = _scrape(service)
    assert _value(samples, "citizen_view_refusals_total", status="400", reason="unreadable_request") == unreadable + 1
    labels = {value for (_, pairs) in samples for _, value in pairs}
    assert {"/api/citizens/{citizen_id}", "/api/search", "unmatched", "other"} <= labels
    assert not [v for v in labels if re.search(CITIZEN_ID_ANYWHERE, v) or "Jansen" in v or "1980" in v], labels


def test_metrics_need_the_scrapers_token_and_are_off_without_one(service, tmp_path):
    assert httpx.get(f"{service.url}/metrics", timeout=30).status_code == 401
    wrong = {"Authorization": f"Bearer {TOKENS['data_steward']}"}  # a caseworker's token opens no metrics
    assert httpx.get(f"{service.url}/metrics", headers=wrong, timeout=30).status_code == 401
    assert _entries(service.audit_log)[-1]["action"] == "refused:metrics"
    assert _value(_scrape(service), "citizen_view_refusals_total", status="401", reason="metrics_token") >= 2
    warehouse = tmp_path / "wh" / "cv.duckdb"
    WarehouseLayout.of(warehouse).serving_dir.mkdir(parents=True)
    with running_service(warehouse, tmp_path / "audit" / "access.jsonl", metrics_token="") as unset:
        r = httpx.get(f"{unset.url}/metrics", headers=SCRAPER, timeout=30)
        assert r.status_code == 403 and "CITIZEN_VIEW_METRICS_TOKEN" in r.json()["error"]


def test_several_workers_report_the_sum_of_all_of_them(tmp_path):
    """`serve --workers 3`: whichever worker answers a scrape, it counts every worker's requests."""
    base, scratch = f"http://127.0.0.1:{free_port()}", tmp_path / "tmp"
    scratch.mkdir()
    (scratch / "citizen-view-metrics-999999999-left").mkdir()  # of a service killed before it could clean up
    audit_log = tmp_path / "audit" / "access.jsonl"
    command = [str(Path(sys.executable).with_name("citizen-view")), "serve", "--workers", "3", "--access"]
    command += [str(EXAMPLE_ACCESS_FILE), "--port", base.rsplit(":", 1)[1], "--audit-log", str(audit_log)]
    command += ["--anchor-sink", f"file:{tmp_path / 'elsewhere' / 'anchors.jsonl'}"]
    command += ["--warehouse", str(tmp_path / "wh" / "cv.duckdb")]
    env = {**os.environ, "CITIZEN_VIEW_METRICS_TOKEN": METRICS_TOKEN, "TMPDIR": str(scratch)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_until_up(base, proc)
        (folder,) = scratch.iterdir()  # the stale one is gone
        assert folder.name.startswith(f"citizen-view-metrics-{proc.pid}-")
        # One round can land on one worker: asyncio's accept loop takes every pending connection on one wakeup, and
        # `/health` answering shows only that one worker is up. So the load goes in rounds of 60 on fresh connections
        # until at least two workers have counted (each writes its own file when it counts), and the sums are checked
        # against what was sent
        statuses: list[int] = []
        deadline = time.monotonic() + 90
        while True:
            statuses += asyncio.run(_searches(base, 60))
            writers = {f.stem.rsplit("_", 1)[1] for f in folder.glob("*.db")} - {str(proc.pid)}
            if len(writers) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(writers) >= 2, "the load reached several workers"
        sent = len(statuses)
        for _ in range(6):  # a new connection each: any worker may answer
            text = httpx.get(f"{base}/metrics", headers={**SCRAPER, "Connection": "close"}, timeout=30).text
            entries = len(audit_log.read_text(encoding="utf-8").splitlines())
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
            }
            assert _value(samples, "citizen_view_refusals_total", status="401", reason="no_token") == sent
            route = {"method": "GET", "route": "/api/search"}
            assert _value(samples, "citizen_view_request_duration_seconds_count", **route) == sent
            # the scrape's own entry is written after its answer was made, before it was sent
            assert _value(samples, "citizen_view_audit_writes_total", outcome="written") == entries - 1
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    assert statuses == [401] * len(statuses) and proc.returncode == 0, output
    assert list(scratch.iterdir()) == []  # the metrics folder goes with the service


async def _searches(base: str, n: int) -> list[int]:
    """n searches without a token, 12 connections at a time (so busy workers leave the next ones to others)."""
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=12)) as client:
        answers = await asyncio.gather(*(client.get("/api/search", params={"name": "x"}) for _ in range(n)))
    return [a.status_code for a in answers]


def test_a_short_metrics_token_is_refused_at_start(tmp_path):
    from citizen_view.contract import ConfigError
    from citizen_view.serving.app import create_app

    with pytest.raises(ConfigError, match="CITIZEN_VIEW_METRICS_TOKEN must be at least 16 characters"):
        create_app(
            serving_folder=tmp_path / "serving",
            access_file=EXAMPLE_ACCESS_FILE,
            audit_file=tmp_path / "audit" / "access.jsonl",
            decisions_file=tmp_path / "decisions.csv",
            metrics_token="guessable",
        )
    assert not (tmp_path / "audit").exists()  # refused before the audit log was opened
