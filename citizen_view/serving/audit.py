"""The tamper-evident access log: who looked at which citizen's data, when, in what role and why.

Each entry is one JSON line carrying the hash of the entry before it, so an edited, inserted or deleted
entry breaks the chain. The head of the chain is anchored every `anchor_every` entries and on close
(optionally HMAC-signed with CITIZEN_VIEW_AUDIT_KEY), so deleting entries at the end is detectable too.
Fields follow NEN 7513 / Logboek Dataverwerkingen (see DOMAIN.md, "Caseworker access and audit").
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

APPLICATION = "citizen-view"
KEY_ENV = "CITIZEN_VIEW_AUDIT_KEY"
GENESIS = "0" * 64
CITIZEN_FIELDS = ("time", "user", "role", "organisation", "purpose", "case_reference", "action", "status")
MAX_PROBLEMS = 1000  # a systematically broken log of millions of lines must not exhaust memory
_TAIL_BLOCK = 64 * 1024


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
    """The outcome of checking an audit log's hash chain and anchors."""

    ok: bool
    entries: int
    anchors: int
    problems: list[str] = field(default_factory=list)


class AuditLog:
    """An append-only, hash-chained JSON-lines access log; safe to share between threads of one process."""

    def __init__(self, path: Path, *, anchor_every: int = 50, version: str = "0.1.0") -> None:
        if anchor_every < 0:
            raise ValueError(f"anchor_every must be 0 (only on close) or more, not {anchor_every}")
        self.path = Path(path)
        self.anchor_path = anchors_path(self.path)
        self.anchor_every = anchor_every
        self.version = version
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        last = _last_valid(self.path, _is_entry) if not created else None
        self._seq: int = last["seq"] if last else 0
        self._head: str = last["hash"] if last else GENESIS
        anchored = _last_valid(self.anchor_path, _is_anchor) if self.anchor_path.exists() else None
        self._anchored: dict | None = anchored
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the log's lifetime
        if created:
            _fsync_dir(self.path.parent)
        elif self._file.tell() > 0 and not _ends_with_newline(self.path):
            # A write torn by a crash: end that fragment so it stays visible (verify reports it as
            # malformed) and the chain continues on a line of its own from the last whole entry.
            _write_durably(self._file, b"\n")

    def append(self, event: AuditEvent) -> dict:
        """Write one entry for `event`, durably, and return it as stored."""
        if not isinstance(event, AuditEvent):
            raise TypeError(f"expected an AuditEvent, got {type(event).__name__}")
        body = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
        with self._lock:
            if self._file.closed:
                raise RuntimeError(f"audit log {self.path} is closed")
            entry = {**body, "seq": self._seq + 1, "time": _now(), "application": APPLICATION,
                     "version": self.version, "prev_hash": self._head}  # fmt: skip
            entry["hash"] = _hash(entry)
            _write_durably(self._file, (_canonical(entry) + "\n").encode("utf-8"))
            self._seq, self._head = entry["seq"], entry["hash"]
            if self.anchor_every and self._seq % self.anchor_every == 0:
                self._write_anchor()
        return entry

    def anchor(self) -> dict | None:
        """Anchor the current head now; None while the log has no entries."""
        with self._lock:
            return self._write_anchor()

    def close(self) -> None:
        """Anchor the head and close the file; closing twice is harmless."""
        with self._lock:
            if self._file.closed:
                return
            try:
                self._write_anchor()
            finally:
                self._file.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_anchor(self) -> dict | None:
        if self._seq == 0:
            return None
        if self._anchored and self._anchored.get("seq") == self._seq and self._anchored.get("hash") == self._head:
            return dict(self._anchored)
        anchor = {"seq": self._seq, "hash": self._head, "time": _now()}
        key = _key()
        anchor["signature"] = _sign(key, anchor) if key else None
        new = not self.anchor_path.exists()
        with open(self.anchor_path, "ab", buffering=0) as f:
            if f.tell() > 0 and not _ends_with_newline(self.anchor_path):
                _write_durably(f, b"\n")
            _write_durably(f, (_canonical(anchor) + "\n").encode("utf-8"))
        if new:
            _fsync_dir(self.anchor_path.parent)
        self._anchored = anchor
        return dict(anchor)


