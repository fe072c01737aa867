"""The tamper-evident audit log: concurrent appends, reopening, anchor sinks, and detection of edits, deletions,
truncation, forged entries and forged anchors (each attack from the red-team pass has a test of its own)."""

from __future__ import annotations

import csv
import getpass
import io
import json
import re
import socket
import threading
from pathlib import Path

import pytest

from citizen_view.audit import (
    GENESIS,
    KEY_ENV,
    AnchorSink,
    AuditEvent,
    AuditLog,
    FileSink,
    SyslogSink,
    _hash,
    acknowledge,
    anchors_path,
    citizen_access_report,
    entries_for_citizen,
    parse_sink,
    verify,
)
from citizen_view_app.cli import main

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def event(n: int = 0, *, citizen: str = "CV-AAAA-BBBB-CCCC", user: str = "anna.benefits", **extra) -> AuditEvent:
    options = {
        "user": user,
        "role": "benefits_caseworker",
        "organisation": "Benefits Agency",
        "action": "view_profile",
        "purpose": "benefit claim review",
        "case_reference": f"CASE-{n}",
        "query": {"n": n},
        "citizen_ids": [citizen],
        "fields": ["name", "address"],
        "status": 200,
        "authorisation_rule": "role:benefits_caseworker",
    }
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


