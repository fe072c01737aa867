"""Trust: review input is data and never a crash, forms resist cross-site posts, every response is audited,
the client address cannot be forged, and two warehouses in one folder share nothing."""

from __future__ import annotations

import json
import socket

import duckdb
import httpx
import pytest

from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.review import load_overrides, read_decisions, record_decision
from pipelines.cli import main
from pipelines.runner import run_pipeline
from tests.conftest import linked_copy
from tests.service_fixtures import TOKENS, start_service

STEWARD = {"Authorization": f"Bearer {TOKENS['data_steward']}"}
PURPOSE = {"purpose": "trust check"}


@pytest.fixture(scope="module")
def linked(generated, tmp_path_factory):
    return linked_copy(generated, tmp_path_factory, "trust")


def _pair(wh) -> tuple[str, str]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute("SELECT record_key_l, record_key_r FROM match_edges ORDER BY match_weight LIMIT 1").fetchall()[0]
    finally:
        con.close()


def _entries(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]


# --- review input ------------------------------------------------------------------------------------------


def test_a_reason_with_line_separators_is_stored_as_one_line_and_read_back(linked, tmp_path):
    root, wh = linked
    left, right = _pair(wh)
    path = tmp_path / "decisions.jsonl"
    record_decision(path, left=left, right=right, decision="different", reviewer="r", reason="one\u2028two\u0085three")
    assert path.read_bytes().count(b"\n") == 1 and b"\\u2028" in path.read_bytes()
    # a line an older version wrote unescaped, and a broken one: read tolerantly, never fatal
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"record_key_l": left, "record_key_r": right + "x", "decision": "same", "reviewer": "r",
                            "role": None, "reason": "a\u2028b", "decided_at": "2026-01-01T00:00:00Z"}, ensure_ascii=False) + "\n")
        f.write("{not json\n")
    rows, bad = read_decisions(path)
    assert [r["reason"] for r in rows] == ["one\u2028two\u0085three", "a\u2028b"] and bad == [3]
    assert load_overrides(path).height == 2


def test_the_service_and_the_next_run_survive_a_reason_with_u2028(linked):
    root, wh = linked
    left, right = _pair(wh)
    svc = start_service(wh, root / "u2028-audit.jsonl")
    try:
        form = {"left": left, "right": right, "decision": "unsure", "reason": "looks\u2028odd", "purpose": "clerical review"}
        assert httpx.post(svc.url + "/review/decide", data=form, headers=STEWARD).status_code == 303
        assert httpx.get(svc.url + "/review", params={"purpose": "clerical review"}, headers=STEWARD).status_code == 200
    finally:
        svc.stop()
    assert main(["review", "next", "--warehouse", str(wh)]) == 0
    outcome = run_pipeline(sources_path=root / "data/sources.yaml", warehouse_path=wh)
    assert outcome.success and not outcome.failed


def test_decisions_on_records_that_do_not_exist_are_refused(linked, capsys):
    root, wh = linked
    svc = start_service(wh, root / "unknown-audit.jsonl")
    try:
        form = {"left": "tax:NOPE", "right": "population:NOPE2", "decision": "same", "reason": "typo", "purpose": "clerical review"}
        r = httpx.post(svc.url + "/review/decide", data=form, headers=STEWARD)
        assert r.status_code == 422 and "no record" in r.json()["error"]
    finally:
        svc.stop()
    assert main(["review", "decide", "tax:NOPE", "population:NOPE2", "same", "--reason", "x", "--warehouse", str(wh),
                 "--audit-log", str(root / "cli-audit.jsonl")]) == 2  # fmt: skip
    assert "no record tax:NOPE, population:NOPE2" in capsys.readouterr().err
    assert not any(d["record_key_r"].endswith("NOPE2") for d in read_decisions(WarehouseLayout.of(wh).overrides_file)[0])


