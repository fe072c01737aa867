"""Bring one source's extract into the warehouse: raw rows as received, canonical records, rejected rows, field issues.

Write-audit-publish, per source and per extract: the new extract is written to `staging` (its raw rows,
canonical records, rejected rows and field issues), audited there by the ingest rules
(`quality/rules.py`), and then either published (swapped into `raw.<source>`, `canonical.<source>`,
`rejected_records` and `field_issues` in one transaction) or held back: the staged tables stay as the
held extract with its evidence, and the source's last accepted extract stays current, so linkage, the
served view and open data go on with it. A data engineer then releases or rejects the held extract
(`release_held`, `reject_held`). Every load is a row of `ingest_log` with its status (accepted, held,
released, rejected), the content hash of its files and, for a decision, who took it and why.

The invariant: rows in (counted from the file's own records) = rows loaded + rows rejected. A structural
fault of a row (wrong field count, unbalanced quoting, undecodable bytes, broken JSON, missing or
duplicate record id) sends that row to `rejected_records`; a value that does not parse or validate (a
date, a national ID's checksum, a phone number, a postcode) is quarantined to `field_issues` and the
row is still loaded. A source-level fault (no file, unknown format, a mapped column that does not
exist, records the reader could not account for) raises `SourceError` naming the source, the file and
the column, and writes nothing; `ingest_or_hold` (what the pipeline calls) records such an extract as held
back and unreadable, so that source alone waits for a fixed file.

An extract whose files are those of the source's last load (the same names, sizes, times and contents), under the
same contract and code (`extract_state.py`), judged on the same day or on an earlier one whose judgement is
today's (`judged_alike`), is not read again: `ingest_or_hold` keeps the tables that load wrote, judges the ingest
rules again on them and logs the load as `unchanged` (`keep_unchanged`).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view import national_id
from citizen_view import standardise as std
from citizen_view.canonical import IMPLAUSIBLE, IMPLAUSIBLE_EARLY, Rules, canonical_records
from citizen_view.contract import SourceConfig, SourceError, SourcesFile
from citizen_view.extract_state import fingerprint
from citizen_view.quality import rules
from citizen_view.quality.rules import STAGING, RuleResult
from citizen_view.readers import Reject, internal, mapped_columns, raw_text, read_file
from citizen_view.warehouse import quote, table_exists, transaction

if TYPE_CHECKING:
    import duckdb


@dataclass
class SourceExtract:
    """A source's parsed rows (text columns + `_file`, `_line`) and the rows rejected while reading."""

    rows: pl.DataFrame
    rejects: list[Reject]
    files: list[str]
    records: int = 0  # records in the files, counted by the readers' own accounting
    content_hash: str = ""  # SHA-256 over the files' bytes, in file order: what a release refers to
    fingerprint: str = ""  # the contract, code and files' names, sizes and times they were read under (extract_state)


class LoadStatus(StrEnum):
    """What became of one load of a source (a row of `ingest_log`)."""

    ACCEPTED = "accepted"  # passed its audit (or is content a person released before): the source's current data
    HELD = "held"  # failed its audit: kept in `staging`, the last accepted extract stays current
    RELEASED = "released"  # held, then published by a person (`citizen-view release`)
    REJECTED = "rejected"  # held, then discarded by a person, or superseded by a newer extract
    UNCHANGED = "unchanged"  # the files, contract and code of the last load: not read again, its tables kept


@dataclass
class IngestReport:
    """What ingesting one source did, for asset metadata and the run summary."""

    source: str
    files: list[str]
    rows_in: int
    rows_loaded: int
    rows_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    field_issues: dict[str, int] = field(default_factory=dict)
    national_id_valid_rate: float | None = None
    date_of_birth_filled_rate: float | None = None
    seconds: float = 0.0
    status: LoadStatus = LoadStatus.ACCEPTED
    audit: list[RuleResult] = field(default_factory=list)
    content_hash: str = ""
    released_by: str | None = None  # accepted although the audit failed: this content was released by a person
    evidence: list[dict] = field(default_factory=list)  # held back: the top reasons, with counts and examples
    fingerprint: str = ""
    unchanged_since: datetime | None = None  # UNCHANGED: when the tables kept were accepted
    judged_on: date | None = None  # the day the rules judged by (a kept load: the day it was found to hold for)

    @property
    def held(self) -> bool:
        return self.status == LoadStatus.HELD

    @property
    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.audit if not r.passed]

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_loaded + self.rows_rejected


