"""Backup and restore of a warehouse, and its schema version: a restored warehouse serves the same answers, its
audit log verifies, decisions and citizen IDs are intact and the next incremental run works; a backup is refused
while a run writes; a damaged backup restores nothing; an older warehouse is migrated, a newer one refused."""

from __future__ import annotations

import json
import shutil
import threading

import duckdb
import httpx
import pytest
from dagster import build_init_resource_context

from citizen_view.audit import AuditEvent, AuditLog, parse_sink, verify
from citizen_view.backup import BackupError, backup, restore
from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.review import record_decision
from citizen_view.warehouse import SCHEMA_VERSION, SHARED_TABLES, WarehouseVersionError, connect, prepare, release
from citizen_view_app.cli import main
from citizen_view_app.runner import run_pipeline
from pipelines.definitions import INCREMENTAL_JOB
from pipelines.resources import WarehouseResource
from tests.service_fixtures import TOKENS, running_service, start_service

PURPOSE = {"purpose": "benefit application check", "case_reference": "CASE-7"}


def _get(url: str, path: str, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKENS['benefits_caseworker']}"}
    return httpx.get(url + path, params={**params, **PURPOSE}, headers=headers, timeout=30)


def _rows(wh, sql: str) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _old_format(wh) -> None:
    """A warehouse as releases before the schema version wrote it: shared tables, no warehouse_meta."""
    wh.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(wh))
    con.execute(SHARED_TABLES)
    con.close()


def _audit_sinks(layout: WarehouseLayout):
    return [parse_sink(f"file:{layout.anchor_copy()}")]


