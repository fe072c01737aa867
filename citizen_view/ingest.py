"""Bring one source's extract into the warehouse: raw rows as received, canonical records, rejected rows.

The invariant: rows read = rows loaded + rows rejected. A row-level fault (bad date, wrong field count,
undecodable bytes, broken JSON, missing or duplicate record id) sends that row to `rejected_records`
and the source carries on; a source-level fault (no file, unknown format, a mapped column that does
not exist) raises `SourceError` naming the source, the file and the column, and writes nothing.
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
from citizen_view.contract import DATE_FIELDS, SourceConfig, SourceError, SourcesFile
from citizen_view.readers import Reject, raw_text, read_file
from citizen_view.warehouse import quote

if TYPE_CHECKING:
    import duckdb

DEFAULT_DATE_FORMAT = "%Y-%m-%d"


@dataclass
class SourceExtract:
    """A source's parsed rows (text columns + `_file`, `_line`) and the rows rejected while reading."""

    rows: pl.DataFrame
    rejects: list[Reject]
    files: list[str]


@dataclass
class IngestReport:
    """What ingesting one source did, for asset metadata and the run summary."""

    source: str
    files: list[str]
    rows_in: int
    rows_loaded: int
    rows_rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
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
    for path in files:
        name = _display_name(sources, path)
        names.append(name)
        got = read_file(source, path, display_name=name)
        _check_columns(source, name, got.rows.columns, parsed_rows=got.rows.height)
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        frames.append(got.rows.with_columns(pl.lit(modified, dtype=pl.Datetime("us", "UTC")).alias("_extracted_at")))
        rejects.extend(got.rejects)
    rows = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    return SourceExtract(rows, rejects, names)


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
    extract: SourceExtract, source: SourceConfig, *, country: str
) -> tuple[pl.DataFrame, list[Reject]]:
    """Canonical records for the parsed rows, plus the rows rejected for bad dates or record ids."""
    df = extract.rows.with_row_index("_row")
    rejects: list[Reject] = []
    reasons = pl.Series("reason", [None] * df.height, dtype=pl.String)

    # Record id: the source's own key, or the row's line (prefixed by file when there are several files).
    if source.record_id:
        rid = std.tidy(pl.col(source.record_id))
    elif len(extract.files) > 1:
        rid = pl.col("_file") + pl.lit(":") + pl.col("_line").cast(pl.String)
    else:
        rid = pl.col("_line").cast(pl.String)
    df = df.with_columns(rid.alias("_rid"))

    # Dates: a value that is present but does not parse is a malformed row (the first bad date is named).
    for field_name in DATE_FIELDS:
        mapping = source.fields.get(field_name)
        parsed, text_col = f"_{field_name}", f"_{field_name}_text"
        if mapping is None:
            df = df.with_columns(pl.lit(None, dtype=pl.Date).alias(parsed))
            continue
        fmt = mapping.format or DEFAULT_DATE_FORMAT
        text = std.tidy(pl.col(mapping.column))
        df = df.with_columns(text.str.strptime(pl.Date, fmt, strict=False).alias(parsed), text.alias(text_col))
        bad = df.select(pl.col(parsed).is_null() & pl.col(text_col).is_not_null()).to_series()
        msg = df.select(
            pl.format(
                "bad date in {} (column {}): {} does not match {}",
                pl.lit(field_name),
                pl.lit(mapping.column),
                pl.lit("'") + pl.col(text_col) + pl.lit("'"),
                pl.lit(fmt),
            )
        ).to_series()
        reasons = pl.select(pl.when(reasons.is_null() & bad).then(msg).otherwise(reasons)).to_series()

    # Missing and duplicate record ids (the first occurrence wins; later ones are rejected).
    missing = df.get_column("_rid").is_null()
    reasons = pl.select(
        pl.when(reasons.is_null() & missing)
        .then(pl.lit(f"missing record id (column {source.record_id or '_line'})"))
        .otherwise(reasons)
    ).to_series()
    ok_so_far = df.filter(reasons.is_null())
    first_seen = ok_so_far.group_by("_rid").agg(pl.col("_line").first().alias("_first_line"), pl.col("_row").min().alias("_first_row"))
    df = df.join(first_seen, on="_rid", how="left", maintain_order="left")
    dup = (df.get_column("_row") != df.get_column("_first_row")) & reasons.is_null()
    dup_msg = df.select(
        pl.format("duplicate record id {} (first seen on line {})", pl.lit("'") + pl.col("_rid") + pl.lit("'"), pl.col("_first_line"))
    ).to_series()
    reasons = pl.select(pl.when(dup.fill_null(False)).then(dup_msg).otherwise(reasons)).to_series()

    df = df.with_columns(reasons.alias("_reason"))
    bad_rows = df.filter(pl.col("_reason").is_not_null())
    data_cols = [c for c in extract.rows.columns if not c.startswith("_")]
    for row in bad_rows.select([*data_cols, "_file", "_line", "_reason"]).iter_rows(named=True):
        rejects.append(Reject(row["_file"], row["_line"], row["_reason"], raw_text(row)))
    good = df.filter(pl.col("_reason").is_null())
    return canonical_records(good, source, country=country, data_columns=data_cols), rejects