def anchors_path(path: Path) -> Path:
    """Where the anchors of the log at `path` are kept."""
    path = Path(path)
    return path.with_suffix(path.suffix + ".anchors")


def verify(path: Path) -> VerifyReport:
    """Check every entry's hash, the seq and prev_hash chain, and the anchors, streaming the log once."""
    path = Path(path)
    problems: list[str] = []
    extra = 0

    def problem(text: str) -> None:
        nonlocal extra
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)
        else:
            extra += 1

    anchors, anchor_count = _read_anchors(anchors_path(path), problem)
    entries = 0
    last_seq, last_hash = 0, GENESIS
    for number, raw in _lines(path):
        entry = _parse(raw)
        if not _is_entry(entry):
            problem(f"line {number} (after seq {last_seq}): malformed line, not an audit entry")
            continue
        entries += 1
        seq, stored = entry["seq"], entry["hash"]
        if _hash(entry) != stored:
            problem(f"seq {seq}: hash mismatch, the entry was changed after it was written")
        expected = last_seq + 1
        if seq > expected:
            missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected}..{seq - 1}"
            problem(f"seq {seq}: {missing} missing after seq {last_seq} (deleted)")
        elif seq < expected:
            problem(f"seq {seq}: out of order after seq {last_seq} (entry inserted, duplicated or moved)")
        elif entry.get("prev_hash") != last_hash:
            where = f"entry {last_seq}" if last_seq else "the start of the chain"
            problem(f"seq {seq}: prev_hash does not match {where} (entry inserted or replaced)")
        for anchor in anchors.get(seq, ()):
            anchor["found"] = True
            if anchor["hash"] != stored:
                problem(f"seq {seq}: hash differs from the anchor written at {anchor['time']} (entry replaced)")
        last_seq, last_hash = seq, stored
    for seq, group in sorted(anchors.items()):
        for anchor in group:
            if anchor.get("found"):
                continue
            if seq > last_seq:
                problem(f"anchor for seq {seq}: the log ends at seq {last_seq}, entries {last_seq + 1}..{seq} deleted")
            else:
                problem(f"anchor for seq {seq}: entry {seq} is missing from the log (deleted)")
    if extra:
        problems.append(f"... and {extra:,} more problems")
    return VerifyReport(ok=not problems, entries=entries, anchors=anchor_count, problems=problems)


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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key() -> bytes | None:
    key = os.environ.get(KEY_ENV)
    return key.encode("utf-8") if key else None


def _sign(key: bytes, anchor: dict) -> str:
    message = f"{anchor['seq']}|{anchor['hash']}|{anchor['time']}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


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
    return _is_entry(value) and isinstance(value.get("time"), str)


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


def _read_anchors(path: Path, problem: Any) -> tuple[dict[int, list[dict]], int]:
    anchors: dict[int, list[dict]] = {}
    if not path.exists():
        return anchors, 0
    key = _key()
    count = 0
    for number, raw in _lines(path):
        value = _parse(raw)
        if not _is_anchor(value):
            problem(f"anchor line {number}: malformed line, not an anchor")
            continue
        count += 1
        if key is not None:
            signature = value.get("signature")
            if not isinstance(signature, str):
                problem(f"anchor for seq {value['seq']}: not signed, but {KEY_ENV} is set")
            elif not hmac.compare_digest(signature, _sign(key, value)):
                problem(f"anchor for seq {value['seq']}: bad signature (anchor forged or altered)")
        anchors.setdefault(value["seq"], []).append(value)
    return anchors, count


def _needle(citizen_id: str) -> bytes | None:
    """Bytes every matching line must contain, to skip parsing the rest; None when escaping makes that unsafe."""
    if citizen_id.isascii() and citizen_id.isprintable() and '"' not in citizen_id and "\\" not in citizen_id:
        return citizen_id.encode("ascii")
    return None
