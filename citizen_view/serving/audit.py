"""The tamper-evident access log: who looked at which citizen's data, when, in what role and why.

Fields follow NEN 7513 / Logboek Dataverwerkingen (see DOMAIN.md, "Caseworker access and audit").

What protects it:

- The chain. Each entry is one JSON line with its `seq` (1, 2, ...), the `prev_hash` of the entry before
  it and its own `hash`: SHA-256 of the canonical JSON of every field except `hash` and `mac`. An edited,
  inserted, moved or deleted entry breaks the chain.
- Anchors. After every entry (or every `anchor_every` entries, on `anchor()` and always on close) the
  writer records the chain head, {"seq", "entries", "hash", "time", "signature"}, in every anchor
  location: the anchors file beside the log (`anchors_path`) and each sink (`FileSink`, `SyslogSink`).
  An anchor pins how many entries the log had, so entries deleted at the end show, and entries after
  the last anchor show as unprotected (appended behind the writer's back, or never anchored).
- Locations apart from the log. The anchors file sits in the log's folder: whoever can edit the log can
  edit it too, so alone it only catches clumsy tampering. A sink on another host or mount (a FileSink on
  a mount the service may only append to, or a remote syslog) is what catches someone who deletes or
  truncates the log's folder: `verify(path, sinks=...)` checks the log against every readable location
  and the locations against each other.
- Without a key nothing is secret: whoever can write the log AND every readable anchor location can
  rewrite the history consistently, and verify cannot tell.
- With a key in CITIZEN_VIEW_AUDIT_KEY each entry carries `mac` = HMAC-SHA256(key, its hash) and each
  anchor a `signature` = HMAC-SHA256(key, the canonical JSON of the anchor without its signature). Forged
  entries and forged anchors then fail verify even when the forger could write every location. Deletion
  is still only caught by a location the deleter cannot write.

Entries written without a key have no `mac` field: the same bytes as before MACs existed, and since the
hash never covers `mac`, an entry's hash does not depend on the key.

Crash recovery. A writer that dies between writing an entry and its anchor leaves entries that no anchor
covers, which is also what entries appended by someone else look like. A new AuditLog on that log does
not anchor them silently: it writes an anchor for the head with "recovered_from": <first unanchored seq>,
and verify reports those entries as a warning (with the key, their MACs are still checked).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import math
import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from logging.handlers import SysLogHandler
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

APPLICATION = "citizen-view"
KEY_ENV = "CITIZEN_VIEW_AUDIT_KEY"
GENESIS = "0" * 64
CITIZEN_FIELDS = ("time", "user", "role", "organisation", "purpose", "case_reference", "action", "fields", "status")
# What a citizen is shown of each look at their data: which organisation, when, why, what it did and which data
# (Logboek Dataverwerkingen, MijnOverheid). A caseworker's own name stays with the organisation's data protection officer.
REPORT_FIELDS = ("time", "organisation", "role", "purpose", "case_reference", "action", "fields", "status")
MAX_PROBLEMS = 1000  # a systematically broken log of millions of lines must not exhaust memory
_TAIL_BLOCK = 64 * 1024
_PRIMARY = "anchors file"  # how verify names the anchors file beside the log in its messages

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEvent:
    """One request as the caller saw it: who asked, for what purpose, and what was returned."""

    user: str | None
    role: str | None
    organisation: str | None
    action: str
    purpose: str | None
    case_reference: str | None
    query: dict
    citizen_ids: list[str]
    fields: list[str]
    status: int
    authorisation_rule: str | None = None
    on_behalf_of: str | None = None
    break_glass: bool = False
    break_glass_reason: str | None = None
    client: str | None = None


@dataclass
class VerifyReport:
    """The outcome of checking an audit log's hash chain against its anchor locations.

    `anchors` counts the well-formed anchors read over all readable locations; `unprotected` is the number
    of entries after the highest anchored seq in any location (each of them is also a problem).
    """

    ok: bool
    entries: int
    anchors: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unprotected: int = 0


@runtime_checkable
class AnchorSink(Protocol):
    """A second place where the writer records each anchor, ideally on another host or mount than the log."""

    def describe(self) -> str:
        """A short name for messages, in the form `parse_sink` takes ("file:/path", "syslog:host:514")."""
        ...

    def write(self, anchor: dict) -> None:
        """Record one anchor durably; raise when that failed."""
        ...

    def read(self) -> list[dict] | None:
        """The anchors recorded so far, oldest first; None when this sink cannot be read back."""
        ...


class FileSink:
    """Anchors as JSON lines in a file, appended with O_APPEND and fsync'ed; missing folders are created."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"file:{self.path}"

    def write(self, anchor: dict) -> None:
        line = (_canonical(anchor) + "\n").encode("utf-8")
        created = not self.path.exists()
        if created:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened per write, not held: an anchors file deleted or replaced while the writer runs is then
        # recreated where verify looks for it, instead of anchors going on into an unlinked file.
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(self.path, flags, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":
                    # A line torn by a crash: end it, so it stays visible (verify reports it as malformed)
                    # and this anchor is a line of its own. O_APPEND writes at the end whatever the offset.
                    line = b"\n" + line
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)

    def read(self) -> list[dict]:
        """The well-formed anchors in the file (verify streams `records()` instead, and reports the rest)."""
        return [value for _, value in self.records() if _is_anchor(value)]

    def records(self) -> Iterator[tuple[int, Any]]:
        """Each line's number and parsed JSON (None when not JSON), read one at a time; nothing when missing."""
        if self.path.exists():
            yield from ((number, _parse(raw)) for number, raw in _lines(self.path))

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r})"