def canonical_records(df: pl.DataFrame, source: SourceConfig, *, country: str, data_columns: list[str]) -> pl.DataFrame:
    """Project parsed rows onto the canonical columns (see `standardise.CANONICAL_COLUMNS`)."""
    f = source.fields

    def col(name: str) -> pl.Expr:
        return std.tidy(pl.col(f[name].column)) if name in f else pl.lit(None, dtype=pl.String)

    out = df.select(
        pl.lit(source.name).alias("source"),
        pl.col("_rid").alias("source_record_id"),
        pl.col("_file").alias("source_file"),
        pl.col("_line").alias("source_line"),
        pl.col("_extracted_at").alias("extracted_at"),
        col("given_name").alias("given_name"),
        col("middle_name").alias("middle_name"),
        col("family_name").alias("family_name"),
        col("full_name").alias("full_name"),
        pl.col("_date_of_birth").alias("date_of_birth"),
        pl.col("_date_of_death").alias("date_of_death"),
        (std.normalise_sex(pl.col(f["sex"].column)) if "sex" in f else pl.lit(None, dtype=pl.String)).alias("sex"),
        *std.national_id_columns(col("national_id"), country=country),
        col("street").alias("street"),
        col("house_number").alias("house_number"),
        col("unit").alias("unit"),
        std.normalise_postcode(col("postcode"), country=country).alias("postcode"),
        col("city").alias("city"),
        col("birth_place").alias("birth_place"),
        col("email").str.to_lowercase().alias("email"),
        col("phone").alias("phone"),
        _attributes(df, source, data_columns).alias("attributes"),
    )
    # A one-field name fills the name parts a source did not map separately, and vice versa.
    if "full_name" in f:
        given, family = std.split_full_name(pl.col("full_name"))
        out = out.with_columns(
            pl.coalesce("given_name", given).alias("given_name"), pl.coalesce("family_name", family).alias("family_name")
        )
    out = out.with_columns(
        pl.coalesce(
            "full_name",
            std.tidy(pl.concat_str(["given_name", "middle_name", "family_name"], separator=" ", ignore_nulls=True)),
        ).alias("full_name")
    )
    for name in ("given_name", "middle_name", "family_name", "street", "city", "birth_place"):
        out = out.with_columns(std.per_distinct(name, std.fold, out).alias(f"{name}_std"))
    # Full names are nearly unique: fold the parts (few distinct values) and join them, in given-family order.
    out = out.with_columns(
        pl.col("family_name_std").alias("_family_folded"),
        std.tidy(
            pl.concat_str(["given_name_std", "middle_name_std", "family_name_std"], separator=" ", ignore_nulls=True)
        ).alias("full_name_std"),
    )
    out = out.with_columns(
        std.per_distinct("_family_folded", std.family_key, out).alias("family_name_std"),
        std.per_distinct("_family_folded", std.name_prefix, out).alias("name_prefix"),
        std.per_distinct("given_name_std", std.first_name_of, out).alias("first_name_std"),
        std.per_distinct("given_name_std", std.initials_of, out).alias("initials"),
        std.normalise_phone(out, "phone", country=country).alias("phone"),
    )
    return out.select([pl.col(c).cast(t) for c, t in std.CANONICAL_COLUMNS.items()])


