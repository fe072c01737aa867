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

Crash recovery (`recovery`). A writer that dies between writing an entry and its anchor leaves entries
that no anchor covers, which is also what entries appended by someone else look like. The next writer
does not anchor them silently: it writes an anchor of the head with "recovered_from": <first unanchored
seq>, and verify fails on those entries until a person acknowledges them (`acknowledge`), which appends
an acknowledgement entry, anchored like any other. With the key, their MACs are still checked.

Several processes (`writer`): every AuditLog on a file takes its file lock around read-head, append,
fsync and anchor, so service workers keep one linear chain.

Modules: `records` (the entry, hashes, MACs), `storage` (files), `anchors` (anchor locations), `writer`,
`recovery`, `verify` with its named `checks`, `acknowledge`, `citizen_report` and `export`.
"""

from __future__ import annotations

from citizen_view.audit.acknowledge import acknowledge
from citizen_view.audit.anchor_reading import MAX_PROBLEMS
from citizen_view.audit.anchors import AnchorSink, FileSink, SyslogSink, anchors_path, parse_sink
from citizen_view.audit.checks import ACKNOWLEDGE_ACTION
from citizen_view.audit.citizen_report import CITIZEN_FIELDS, REPORT_FIELDS, citizen_access_report, entries_for_citizen
from citizen_view.audit.export import spreadsheet_safe, write_csv, write_json
from citizen_view.audit.records import APPLICATION, GENESIS, KEY_ENV, AuditEvent
from citizen_view.audit.records import entry_hash as _hash
from citizen_view.audit.verify import VerifyReport, verify
from citizen_view.audit.writer import AuditLog

__all__ = [
    "ACKNOWLEDGE_ACTION",
    "APPLICATION",
    "CITIZEN_FIELDS",
    "GENESIS",
    "KEY_ENV",
    "MAX_PROBLEMS",
    "REPORT_FIELDS",
    "AnchorSink",
    "AuditEvent",
    "AuditLog",
    "FileSink",
    "SyslogSink",
    "VerifyReport",
    "_hash",
    "acknowledge",
    "anchors_path",
    "citizen_access_report",
    "entries_for_citizen",
    "parse_sink",
    "spreadsheet_safe",
    "verify",
    "write_csv",
    "write_json",
]
