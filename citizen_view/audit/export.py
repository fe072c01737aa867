"""Exporting who looked at a citizen: JSON exactly as logged, CSV safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from typing import TextIO

from citizen_view.audit.citizen_report import CITIZEN_FIELDS

# A spreadsheet runs a cell starting with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def spreadsheet_safe(value: object) -> str:
    """A cell's text that no spreadsheet runs as a formula and that holds no control bytes.

    A cell starting with =, +, -, @, tab or CR gets a leading apostrophe; NUL and other control characters
    are written as visible escapes (\\x00), so nothing is lost and nothing is hidden.
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def write_csv(entries: Iterable[dict], out: TextIO) -> None:
    """One row per look at the citizen's data, every cell spreadsheet-safe."""
    writer = csv.writer(out)
    writer.writerow(CITIZEN_FIELDS)
    for entry in entries:
        row = {**entry, **{k: " ".join(str(f) for f in entry.get(k) or []) for k in ("fields", "sources")}}
        writer.writerow([spreadsheet_safe(row.get(name)) for name in CITIZEN_FIELDS])


def write_json(citizen_id: str, entries: list[dict], out: TextIO) -> None:
    """The entries exactly as logged (JSON escapes every control character)."""
    out.write(json.dumps({"citizen_id": citizen_id, "looked_at": entries}, indent=2, ensure_ascii=False) + "\n")