def _attributes(df: pl.DataFrame, source: SourceConfig, data_columns: list[str]) -> pl.Expr:
    """The source's unmapped columns as one JSON object (shown on the caseworker profile)."""
    mapped = {m.column for m in source.fields.values()} | ({source.record_id} if source.record_id else set())
    rest = [c for c in data_columns if c not in mapped]
    if not rest:
        return pl.lit(None, dtype=pl.String)
    return pl.struct([pl.col(c) for c in rest]).struct.json_encode()


def ingest_source(con: duckdb.DuckDBPyConnection, sources: SourcesFile, name: str) -> IngestReport:
    """Read, standardise and load one source; the warehouse changes all at once or not at all."""
    started = time.perf_counter()
    source = sources.source(name)
    extract = read_source(sources, source)
    canonical, late_rejects = standardise_source(extract, source, country=sources.country)
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
    rows_in = extract.rows.height + len(extract.rejects)
    report = IngestReport(
        source=source.name,
        files=extract.files,
        rows_in=rows_in,
        rows_loaded=canonical.height,
        rows_rejected=len(rejects),
        rejected_by_reason=dict(Counter(_reason_kind(r.reason) for r in rejects).most_common()),
        national_id_valid_rate=_rate(canonical, "national_id_valid") if "national_id" in source.fields else None,
        date_of_birth_filled_rate=(
            canonical.get_column("date_of_birth").is_not_null().mean() if "date_of_birth" in source.fields else None
        ),
    )
    if not report.balanced:  # a bug, never a data problem: refuse to write an unbalanced load
        raise RuntimeError(f"source {name!r}: {rows_in} rows read but {report.rows_loaded} + {report.rows_rejected} accounted for")
    raw = extract.rows
    table = quote(source.name)
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("_raw_rows", raw)
        con.register("_canonical_rows", canonical)
        con.register("_rejected_rows", rejects_df)
        con.execute(f"CREATE OR REPLACE TABLE raw.{table} AS SELECT * FROM _raw_rows")
        con.execute(f"CREATE OR REPLACE TABLE canonical.{table} AS SELECT * FROM _canonical_rows")
        con.execute("DELETE FROM rejected_records WHERE source = ?", [source.name])
        con.execute("INSERT INTO rejected_records (source, file, line, reason, raw) SELECT * FROM _rejected_rows")
        con.execute(
            "INSERT INTO ingest_log (source, files, rows_in, rows_loaded, rows_rejected) VALUES (?, ?, ?, ?, ?)",
            [source.name, report.files, report.rows_in, report.rows_loaded, report.rows_rejected],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for view in ("_raw_rows", "_canonical_rows", "_rejected_rows"):
            con.unregister(view)
    report.seconds = time.perf_counter() - started
    return report


def _reason_kind(reason: str) -> str:
    """The kind of a rejection reason ("bad date in date_of_birth ..." -> "bad date")."""
    for kind in ("bad date", "wrong field count", "undecodable bytes", "invalid JSON", "duplicate record id",
                 "missing record id", "malformed quoting", "expected a JSON object"):  # fmt: skip
        if reason.startswith(kind):
            return kind
    return reason.split(":")[0]


def _rate(df: pl.DataFrame, column: str) -> float | None:
    s = df.get_column(column).drop_nulls()
    return float(s.mean()) if s.len() else None