def test_a_restored_warehouse_serves_the_same_answers_and_takes_the_next_incremental_run(generated, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(generated, data)
    tax = data / "tax" / "tax_extract.csv"
    lines = tax.read_bytes().splitlines(keepends=True)
    tax.write_bytes(b"".join(lines[:1] + [ln for i, ln in enumerate(lines[1:], 1) if i % 20]))  # 5% arrive later
    wh = tmp_path / "wh" / "cv.duckdb"
    _old_format(wh)  # the run migrates it
    outcome = run_pipeline(sources_path=data / "sources.yaml", warehouse_path=wh)
    assert outcome.success, outcome.failed
    assert _rows(wh, "SELECT schema_version, step FROM warehouse_meta") == [
        (1, "record the schema version in warehouse_meta")
    ]
    layout = WarehouseLayout.of(wh)
    assert main(["publish", "--sources", str(data / "sources.yaml"), "--warehouse", str(wh)]) == 0

    citizen, left, right = _rows(
        wh,
        """
        SELECT citizen_id, min(record_key), max(record_key) FROM citizen_source_link
        GROUP BY citizen_id HAVING count(*) > 1 ORDER BY citizen_id LIMIT 1""",
    )[0]
    assert main(["review", "decide", left, right, "different", "--reason", "two people", "--warehouse", str(wh)]) == 0

    svc = start_service(wh, layout.audit_log)
    stop = threading.Event()
    served = []

    def caseworker() -> None:  # keeps the audit log growing while the backup copies it
        while not stop.is_set():
            served.append(_get(svc.url, f"/api/citizens/{citizen}").status_code)

    worker = threading.Thread(target=caseworker)
    try:
        before = _get(svc.url, f"/api/citizens/{citizen}")
        assert before.status_code == 200
        worker.start()
        assert main(["backup", "--warehouse", str(wh), "--to", str(tmp_path / "backup")]) == 0
        stop.set()
        worker.join()
    finally:
        stop.set()
        svc.stop()
    assert served and set(served) == {200}
    links = _rows(wh, "SELECT record_key, citizen_id FROM citizen_source_link ORDER BY record_key")
    decisions = layout.overrides_file.read_bytes()

    new = tmp_path / "restored" / "cv2.duckdb"
    capsys.readouterr()
    assert main(["restore", "--from", str(tmp_path / "backup"), "--warehouse", str(new)]) == 0
    assert "audit log:" in capsys.readouterr().out
    restored = WarehouseLayout.of(new)
    report = verify(restored.audit_log, sinks=_audit_sinks(restored))
    assert report.ok and report.entries >= 2 and report.anchors >= 2, (
        report.problems
    )  # the log copied mid-service is whole
    assert restored.overrides_file.read_bytes() == decisions
    assert _rows(new, "SELECT record_key, citizen_id FROM citizen_source_link ORDER BY record_key") == links
    assert (restored.root / "published").resolve().is_dir()

    with running_service(new, restored.audit_log) as svc:
        after = _get(svc.url, f"/api/citizens/{citizen}")
    assert after.status_code == 200 and after.json() == before.json()
    assert verify(restored.audit_log, sinks=_audit_sinks(restored)).ok  # the restored service went on with the chain

    tax.write_bytes(b"".join(lines))
    outcome = run_pipeline(sources_path=data / "sources.yaml", warehouse_path=new, job_name=INCREMENTAL_JOB)
    assert outcome.success and all(c["passed"] for c in outcome.checks.values()), (outcome.failed, outcome.checks)
    assert outcome.materialized["citizen_source_link"]["new_records"] > 0
    kept = dict(_rows(new, "SELECT record_key, citizen_id FROM citizen_source_link"))
    assert sum(kept.get(key) == cid for key, cid in links) > 0.9 * len(links)  # stable IDs carried through the restore
    # the restored decision is what the run read (an incremental run re-forms only the citizens new records touch)
    assert _rows(new, "SELECT record_key_l, record_key_r, decision FROM link_overrides") == [(left, right, "different")]


def _small_warehouse(tmp_path):
    """A warehouse with a table, an audit log with its anchors and a review decision."""
    wh = tmp_path / "small" / "cv.duckdb"
    with connect(wh) as con:
        con.execute("CREATE TABLE citizen AS SELECT 'C' || range AS citizen_id FROM range(5)")
    layout = WarehouseLayout.of(wh)
    with AuditLog(layout.audit_log, sinks=[f"file:{layout.anchor_copy()}"]) as log:
        log.append(
            AuditEvent(
                user="u",
                role="r",
                organisation=None,
                action="search",
                purpose="p",
                case_reference=None,
                query={},
                citizen_ids=["C1"],
                fields=[],
                status=200,
                authorisation_rule="test",
            )
        )
    record_decision(layout.overrides_file, left="a:1", right="b:2", decision="same", reviewer="u", reason="r")
    return wh


def test_a_backup_is_refused_while_a_pipeline_run_holds_the_warehouse(tmp_path):
    wh = _small_warehouse(tmp_path)
    resource = WarehouseResource(path=str(wh))
    context = build_init_resource_context()
    resource.setup_for_execution(context)  # what every run does first
    try:
        with pytest.raises(BackupError, match="in use by pipeline run"):
            backup(wh, tmp_path / "backup")
    finally:
        resource.teardown_after_execution(context)
    assert not (tmp_path / "backup").exists() and not list(tmp_path.glob(".backup*"))
    assert backup(wh, tmp_path / "backup").files > 1  # the run over, the backup goes ahead


def test_a_damaged_backup_restores_nothing_and_an_intact_one_refuses_an_existing_target(tmp_path, capsys):
    wh = _small_warehouse(tmp_path)
    backup(wh, tmp_path / "backup")
    manifest = json.loads((tmp_path / "backup" / "MANIFEST.json").read_text())
    assert {"audit/access.jsonl", "review/link_overrides.jsonl"} <= {f["path"] for f in manifest["files"]}

    with pytest.raises(BackupError, match="exists already"):
        restore(tmp_path / "backup", wh)
    log = tmp_path / "backup" / "files" / "audit" / "access.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"C1"', b'"C2"'))
    new = tmp_path / "restored" / "cv.duckdb"
    assert main(["restore", "--from", str(tmp_path / "backup"), "--warehouse", str(new)]) == 2
    assert "files/audit/access.jsonl does not match the manifest" in capsys.readouterr().err
    assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())  # not even staging
    (tmp_path / "backup" / "MANIFEST.json").unlink()
    with pytest.raises(BackupError, match="not a complete backup"):
        restore(tmp_path / "backup", new)


def test_an_older_warehouse_is_migrated_and_a_newer_one_refused_with_what_to_do(generated, tmp_path, capsys):
    old = tmp_path / "old.duckdb"
    _old_format(old)
    assert prepare(old) == ["1: record the schema version in warehouse_meta"]
    assert _rows(old, "SELECT max(schema_version), any_value(written_by) FROM warehouse_meta") == [
        (SCHEMA_VERSION, release())
    ]
    assert prepare(old) == []  # current: nothing to do

    newer = tmp_path / "newer.duckdb"
    with connect(newer) as con:
        con.execute("INSERT INTO warehouse_meta (schema_version, written_by, step) VALUES (99, '9.0.0', 'future')")
    with pytest.raises(WarehouseVersionError, match="schema version 99 .*citizen-view 9.0.0.*knows versions up to"):
        prepare(newer)
    assert main(["evaluate", "--truth", str(generated / "truth"), "--warehouse", str(newer)]) == 2
    err = capsys.readouterr().err
    assert "Install citizen-view 9.0.0 or newer, or restore a backup taken before the upgrade" in err
    outcome = run_pipeline(sources_path=generated / "sources.yaml", warehouse_path=newer)
    assert not outcome.success and not outcome.materialized
    assert any("schema version 99" in message for message in outcome.failed.values()), outcome.failed