def read_source(sources: SourcesFile, source: SourceConfig) -> SourceExtract:
    """Read every file a source's glob matches and check the mapped columns exist in each."""
    problems = source.problems()
    if problems:
        raise SourceError(f"source {source.name!r} ({source.path}): " + "; ".join(problems))
    files = sources.files_of(source)
    if not files:
        raise SourceError(f"source {source.name!r}: no file matches {source.path!r} (looked in {sources.base_dir})")
    frames: list[pl.DataFrame] = []
    rejects: list[Reject] = []
    names = [_display_name(sources, path) for path in files]
    stamp = fingerprint(sources, files, names)  # before reading: a file changed meanwhile is read again next time
    records = 0
    for path, name in zip(files, names, strict=True):
        got = read_file(source, path, display_name=name)
        _check_columns(source, name, got.rows.columns, parsed_rows=got.rows.height)
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        frames.append(got.rows.with_columns(pl.lit(modified, dtype=pl.Datetime("us", "UTC")).alias("_extracted_at")))
        rejects.extend(got.rejects)
        records += got.records or 0
    rows = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    return SourceExtract(rows, rejects, names, records, content_hash(files), stamp)


def content_hash(files: list[Path]) -> str:
    """SHA-256 over the files' contents in order (names excluded: a renamed copy is the same content)."""
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\x00")
    return digest.hexdigest()


def _display_name(sources: SourcesFile, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(sources.base_dir))
    except ValueError:
        return str(path)


def _check_columns(source: SourceConfig, file: str, columns: list[str], *, parsed_rows: int) -> None:
    wanted = [("record_id", source.record_id)] if source.record_id else []
    wanted += [(canonical, m.column) for canonical, m in source.fields.items()]
    have = set(columns)
    for canonical, column in wanted:
        if column not in have:
            if source.format == "jsonl" and parsed_rows == 0:
                continue
            shown = ", ".join(c for c in columns if not internal(c))
            raise SourceError(
                f"source {source.name!r}: file {file!r} has no column {column!r} (mapped to {canonical}); "
                f"its columns are: {shown}"
            )


def standardise_source(
    extract: SourceExtract, source: SourceConfig, *, rules: Rules
) -> tuple[pl.DataFrame, list[Reject], pl.DataFrame]:
    """(canonical records, rows rejected for a missing or duplicate record id, field issues).

    Only structural faults reject a row; a value that does not parse or validate is quarantined
    field by field (see canonical.py).
    """
    df = extract.rows.with_row_index("_row")
    rejects: list[Reject] = []

    # Record id: the source's own key, or the row's line (prefixed by file when there are several files).
    if source.record_id:
        rid = std.tidy(pl.col(source.record_id))
    elif len(extract.files) > 1:
        rid = pl.col("_file") + pl.lit(":") + pl.col("_line").cast(pl.String)
    else:
        rid = pl.col("_line").cast(pl.String)
    df = df.with_columns(rid.alias("_rid"))

    # Missing and duplicate record ids (the first occurrence wins; later ones are rejected).
    missing = df.get_column("_rid").is_null()
    first_seen = (
        df.filter(~missing)
        .group_by("_rid")
        .agg(
            pl.col("_line").first().alias("_first_line"),
            pl.col("_file").first().alias("_first_file"),
            pl.col("_row").min().alias("_first_row"),
        )
    )
    df = df.join(first_seen, on="_rid", how="left", maintain_order="left")
    reason = (
        pl.when(pl.col("_rid").is_null())
        .then(pl.lit(f"missing record id (column {source.record_id or '_line'})"))
        .when(pl.col("_row") != pl.col("_first_row"))
        .then(
            pl.format(
                "duplicate record id {} (first seen in {} line {})",
                pl.lit("'") + pl.col("_rid") + pl.lit("'"),
                pl.col("_first_file"),
                pl.col("_first_line"),
            )
        )
    )
    df = df.with_columns(reason.alias("_reason"))
    data_cols = [c for c in extract.rows.columns if not internal(c)]
    bad_rows = df.filter(pl.col("_reason").is_not_null())
    for row in bad_rows.select([*data_cols, "_file", "_line", "_reason"]).iter_rows(named=True):
        rejects.append(Reject(row["_file"], row["_line"], row["_reason"], raw_text(row)))
    good = df.filter(pl.col("_reason").is_null())
    canonical, found = canonical_records(good, source, rules=rules, data_columns=data_cols)
    issues = found.join(
        good.with_row_index("_pos").select(pl.col("_pos").alias("row"), "_file", "_line", "_rid"), on="row", how="left"
    ).select(
        pl.lit(source.name).alias("source"),
        pl.col("_file").alias("file"),
        pl.col("_line").alias("line"),
        pl.col("_rid").alias("record_id"),
        "field",
        "raw",
        "reason",
    )
    return canonical, rejects, issues


