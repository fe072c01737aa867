"""Whether reading an extract again would write what its last load wrote: the same files (names, sizes, times),
read under the same contract by the same code.

A run ingests every declared source, but when 1,000 records land in one agency's folder the other agencies' extracts
are the files they were at the last run: reading, standardising and auditing them again (most of an incremental
run's ingest at a million records) would write the same tables. `fingerprint` is what, besides the files' contents
(`ingest.content_hash`, kept in `ingest_log` since write-audit-publish), decides what a load writes: the whole
`sources.yaml` (a change anywhere in it reads every source again, the simple rule), the files' names relative to the
contract, sizes and modification times (the raw rows keep the file's name and its time as `_extracted_at`), this
package's own files (its readers, standardisation and rules), the version of every installed distribution (polars,
duckdb, phonenumbers, python-stdnum ... read and parse the values). Any difference, or a load logged before the
fingerprint existed, reads the extract again.

The day is kept apart (`ingest_log.judged_on`): the rules judge birth dates by it (the latest plausible birth date is
today unless the contract sets one, and a reason for a date after it names it; a Norwegian ID's birth date may not lie
ahead). A load judged on an earlier day is kept only where that changes nothing (`ingest.judged_alike`).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib.metadata import distributions
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citizen_view.contract import SourcesFile

_PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over this package's files (not its caches) and every installed distribution's name and version."""
    digest = hashlib.sha256()
    for path in sorted(p for p in _PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(_PACKAGE)).encode() + b"\x00" + path.read_bytes() + b"\x00")
    versions = sorted({f"{d.metadata['Name']}=={d.version}" for d in distributions() if d.metadata["Name"]})
    digest.update("\n".join(versions).encode())
    return digest.hexdigest()


def _contract(sources: SourcesFile) -> dict:
    """The contract as declared: where its folder lies (`base_dir`) is left out (file names are kept relative to it)."""
    return sources.model_dump(mode="json", exclude={"base_dir"})


def contract_fingerprint(sources: SourcesFile) -> str:
    """SHA-256 over the whole contract and `code_fingerprint`: what a load and a served view were made under (a served
    view records it too, so that it is only ever updated by the code and contract that wrote it; the day a load was
    judged on and a view written for are kept apart: `ingest_log.judged_on`, `view_info.written_on`)."""
    made = {"contract": _contract(sources), "code": code_fingerprint()}
    return hashlib.sha256(json.dumps(made, sort_keys=True).encode()).hexdigest()


def fingerprint(sources: SourcesFile, files: list[Path], names: list[str]) -> str:
    """What besides the files' contents and the day decides what loading them writes (module docstring); `names` are
    the files' names as the load records them."""
    stamps = []
    for path, name in zip(files, names, strict=True):
        stat = path.stat()
        stamps.append([name, stat.st_size, stat.st_mtime_ns])
    body = json.dumps([contract_fingerprint(sources), stamps])
    return hashlib.sha256(body.encode()).hexdigest()