def test_the_review_form_refuses_cross_site_posts(linked):
    root, wh = linked
    left, right = _pair(wh)
    svc = start_service(wh, root / "csrf-audit.jsonl")
    try:
        with httpx.Client(base_url=svc.url) as browser:
            assert browser.post("/login", data={"token": TOKENS["data_steward"]}).status_code == 303
            page = browser.get("/review", params={"purpose": "clerical review"})
            token = page.text.split('name="csrf" value="')[1].split('"')[0]
            assert len(token) == 64
            form = {"left": left, "right": right, "decision": "unsure", "reason": "checked", "purpose": "clerical review"}
            # another site's page posting with the victim's cookie: refused by origin, and without the token
            r = browser.post("/review/decide", data={**form, "csrf": token}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403
            assert browser.post("/review/decide", data=form).status_code == 403
            assert browser.post("/review/decide", data={**form, "csrf": "0" * 64}).status_code == 403
            ok = browser.post("/review/decide", data={**form, "csrf": token}, headers={"Origin": svc.url})
            assert ok.status_code == 303
    finally:
        svc.stop()
    refused = [e for e in _entries(root / "csrf-audit.jsonl") if e["status"] == 403]
    assert len(refused) == 3 and all(e["action"] == "refused:review_decision" for e in refused)


# --- every response audited, with the real client address ---------------------------------------------------


def _raw_request(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_requests_refused_by_the_server_itself_and_crashes_are_audited(linked):
    root, wh = linked
    audit = root / "server-audit.jsonl"
    svc = start_service(wh, audit)
    try:
        huge = _raw_request(svc.url, b"GET /api/search?name=" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert huge.split(b" ", 2)[1] in (b"400", b"414", b"422", b"431")
        garbage = _raw_request(svc.url, b"NOT HTTP AT ALL\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400")
        # a served view that is not a database: the request fails inside the service
        serving = WarehouseLayout.of(wh).serving_dir
        pointer = (serving / "CURRENT").read_text()
        (serving / "broken.duckdb").write_bytes(b"this is not a database")
        (serving / "CURRENT").write_text("broken.duckdb\n")
        try:
            r = httpx.get(svc.url + "/api/search", params={"national_id": "123456782", **PURPOSE}, headers=STEWARD)
        finally:
            (serving / "CURRENT").write_text(pointer)
        assert r.status_code == 500 and "Traceback" not in r.text
    finally:
        svc.stop()
    statuses = [(e["status"], e["action"]) for e in _entries(audit)]
    assert (400, "refused:unreadable_request") in statuses
    assert any(s in (400, 414, 422, 431) for s, a in statuses if a != "refused:unreadable_request") or statuses.count(
        (400, "refused:unreadable_request")) >= 2  # fmt: skip
    assert (500, "refused:search") in statuses


def test_x_forwarded_for_counts_only_from_a_trusted_proxy(linked):
    root, wh = linked
    forged = {**STEWARD, "X-Forwarded-For": "203.0.113.9"}
    for trusted, expected in [((), "127.0.0.1"), (("127.0.0.1",), "203.0.113.9")]:
        audit = root / f"xff-{len(trusted)}.jsonl"
        svc = start_service(wh, audit, trusted_proxies=trusted)
        try:
            httpx.get(svc.url + "/api/search", params={"national_id": "123456782", **PURPOSE}, headers=forged)
        finally:
            svc.stop()
        assert [e["client"] for e in _entries(audit) if e["action"] == "search"] == [expected]


# --- command line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["publish"], ["explain", "a:1", "b:2"], ["review", "next"], ["evaluate", "--truth", "nowhere"],
        ["audit", "export", "--citizen", "CV-AAAA-BBBB-CCCC"], ["audit", "verify"],
    ],
)
def test_commands_on_a_missing_warehouse_or_file_give_one_line_and_exit_2(argv, tmp_path, capsys):
    assert main([*argv, "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


def test_evaluate_with_a_missing_truth_folder_exits_2(linked, tmp_path, capsys):
    _, wh = linked
    assert main(["evaluate", "--truth", str(tmp_path / "nowhere"), "--warehouse", str(wh)]) == 2
    assert "no truth folder" in capsys.readouterr().err


def test_audit_verify_fails_when_the_log_is_gone_but_its_anchors_are_not(linked, tmp_path, capsys):
    root, wh = linked
    log = tmp_path / "audit.jsonl"
    assert main(["review", "decide", *_pair(wh), "unsure", "--reason", "seen", "--warehouse", str(wh), "--audit-log", str(log)]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--warehouse", str(wh), "--audit-log", str(log)]) == 0
    log.unlink()
    assert main(["audit", "verify", "--warehouse", str(wh), "--audit-log", str(log)]) == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_serve_finds_its_access_file_from_any_folder_or_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CITIZEN_VIEW_ACCESS", raising=False)
    wh = tmp_path / "elsewhere" / "cv.duckdb"
    assert main(["serve", "--warehouse", str(wh)]) == 2
    assert "citizen-view init" in capsys.readouterr().err
    assert main(["init", "--warehouse", str(wh)]) == 0
    assert WarehouseLayout.of(wh).access_file.is_file()
    from citizen_view.serving.access import load_access

    assert "data_steward" in load_access(WarehouseLayout.of(wh).access_file).roles


# --- two warehouses in one folder ---------------------------------------------------------------------------


def test_two_warehouses_in_one_folder_share_nothing(generated, tmp_path):
    from citizen_view_synth import generate

    other = tmp_path / "other"
    generate(other, persons=120, seed=99, country="NO")
    a, b = tmp_path / "wh" / "a.duckdb", tmp_path / "wh" / "b.duckdb"
    assert run_pipeline(sources_path=generated / "sources.yaml", warehouse_path=a).success
    la, lb = WarehouseLayout.of(a), WarehouseLayout.of(b)
    left, right = _pair(a)
    record_decision(la.overrides_file, left=left, right=right, decision="different", reviewer="r", reason="a only")
    # leftovers of a crashed run in b's folders are cleaned by b's next run
    for folder in (lb.serving_dir, lb.exports_dir()):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".view-crashed.duckdb.partial").write_bytes(b"half")
    assert run_pipeline(sources_path=other / "sources.yaml", warehouse_path=b).success
    assert la.root != lb.root and not set(la.root.rglob("*")) & set(lb.root.rglob("*"))
    assert la.model_file.read_text() != lb.model_file.read_text()
    con = duckdb.connect(str(b), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM link_overrides").fetchall()[0][0] == 0  # a's decision stays a's
        b_citizens = con.execute("SELECT count(*) FROM citizen").fetchall()[0][0]
    finally:
        con.close()
    assert not list(lb.serving_dir.glob(".*.partial")) and not list(lb.exports_dir().glob(".*.partial"))
    for wh, expected in ((a, None), (b, b_citizens)):
        view = duckdb.connect(str(WarehouseLayout.of(wh).serving_dir / (WarehouseLayout.of(wh).serving_dir / "CURRENT").read_text().strip()), read_only=True)
        try:
            served = view.execute("SELECT citizens, country FROM view_info").fetchall()[0]
        finally:
            view.close()
        assert served[1] == ("NO" if wh == b else "NL") and (expected is None or served[0] == expected)
    assert not (tmp_path / "exports").exists() and not (tmp_path / "published").exists()  # nothing outside