def ingest_source(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, name: str, *, today: date | None = None
) -> IngestReport:
    """Read and standardise one source, write it to staging, audit it, then publish it or hold it back; `today`: the
    day the rules judge by (default today).

    All in one transaction: a crash changes nothing. The report says which (`status`) and why (`audit`)."""
    started = time.perf_counter()
    today = today or date.today()
    source = sources.source(name)
    extract = read_source(sources, source)
    rules_ = Rules.of(source, country=sources.country, quality=sources.quality, today=today)
    canonical, late_rejects, issues = standardise_source(extract, source, rules=rules_)
    rejects = extract.rejects + late_rejects
    rejects_df = pl.DataFrame(
        {
            "source": [source.name] * len(rejects),
            "file": [r.file for r in rejects],
            "line": [r.line for r in rejects],
            "reason": [r.reason for r in rejects],
            "raw": [r.raw for r in rejects],
        },
        schema={"source": pl.String, "file": pl.String, "line": pl.Int64, "reason": pl.String, "raw": pl.String},
    )
    rows_in = extract.records
    report = IngestReport(
        source=source.name,
        files=extract.files,
        rows_in=rows_in,
        rows_loaded=canonical.height,
        rows_rejected=len(rejects),
        rejected_by_reason=dict(Counter(_reason_kind(r.reason) for r in rejects).most_common()),
        field_issues=dict(Counter(issues.get_column("field").to_list()).most_common()),
        national_id_valid_rate=_rate(canonical, "national_id_valid") if "national_id" in source.fields else None,
        date_of_birth_filled_rate=(
            canonical.get_column("date_of_birth").is_not_null().mean() if "date_of_birth" in source.fields else None
        ),
        content_hash=extract.content_hash,
        fingerprint=extract.fingerprint,
        judged_on=today,
    )
    if not report.balanced:  # rows vanished between the file and the warehouse: load nothing
        raise SourceError(
            f"source {name!r}: the files hold {rows_in:,} records but {report.rows_loaded:,} loaded + "
            f"{report.rows_rejected:,} rejected account for {report.rows_loaded + report.rows_rejected:,}; nothing was loaded"
        )
    ensure_ingest_tables(con)
    with transaction(
        con, _raw_rows=extract.rows, _canonical_rows=canonical, _rejected_rows=rejects_df, _field_issues=issues
    ):
        _write_staged(con, source.name)
        read = RuleResult(
            READABLE, True, f"{len(extract.files)} file(s), {rows_in:,} records read", {"files": len(extract.files)}
        )
        report.audit = [read, *audit_staged(con, sources, source, rows_in=rows_in)]
        _supersede_held(con, source.name)
        if report.failed_rules:
            report.released_by = _released_by(con, source.name, extract.content_hash)
        if not report.failed_rules or report.released_by:
            report.status = LoadStatus.ACCEPTED
            _publish_fresh(con, source.name)
        else:
            report.status = LoadStatus.HELD
            _hold_staged(con, source.name)
            report.evidence = held_evidence(con, source.name)
            _keep_last_accepted(con, source.name)
        reason = (
            "; ".join(f"{r.rule}: {r.summary}" for r in report.failed_rules)
            if report.held
            else (f"audit failed but this content was released: {report.released_by}" if report.released_by else None)
        )
        _log(con, report, reason=reason)
    report.seconds = time.perf_counter() - started
    return report


READABLE = "extract_readable"


