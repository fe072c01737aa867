"""Landing folders: which dropped extract files are complete and new, so a sensor starts each exactly once.

A file is ready when its size and modification time did not change since the previous look (it is
no longer being written) and it passes its format's integrity check (text ends with a line end and,
for JSON lines, the last line parses; a workbook is a sound zip; Parquet has its magic bytes at both
ends). A ready file starts an ingest once per content: the run key is source + file + SHA-256.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from citizen_view.files import sha256_of

if TYPE_CHECKING:
    from citizen_view.contract import SourceConfig, SourcesFile


@dataclass(frozen=True)
class Ready:
    source: str
    path: str
    sha256: str

    @property
    def run_key(self) -> str:
        return f"{self.source}:{self.path}:{self.sha256}"


def integrity_problem(path: Path, fmt: str) -> str | None:
    """Why a file is not a complete extract of its format yet, or None when it is."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty"
        if fmt in ("csv", "fixed_width", "jsonl"):
            with path.open("rb") as f:
                f.seek(max(0, size - 65536))
                tail = f.read()
            if not tail.endswith(b"\n"):
                return "last line is not terminated (still being written?)"
            if fmt == "jsonl":
                last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
                json.loads(last.decode("utf-8", errors="replace"))
            return None
        if fmt == "xlsx":
            if not zipfile.is_zipfile(path):
                return "not a complete workbook (zip directory missing)"
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            return f"damaged workbook member {bad}" if bad else None
        if fmt == "parquet":
            with path.open("rb") as f:
                head = f.read(4)
                f.seek(-4, 2)
                foot = f.read(4)
            return None if head == foot == b"PAR1" else "not a complete Parquet file (magic bytes missing)"
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        return f"unreadable: {exc}"
    return None


def landing_files(sources: SourcesFile, source: SourceConfig) -> list[Path]:
    """The extract files of a source that sit in its landing folder."""
    if not source.landing:
        return []
    folder = (sources.base_dir / source.landing).resolve()
    return [p for p in sources.files_of(source) if p.resolve().is_relative_to(folder)]


def look(sources: SourcesFile, source: SourceConfig, cursor: dict) -> tuple[dict, list[Ready], dict[str, str]]:
    """One look at a landing folder: (new cursor, files ready to ingest, files waiting and why).

    The cursor maps each file to its last (size, mtime) and the SHA-256 already ingested.
    """
    seen: dict[str, str] = dict(cursor.get("ingested", {}))
    last: dict[str, list] = dict(cursor.get("last_look", {}))
    now: dict[str, list] = {}
    ready: list[Ready] = []
    waiting: dict[str, str] = {}
    for path in landing_files(sources, source):
        name = str(path.relative_to(sources.base_dir)) if path.is_relative_to(sources.base_dir) else str(path)
        stat = path.stat()
        state = [stat.st_size, stat.st_mtime_ns]
        now[name] = state
        if last.get(name) != state:
            waiting[name] = "changed since the last look (still being written?)"
            continue
        problem = integrity_problem(path, source.format)
        if problem:
            waiting[name] = problem
            continue
        digest = sha256_of(path)
        if seen.get(name) == digest:
            continue
        seen[name] = digest
        ready.append(Ready(source.name, name, digest))
    return {"ingested": seen, "last_look": now}, ready, waiting
