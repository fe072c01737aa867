"""Bring one source's extract into the warehouse: raw rows as received, canonical records, rejected rows, field issues.

The invariant: rows in (counted from the file's own records) = rows loaded + rows rejected. A structural
fault of a row (wrong field count, unbalanced quoting, undecodable bytes, broken JSON, missing or
duplicate record id) sends that row to `rejected_records`; a value that does not parse or validate (a
date, a national ID's checksum, a phone number, a postcode) is quarantined to `field_issues` and the
row is still loaded. A source-level fault (no file, unknown format, a mapped column that does not
exist, records the reader could not account for) raises `SourceError` naming the source, the file and
the column, and writes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from citizen_view import standardise as std
from citizen_view.canonical import Rules, canonical_records
from citizen_view.contract import SourceConfig, SourceError, SourcesFile
from citizen_view.readers import Reject, raw_text, read_file
from citizen_view.warehouse import quote, transaction

if TYPE_CHECKING:
    import duckdb



@dataclass
class SourceExtract:
    """A source's parsed rows (text columns + `_file`, `_line`) and the rows rejected while reading."""

    rows: pl.DataFrame
    rejects: list[Reject]
    files: list[str]
    records: int = 0  # records in the files, counted by the readers' own accounting


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
        raise SourceError(
            f"source {source.name!r}: no file matches {source.path!r} (looked in {sources.base_dir})"
        )
    frames: list[pl.DataFrame] = []
    rejects: list[Reject] = []
    names: list[str] = []
    records = 0
    for path in files:
        name = _display_name(sources, path)
        names.append(name)
        got = read_file(source, path, display_name=name)
        _check_columns(source, name, got.rows.columns, parsed_rows=got.rows.height)
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        frames.append(got.rows.with_columns(pl.lit(modified, dtype=pl.Datetime("us", "UTC")).alias("_extracted_at")))
        rejects.extend(got.rejects)
        records += got.records or 0
    rows = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    return SourceExtract(rows, rejects, names, records)


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
            shown = ", ".join(c for c in columns if not c.startswith("_"))
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
    first_seen = df.filter(~missing).group_by("_rid").agg(
        pl.col("_line").first().alias("_first_line"), pl.col("_file").first().alias("_first_file"),
        pl.col("_row").min().alias("_first_row"),
    )  # fmt: skip
    df = df.join(first_seen, on="_rid", how="left", maintain_order="left")
    reason = (
        pl.when(pl.col("_rid").is_null())
        .then(pl.lit(f"missing record id (column {source.record_id or '_line'})"))
        .when(pl.col("_row") != pl.col("_first_row"))
        .then(pl.format("duplicate record id {} (first seen in {} line {})", pl.lit("'") + pl.col("_rid") + pl.lit("'"),
                        pl.col("_first_file"), pl.col("_first_line")))  # fmt: skip
    )
    df = df.with_columns(reason.alias("_reason"))
    data_cols = [c for c in extract.rows.columns if not c.startswith("_")]
    bad_rows = df.filter(pl.col("_reason").is_not_null())
    for row in bad_rows.select([*data_cols, "_file", "_line", "_reason"]).iter_rows(named=True):
        rejects.append(Reject(row["_file"], row["_line"], row["_reason"], raw_text(row)))
    good = df.filter(pl.col("_reason").is_null())
    canonical, found = canonical_records(good, source, rules=rules, data_columns=data_cols)
    issues = found.join(
        good.with_row_index("_pos").select(pl.col("_pos").alias("row"), "_file", "_line", "_rid"), on="row", how="left"
    ).select(
        pl.lit(source.name).alias("source"), pl.col("_file").alias("file"), pl.col("_line").alias("line"),
        pl.col("_rid").alias("record_id"), "field", "raw", "reason",
    )  # fmt: skip
    return canonical, rejects, issues


def ingest_source(con: duckdb.DuckDBPyConnection, sources: SourcesFile, name: str) -> IngestReport:
    """Read, standardise and load one source; the warehouse changes all at once or not at all."""
    started = time.perf_counter()
    source = sources.source(name)
    extract = read_source(sources, source)
    rules = Rules.of(source, country=sources.country, quality=sources.quality)
    canonical, late_rejects, issues = standardise_source(extract, source, rules=rules)
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
    )
    if not report.balanced:  # rows vanished between the file and the warehouse: load nothing
        raise SourceError(
            f"source {name!r}: the files hold {rows_in:,} records but {report.rows_loaded:,} loaded + "
            f"{report.rows_rejected:,} rejected account for {report.rows_loaded + report.rows_rejected:,}; nothing was loaded"
        )
    raw = extract.rows
    table = quote(source.name)
    with transaction(con, _raw_rows=raw, _canonical_rows=canonical, _rejected_rows=rejects_df, _field_issues=issues):
        con.execute(f"CREATE OR REPLACE TABLE raw.{table} AS SELECT * FROM _raw_rows")
        con.execute(f"CREATE OR REPLACE TABLE canonical.{table} AS SELECT * FROM _canonical_rows")
        con.execute("DELETE FROM rejected_records WHERE source = ?", [source.name])
        con.execute("INSERT INTO rejected_records (source, file, line, reason, raw) SELECT * FROM _rejected_rows")
        con.execute("DELETE FROM field_issues WHERE source = ?", [source.name])
        con.execute("INSERT INTO field_issues BY NAME SELECT * FROM _field_issues")
        con.execute(
            "INSERT INTO ingest_log (source, files, rows_in, rows_loaded, rows_rejected) VALUES (?, ?, ?, ?, ?)",
            [source.name, report.files, report.rows_in, report.rows_loaded, report.rows_rejected],
        )
    report.seconds = time.perf_counter() - started
    return report


def _reason_kind(reason: str) -> str:
    """The kind of a rejection reason ("bad date in date_of_birth ..." -> "bad date")."""
    for kind in ("wrong field count", "undecodable bytes", "invalid JSON", "duplicate record id",
                 "missing record id", "malformed quoting", "unbalanced quote", "expected a JSON object"):  # fmt: skip
        if reason.startswith(kind):
            return kind
    return reason.split(":")[0]


def _rate(df: pl.DataFrame, column: str) -> float | None:
    s = df.get_column(column).drop_nulls()
    return float(s.mean()) if s.len() else None