def ingest_or_hold(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, name: str, *, today: date | None = None
) -> IngestReport:
    """`ingest_source` (unless `keep_unchanged` keeps the last load), except that an extract that cannot be read at
    all (no file, an empty or corrupt file, a mapped column missing, records the reader cannot account for) is held
    back like one that fails its audit: the error is its evidence, the source's last accepted extract stays current
    and every other source goes on. `today`: the day the rules judge by (default today)."""
    try:
        return keep_unchanged(con, sources, name, today=today) or ingest_source(con, sources, name, today=today)
    except SourceError as exc:
        return hold_unreadable(con, sources, name, exc)


def keep_unchanged(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, name: str, *, today: date | None = None
) -> IngestReport | None:
    """The source's last load again, without reading its files, when they are the files it read (names, sizes, times
    and contents), under the same contract and code (`extract_state.fingerprint`), judged on `today` (default today)
    or on an earlier day whose judgement is today's (`judged_alike`), and its tables are current: the ingest rules
    are judged again on those tables and the load is logged as `unchanged`. None (read the extract) otherwise, and
    also when a rule fails there (an extract a person released although it failed: read and judged again, where the
    release still applies)."""
    started = time.perf_counter()
    today = today or date.today()
    source = sources.source(name)
    files = [] if source.problems() else sources.files_of(source)
    ensure_ingest_tables(con)
    last = con.execute(
        "SELECT files, rows_in, rows_loaded, status, content_hash, fingerprint, judged_on FROM ingest_log "
        "WHERE source = ? ORDER BY loaded_at DESC LIMIT 1",
        [name],
    ).fetchall()
    if not files or not last or not all(table_exists(con, kind, name) for kind in _FRAMES):
        return None
    logged_files, rows_in, rows_loaded, status, digest, stamp, judged_on = last[0]
    names = [_display_name(sources, p) for p in files]
    kept = (LoadStatus.ACCEPTED, LoadStatus.RELEASED, LoadStatus.UNCHANGED)
    if (
        status not in kept
        or stamp is None
        or judged_on is None
        or judged_on > today  # a clock set back: a date plausible then may not be now
        or list(logged_files) != names
        or fingerprint(sources, files, names) != stamp
    ):
        return None
    if content_hash(files) != digest:
        return None
    canonical = f"canonical.{quote(name)}"
    if rules._scalar(con, f"SELECT count(*) FROM {canonical}") != rows_loaded:
        return None  # the tables are not the ones that load wrote
    if judged_on != today and not judged_alike(con, sources, source, today=today):
        return None
    rejected = [r for (r,) in con.execute("SELECT reason FROM rejected_records WHERE source = ?", [name]).fetchall()]
    since = rules.last_accepted_load(con, name)
    report = IngestReport(
        source=name,
        files=names,
        rows_in=rows_in,
        rows_loaded=rows_loaded,
        rows_rejected=len(rejected),
        rejected_by_reason=dict(Counter(_reason_kind(r) for r in rejected).most_common()),
        field_issues=dict(
            con.execute(
                "SELECT field, count(*) FROM field_issues WHERE source = ? GROUP BY 1 ORDER BY 2 DESC, 1", [name]
            ).fetchall()
        ),
        status=LoadStatus.UNCHANGED,
        content_hash=digest,
        fingerprint=stamp,
        unchanged_since=since[1] if since else None,
        judged_on=today,
    )
    if "national_id" in source.fields:
        report.national_id_valid_rate = rules._scalar(con, f"SELECT avg(national_id_valid::DOUBLE) FROM {canonical}")
    if "date_of_birth" in source.fields and rows_loaded:
        report.date_of_birth_filled_rate = rules._scalar(
            con, f"SELECT avg((date_of_birth IS NOT NULL)::DOUBLE) FROM {canonical}"
        )
    if not report.balanced:
        return None
    read = RuleResult(
        READABLE,
        True,
        f"{len(files)} file(s) as at the last load ({rows_in:,} records): not read again",
        {"files": len(files), "read": False},
    )
    report.audit = [read, *audit_staged(con, sources, source, rows_in=rows_in, staged=False)]
    if report.failed_rules:
        return None
    with transaction(con):
        _log(con, report, reason="unchanged: the files, contract and code of the last load; not read again")
    report.seconds = time.perf_counter() - started
    return report