def _in_threads(work, n: int) -> None:
    """Run work(0) .. work(n - 1) at once, each in its own thread, and wait for all."""
    threads = [threading.Thread(target=work, args=(t,)) for t in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


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

    _in_threads(work, 8)
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


def test_threads_anchoring_every_write_keep_every_location_in_seq_order(tmp_path):
    path, sink = tmp_path / "access.jsonl", FileSink(tmp_path / "elsewhere" / "anchors.jsonl")
    log = AuditLog(path, sinks=[sink])
    returned: list[dict] = []

    def work(t: int) -> None:
        for n in range(25):
            entry = log.append(event(t * 100 + n, user=f"user{t}"))
            # group commit: the entry is anchored (alone or with those written with it) before append returns
            assert read(sink.path)[-1]["seq"] >= entry["seq"]
            returned.append(entry)

    _in_threads(work, 4)
    log.close()
    anchors, entries = read(sink.path), {e["seq"]: e["hash"] for e in read(path)}
    assert read(anchors_path(path)) == anchors and len(returned) == 100
    assert [a["seq"] for a in anchors] == sorted({a["seq"] for a in anchors}) and anchors[-1]["seq"] == 100
    assert all(entries[a["seq"]] == a["hash"] for a in anchors)
    report = verify(path, sinks=[sink])
    assert report.ok and report.entries == 100 and report.anchors == 2 * len(anchors) and report.unprotected == 0


def test_append_returns_the_stored_entry_with_every_event_field(tmp_path):
    path = tmp_path / "access.jsonl"
    with AuditLog(path, version="9.9") as log:
        stored = log.append(
            event(
                1,
                break_glass=True,
                break_glass_reason="emergency",
                on_behalf_of="team lead",
                client="10.0.0.1",
                query={"name": "Ærø Øster", "bad": float("nan")},
            )
        )
    assert read(path)[0] == stored
    assert stored["break_glass"] is True and stored["on_behalf_of"] == "team lead" and stored["version"] == "9.9"
    assert stored["query"] == {"name": "Ærø Øster", "bad": "nan"}
    assert "Ærø" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    anchors = read(anchors_path(path))
    assert anchors_path(path).name == "access.jsonl.anchors"
    assert anchors == [{"seq": 1, "entries": 1, "hash": stored["hash"], "time": anchors[0]["time"], "signature": None}]
    assert "mac" not in stored  # no key: entries are exactly what they were before MACs existed


def test_reopening_continues_the_chain(tmp_path):
    path = tmp_path / "access.jsonl"
    write_log(path, 5)
    write_log(path, 5)
    entries = read(path)
    assert [e["seq"] for e in entries] == list(range(1, 11))
    assert entries[5]["prev_hash"] == entries[4]["hash"]
    report = verify(path)
    assert report.ok and report.entries == 10 and report.anchors == 10  # one anchor per entry
    assert report.warnings == [] and report.unprotected == 0  # a clean close leaves nothing to recover


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
    path = tmp_path / "access.jsonl"
    write_log(path, 30)
    entries = read(path)
    entries[16]["user"] = "someone.else"
    entries[16]["hash"] = _hash(entries[16])
    rewrite(path, entries)
    report = verify(path)
    assert not report.ok and report.problems == [
        "anchors file: seq 17: hash differs from the anchor (entry replaced)",  # its own anchor catches it now
        "seq 18: prev_hash does not match entry 17 (entry inserted or replaced)",
    ]


def test_an_entry_spelled_otherwise_with_the_same_json_is_caught_and_still_found_for_its_citizen(tmp_path):
    """Red team: a citizen ID rewritten with a JSON escape ("CV\\u002d...") hashes as before (the hash is over the parsed
    entry) but hid the look from a byte search for the ID: verify names the edited line, and the citizen's own report
    still lists the look."""
    path = tmp_path / "access.jsonl"
    with AuditLog(path) as log:
        for n in range(5):
            log.append(event(n, citizen="CV-AAAA-BBBB-CCCC" if n == 2 else "CV-DDDD-EEEE-FFFF"))
    assert verify(path).ok and len(entries_for_citizen(path, "CV-AAAA-BBBB-CCCC")) == 1
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert '"CV-AAAA-BBBB-CCCC"' in lines[2]
    lines[2] = lines[2].replace('"CV-AAAA-BBBB-CCCC"', '"CV\\u002dAAAA-BBBB-CCCC"')
    path.write_text("".join(lines), encoding="utf-8")
    assert json.loads(lines[2])["citizen_ids"] == ["CV-AAAA-BBBB-CCCC"]  # the same entry, parsed
    report = verify(path)
    assert not report.ok and report.problems == ["seq 3: not written as the log writes entries (its bytes were edited)"]
    assert [e["case_reference"] for e in entries_for_citizen(path, "CV-AAAA-BBBB-CCCC")] == ["CASE-2"]
    assert len(citizen_access_report(path, "CV-AAAA-BBBB-CCCC")) == 1
    # keys reordered: the same entry and hash, other bytes
    lines[2] = json.dumps(json.loads(lines[2]), ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    assert verify(path).problems == ["seq 3: not written as the log writes entries (its bytes were edited)"]
    # a carriage return the writer never writes; the line re-encoded as UTF-16 (json.loads would read those bytes)
    original = json.dumps(json.loads(lines[2]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    lines[2] = original + "\r\n"
    path.write_text("".join(lines), encoding="utf-8", newline="")
    assert verify(path).problems == ["seq 3: not written as the log writes entries (its bytes were edited)"]
    data = path.read_bytes().split(b"\n")
    data[2] = original.encode("utf-16-le")
    path.write_bytes(b"\n".join(data))
    report = verify(path)
    assert not report.ok and any("line 3" in p and "malformed" in p for p in report.problems), report.problems


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
    assert report.problems == [
        "anchors file: the last anchor shows 20 entries, but the log ends at seq 17: entries 18..20 deleted"
    ]
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
    assert not report.ok and report.problems == [
        "anchors file: anchor for seq 10: bad signature (anchor forged or altered)"
    ]
    anchors[1]["signature"] = None
    rewrite(anchors_path(path), anchors)
    assert verify(path).problems == ["anchors file: anchor for seq 10: not signed, but CITIZEN_VIEW_AUDIT_KEY is set"]
    monkeypatch.setenv(KEY_ENV, "another key")
    problems = verify(path).problems
    assert len(problems) == 3 + 12 and sum("bad mac" in p for p in problems) == 12  # every anchor and entry
    monkeypatch.delenv(KEY_ENV)
    report = verify(path)
    assert report.ok and report.warnings == [
        "entries carry MACs or anchors signatures, but CITIZEN_VIEW_AUDIT_KEY is not set: they were not checked"
    ]


def test_a_citizen_sees_who_looked_at_their_data_and_why(tmp_path):
    path = tmp_path / "access.jsonl"
    with AuditLog(path) as log:
        log.append(event(1, citizen="CV-AAAA-AAAA-AAAA", user="anna.benefits"))
        log.append(
            event(
                2, citizen="CV-BBBB-BBBB-BBBB", user="lars.licences", role="licence_officer", purpose="licence renewal"
            )
        )
        log.append(
            event(
                3,
                citizen="CV-AAAA-AAAA-AAAA",
                user="lars.licences",
                role="licence_officer",
                purpose="licence renewal",
                query={"mentions": "CV-BBBB-BBBB-BBBB"},
            )
        )
        log.append(event(4, action="refused:view_profile", status=403, citizen_ids=[]))
    looked = entries_for_citizen(path, "CV-BBBB-BBBB-BBBB")
    assert len(looked) == 1  # the ID inside another entry's query does not count
    assert looked[0] == {
        "time": looked[0]["time"],
        "user": "lars.licences",
        "role": "licence_officer",
        "organisation": "Benefits Agency",
        "purpose": "licence renewal",
        "case_reference": "CASE-2",
        "action": "view_profile",
        "status": 200,
        "fields": ["name", "address"],  # which data was looked at
        "sources": None,  # an entry without per-citizen detail names no sources
    }
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


# --- Anchor locations: every attack from the red-team pass, each against a real log and a FileSink elsewhere ---

FORGERY = "forged"


def logged(tmp_path: Path, count: int = 30, **options) -> tuple[Path, FileSink]:
    """A log of `count` entries in one folder and its second anchor location in another (in production: another
    mount or host, which whoever edits the log's folder cannot write)."""
    path = tmp_path / "audit" / "access.jsonl"
    sink = FileSink(tmp_path / "elsewhere" / "anchors.jsonl")
    write_log(path, count, sinks=[sink], **options)
    return path, sink


def keep_lines(path: Path, count: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:count]), encoding="utf-8")


def append_line(path: Path, value: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")


def forge_entry(path: Path) -> dict:
    """Append an entry with a correct hash chain, as anyone who can write the log (but has no key) could."""
    last = read(path)[-1]
    entry = {k: v for k, v in last.items() if k not in ("hash", "mac")}
    entry.update(seq=last["seq"] + 1, prev_hash=last["hash"], user=FORGERY, purpose="nothing to see here")
    entry["hash"] = _hash(entry)
    append_line(path, entry)
    return entry


def forged_anchor(entry: dict, **extra) -> dict:
    return {
        "seq": entry["seq"],
        "entries": entry["seq"],
        "hash": entry["hash"],
        "time": entry["time"],
        "signature": None,
        **extra,
    }


def test_an_intact_log_verifies_with_every_entry_anchored_in_every_location(tmp_path):
    path, sink = logged(tmp_path, 30)
    in_file, in_sink = read(anchors_path(path)), read(sink.path)
    assert in_file == in_sink and [a["seq"] for a in in_file] == list(range(1, 31))
    assert [a["hash"] for a in in_file] == [e["hash"] for e in read(path)]
    assert all(a["entries"] == a["seq"] and TIME.match(a["time"]) and a["signature"] is None for a in in_file)
    assert sink.read() == in_sink and isinstance(sink, AnchorSink)
    report = verify(path, sinks=[sink])
    assert report.ok and report.problems == [] and report.warnings == []
    assert report.entries == 30 and report.anchors == 60 and report.unprotected == 0
    assert verify(path, sinks=[f"file:{sink.path}"]).ok  # a sink spec works too


def test_a_tail_deleted_from_the_log_and_its_anchors_file_is_caught_by_the_sink(tmp_path):  # (a)
    path, sink = logged(tmp_path, 30)
    keep_lines(path, 27)
    keep_lines(anchors_path(path), 27)
    assert verify(path).ok  # the folder alone is consistent: this is why a second location is needed
    report = verify(path, sinks=[sink])
    assert not report.ok and report.entries == 27 and report.unprotected == 0
    assert report.problems == [
        f"sink file:{sink.path}: the last anchor shows 30 entries, but the log ends at seq 27: entries 28..30 deleted",
        f"the anchor locations disagree on the last anchor: anchors file at seq 27, sink file:{sink.path} at seq 30 "
        "(anchors removed from one, or forged into another)",
    ]


def test_the_anchors_file_deleted_together_with_the_log_tail_fails(tmp_path):  # (b)
    path, sink = logged(tmp_path, 30)
    keep_lines(path, 25)
    anchors_path(path).unlink()
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems == [
        "anchors file: missing, but the log has 25 entries (anchors deleted, or never written)",
        f"sink file:{sink.path}: the last anchor shows 30 entries, but the log ends at seq 25: entries 26..30 deleted",
    ]
    assert not verify(path).ok  # even without the sink: a log with entries needs its anchors file


def test_an_emptied_log_and_anchors_file_fail(tmp_path):  # (c)
    path, sink = logged(tmp_path, 30)
    path.write_bytes(b"")
    anchors_path(path).write_bytes(b"")
    report = verify(path, sinks=[sink])
    assert not report.ok and report.entries == 0
    assert report.problems == [f"the log was emptied: sink file:{sink.path} shows 30 entries"]


def test_a_deleted_log_fails_and_a_log_never_written_is_missing(tmp_path):  # (d)
    path, sink = logged(tmp_path, 30)
    path.unlink()
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems == [
        "the log was deleted: anchors file shows 30 entries",
        f"the log was deleted: sink file:{sink.path} shows 30 entries",
    ]
    anchors_path(path).unlink()
    assert verify(path, sinks=[sink]).problems == [f"the log was deleted: sink file:{sink.path} shows 30 entries"]
    nowhere = tmp_path / "never" / "access.jsonl"
    report = verify(nowhere)
    assert not report.ok and report.entries == 0 and report.problems == [f"no audit log at {nowhere}"]


def test_a_forged_entry_with_a_correct_chain_is_unprotected(tmp_path):  # (e)
    path, sink = logged(tmp_path, 30)
    forge_entry(path)
    forge_entry(path)
    message = (
        "2 entries after the last anchor (seq 31..32) are not protected: appended after the writer's last "
        "anchor (forged?) or the writer stopped before anchoring them"
    )
    for sinks in ([sink], []):
        report = verify(path, sinks=sinks)
        assert not report.ok and report.entries == 32 and report.unprotected == 2
        assert report.problems == [message]


def test_a_forged_entry_with_a_forged_anchor_beside_the_log_is_caught_by_the_sink(tmp_path):  # (f)
    path, sink = logged(tmp_path, 30)
    append_line(anchors_path(path), forged_anchor(forge_entry(path)))
    assert verify(path).ok  # whoever writes the log's folder fools a check of that folder alone (no key)
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems == [
        f"the anchor locations disagree on the last anchor: anchors file at seq 31, sink file:{sink.path} at seq 30 "
        "(anchors removed from one, or forged into another)",
    ]


def test_with_the_key_a_forged_entry_and_anchors_in_every_location_are_caught(tmp_path, monkeypatch):  # (g)
    monkeypatch.setenv(KEY_ENV, "a secret held apart from the log")
    path, sink = logged(tmp_path, 30)
    assert all(len(e["mac"]) == 64 for e in read(path)) and verify(path, sinks=[sink]).ok
    entry = forge_entry(path)
    entry_mac = "0" * 64  # the forger cannot compute a MAC without the key
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[-1] = json.dumps({**entry, "mac": entry_mac}, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for location in (anchors_path(path), sink.path):
        append_line(location, forged_anchor(entry, signature="1" * 64))
    report = verify(path, sinks=[sink])
    assert not report.ok and report.unprotected == 0
    assert report.problems == [
        "anchors file: anchor for seq 31: bad signature (anchor forged or altered)",
        f"sink file:{sink.path}: anchor for seq 31: bad signature (anchor forged or altered)",
        "seq 31: bad mac (entry forged or altered)",
    ]


def test_the_anchors_file_deleted_alone_fails(tmp_path):  # (h)
    path, sink = logged(tmp_path, 30)
    anchors_path(path).unlink()
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems == [
        "anchors file: missing, but the log has 30 entries (anchors deleted, or never written)"
    ]
    anchors_path(path).write_bytes(b"")
    assert verify(path, sinks=[sink]).problems == [
        "anchors file: no anchors, but the log has 30 entries (anchors deleted, or never written)"
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            0,
            "no anchors before seq 2, while other locations have anchors from seq 1 (lines removed, or writes to it failed)",
        ),
        (
            14,
            "no anchor for 1 seq (seq 15) that other locations anchor (lines removed, or writes to this location failed)",
        ),
        (29, None),  # the last line: the locations disagree on the last anchor
    ],
)
def test_a_line_removed_from_the_sink_fails(tmp_path, line, problem):  # (i)
    path, sink = logged(tmp_path, 30)
    lines = sink.path.read_text(encoding="utf-8").splitlines(keepends=True)
    del lines[line]
    sink.path.write_text("".join(lines), encoding="utf-8")
    report = verify(path, sinks=[sink])
    assert not report.ok and report.unprotected == 0
    if problem:
        assert report.problems == [f"sink file:{sink.path}: {problem}"]
    else:
        assert report.problems == [
            f"the anchor locations disagree on the last anchor: anchors file at seq 30, sink file:{sink.path} at "
            "seq 29 (anchors removed from one, or forged into another)"
        ]


def test_malformed_sink_lines_are_reported(tmp_path):
    path, sink = logged(tmp_path, 5)
    with sink.path.open("a", encoding="utf-8") as f:
        f.write('{"seq": 6, "hash": "short"}\nnot json\n')
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems == [
        f"sink file:{sink.path}: line 6: malformed line, not an anchor",
        f"sink file:{sink.path}: line 7: malformed line, not an anchor",
    ]


def crash_after(path: Path, sink: FileSink, count: int) -> None:
    """A writer that appends `count` entries and dies before anchoring them (no close())."""
    log = AuditLog(path, anchor_every=0, sinks=[sink])
    for n in range(count):
        log.append(event(100 + n))
    log._file.close()  # the process is gone: the file is closed, but close() never ran


def test_a_writer_crash_is_recovered_visibly_and_fails_verify_until_acknowledged(tmp_path):
    path, sink = logged(tmp_path, 5)
    crash_after(path, sink, 2)
    report = verify(path, sinks=[sink])
    assert not report.ok and report.unprotected == 2 and "(seq 6..7) are not protected" in report.problems[0]
    AuditLog(path, sinks=[sink]).close()  # the next writer finds unanchored entries
    recovered = read(anchors_path(path))[-1]
    assert recovered == read(sink.path)[-1] and recovered["seq"] == 7 and recovered["recovered_from"] == 6
    report = verify(path, sinks=[sink])
    assert (
        not report.ok
        and report.unprotected == 0
        and report.unacknowledged == [(6, 7)]
        and report.problems
        == [
            f"2 entries (seq 6..7) recovered after an unclean stop (recovered at {recovered['time']}), not anchored by "
            "the running service: a writer crash, or entries appended behind its back; check them, then run "
            "`citizen-view audit acknowledge --reason TEXT`"
        ]
    )
    write_log(path, 2, sinks=[sink])  # later entries are anchored as usual; the recovery still fails
    assert not verify(path, sinks=[sink]).ok
    ack = acknowledge(path, user="dpo.jansen", reason="service killed by the OOM killer", sinks=[sink])
    assert ack["seq"] == 10 and ack["query"]["acknowledges"] == [[6, 7]] and read(sink.path)[-1]["seq"] == 10
    report = verify(path, sinks=[sink])
    assert (
        report.ok
        and report.entries == 10
        and report.warnings
        == [
            f"2 entries (seq 6..7) recovered after an unclean stop (recovered at {recovered['time']}), acknowledged by "
            f"dpo.jansen at {ack['time']} (seq 10): service killed by the OOM killer"
        ]
    )
    assert acknowledge(path, user="dpo.jansen", sinks=[sink]) is None  # nothing left to acknowledge


def test_entries_appended_while_the_writer_was_stopped_still_fail_on_the_mac(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "a secret held apart from the log")
    path, sink = logged(tmp_path, 5)
    crash_after(path, sink, 1)
    forge_entry(path)  # appended behind the writer's back, with a correct chain but no MAC
    AuditLog(path, sinks=[sink]).close()
    assert read(sink.path)[-1]["recovered_from"] == 6
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems[0] == (
        "seq 7: no mac, but CITIZEN_VIEW_AUDIT_KEY is set (entry forged, or written without the key)"
    )
    assert "2 entries (seq 6..7) recovered after an unclean stop" in report.problems[1]
    acknowledge(path, user="dpo.jansen", reason="looked at them", sinks=[sink])
    report = verify(path, sinks=[sink])  # acknowledged, and still forged: the MAC fails whatever a person says
    assert not report.ok and report.problems == [
        "seq 7: no mac, but CITIZEN_VIEW_AUDIT_KEY is set (entry forged, or written without the key)"
    ]


def test_without_the_key_an_entry_lacking_the_mac_its_neighbours_carry_is_still_caught(tmp_path, monkeypatch):
    """verify run where the key is not at hand (a DPO's laptop): MACs cannot be checked, but a forged entry appended
    with a correct chain and no MAC, among entries that all carry one, still fails."""
    monkeypatch.setenv(KEY_ENV, "a secret held apart from the log")
    path, sink = logged(tmp_path, 5)
    forge_entry(path)
    monkeypatch.delenv(KEY_ENV)
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems[0] == (
        "seq 6: no mac, while the entries from seq 1 carry one (entry forged, or written without the key)"
    )
    assert any("not set: they were not checked" in w for w in report.warnings)


def test_a_sink_added_to_an_existing_log_joins_with_a_warning(tmp_path):
    path = tmp_path / "audit" / "access.jsonl"
    sink = FileSink(tmp_path / "elsewhere" / "anchors.jsonl")
    write_log(path, 5)
    write_log(path, 3, sinks=[sink])
    first = read(sink.path)[0]
    assert first["seq"] == 5 and first["joined"] is True and "recovered_from" not in first
    report = verify(path, sinks=[sink])
    assert report.ok and report.warnings == [
        f"sink file:{sink.path}: holds anchors only from seq 5: it was added, or found without anchors, when the log had 5 entries"
    ]
    anchors_path(path).unlink()  # deleted while no writer ran: the next writer re-anchors it, visibly
    write_log(path, 1, sinks=[sink])
    report = verify(path, sinks=[sink])
    assert report.ok and any(w.startswith("anchors file: holds anchors only from seq 8") for w in report.warnings)


class ListSink:
    """A readable sink of our own that can be told to fail, to show a failed anchor write is loud and visible."""

    def __init__(self) -> None:
        self.anchors: list[dict] = []
        self.failing = False

    def describe(self) -> str:
        return "list"

    def write(self, anchor: dict) -> None:
        if self.failing:
            raise OSError("the sink's host is down")
        self.anchors.append(dict(anchor))

    def read(self) -> list[dict]:
        return list(self.anchors)


def test_a_failed_anchor_write_raises_and_its_gap_shows(tmp_path):
    path, sink, extra = tmp_path / "access.jsonl", FileSink(tmp_path / "other" / "a.jsonl"), ListSink()
    with AuditLog(path, sinks=[extra, sink]) as log:
        log.append(event(1))
        extra.failing = True
        with pytest.raises(OSError, match=r"seq 2 .* not written to list \(the sink's host is down\)"):
            log.append(event(2))
        extra.failing = False
        log.append(event(3))
    assert [e["seq"] for e in read(path)] == [1, 2, 3]  # the entry itself was written
    assert [a["seq"] for a in read(sink.path)] == [1, 2, 3]  # and anchored where the write worked
    report = verify(path, sinks=[extra, sink])
    assert not report.ok and report.problems == [
        "sink list: no anchor for 1 seq (seq 2) that other locations anchor (lines removed, or writes to this location failed)"
    ]


def test_anchored_appends_share_one_anchor_per_commit_and_refuse_while_the_last_anchor_failed(tmp_path):
    """The service's appends (anchor_every=0, anchored=True): each entry is anchored before append returns, in the
    commit that wrote it; a failed anchor leaves its entry standing and refuses the next anchored entry until an
    anchor succeeds again (an unanchored one, the service's 500, is still written)."""
    path, sink = tmp_path / "access.jsonl", ListSink()
    log = AuditLog(path, sinks=[sink], anchor_every=0)

    def work(t: int) -> None:
        for n in range(25):
            entry = log.append(event(t * 100 + n, user=f"user{t}"), anchored=True)
            assert sink.anchors[-1]["seq"] >= entry["seq"]

    _in_threads(work, 8)
    assert len(read(path)) == 200 and len(sink.anchors) <= 200 and sink.anchors[-1]["seq"] == 200
    sink.failing = True
    stands = log.append(event(1), anchored=True)  # its anchor fails: logged, the entry stands
    with pytest.raises(OSError, match="the sink's host is down"):
        log.append(event(2), anchored=True)  # refused before it is written
    unanchored = log.append(event(3))  # what the service writes instead (its 500)
    sink.failing = False
    last = log.append(event(4), anchored=True)  # the head is anchored first, then this entry
    log.close()
    assert [e["seq"] for e in read(path)][-3:] == [stands["seq"], unanchored["seq"], last["seq"]]
    assert last["seq"] == stands["seq"] + 2 and sink.anchors[-1]["seq"] == last["seq"]
    assert unanchored["seq"] in {a["seq"] for a in sink.anchors}
    assert verify(path).ok


def test_parse_sink_reads_specs_and_rejects_garbage(tmp_path):
    assert isinstance(parse_sink("file:/var/audit/anchors.jsonl"), FileSink)
    assert parse_sink("file:/var/audit/anchors.jsonl").path == Path("/var/audit/anchors.jsonl")
    assert parse_sink("syslog").address == "/dev/log" and parse_sink("syslog").describe() == "syslog"
    assert parse_sink("syslog:logs.example.org:514").address == ("logs.example.org", 514)
    assert parse_sink("syslog:[::1]:5514").address == ("::1", 5514)
    assert parse_sink("syslog:/var/run/syslog").address == "/var/run/syslog"
    for spec in [
        "",
        "file",
        "file:",
        "syslog:",
        "syslog:host",
        "syslog:host:port",
        "syslog:host:0",
        "syslog:host:70000",
        "syslog::514",
        "FILE:/x",
        "/var/audit/anchors.jsonl",
        "s3://bucket/anchors",
    ]:
        with pytest.raises(ValueError, match="not an anchor sink"):
            parse_sink(spec)
    path = tmp_path / "access.jsonl"
    with pytest.raises(TypeError, match="not a single string"):
        AuditLog(path, sinks=f"file:{tmp_path / 'a.jsonl'}")
    with pytest.raises(ValueError, match="not a second place"):
        AuditLog(path, sinks=[f"file:{anchors_path(path)}"])
    with pytest.raises(TypeError, match="not an AnchorSink"):
        AuditLog(path, sinks=[object()])
    with AuditLog(path, sinks=[f"file:{tmp_path / 'other' / 'a.jsonl'}"]) as log:
        log.append(event())
    assert read(tmp_path / "other" / "a.jsonl")[0]["seq"] == 1


def test_a_syslog_sink_sends_each_anchor_as_one_json_message(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        syslog = parse_sink(f"syslog:127.0.0.1:{port}")
        assert isinstance(syslog, SyslogSink) and syslog.read() is None
        path = tmp_path / "access.jsonl"
        try:
            with AuditLog(path, sinks=[syslog]) as log:
                log.append(event(1))
                log.append(event(2))
            messages = [server.recv(4096) for _ in range(2)]
        finally:
            syslog.close()
    prefix = b"<38>citizen-view-audit: "  # facility auth (4 * 8) + severity info (6)
    assert all(m.startswith(prefix) for m in messages)
    assert [json.loads(m[len(prefix) :]) for m in messages] == read(anchors_path(path))
    report = verify(path, sinks=[syslog])
    assert report.ok and report.warnings == [
        f"sink syslog:127.0.0.1:{port} cannot be read back: the anchors sent there were not checked"
    ]


def test_with_the_key_an_entry_without_or_with_a_wrong_mac_is_forged(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "a secret held apart from the log")
    path, sink = logged(tmp_path, 5)
    entries = read(path)
    assert all(_hash(e) == e["hash"] for e in entries)  # the hash does not cover the mac
    del entries[2]["mac"]
    entries[3]["mac"] = "Ω" * 64  # any text, even non-ASCII, is compared safely
    rewrite(path, entries)
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems == [
        "seq 3: no mac, but CITIZEN_VIEW_AUDIT_KEY is set (entry forged, or written without the key)",
        "seq 4: bad mac (entry forged or altered)",
    ]


def test_a_crash_between_the_anchors_file_and_a_sink_is_recovered_and_flagged(tmp_path):
    path, sink = tmp_path / "access.jsonl", ListSink()
    log = AuditLog(path, sinks=[sink])
    log.append(event(1))
    sink.failing = True
    with pytest.raises(OSError):
        log.append(event(2))  # anchored in the anchors file, not in the sink
    log._file.close()  # and the process dies
    sink.failing = False
    report = verify(path, sinks=[sink])
    assert (
        not report.ok and "disagree on the last anchor: anchors file at seq 2, sink list at seq 1" in report.problems[0]
    )
    AuditLog(path, sinks=[sink]).close()
    assert sink.anchors[-1]["recovered_from"] == 2 and read(anchors_path(path))[-1]["recovered_from"] == 2
    report = verify(path, sinks=[sink])
    assert not report.ok and report.problems[0].startswith("1 entry (seq 2) recovered after an unclean stop")


def cli_options(path: Path, sink: FileSink) -> list[str]:
    return [
        "--audit-log",
        str(path),
        "--anchor-sink",
        f"file:{sink.path}",
        "--warehouse",
        str(path.parent / "wh.duckdb"),
    ]


def test_a_forged_entry_appended_while_stopped_fails_verify_until_a_person_acknowledges_it(tmp_path, capsys):
    path, sink = logged(tmp_path, 3)
    forge_entry(path)  # appended while the service was stopped, with a correct chain
    AuditLog(path, sinks=[sink]).close()  # the service starts again and finds it unanchored
    options = cli_options(path, sink)
    assert main(["audit", "verify", *options]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "1 entry (seq 4) recovered after an unclean stop" in out
    assert "not anchored by the running service" in out and "citizen-view audit acknowledge" in out
    assert main(["audit", "acknowledge", "--reason", "checked with the DPO", *options]) == 0
    assert "acknowledged recovered entries (seq 4)" in capsys.readouterr().out
    ack = read(path)[-1]
    assert ack["action"] == "acknowledge_recovered_entries" and ack["user"] == getpass.getuser()
    assert ack["query"] == {"acknowledges": [[4, 4]], "reason": "checked with the DPO"}
    assert read(sink.path)[-1]["seq"] == read(anchors_path(path))[-1]["seq"] == ack["seq"] == 5  # anchored
    assert main(["audit", "verify", *options]) == 0
    assert f"acknowledged by {ack['user']}" in capsys.readouterr().out


def test_an_entry_appended_behind_a_running_writer_is_flagged_at_its_next_write(tmp_path):
    path, sink = tmp_path / "access.jsonl", FileSink(tmp_path / "elsewhere" / "anchors.jsonl")
    with AuditLog(path, sinks=[sink]) as log:
        log.append(event(1))
        forge_entry(path)
        assert log.append(event(2))["seq"] == 3  # continues after the forged line: one chain, not a fork
    report = verify(path, sinks=[sink])
    assert not report.ok and report.unacknowledged == [(2, 2)] and report.problems[0].startswith("1 entry (seq 2)")


def test_csv_export_is_safe_in_a_spreadsheet_html_escapes_and_json_stays_exact(tmp_path, capsys):
    path, sink = tmp_path / "audit" / "access.jsonl", FileSink(tmp_path / "elsewhere" / "anchors.jsonl")
    nasty = {
        "purpose": "=cmd|' /C calc'!A0",
        "case_reference": "@SUM(A1)",
        "user": "eve\x00\x07",
        "organisation": "+31 agency",
        "role": "-role",
        "action": "\tview",
        "fields": ["<b>name</b>"],
    }
    with AuditLog(path, sinks=[sink]) as log:
        log.append(event(1, **nasty))
    export = ["audit", "export", "--citizen", "CV-AAAA-BBBB-CCCC", *cli_options(path, sink), "--format"]
    assert main([*export, "csv"]) == 0
    out = capsys.readouterr().out
    assert "\x00" not in out and "\x07" not in out and "\t" not in out
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["purpose"] == "'=cmd|' /C calc'!A0" and row["case_reference"] == "'@SUM(A1)"
    assert row["organisation"] == "'+31 agency" and row["role"] == "'-role" and row["action"] == "'\\x09view"
    assert row["user"] == "eve\\x00\\x07"  # visible, not dropped
    assert main([*export, "json"]) == 0
    looked_at = json.loads(capsys.readouterr().out)["looked_at"][0]
    assert {k: looked_at[k] for k in nasty} == nasty
    assert main([*export, "html"]) == 0
    html = capsys.readouterr().out
    assert "<b>name</b>" not in html and "&lt;b&gt;name&lt;/b&gt;" in html


def test_a_line_torn_by_another_writer_is_ended_before_the_next_entry(tmp_path):
    path, sink = tmp_path / "access.jsonl", FileSink(tmp_path / "elsewhere" / "anchors.jsonl")
    with AuditLog(path, sinks=[sink]) as log:
        log.append(event(1))
        with path.open("ab") as f:
            f.write(b'{"seq":2,"ti')  # another worker died mid-write
        entry = log.append(event(2))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == '{"seq":2,"ti' and json.loads(lines[2]) == entry and entry["seq"] == 2
    assert entry["prev_hash"] == json.loads(lines[0])["hash"]
    report = verify(path, sinks=[sink])
    assert report.problems == ["line 2 (after seq 1): malformed line, not an audit entry"]


def test_each_citizen_of_one_entry_is_shown_only_what_was_returned_of_them(tmp_path, capsys):
    """A search entry naming two citizens: each citizen's export (JSON, CSV) and report list only their own fields
    and sources, while the entry keeps the whole response's fields for the data protection officer."""
    path, sink = tmp_path / "audit" / "access.jsonl", FileSink(tmp_path / "elsewhere" / "anchors.jsonl")
    one, two = "CV-AAAA-AAAA-AAAA", "CV-BBBB-BBBB-BBBB"
    disclosed = {
        one: {"fields": ["city", "date_of_birth", "full_name"], "sources": ["population"]},
        two: {"fields": ["city", "full_name"], "sources": ["permits"]},
    }
    with AuditLog(path, sinks=[sink]) as log:
        entry = log.append(
            event(1, action="search", citizen_ids=[one, two], fields=disclosed[one]["fields"], disclosed=disclosed)
        )
    assert entry["disclosed"] == disclosed and verify(path, sinks=[sink]).ok
    for citizen in (one, two):
        [looked] = entries_for_citizen(path, citizen)
        assert (looked["fields"], looked["sources"]) == (disclosed[citizen]["fields"], disclosed[citizen]["sources"])
        [reported] = citizen_access_report(path, citizen)
        assert (reported["fields"], reported["sources"]) == (looked["fields"], looked["sources"])
        export = ["audit", "export", "--citizen", citizen, *cli_options(path, sink), "--format"]
        assert main([*export, "json"]) == 0
        [exported] = json.loads(capsys.readouterr().out)["looked_at"]
        assert exported["fields"] == disclosed[citizen]["fields"]
        assert main([*export, "csv"]) == 0
        row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert row["fields"] == " ".join(disclosed[citizen]["fields"])
        assert row["sources"] == " ".join(disclosed[citizen]["sources"])