class SyslogSink:
    """Anchors sent to syslog as one JSON message each (facility auth, severity info); it cannot be read back.

    `address` is a unix socket path ("/dev/log") or a (host, port) pair for UDP. It writes to a socket of
    its own rather than through logging's SysLogHandler, because that handler reports a failed send on
    stderr and carries on: an anchor that did not leave must raise, like any other failed anchor write.
    """

    def __init__(self, address: str | tuple[str, int] = "/dev/log", *, facility: int = SysLogHandler.LOG_AUTH,
                 tag: str = "citizen-view-audit") -> None:  # fmt: skip
        self.address = address if isinstance(address, str) else (str(address[0]), int(address[1]))
        self._prefix = f"<{(facility << 3) | SysLogHandler.LOG_INFO}>{tag}: "
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._target: Any = None  # a resolved (host, port) for UDP; None for a connected unix socket

    def describe(self) -> str:
        if isinstance(self.address, str):
            return "syslog" if self.address == "/dev/log" else f"syslog:{self.address}"
        host, port = self.address
        return f"syslog:[{host}]:{port}" if ":" in host else f"syslog:{host}:{port}"

    def write(self, anchor: dict) -> None:
        message = (self._prefix + _canonical(anchor)).encode("utf-8")
        with self._lock:
            try:
                self._send(message)
            except OSError:
                # A restarted syslog daemon leaves a connected unix socket stale: reconnect once, then fail.
                self._close()
                self._send(message)

    def read(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _send(self, message: bytes) -> None:
        if self._socket is None:
            if isinstance(self.address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    sock.connect(self.address)
                except OSError:
                    sock.close()
                    raise
                self._socket, self._target = sock, None
            else:
                family, _, proto, _, target = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0]
                self._socket, self._target = socket.socket(family, socket.SOCK_DGRAM, proto), target
        if self._target is None:
            self._socket.send(message)
        else:
            self._socket.sendto(message, self._target)

    def _close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __repr__(self) -> str:
        return f"SyslogSink({self.address!r})"


def parse_sink(spec: str) -> AnchorSink:
    """The sink a spec names: "file:/path", "syslog" (the local /dev/log), "syslog:/socket" or "syslog:HOST:PORT"."""
    kind, colon, rest = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if kind == "file" and rest:
        return FileSink(Path(rest))
    if kind == "syslog" and not colon:
        return SyslogSink("/dev/log")
    if kind == "syslog" and rest.startswith("/"):
        return SyslogSink(rest)
    if kind == "syslog":
        host, _, port = rest.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:514
        if host and port.isdigit() and 0 < int(port) < 65536:
            return SyslogSink((host, int(port)))
    raise ValueError(
        f"not an anchor sink: {spec!r}; use 'file:/path/to/anchors.jsonl', 'syslog' (the local /dev/log), "
        "'syslog:/path/to/socket' or 'syslog:HOST:PORT'"
    )


class AuditLog:
    """An append-only, hash-chained JSON-lines access log; safe to share between threads of one process.

    Anchor locations are the anchors file beside the log and every sink (an AnchorSink or a spec for
    `parse_sink`). An anchor that cannot be written to some location raises OSError after the others were
    written; the entry itself is already durable, and the next anchor covers it.
    """

    def __init__(self, path: Path, *, anchor_every: int = 1, sinks: Sequence[AnchorSink | str] = (),
                 version: str = "0.1.0") -> None:  # fmt: skip
        if anchor_every < 0:
            raise ValueError(f"anchor_every must be 0 (only on close and anchor()) or more, not {anchor_every}")
        self.path = Path(path)
        self.anchor_path = anchors_path(self.path)
        self.anchor_every = anchor_every
        self.sinks = _sinks(sinks)
        for sink in self.sinks:
            if isinstance(sink, FileSink) and _same_file(sink.path, self.anchor_path, self.path):
                raise ValueError(f"anchor sink {sink.describe()} is the log or its anchors file, not a second place")
        self.version = version
        self._locations: tuple[AnchorSink, ...] = (FileSink(self.anchor_path), *self.sinks)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        last = _last_valid(self.path, _is_entry) if not created else None
        self._seq: int = last["seq"] if last else 0
        self._head: str = last["hash"] if last else GENESIS
        self._anchored: dict | None = None  # the newest anchor of the head known to be in every location
        self._anchored_seq = 0
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the log's lifetime
        try:
            if created:
                _fsync_dir(self.path.parent)
            elif self._file.tell() > 0 and not _ends_with_newline(self.path):
                # A write torn by a crash: end that fragment so it stays visible (verify reports it as
                # malformed) and the chain continues on a line of its own from the last whole entry.
                _write_durably(self._file, b"\n")
            if self._seq:
                self._catch_up()
        except BaseException:
            self._file.close()
            raise

    def append(self, event: AuditEvent) -> dict:
        """Write one entry for `event`, durably, anchor it when due, and return it as stored."""
        if not isinstance(event, AuditEvent):
            raise TypeError(f"expected an AuditEvent, got {type(event).__name__}")
        body = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
        with self._lock:
            if self._file.closed:
                raise RuntimeError(f"audit log {self.path} is closed")
            entry = {**body, "seq": self._seq + 1, "time": _now(), "application": APPLICATION,
                     "version": self.version, "prev_hash": self._head}  # fmt: skip
            entry["hash"] = _hash(entry)
            key = _key()
            if key:
                entry["mac"] = _mac(key, entry["hash"])
            _write_durably(self._file, (_canonical(entry) + "\n").encode("utf-8"))
            self._seq, self._head = entry["seq"], entry["hash"]
            if self.anchor_every and self._seq % self.anchor_every == 0:
                self._write_anchor(self._locations)
        return entry

    def anchor(self) -> dict | None:
        """Anchor the current head now (once); the anchor as written, or None while the log has no entries."""
        with self._lock:
            return self._anchor_head()

    def close(self) -> None:
        """Anchor the head and close the file; closing twice is harmless."""
        with self._lock:
            if self._file.closed:
                return
            try:
                self._anchor_head()
            finally:
                self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _anchor_head(self) -> dict | None:
        if self._seq == 0:
            return None
        if self._anchored_seq == self._seq and self._anchored is not None:
            return dict(self._anchored)
        return self._write_anchor(self._locations)

    def _catch_up(self) -> None:
        """On opening a log with entries: make every readable location hold an anchor of the head, visibly.

        Entries after the lowest last anchor of the readable locations may have been written by a writer
        that crashed before anchoring them, or appended by someone else while no writer ran: anchoring them
        now would legitimise them, so that anchor says `recovered_from` and verify warns about them. A
        location holding no anchors at all (a sink added to an existing log, or an anchors file found
        missing) gets the head with "joined": true, which verify also reports.
        """
        lasts = [(loc, last) for loc in self._locations for readable, last in [_last_anchor(loc)] if readable]
        anchored = [last for _, last in lasts if last is not None]
        empty = [loc for loc, last in lasts if last is None]
        behind = [last["seq"] for last in anchored if last["seq"] < self._seq]
        first_unanchored = 1 if not anchored else min(behind) + 1 if behind else None
        ahead = [a for a in anchored if a["seq"] > self._seq or (a["seq"] == self._seq and a["hash"] != self._head)]
        if ahead:
            # Not repaired here: the tail of the log was deleted or replaced, and verify must show that.
            _log.warning("audit log %s ends at seq %d, but an anchor shows seq %d: entries deleted or replaced",
                         self.path, self._seq, max(last["seq"] for last in ahead))  # fmt: skip
        if first_unanchored is not None:
            _log.warning("audit log %s: entries %d..%d were not anchored (a writer crash, or entries appended "
                         "while no writer ran); anchoring them as recovered",
                         self.path, first_unanchored, self._seq)  # fmt: skip
            self._write_anchor(self._locations, recovered_from=first_unanchored, joined=empty if anchored else ())
        elif empty:
            _log.warning("audit log %s: %s held no anchors; anchoring the head there as joined",
                         self.path, ", ".join(loc.describe() for loc in empty))  # fmt: skip
            self._write_anchor(empty, joined=empty)
        else:
            self._anchored_seq = self._seq
            self._anchored = next((a for a in anchored if a["seq"] == self._seq and a["hash"] == self._head), None)

    def _write_anchor(self, locations: Sequence[AnchorSink], *, recovered_from: int | None = None,
                      joined: Sequence[AnchorSink] = ()) -> dict:  # fmt: skip
        anchor: dict[str, Any] = {"seq": self._seq, "entries": self._seq, "hash": self._head, "time": _now()}
        if recovered_from is not None:
            anchor["recovered_from"] = recovered_from
        key = _key()
        written, failed = None, []
        # Every location is tried even when one fails: one unreachable sink must not leave the others behind.
        for location in locations:
            record = {**anchor, "joined": True} if any(location is j for j in joined) else dict(anchor)
            record["signature"] = _sign(key, record) if key else None
            try:
                location.write(record)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other locations
                failed.append((location, exc))
                continue
            written = written or record
        if failed:
            names = ", ".join(f"{loc.describe()} ({exc})" for loc, exc in failed)
            raise OSError(f"audit anchor for seq {self._seq} of {self.path} not written to {names}") from failed[0][1]
        self._anchored_seq, self._anchored = self._seq, written
        return dict(written or anchor)


def anchors_path(path: Path) -> Path:
    """Where the anchors of the log at `path` are kept beside it."""
    path = Path(path)
    return path.with_suffix(path.suffix + ".anchors")


def verify(path: Path, *, sinks: Sequence[AnchorSink | str] = ()) -> VerifyReport:
    """Check the log's entries, hashes, chain and MACs against every readable anchor location, streaming once.

    The locations are the anchors file beside the log and `sinks`; each is read in seq order alongside
    the log, so memory does not grow with the log. A readable location with no anchors for a log with
    entries is a problem even though verify cannot know the writer's `anchor_every`: every writer anchors
    on close and, by default, after every entry, and one opened on an existing log anchors its head in
    every location at once, so an empty location means deleted anchors or a writer that never anchored.
    Locations are compared with each other where their ranges overlap, so a line removed from one, or an
    anchor forged into one, shows. Entries after the highest anchored seq are unprotected: a problem.
    """
    path = Path(path)
    key = _key()
    found = _Findings()
    cursors: list[_Cursor] = []
    locations = [(_PRIMARY, FileSink(anchors_path(path)))] + [(f"sink {s.describe()}", s) for s in _sinks(sinks)]
    for label, sink in locations:
        if isinstance(sink, FileSink):
            records: Iterable[tuple[int, Any]] = sink.records()
        else:
            items = sink.read()
            if items is None:
                found.warn(f"{label} cannot be read back: the anchors sent there were not checked")
                continue
            records = enumerate(items, start=1)
        cursors.append(_Cursor(label, sink, records, key, found))

    def settle(limit: float, entry: dict | None = None) -> bool:
        """Merge every location's anchors up to seq `limit`; True when some location anchors `entry`."""
        anchored = False
        while heads := [c.head["seq"] for c in cursors if c.head is not None]:
            seq = min(heads)
            if seq > limit:
                break
            hashes: dict[_Cursor, list[str]] = {}
            for c in cursors:
                if c.head is not None and c.head["seq"] == seq:
                    hashes[c] = c.take(seq)
                elif c.started and c.head is not None:
                    c.lacks(seq)  # inside this location's range, but other locations anchor it: removed?
            if entry is not None and seq == entry["seq"]:
                anchored = True
                for c, held in hashes.items():
                    if any(h != entry["hash"] for h in held):
                        found.problem(f"{c.label}: seq {seq}: hash differs from the anchor (entry replaced)")
            elif entry is None and len({h for held in hashes.values() for h in held}) > 1:
                found.problem(f"seq {seq}: the anchor locations hold different hashes for it (forged or altered)")
            # Otherwise the entry is missing from the log: the chain check below already names that gap.
        return anchored

    entries = 0
    last_seq, last_hash = 0, GENESIS
    top = 0  # the highest seq read so far: anchors up to it are merged
    after, after_from = 0, 0  # entries since the last entry some location anchors, and the first of them
    exists = path.is_file()
    for number, raw in _lines(path) if exists else ():
        entry = _parse(raw)
        if not _is_entry(entry):
            found.problem(f"line {number} (after seq {last_seq}): malformed line, not an audit entry")
            continue
        entries += 1
        seq, stored = entry["seq"], entry["hash"]
        if _hash(entry) != stored:
            found.problem(f"seq {seq}: hash mismatch, the entry was changed after it was written")
        expected = last_seq + 1
        if seq > expected:
            found.problem(f"seq {seq}: {_entries(expected, seq - 1)} missing after seq {last_seq} (deleted)")
        elif seq < expected:
            found.problem(f"seq {seq}: out of order after seq {last_seq} (entry inserted, duplicated or moved)")
        elif entry.get("prev_hash") != last_hash:
            where = f"entry {last_seq}" if last_seq else "the start of the chain"
            found.problem(f"seq {seq}: prev_hash does not match {where} (entry inserted or replaced)")
        mac = entry.get("mac")
        if key is not None:
            if not isinstance(mac, str):
                found.problem(f"seq {seq}: no mac, but {KEY_ENV} is set (entry forged, or written without the key)")
            elif not _equal(mac, _mac(key, stored)):
                found.problem(f"seq {seq}: bad mac (entry forged or altered)")
        elif mac is not None:
            found.unchecked = True
        if seq > top:
            if settle(seq, entry):
                after = 0
            else:
                after, after_from = after + 1, after_from if after else seq
            top = seq
        last_seq, last_hash = seq, stored
    settle(math.inf)  # the anchors beyond the log's end

    highest = max((c.last["seq"] for c in cursors if c.last is not None), default=0)
    unprotected = after if entries and highest < top else 0
    if entries:
        _judge_locations(cursors, entries, top, found)
    else:
        _judge_missing_log(path, cursors, found)
    if unprotected:
        entry_s, be = ("entry", "is") if unprotected == 1 else ("entries", "are")
        where = f"after the last anchor ({_seqs(after_from, top)})"
        if not highest:
            where = f"({_seqs(after_from, top)}), with no anchor in any location,"
        found.problem(f"{unprotected:,} {entry_s} {where} {be} not protected: appended after the writer's last "
                      "anchor (forged?) or the writer stopped before anchoring them")  # fmt: skip
    for (first, seq), time in sorted(found.recovered.items()):
        was = "was" if first == seq else "were"
        found.warn(f"{_entries(first, seq)} {was} anchored only when the log was reopened (at {time}): "
                   "a writer crash, or entries appended while it was stopped")  # fmt: skip
    if found.unchecked:
        found.warn(f"entries carry MACs or anchors signatures, but {KEY_ENV} is not set: they were not checked")
    problems = found.finish()
    return VerifyReport(ok=not problems, entries=entries, anchors=sum(c.count for c in cursors), problems=problems,
                        warnings=found.warnings, unprotected=unprotected)  # fmt: skip


def _judge_missing_log(path: Path, cursors: list[_Cursor], found: _Findings) -> None:
    """A log without entries: fine when it never had any, deleted or emptied when some location anchors entries."""
    exists = path.is_file()
    held = [c for c in cursors if c.last is not None]
    if not held and not exists:
        found.problem(f"no audit log at {path}")
    for c in held:
        shown = c.last.get("entries", c.last["seq"])
        found.problem(f"the log was {'emptied' if exists else 'deleted'}: {c.label} shows {shown:,} entries")


def _judge_locations(cursors: list[_Cursor], entries: int, top: int, found: _Findings) -> None:
    """Each location's anchors against the log's length, and the locations' first and last anchors compared."""
    for c in cursors:
        if c.last is None:
            missing = isinstance(c.sink, FileSink) and not c.sink.path.exists()
            found.problem(f"{c.label}: {'missing' if missing else 'no anchors'}, but the log has {entries:,} entries "
                          "(anchors deleted, or never written)")  # fmt: skip
    held = [c for c in cursors if c.last is not None]
    for c in held:
        if c.last["seq"] > top:
            shown = c.last.get("entries", c.last["seq"])
            found.problem(f"{c.label}: the last anchor shows {shown:,} entries, but the log ends at seq {top}: "
                          f"{_entries(top + 1, shown)} deleted")  # fmt: skip
    if len({c.last["seq"] for c in held}) > 1:
        ends = ", ".join(f"{c.label} at seq {c.last['seq']}" for c in held)
        found.problem(f"the anchor locations disagree on the last anchor: {ends} "
                      "(anchors removed from one, or forged into another)")  # fmt: skip
    # A location that starts later than the others lost its first lines, unless the writer marked it as joined.
    start = min((c.first["seq"] for c in held), default=0)
    for c in held:
        first = c.first["seq"]
        if first <= start:
            continue
        if c.first.get("joined") is True:
            found.warn(f"{c.label}: holds anchors only from seq {first}: it was added, or found without anchors, "
                       f"when the log had {first:,} entries")  # fmt: skip
        else:
            found.problem(f"{c.label}: no anchors before seq {first}, while other locations have anchors from seq "
                          f"{start} (lines removed, or writes to it failed)")  # fmt: skip


def entries_for_citizen(path: Path, citizen_id: str) -> list[dict]:
    """Who looked at this citizen's data: time, user, role, organisation, purpose, case, action, status."""
    needle = _needle(citizen_id)
    found = []
    for _, raw in _lines(Path(path)):
        if needle is not None and needle not in raw:
            continue
        entry = _parse(raw)
        if not isinstance(entry, dict):
            continue
        ids = entry.get("citizen_ids")
        if isinstance(ids, list) and citizen_id in ids:
            found.append({k: entry.get(k) for k in CITIZEN_FIELDS})
    return found


def citizen_access_report(path: Path, citizen_id: str) -> list[dict]:
    """The citizen's own view of who looked at their data: successful looks only, newest first, without user names."""
    if not Path(path).is_file():
        return []
    looks = [e for e in entries_for_citizen(path, citizen_id) if isinstance(e.get("status"), int) and e["status"] < 400]
    return [{k: e.get(k) if k != "fields" else list(e.get("fields") or []) for k in REPORT_FIELDS} for e in reversed(looks)]


class _Findings:
    """Problems and warnings of one verify run, capped, and what the anchor cursors share."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.extra = 0
        self.recovered: dict[tuple[int, int], str] = {}  # (recovered_from, seq) -> time, over all locations
        self.unchecked = False  # a MAC or signature was seen while no key is set

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.extra += 1

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_PROBLEMS and text not in self.warnings:
            self.warnings.append(text)

    def finish(self) -> list[str]:
        if self.extra:
            self.problems.append(f"... and {self.extra:,} more problems")
        return self.problems


class _Cursor:
    """One anchor location during verify: its anchors in seq order, checked as they are read, one at a time."""

    def __init__(self, label: str, sink: AnchorSink, records: Iterable[tuple[int, Any]], key: bytes | None,
                 found: _Findings) -> None:  # fmt: skip
        self.label, self.sink, self._key, self._found = label, sink, key, found
        self._records = iter(records)
        self.count = 0
        self.first: dict | None = None
        self.last: dict | None = None  # the highest anchor read so far
        self.head: dict | None = None  # the next anchor to merge; None when done
        self.started = False  # an anchor of this location has been merged
        self._gap: list[int] | None = None  # [first, last, count] of seqs others anchor and this one lacks
        self._next()

    def take(self, seq: int) -> list[str]:
        """The distinct hashes this location anchors `seq` with, moving past them."""
        hashes: list[str] = []
        while self.head is not None and self.head["seq"] == seq:
            if self.head["hash"] not in hashes:
                hashes.append(self.head["hash"])
            self._next()
        if len(hashes) > 1:
            self._found.problem(f"{self.label}: seq {seq} anchored twice with different hashes (forged or altered)")
        if self._gap is not None:
            first, last, count = self._gap
            seqs = f"{count:,} seq{'s' if count > 1 else ''} ({_seqs(first, last)})"
            self._found.problem(f"{self.label}: no anchor for {seqs} that other locations anchor "
                                "(lines removed, or writes to this location failed)")  # fmt: skip
            self._gap = None
        self.started = True
        return hashes

    def lacks(self, seq: int) -> None:
        if self._gap is None:
            self._gap = [seq, seq, 1]
        else:
            self._gap[1], self._gap[2] = seq, self._gap[2] + 1

    def _next(self) -> None:
        for number, value in self._records:
            if not _is_anchor(value):
                self._found.problem(f"{self.label}: line {number}: malformed line, not an anchor")
                continue
            self.count += 1
            seq = value["seq"]
            signature = value.get("signature")
            if self._key is not None:
                if not isinstance(signature, str):
                    self._found.problem(f"{self.label}: anchor for seq {seq}: not signed, but {KEY_ENV} is set")
                elif not _equal(signature, _sign(self._key, value)):
                    self._found.problem(f"{self.label}: anchor for seq {seq}: bad signature (anchor forged or altered)")
            elif signature is not None:
                self._found.unchecked = True
            if self.last is not None and seq < self.last["seq"]:
                self._found.problem(f"{self.label}: line {number}: anchor for seq {seq} after one for seq "
                                    f"{self.last['seq']} (out of order: inserted or moved)")  # fmt: skip
                continue
            recovered = value.get("recovered_from")
            if recovered is not None and len(self._found.recovered) < MAX_PROBLEMS:
                self._found.recovered.setdefault((recovered, seq), value["time"])
            self.first = self.first or value
            self.last = self.head = value
            return
        self.head = None


def _sinks(sinks: Sequence[AnchorSink | str]) -> tuple[AnchorSink, ...]:
    if isinstance(sinks, str | bytes):
        raise TypeError("sinks is a sequence of AnchorSinks or sink specs, not a single string")
    result = []
    for sink in sinks:
        sink = parse_sink(sink) if isinstance(sink, str) else sink
        if not isinstance(sink, AnchorSink):
            raise TypeError(f"not an AnchorSink (describe, write, read): {sink!r}")
        result.append(sink)
    return tuple(result)


def _last_anchor(location: AnchorSink) -> tuple[bool, dict | None]:
    """(readable, its last well-formed anchor or None)."""
    if isinstance(location, FileSink):
        return True, _last_valid(location.path, _is_anchor) if location.path.exists() else None
    items = location.read()
    if items is None:
        return False, None
    return True, next((item for item in reversed(items) if _is_anchor(item)), None)


def _same_file(path: Path, *others: Path) -> bool:
    resolved = path.resolve()
    return any(resolved == other.resolve() for other in others)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(entry: dict) -> str:
    """SHA-256 over every field but `hash` and `mac`: whether a key is set never changes an entry's hash."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key() -> bytes | None:
    key = os.environ.get(KEY_ENV)
    return key.encode("utf-8") if key else None


def _mac(key: bytes, entry_hash: str) -> str:
    return hmac.new(key, entry_hash.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _sign(key: bytes, anchor: dict) -> str:
    """HMAC of every field of the anchor but the signature (seq, entries, hash, time, recovered_from, joined)."""
    if "entries" in anchor:
        message = _canonical({k: v for k, v in anchor.items() if k != "signature"})
    else:  # written before anchors carried the entry count
        message = f"{anchor['seq']}|{anchor['hash']}|{anchor['time']}"
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _equal(given: str, expected: str) -> bool:
    # compare_digest refuses non-ASCII str; a tampered field may hold anything
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _seqs(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}..{last}"


def _entries(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}..{last}"


def _plain(value: Any) -> Any:
    """The JSON form of a value, so the hash covers exactly what is stored."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:  # lone surrogates cannot be stored as UTF-8
            return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return _plain(str(value))


def _is_entry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and type(value.get("seq")) is int
        and value["seq"] >= 1
        and isinstance(value.get("hash"), str)
        and len(value["hash"]) == 64
    )


def _is_anchor(value: Any) -> bool:
    if not (_is_entry(value) and isinstance(value.get("time"), str)):
        return False
    if "entries" in value and (type(value["entries"]) is not int or value["entries"] != value["seq"]):
        return False
    recovered = value.get("recovered_from")
    return recovered is None or (type(recovered) is int and 1 <= recovered <= value["seq"])


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines of a file, read one at a time."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            yield number, raw.rstrip(b"\r\n")


def _tail(path: Path, *, block: int = _TAIL_BLOCK) -> Iterator[bytes]:
    """The lines of a file from the last one backwards, reading blocks from the end."""
    with open(path, "rb") as f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            lines = (f.read(step) + rest).split(b"\n")
            rest = lines[0]  # may continue in the block before
            yield from reversed(lines[1:])
        yield rest


def _last_valid(path: Path, valid: Any) -> dict | None:
    for raw in _tail(path):
        if raw.strip():
            value = _parse(raw)
            if valid(value):
                return value
    return None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _write_durably(f: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = f.write(view)
        view = view[written:]
    os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform; the file itself is already synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _needle(citizen_id: str) -> bytes | None:
    """Bytes every matching line must contain, to skip parsing the rest; None when escaping makes that unsafe."""
    if citizen_id.isascii() and citizen_id.isprintable() and '"' not in citizen_id and "\\" not in citizen_id:
        return citizen_id.encode("ascii")
    return None