def judged_alike(con: duckdb.DuckDBPyConnection, sources: SourcesFile, source: SourceConfig, *, today: date) -> bool:
    """Whether a load judged on an earlier day holds what reading its files `today` would write. The day enters the
    judgement twice (canonical.Rules): birth and death dates after the latest plausible date, which is the day
    unless the contract sets one, are set aside with a reason that names it; and an ID may not encode a birth date
    after the day (a Norwegian fødselsnummer). A later day only lets more pass, so the load holds exactly when none
    of its dates was set aside after the latest plausible date and none of its set-aside IDs passes today. (A date
    before the earliest plausible one, a placeholder 1800-01-01, is judged alike every day; a reason in the wording
    before 2026-12-05, "outside earliest .. latest", counts as naming the day.)"""
    late = f"starts_with(reason, '{IMPLAUSIBLE}') AND NOT starts_with(reason, '{IMPLAUSIBLE_EARLY}')"
    if sources.quality.latest_date_of_birth is None and rules._scalar(
        con, f"SELECT count(*) FROM field_issues WHERE source = ? AND {late}", [source.name]
    ):
        return False
    ids = con.execute(
        "SELECT raw FROM field_issues WHERE source = ? AND field = 'national_id' AND raw IS NOT NULL", [source.name]
    ).fetchall()
    if not ids:
        return True
    scheme = source.id_scheme(sources.country)
    _, valid = national_id.check(pl.Series([r for (r,) in ids], dtype=pl.String), scheme=scheme, today=today)
    return not valid.fill_null(False).any()


def hold_unreadable(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, name: str, error: SourceError
) -> IngestReport:
    """Record an unreadable extract as held back (nothing staged: there is nothing to release, only to fix or reject).

    A source never accepted before is linked as empty, with its canonical columns."""
    started = time.perf_counter()
    source = sources.source(name)
    files = sources.files_of(source) if not source.problems() else []
    message = str(error)
    report = IngestReport(
        source=name,
        files=[_display_name(sources, p) for p in files],
        rows_in=0,
        rows_loaded=0,
        rows_rejected=0,
        status=LoadStatus.HELD,
        audit=[RuleResult(READABLE, False, f"the extract cannot be read: {message}", {"error": message})],
        content_hash=content_hash(files) if files else "",
        evidence=[{"what": "the extract cannot be read", "count": 1, "examples": [message]}],
    )
    ensure_ingest_tables(con)
    with transaction(con):
        _supersede_held(con, name)
        _drop_staged(con, name)
        _ensure_current(con, sources, source)
        _log(con, report, reason=f"{READABLE}: {message}")
    report.seconds = time.perf_counter() - started
    return report


def _ensure_current(con: duckdb.DuckDBPyConnection, sources: SourcesFile, source: SourceConfig) -> None:
    """Empty current tables (the mapped columns, canonical columns) for a source that has never been accepted."""
    if table_exists(con, "raw", source.name) and table_exists(con, "canonical", source.name):
        return
    columns = sorted({c for c in mapped_columns(source) if c})
    rows = pl.DataFrame(schema={c: pl.String for c in columns}).with_columns(
        pl.lit(None, dtype=pl.String).alias("_file"),
        pl.lit(None, dtype=pl.Int64).alias("_line"),
        pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("_extracted_at"),
    )
    rules_ = Rules.of(source, country=sources.country, quality=sources.quality)
    canonical, _, _ = standardise_source(SourceExtract(rows, [], []), source, rules=rules_)
    for kind, frame in (("raw", rows), ("canonical", canonical)):
        if not table_exists(con, kind, source.name):
            con.register("_empty_current", frame)
            try:
                con.execute(f"CREATE TABLE {kind}.{quote(source.name)} AS SELECT * FROM _empty_current")
            finally:
                con.unregister("_empty_current")


