"""The writer: one linear hash chain, appended durably, shared by threads and by processes.

Every append takes the log's file lock (`fcntl.flock`, which every AuditLog on the file honours, in any
process), re-reads the head from the file when another writer appended since, writes and fsyncs the
entry, and writes its anchor, all under the lock: several service workers keep one chain. A writer that
finds the file not ending in a newline (another writer died mid-line) ends that fragment first, so it
stays visible (verify reports it as malformed) and the chain continues from the last whole entry.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from citizen_view.audit.anchors import AnchorSink, FileSink, anchors_path, as_sinks, same_file
from citizen_view.audit.records import (
    APPLICATION,
    GENESIS,
    AuditEvent,
    audit_key,
    canonical,
    entry_hash,
    is_entry,
    mac,
    now,
    plain,
    sign,
)
from citizen_view.audit.recovery import plan_recovery
from citizen_view.audit.storage import ends_with_newline, fsync_dir, last_valid, write_durably

log = logging.getLogger(__name__)
REPLACED = "the audit log file was removed or replaced while the service writes it: restart the service"
MIN_FREE_BYTES = 1024 * 1024  # below this the log's disk counts as full: an entry is a few hundred bytes


class AuditLog:
    """An append-only, hash-chained JSON-lines access log; safe to share between threads and processes.

    Anchor locations are the anchors file beside the log and every sink (an AnchorSink or a spec for
    `parse_sink`). An anchor that cannot be written to some location raises OSError after the others were
    written; the entry itself is already durable, and the next anchor covers it.
    """

    def __init__(
        self, path: Path, *, anchor_every: int = 1, sinks: Sequence[AnchorSink | str] = (), version: str = "0.1.0"
    ) -> None:
        if anchor_every < 0:
            raise ValueError(f"anchor_every must be 0 (only on close and anchor()) or more, not {anchor_every}")
        self.path = Path(path)
        self.anchor_path = anchors_path(self.path)
        self.anchor_every = anchor_every
        self.sinks = as_sinks(sinks)
        for sink in self.sinks:
            if isinstance(sink, FileSink) and same_file(sink.path, self.anchor_path, self.path):
                raise ValueError(f"anchor sink {sink.describe()} is the log or its anchors file, not a second place")
        self.version = version
        self._locations: tuple[AnchorSink, ...] = (FileSink(self.anchor_path), *self.sinks)
        self._lock = threading.Lock()
        # Entries waiting for the next group commit, and whether a thread of this writer is committing: the others
        # wait on the condition, not on the file lock, so an entry committed by another thread's batch returns as soon
        # as that batch is durable, instead of after whatever commit takes the lock next.
        self._queued = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._committing = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._seq, self._head = 0, GENESIS
        self._size = -1  # the log's size when this writer last read or wrote it under the lock
        self._anchored: dict | None = None  # the newest anchor of the head known to be in every location
        self._anchored_seq = 0
        self._anchor_failed = False  # this writer's last anchor could not be written everywhere
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held open for the log's lifetime
        try:
            if created:
                fsync_dir(self.path.parent)
            with self._exclusive():
                self._refresh(catch_up=True)
        except BaseException:
            self._file.close()
            raise

    def append(self, event: AuditEvent, *, anchored: bool = False) -> dict:
        """Write one entry for `event`, durably, anchor it when due, and return it as stored.

        Group commit: entries other threads of this process queued meanwhile are written with it, under one
        lock, one fsync and one anchor. No entry is returned, so no response is sent, before it is durable.

        `anchored`: the entry is anchored before this returns, in the same commit (one anchor for the batch); when
        that anchor cannot be written the entry stands, the failure is logged, and until an anchor succeeds again each
        anchored entry is refused (raises) before it is written, so a service answers it 500 and audits that instead.
        """
        if not isinstance(event, AuditEvent):
            raise TypeError(f"expected an AuditEvent, got {type(event).__name__}")
        body = {f.name: plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
        pending = _Pending(body, anchored=anchored)
        with self._queued:
            self._queue.append(pending)
            # While another thread commits, wait for that commit to end: when it held this entry, this returns as soon
            # as it is written and anchored (not after whichever commit takes the lock next); else this thread commits
            # the entries queued meanwhile.
            while self._committing and not pending.settled:
                self._queued.wait()
            lead = not pending.settled
            if lead:
                self._committing = True
        if lead:
            batch: list[_Pending] = []
            try:
                with self._exclusive():
                    with self._queued:
                        batch, self._queue = self._queue, []
                    self._commit(batch)
            finally:
                with self._queued:
                    for item in batch:  # written and anchored (or failed): nothing more happens to them
                        item.settled = True
                    self._committing = False
                    self._queued.notify_all()
        if pending.error is not None:
            raise pending.error
        return pending.entry

    def _commit(self, batch: list[_Pending]) -> None:
        """Write the batch as consecutive entries with one fsync, then anchor the head when an entry is due."""
        try:
            if self._replaced():  # entries written on would go into a file nobody can read: refuse them
                raise OSError(f"{self.path}: {REPLACED}")
            self._refresh(catch_up=self.anchor_every == 1)
            batch = self._unless_unanchored(batch)
            key, data, due = audit_key(), bytearray(), False
            for item in batch:
                entry = {
                    **item.body,
                    "seq": self._seq + 1,
                    "time": now(),
                    "application": APPLICATION,
                    "version": self.version,
                    "prev_hash": self._head,
                }
                entry["hash"] = entry_hash(entry)
                if key:
                    entry["mac"] = mac(key, entry["hash"])
                data += (canonical(entry) + "\n").encode("utf-8")
                item.entry, self._seq, self._head = entry, entry["seq"], entry["hash"]
                due = due or bool(self.anchor_every and self._seq % self.anchor_every == 0)
            if not batch:
                return
            write_durably(self._file, bytes(data))
            self._size += len(data)
            if due:
                self._write_anchor(self._locations)
            elif any(item.anchored for item in batch):
                self._anchor_batch()
        except BaseException as exc:
            for item in batch:
                item.error = exc if isinstance(exc, Exception) else RuntimeError(str(exc))
            if not isinstance(exc, Exception):
                raise

    def _unless_unanchored(self, batch: list[_Pending]) -> list[_Pending]:
        """The entries of the batch to write: an anchored one is refused (its error set) while this writer's last
        anchor failed and anchoring the head again fails too."""
        if not self._anchor_failed or not any(item.anchored for item in batch):
            return batch
        try:
            self._write_anchor(self._locations)
            return batch
        except OSError as exc:
            for item in batch:
                if item.anchored:
                    item.error = exc
            return [item for item in batch if not item.anchored]

    def _anchor_batch(self) -> None:
        """Anchor the head after a batch is durable; a failure is logged (the entries stand) and refuses the next."""
        try:
            self._write_anchor(self._locations)
        except OSError:
            log.exception("anchoring the audit log failed; anchored entries are refused until an anchor succeeds")

    def anchor(self) -> dict | None:
        """Anchor the current head now (once); the anchor as written, or None while the log has no entries."""
        with self._exclusive():
            self._refresh(catch_up=self.anchor_every == 1)
            return self._anchor_head()

    def problem(self) -> str | None:
        """Why entries cannot be written to the log at its path now (closed, removed or replaced, its disk full), or
        None. A write can still fail for a reason only a write shows: the service's readiness probe writes an entry."""
        if self._file.closed:
            return "the audit log is closed"
        try:
            if self._replaced():
                return REPLACED
            free = os.statvfs(self.path.parent)
        except OSError as exc:
            return f"the audit log cannot be checked ({exc.strerror})"
        if free.f_bavail * free.f_frsize < MIN_FREE_BYTES:
            return "the audit log's disk is full"
        return None

    def _replaced(self) -> bool:
        """Whether the file at the log's path is no longer the one this writer holds open (removed or replaced)."""
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return True
        held = os.fstat(self._file.fileno())
        return (at_path.st_dev, at_path.st_ino) != (held.st_dev, held.st_ino)

    def close(self) -> None:
        """Anchor the head and close the file; closing twice is harmless."""
        with self._lock:
            if self._file.closed:
                return
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
                self._refresh(catch_up=self.anchor_every == 1)
                self._anchor_head()
            finally:
                self._file.close()  # closing the file releases the lock

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This thread alone, and this process alone among every writer of the file."""
        with self._lock:
            if self._file.closed:
                raise RuntimeError(f"audit log {self.path} is closed")
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)

    def _refresh(self, *, catch_up: bool) -> None:
        """Re-read the head when the file changed since this writer last saw it (another writer appended)."""
        size = os.fstat(self._file.fileno()).st_size
        if size == self._size:
            return
        if size and not ends_with_newline(self.path):
            # A write torn by a crash: end that fragment so it stays visible (verify reports it as
            # malformed) and the chain continues on a line of its own from the last whole entry.
            write_durably(self._file, b"\n")
            size += 1
        last = last_valid(self.path, is_entry) if size else None
        self._seq, self._head = (last["seq"], last["hash"]) if last else (0, GENESIS)
        self._size = size
        if self._seq and catch_up:
            self._catch_up()

    def _anchor_head(self) -> dict | None:
        if self._seq == 0:
            return None
        if self._anchored_seq == self._seq and self._anchored is not None:
            return dict(self._anchored)
        return self._write_anchor(self._locations)

    def _catch_up(self) -> None:
        """Make every readable location hold an anchor of the head, marking entries nobody anchored as recovered."""
        plan = plan_recovery(self.path, self._locations, self._seq, self._head)
        if plan.locations:
            self._write_anchor(plan.locations, recovered_from=plan.recovered_from, joined=plan.joined)
        else:
            self._anchored_seq, self._anchored = self._seq, plan.anchored

    def _write_anchor(
        self, locations: Sequence[AnchorSink], *, recovered_from: int | None = None, joined: Sequence[AnchorSink] = ()
    ) -> dict:
        anchor: dict[str, Any] = {"seq": self._seq, "entries": self._seq, "hash": self._head, "time": now()}
        if recovered_from is not None:
            anchor["recovered_from"] = recovered_from
        key = audit_key()
        written, failed = None, []
        # Every location is tried even when one fails: one unreachable sink must not leave the others behind.
        for location in locations:
            record = {**anchor, "joined": True} if any(location is j for j in joined) else dict(anchor)
            record["signature"] = sign(key, record) if key else None
            try:
                location.write(record)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other locations
                failed.append((location, exc))
                continue
            written = written or record
        self._anchor_failed = bool(failed)
        if failed:
            names = ", ".join(f"{loc.describe()} ({exc})" for loc, exc in failed)
            raise OSError(f"audit anchor for seq {self._seq} of {self.path} not written to {names}") from failed[0][1]
        self._anchored_seq, self._anchored = self._seq, written
        return dict(written or anchor)


@dataclasses.dataclass
class _Pending:
    """An entry waiting to be written: its fields, then the entry as stored or the error that stopped it."""

    body: dict
    anchored: bool = False
    entry: dict | None = None
    error: Exception | None = None
    settled: bool = False  # its commit has ended, anchor included (set under the writer's condition)
