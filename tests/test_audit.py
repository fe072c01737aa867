"""The tamper-evident audit log: concurrent appends, reopening, and detection of edits, deletions and forged anchors."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from citizen_view.serving.audit import (
    GENESIS,
    KEY_ENV,
    AuditEvent,
    AuditLog,
    anchors_path,
    entries_for_citizen,
    verify,
)

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def event(n: int = 0, *, citizen: str = "CV-AAAA-BBBB-CCCC", user: str = "anna.benefits", **extra) -> AuditEvent:
    options = {
        "user": user, "role": "benefits_caseworker", "organisation": "Benefits Agency", "action": "view_profile",
        "purpose": "benefit claim review", "case_reference": f"CASE-{n}", "query": {"n": n},
        "citizen_ids": [citizen], "fields": ["name", "address"], "status": 200,
        "authorisation_rule": "role:benefits_caseworker",
    }  # fmt: skip
    options.update(extra)
    return AuditEvent(**options)


def write_log(path: Path, count: int, **options) -> None:
    with AuditLog(path, **options) as log:
        for n in range(count):
            log.append(event(n))


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def rewrite(path: Path, entries: list[dict]) -> None:
    text = "".join(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n" for e in entries)
    path.write_text(text, encoding="utf-8")


def names(report, seq: int) -> bool:
    return any(re.search(rf"\bseq {seq}\b", p) for p in report.problems)


def test_appends_from_many_threads_form_one_unbroken_chain(tmp_path):
    path = tmp_path / "audit" / "access.jsonl"  # the folder does not exist yet
    log = AuditLog(path, anchor_every=50)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for n in range(50):
                log.append(event(t * 100 + n, user=f"user{t}"))
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert not errors
    report = verify(path)
    assert report.ok, report.problems
    assert report.entries == 400 and report.anchors == 8  # close() does not re-anchor an anchored head
    entries = read(path)
    assert [e["seq"] for e in entries] == list(range(1, 401))
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    assert all(TIME.match(e["time"]) for e in entries)
    assert {e["application"] for e in entries} == {"citizen-view"} and {e["version"] for e in entries} == {"0.1.0"}
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == json.dumps(json.loads(first), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert sorted(e["user"] for e in entries) == sorted(f"user{t}" for t in range(8) for _ in range(50))


def test_append_returns_the_stored_entry_with_every_event_field(tmp_path):
    path = tmp_path / "access.jsonl"
    with AuditLog(path, version="9.9") as log:
        stored = log.append(event(1, break_glass=True, break_glass_reason="emergency", on_behalf_of="team lead",
                                  client="10.0.0.1", query={"name": "Ærø Øster", "bad": float("nan")}))  # fmt: skip
    assert read(path)[0] == stored
    assert stored["break_glass"] is True and stored["on_behalf_of"] == "team lead" and stored["version"] == "9.9"
    assert stored["query"] == {"name": "Ærø Øster", "bad": "nan"}
    assert "Ærø" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    anchors = read(anchors_path(path))
    assert anchors_path(path).name == "access.jsonl.anchors"
    assert anchors == [{"seq": 1, "hash": stored["hash"], "time": anchors[0]["time"], "signature": None}]


def test_reopening_continues_the_chain(tmp_path):
    path = tmp_path / "access.jsonl"
    write_log(path, 5)
    write_log(path, 5)
    entries = read(path)
    assert [e["seq"] for e in entries] == list(range(1, 11))
    assert entries[5]["prev_hash"] == entries[4]["hash"]
    report = verify(path)
    assert report.ok and report.entries == 10 and report.anchors == 2


def test_reopening_finds_the_head_behind_long_lines_and_a_torn_write(tmp_path):
    path = tmp_path / "access.jsonl"
    with AuditLog(path) as log:
        for n in range(3):
            log.append(event(n, query={"note": "x" * 150_000}))  # lines longer than the tail read block
    with path.open("ab") as f:
        f.write(b'{"seq":4,"ti')  # the process died mid-write
    with AuditLog(path) as log:
        assert log.append(event(9))["seq"] == 4
    entries = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.startswith('{"action"')]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4] and entries[3]["prev_hash"] == entries[2]["hash"]
    report = verify(path)
    assert not report.ok and report.problems == ["line 4 (after seq 3): malformed line, not an audit entry"]


def test_an_edited_entry_is_named(tmp_path):
    path = tmp_path / "access.jsonl"
    write_log(path, 30)
    entries = read(path)
    entries[16]["purpose"] = "nothing to see here"
    rewrite(path, entries)
    report = verify(path)
    assert not report.ok and report.entries == 30
    assert names(report, 17) and len(report.problems) == 1


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link(tmp_path):
    from citizen_view.serving.audit import _hash

    path = tmp_path / "access.jsonl"
    write_log(path, 30)
    entries = read(path)
    entries[16]["user"] = "someone.else"
    entries[16]["hash"] = _hash(entries[16])
    rewrite(path, entries)
    report = verify(path)
    assert not report.ok and names(report, 18) and "entry 17" in report.problems[0]


def test_a_deleted_middle_entry_is_detected(tmp_path):
    path = tmp_path / "access.jsonl"
    write_log(path, 30)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    del lines[9]
    path.write_text("".join(lines), encoding="utf-8")
    report = verify(path)
    assert not report.ok and report.entries == 29
    assert report.problems == ["seq 11: entry 10 missing after seq 9 (deleted)"]


def test_entries_deleted_at_the_end_are_detected_by_the_anchor(tmp_path):
    path = tmp_path / "access.jsonl"
    write_log(path, 20)  # close() anchors seq 20
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-3]), encoding="utf-8")
    report = verify(path)
    assert not report.ok and report.entries == 17
    assert report.problems == ["anchor for seq 20: the log ends at seq 17, entries 18..20 deleted"]
    write_log(path, 3)  # new entries reuse seq 18..20 but cannot match the anchored hash
    report = verify(path)
    assert not report.ok and any("seq 20: hash differs from the anchor" in p for p in report.problems)


def test_inserted_and_malformed_lines_are_detected(tmp_path):
    path = tmp_path / "access.jsonl"
    write_log(path, 10)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    forged = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(5, forged[2])  # a copy of entry 3 replayed after entry 5
    lines.insert(8, "not json\n")
    path.write_text("".join(lines), encoding="utf-8")
    report = verify(path)
    assert not report.ok
    assert any(p.startswith("seq 3: out of order after seq 5") for p in report.problems)
    assert any(p.startswith("line 9") and "malformed" in p for p in report.problems)


def test_a_tampered_anchor_signature_is_detected(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "a secret held apart from the log")
    path = tmp_path / "access.jsonl"
    write_log(path, 12, anchor_every=5)
    anchors = read(anchors_path(path))
    assert [a["seq"] for a in anchors] == [5, 10, 12] and all(len(a["signature"]) == 64 for a in anchors)
    assert verify(path).ok
    anchors[1]["signature"] = "0" * 64
    rewrite(anchors_path(path), anchors)
    report = verify(path)
    assert not report.ok and report.problems == ["anchor for seq 10: bad signature (anchor forged or altered)"]
    anchors[1]["signature"] = None
    rewrite(anchors_path(path), anchors)
    assert "anchor for seq 10: not signed" in verify(path).problems[0]
    monkeypatch.setenv(KEY_ENV, "another key")
    assert len(verify(path).problems) == 3


def test_a_citizen_sees_who_looked_at_their_data_and_why(tmp_path):
    path = tmp_path / "access.jsonl"
    with AuditLog(path) as log:
        log.append(event(1, citizen="CV-AAAA-AAAA-AAAA", user="anna.benefits"))
        log.append(event(2, citizen="CV-BBBB-BBBB-BBBB", user="lars.licences", role="licence_officer",
                         purpose="licence renewal"))  # fmt: skip
        log.append(event(3, citizen="CV-AAAA-AAAA-AAAA", user="lars.licences", role="licence_officer",
                         purpose="licence renewal", query={"mentions": "CV-BBBB-BBBB-BBBB"}))  # fmt: skip
        log.append(event(4, action="refused:view_profile", status=403, citizen_ids=[]))
    looked = entries_for_citizen(path, "CV-BBBB-BBBB-BBBB")
    assert len(looked) == 1  # the ID inside another entry's query does not count
    assert looked[0] == {
        "time": looked[0]["time"], "user": "lars.licences", "role": "licence_officer",
        "organisation": "Benefits Agency", "purpose": "licence renewal", "case_reference": "CASE-2",
        "action": "view_profile", "status": 200,
    }  # fmt: skip
    assert [e["user"] for e in entries_for_citizen(path, "CV-AAAA-AAAA-AAAA")] == ["anna.benefits", "lars.licences"]
    assert entries_for_citizen(path, "CV-ZZZZ-ZZZZ-ZZZZ") == []


def test_closed_logs_refuse_appends_and_bad_options_are_rejected(tmp_path):
    path = tmp_path / "access.jsonl"
    log = AuditLog(path)
    assert log.anchor() is None  # nothing to anchor yet
    log.close()
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.append(event())
    with pytest.raises(ValueError, match="anchor_every"):
        AuditLog(path, anchor_every=-1)
    assert verify(path).ok and verify(path).entries == 0