def audit_staged(
    con: duckdb.DuckDBPyConnection, sources: SourcesFile, source: SourceConfig, *, rows_in: int, staged: bool = True
) -> list[RuleResult]:
    """The ingest rules on a source's staged extract (`staged=False`: on its published tables), judged against its
    last accepted load."""
    q = sources.quality
    canonical = f"{STAGING}.{quote('canonical_' + source.name)}" if staged else f"canonical.{quote(source.name)}"
    rows = rules._scalar(con, f"SELECT count(*) FROM {canonical}")
    return [
        rules.canonical_schema(con, source.name, staged=staged),
        rules.required_fields(con, source, q, staged=staged),
        rules.national_id_validity(con, source, q, scheme=source.id_scheme(sources.country), staged=staged),
        rules.date_of_birth_validity(con, source, q, staged=staged),
        rules.date_of_birth_typos(con, source, q, staged=staged),
        rules.field_issue_share(con, source, q, staged=staged),
        rules.rejected_share(con, source.name, q, rows_in=rows_in, staged=staged),
        rules.row_count_drift(con, source.name, q, rows_loaded=rows, allow_empty=source.allow_empty),
    ]


INGEST_RULES = (
    READABLE,
    "canonical_schema",
    "required_fields",
    "national_id_validity",
    "date_of_birth_validity",
    "date_of_birth_typos",
    "field_issue_share",
    "rejected_share",
    "row_count_drift",
)

_STAGING_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {STAGING};
CREATE TABLE IF NOT EXISTS {STAGING}.rejected_records (
    source VARCHAR NOT NULL, file VARCHAR NOT NULL, line BIGINT NOT NULL, reason VARCHAR NOT NULL, raw VARCHAR,
    rejected_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {STAGING}.field_issues (
    source VARCHAR NOT NULL, file VARCHAR NOT NULL, line BIGINT NOT NULL, record_id VARCHAR NOT NULL,
    field VARCHAR NOT NULL, raw VARCHAR, reason VARCHAR NOT NULL, found_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


def ensure_ingest_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The staging schema of write-audit-publish (the ingest_log columns come with every connection: warehouse.py)."""
    con.execute(_STAGING_DDL)


def _staged(kind: str, source: str) -> str:
    return f"{STAGING}.{quote(kind + '_' + source)}"


_FRAMES = {"raw": "_raw_rows", "canonical": "_canonical_rows"}  # what ingest_source registers for its transaction


def _write_staged(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Stage an extract: its raw and canonical rows as views over the registered frames (the audit reads them there;
    they are written once, where the audit sends them), its rejected rows and field issues as rows."""
    for kind, frame in _FRAMES.items():
        con.execute(f"DROP TABLE IF EXISTS {_staged(kind, source)}")  # a held extract's, superseded by this one
        con.execute(f"CREATE VIEW {_staged(kind, source)} AS SELECT * FROM {frame}")
    con.execute(f"DELETE FROM {STAGING}.rejected_records WHERE source = ?", [source])
    con.execute(
        f"INSERT INTO {STAGING}.rejected_records (source, file, line, reason, raw) SELECT * FROM _rejected_rows"
    )
    con.execute(f"DELETE FROM {STAGING}.field_issues WHERE source = ?", [source])
    con.execute(f"INSERT INTO {STAGING}.field_issues BY NAME SELECT * FROM _field_issues")


def _hold_staged(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Keep a staged extract that failed its audit: its views become tables (the frames go when the transaction ends)."""
    for kind, frame in _FRAMES.items():
        con.execute(f"DROP VIEW {_staged(kind, source)}")
        con.execute(f"CREATE TABLE {_staged(kind, source)} AS SELECT * FROM {frame}")


def _publish_fresh(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Publish a staged extract that passed its audit straight from its frames (no copy through staging tables)."""
    for kind in _FRAMES:
        con.execute(f"DROP VIEW {_staged(kind, source)}")
    _publish_staged(con, source, frames=_FRAMES)


def _publish_staged(con: duckdb.DuckDBPyConnection, source: str, *, frames: dict[str, str] | None = None) -> None:
    """Swap the staged extract in as the source's current data and empty its staging (inside a transaction);
    `frames`: read the raw and canonical rows from these registered frames instead of the staged tables."""
    table = quote(source)
    for kind in _FRAMES:
        origin = frames[kind] if frames else _staged(kind, source)
        con.execute(f"CREATE OR REPLACE TABLE {kind}.{table} AS SELECT * FROM {origin}")
    con.execute("DELETE FROM rejected_records WHERE source = ?", [source])
    con.execute(
        f"INSERT INTO rejected_records (source, file, line, reason, raw, rejected_at) "
        f"SELECT source, file, line, reason, raw, rejected_at FROM {STAGING}.rejected_records WHERE source = ?",
        [source],
    )
    con.execute("DELETE FROM field_issues WHERE source = ?", [source])
    con.execute(f"INSERT INTO field_issues BY NAME SELECT * FROM {STAGING}.field_issues WHERE source = ?", [source])
    _drop_staged(con, source)


def _drop_staged(con: duckdb.DuckDBPyConnection, source: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {_staged('raw', source)}")
    con.execute(f"DROP TABLE IF EXISTS {_staged('canonical', source)}")
    con.execute(f"DELETE FROM {STAGING}.rejected_records WHERE source = ?", [source])
    con.execute(f"DELETE FROM {STAGING}.field_issues WHERE source = ?", [source])


def _keep_last_accepted(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """A held extract of a source never accepted before: its current data is empty (same columns), so linkage
    goes on with the other sources."""
    for kind in ("raw", "canonical"):
        if not table_exists(con, kind, source):
            con.execute(f"CREATE TABLE {kind}.{quote(source)} AS SELECT * FROM {_staged(kind, source)} LIMIT 0")


def _supersede_held(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """A newer extract replaces a held one: the older is recorded as rejected (superseded)."""
    con.execute(
        "UPDATE ingest_log SET status = 'rejected', decided_at = now(), decision_reason = 'superseded by a newer extract' "
        "WHERE source = ? AND status = 'held'",
        [source],
    )


def _released_by(con: duckdb.DuckDBPyConnection, source: str, digest: str) -> str | None:
    """Who released this exact content of the source before, and why (None when nobody did)."""
    rows = con.execute(
        "SELECT decided_by, decided_at, decision_reason FROM ingest_log WHERE source = ? AND status = 'released' "
        "AND content_hash = ? ORDER BY decided_at DESC LIMIT 1",
        [source, digest],
    ).fetchall()
    if not rows:
        return None
    by, at, why = rows[0]
    return f"{by} at {at:%Y-%m-%d %H:%M} UTC" + (f" ({why})" if why else "")


def _log(con: duckdb.DuckDBPyConnection, report: IngestReport, *, reason: str | None) -> None:
    con.execute(
        "INSERT INTO ingest_log (source, files, rows_in, rows_loaded, rows_rejected, load_id, status, content_hash, reason, "
        "fingerprint, judged_on) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.source,
            report.files,
            report.rows_in,
            report.rows_loaded,
            report.rows_rejected,
            uuid.uuid4().hex,
            report.status.value,
            report.content_hash,
            reason,
            report.fingerprint or None,
            report.judged_on,
        ],
    )


EVIDENCE_ITEMS = 5
EVIDENCE_EXAMPLES = 3


def held_evidence(con: duckdb.DuckDBPyConnection, source: str) -> list[dict]:
    """The top reasons in a staged extract, with counts and examples: values set aside per field and reason,
    and rejected rows per reason."""
    issues = con.execute(
        f"SELECT field || ': ' || reason, count(*), list(coalesce(raw, '') ORDER BY line)[1:{EVIDENCE_EXAMPLES}] "
        f"FROM {STAGING}.field_issues WHERE source = ? GROUP BY field, reason ORDER BY 2 DESC, 1 LIMIT {EVIDENCE_ITEMS}",
        [source],
    ).fetchall()
    rejected = con.execute(
        f"SELECT 'rejected row: ' || split_part(reason, ':', 1), count(*), "
        f"list('line ' || line ORDER BY line)[1:{EVIDENCE_EXAMPLES}] "
        f"FROM {STAGING}.rejected_records WHERE source = ? GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {EVIDENCE_ITEMS}",
        [source],
    ).fetchall()
    # the values set aside by their shape only: this evidence goes to Dagster's run storage and the run's output,
    # which outlive the staged rows (the values are in staging.field_issues while the extract is held)
    shaped = [(w, n, [rules.value_shape(x) for x in ex]) for w, n, ex in issues]
    return [
        {"what": w, "count": n, "examples": list(ex)} for w, n, ex in sorted(shaped + rejected, key=lambda r: -r[1])
    ]


# --- a person's decision on a held extract ----------------------------------------------------------


class NothingHeld(LookupError):
    """The source has no held-back extract to release or reject."""


@dataclass
class Decision:
    """A release or rejection of a held extract."""

    source: str
    status: LoadStatus
    rows_loaded: int
    held_since: datetime
    held_reason: str | None


def _held_load(con: duckdb.DuckDBPyConnection, source: str, *, need_staged: bool) -> tuple:
    ensure_ingest_tables(con)
    rows = con.execute(
        "SELECT load_id, rows_loaded, loaded_at, reason FROM ingest_log WHERE source = ? AND status = 'held' "
        "ORDER BY loaded_at DESC LIMIT 1",
        [source],
    ).fetchall()
    if not rows:
        raise NothingHeld(f"source {source!r} has no held-back extract")
    if need_staged and not table_exists(con, STAGING, f"canonical_{source}"):
        raise NothingHeld(
            f"source {source!r}: its held-back extract could not be read ({rows[0][3]}); there is nothing to release. "
            f"Fix or replace the extract and run again, or discard it with: citizen-view reject {source}"
        )
    return rows[0]


def release_held(con: duckdb.DuckDBPyConnection, source: str, *, by: str, reason: str | None = None) -> Decision:
    """Publish a source's held extract as it was staged, recording who released it and why. The same file content
    ingested later is accepted (a person released it)."""
    return _decide(con, source, LoadStatus.RELEASED, _publish_staged, by=by, reason=reason)


def reject_held(con: duckdb.DuckDBPyConnection, source: str, *, by: str, reason: str | None = None) -> Decision:
    """Discard a source's held extract; its last accepted extract stays current."""
    return _decide(con, source, LoadStatus.REJECTED, _drop_staged, by=by, reason=reason)


def _decide(con, source: str, status: LoadStatus, apply, *, by: str, reason: str | None) -> Decision:
    """A person's decision on the held extract: `apply` it to the staged tables and record who, when and why."""
    load_id, rows_loaded, since, held_reason = _held_load(con, source, need_staged=status == LoadStatus.RELEASED)
    with transaction(con):
        apply(con, source)
        con.execute(
            "UPDATE ingest_log SET status = ?, decided_by = ?, decided_at = now(), decision_reason = ? "
            "WHERE load_id = ?",
            [status.value, by, reason, load_id],
        )
    return Decision(source, status, rows_loaded, since, held_reason)


def source_status(con: duckdb.DuckDBPyConnection, sources: list[str]) -> pl.DataFrame:
    """Per source: when its current (accepted) extract was loaded, and since when a newer extract is held back and
    why (null when none is): what makes a source's data stale."""
    ensure_ingest_tables(con)
    frame = pl.DataFrame({"source": sources}, schema={"source": pl.String})
    con.register("_sources", frame)
    try:
        return con.sql(
            """
            WITH loads AS (SELECT * FROM ingest_log WHERE source IN (SELECT source FROM _sources)),
            accepted AS (SELECT source, max(loaded_at) AS accepted_at FROM loads
                         WHERE coalesce(status, 'accepted') IN ('accepted', 'released') GROUP BY 1),
            held AS (SELECT source, max(loaded_at) AS held_at, arg_max(reason, loaded_at) AS reason
                     FROM loads WHERE status = 'held' GROUP BY 1),
            stale AS (SELECT l.source, min(l.loaded_at) AS held_since FROM loads l JOIN held USING (source)
                      LEFT JOIN accepted a USING (source)
                      WHERE l.status IN ('held', 'rejected') AND (a.accepted_at IS NULL OR l.loaded_at > a.accepted_at)
                      GROUP BY 1)
            SELECT s.source, a.accepted_at, st.held_since, h.reason
            FROM _sources s LEFT JOIN accepted a USING (source) LEFT JOIN held h USING (source)
            LEFT JOIN stale st USING (source) ORDER BY s.source
            """
        ).pl()
    finally:
        con.unregister("_sources")


def _reason_kind(reason: str) -> str:
    """The kind of a rejection reason ("bad date in date_of_birth ..." -> "bad date")."""
    for kind in (
        "wrong field count",
        "undecodable bytes",
        "invalid JSON",
        "duplicate record id",
        "missing record id",
        "malformed quoting",
        "unbalanced quote",
        "expected a JSON object",
    ):
        if reason.startswith(kind):
            return kind
    return reason.split(":")[0]


def _rate(df: pl.DataFrame, column: str) -> float | None:
    s = df.get_column(column).drop_nulls()
    return float(s.mean()) if s.len() else None
