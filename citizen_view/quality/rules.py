"""Quality rules: each is a query for the rows that break it, plus the evidence a reviewer needs.

Rules are plain functions over the warehouse (tests call them directly); `assets/gates.py` wraps each
as a blocking Dagster asset check. A rule passes when its bad rows stay within the bound configured
in `sources.yaml` (`quality:`), and reports the figures and a sample of offending rows either way.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import polars as pl

from citizen_view.canonical import DEFAULT_DATE_FORMAT, IMPLAUSIBLE, IMPOSSIBLE
from citizen_view.standardise import CANONICAL_COLUMNS
from citizen_view.warehouse import column_exists, quote

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import QualityConfig, SourceConfig

SAMPLE_ROWS = 5


@dataclass
class RuleResult:
    """The outcome of one rule: passed or not, why, and the evidence."""

    rule: str
    passed: bool
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    sample_total: int | None = None  # offending rows in all, of which `sample` shows the first SAMPLE_ROWS
    sample_columns: list[str] = field(default_factory=list)  # the evidence's columns, known even when it is empty

    def __post_init__(self) -> None:
        if self.sample_total is None:
            self.sample_total = getattr(self.sample, "total", len(self.sample))
        if not self.sample_columns:
            self.sample_columns = list(getattr(self.sample, "columns", None) or (self.sample[0] if self.sample else []))


class Sample(list):
    """The first rows of a rule's evidence, knowing how many rows there were in all and their columns."""

    def __init__(self, rows: list[dict[str, Any]], *, total: int, columns: list[str]):
        super().__init__(rows)
        self.total = total
        self.columns = columns


def value_shape(value: str | None) -> str | None:
    """A value's shape without the value: each digit a 9, each letter an a (A in capitals), everything else as it is
    ("15-13-2005" -> "99-99-9999", "Jansen" -> "Aaaaaa"): enough to see a wrong format, not whose it is."""
    if value is None:
        return None
    out = []
    for c in value[:60]:
        if c.isdigit():
            out.append("9")
        elif c.isalpha():
            out.append("A" if c.isupper() else "a")
        else:
            out.append(c)
    return "".join(out) + ("..." if len(value) > 60 else "")


def _sample(df: pl.DataFrame | list[dict[str, Any]], *, total: int | None = None) -> Sample:
    """The first SAMPLE_ROWS offending rows (as text), with their total (`total` when `df` is itself a sample); the
    values of identifying columns by their shape only (IDENTIFYING_EVIDENCE)."""
    if isinstance(df, list):
        rows = [
            {k: value_shape(str(v)) if k in IDENTIFYING_EVIDENCE and v is not None else v for k, v in r.items()}
            for r in df[:SAMPLE_ROWS]
        ]
        return Sample(rows, total=len(df) if total is None else total, columns=list(df[0]) if df else [])
    rows = [
        {
            k: (value_shape(str(v)) if k in IDENTIFYING_EVIDENCE else str(v)) if v is not None else None
            for k, v in r.items()
        }
        for r in df.head(SAMPLE_ROWS).to_dicts()
    ]
    return Sample(rows, total=df.height if total is None else total, columns=df.columns)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    return con.execute(sql, params or []).fetchall()[0][0]


STAGING = "staging"
# Loads whose extract became the source's current data: what later loads are judged against.
ACCEPTED_STATUSES = ("accepted", "released")


@dataclass(frozen=True)
class IngestTables:
    """Where the ingest rules read one source's extract: the published tables, or the staged (audited) ones."""

    canonical: str
    field_issues: str
    rejected: str
    staged: bool = False

    @classmethod
    def of(cls, source: str, *, staged: bool = False) -> IngestTables:
        if staged:
            return cls(
                f"{STAGING}.{quote('canonical_' + source)}",
                f"{STAGING}.field_issues",
                f"{STAGING}.rejected_records",
                True,
            )
        return cls(f"canonical.{quote(source)}", "field_issues", "rejected_records")


CONFIDENCE = 0.95


def wilson_interval(bad: int, total: int, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of the share `bad / total` (two-sided, at `confidence`).

    Wilson rather than the normal approximation: it stays inside [0, 1] and is honest for small samples and
    shares near 0 or 1, which is where extract bounds live (Brown, Cai & DasGupta 2001)."""
    if total <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = bad / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


# --- raw / canonical -------------------------------------------------------------------------------


def canonical_schema(con: duckdb.DuckDBPyConnection, source: str, *, staged: bool = False) -> RuleResult:
    """The canonical table has exactly the canonical columns with their types."""
    schema, name = (STAGING, f"canonical_{source}") if staged else ("canonical", source)
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    have = dict(rows)
    expected = {name: _duck_type(t) for name, t in CANONICAL_COLUMNS.items()}
    bad = [
        {"column": c, "expected": t, "found": have.get(c, "missing")} for c, t in expected.items() if have.get(c) != t
    ] + [{"column": c, "expected": "absent", "found": t} for c, t in have.items() if c not in expected]
    return RuleResult(
        "canonical_schema",
        not bad,
        f"{len(bad)} column(s) differ from the canonical schema",
        {"columns": len(have), "differences": len(bad)},
        _sample(bad),
    )


def _duck_type(t: pl.DataType) -> str:
    return {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Date: "DATE", pl.Boolean: "BOOLEAN"}.get(
        t, "TIMESTAMP WITH TIME ZONE"
    )


def required_fields(
    con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig, *, staged: bool = False
) -> RuleResult:
    """Records missing a field the source declares `required`, within `max_missing_required_share` (at 95% confidence)."""
    if not source.required:
        return RuleResult("required_fields", True, "no required fields declared", {"required": []})
    missing = " OR ".join(f"{quote(f)} IS NULL" for f in source.required)
    table = IngestTables.of(source.name, staged=staged).canonical
    bad = con.sql(
        f"SELECT source_record_id, source_line, {', '.join(source.required)} FROM {table} WHERE {missing}"
    ).pl()
    total = _scalar(con, f"SELECT count(*) FROM {table}")
    result = share_within(
        "required_fields",
        bad=bad,
        total=total,
        what=f"records miss a required field {source.required}",
        **_bound(q, "max_missing_required_share"),
    )
    result.figures |= {"records": total, "missing": bad.height}
    return result


def _bound(q: QualityConfig, setting: str) -> dict[str, Any]:
    """share_within's bound from the quality setting named once: its value (a `min_*` setting bounds the share of
    good rows, a `max_*` one the share of bad rows) and its name, which the summary says."""
    share = "min_share" if setting.startswith("min_") else "max_share"
    return {share: getattr(q, setting), "setting": f"quality.{setting}"}


def share_within(
    rule: str,
    *,
    bad: pl.DataFrame,
    total: int,
    what: str,
    max_share: float | None = None,
    min_share: float | None = None,
    figures: dict[str, Any] | None = None,
    setting: str | None = None,
    bad_count: int | None = None,
) -> RuleResult:
    """The one "share within a bound" rule: `bad` rows out of `total`, as a share of bad rows (`max_share`)
    or of good rows (`min_share`), with the offending rows as evidence.

    The share is judged with its sampling uncertainty: the rule fails only when the whole 95% Wilson interval
    lies beyond the bound, so 2 bad values in 37 rows are noise while 2,000 in 37,000 are a broken extract.
    `setting` names the `sources.yaml` setting that moves the bound; the summary says it. `bad_count`: the number
    of bad rows when `bad` is only their sample."""
    n_bad = bad.height if bad_count is None else bad_count
    share_bad = n_bad / total if total else 0.0
    low_bad, high_bad = wilson_interval(n_bad, total)
    if min_share is not None:
        share, bound = 1 - share_bad, min_share
        low, high = 1 - high_bad, 1 - low_bad
        ok = high >= min_share
        summary = f"{share:.2%} of {total:,} {what} (95% interval {low:.2%}..{high:.2%}; bound at least {bound:.2%}"
    else:
        bound = 0.0 if max_share is None else max_share
        share, low, high = share_bad, low_bad, high_bad
        ok = n_bad == 0 if bound == 0 else low <= bound
        summary = (
            f"{n_bad:,} of {total:,} {what} ({share:.2%}, 95% interval {low:.2%}..{high:.2%}; bound at most {bound:.2%}"
        )
    summary += f", set by {setting})" if setting else ")"
    if not ok:
        summary += ": beyond the bound with 95% confidence"
    return RuleResult(
        rule,
        ok,
        summary,
        {
            "total": total,
            "bad": n_bad,
            "share": round(share, 5),
            "interval_low": round(low, 5),
            "interval_high": round(high, 5),
            "bound": bound,
            **({"setting": setting} if setting else {}),
            **(figures or {}),
        },
        _sample(bad, total=n_bad),
    )


def _issues(
    con: duckdb.DuckDBPyConnection, source: str, field: str, tables: IngestTables | None = None, *, where: str = "TRUE"
) -> pl.DataFrame:
    table = (tables or IngestTables.of(source)).field_issues
    return con.sql(
        f"SELECT record_id, line, raw, reason FROM {table} WHERE source = ? AND field = ? AND ({where}) ORDER BY line",
        params=[source, field],
    ).pl()


def national_id_validity(
    con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig, *, scheme: str, staged: bool = False
) -> RuleResult:
    """Share of present national IDs that pass their declared scheme's checksum, at least `min_national_id_valid_share`.

    An opaque identifier (scheme `none`) has no checksum: the rule passes and says so.
    """
    if "national_id" not in source.fields:
        return RuleResult("national_id_validity", True, "source has no national ID", {})
    if scheme == "none":
        return RuleResult(
            "national_id_validity", True, "opaque identifier (scheme none): no checksum to check", {"scheme": scheme}
        )
    tables = IngestTables.of(source.name, staged=staged)
    bad = _issues(con, source.name, "national_id", tables)
    valid = _scalar(con, f"SELECT count(national_id) FROM {tables.canonical}")
    return share_within(
        "national_id_validity",
        bad=bad,
        total=valid + bad.height,
        what=f"national IDs pass the {scheme} checksum",
        **_bound(q, "min_national_id_valid_share"),
        figures={"scheme": scheme},
    )


# A birth date set aside as a keying typo: the declared format's shape, but no such day or an implausible year
# (canonical.py's reasons). Any other set-aside birth date (not the format's shape, a value the reader could not
# read) is unreadable: the sign of a broken extract.
_DATE_TYPO = f"(starts_with(reason, '{IMPOSSIBLE}') OR starts_with(reason, '{IMPLAUSIBLE}'))"


def date_of_birth_validity(
    con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig, *, staged: bool = False
) -> RuleResult:
    """Share of present birth dates that are readable in the declared format (its shape: digits where the format
    puts them), at least `min_date_of_birth_valid_share`. An unreadable date says the extract is broken (a wrong
    format, a column shifted); a readable but impossible date is a keying typo, judged by `date_of_birth_typos`."""
    if "date_of_birth" not in source.fields:
        return RuleResult("date_of_birth_validity", True, "source has no date of birth", {})
    tables = IngestTables.of(source.name, staged=staged)
    bad = _issues(con, source.name, "date_of_birth", tables, where=f"NOT {_DATE_TYPO}")
    present = _scalar(con, f"SELECT count(date_of_birth) FROM {tables.canonical}") + _scalar(
        con, f"SELECT count(*) FROM {tables.field_issues} WHERE source = ? AND field = 'date_of_birth'", [source.name]
    )
    fmt = source.fields["date_of_birth"].format or DEFAULT_DATE_FORMAT
    return share_within(
        "date_of_birth_validity",
        bad=bad,
        total=present,
        what=f"birth dates are readable in the format {fmt}",
        **_bound(q, "min_date_of_birth_valid_share"),
        figures={"format": fmt},
    )


def date_of_birth_typos(
    con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig, *, staged: bool = False
) -> RuleResult:
    """Readable birth dates that are no date (month 86, 31 February) or outside the plausibility years
    (quality.earliest/latest_date_of_birth): keying typos, at most `max_date_of_birth_typo_share` of the readable
    dates. They stay out of the golden record and open data but still count in linkage (`date_of_birth_text`)."""
    if "date_of_birth" not in source.fields:
        return RuleResult("date_of_birth_typos", True, "source has no date of birth", {})
    tables = IngestTables.of(source.name, staged=staged)
    bad = _issues(con, source.name, "date_of_birth", tables, where=_DATE_TYPO)
    good = _scalar(con, f"SELECT count(date_of_birth) FROM {tables.canonical}")
    return share_within(
        "date_of_birth_typos",
        bad=bad,
        total=good + bad.height,
        what="readable birth dates are impossible or implausible (keying typos)",
        **_bound(q, "max_date_of_birth_typo_share"),
        figures={
            "earliest": str(q.earliest_date_of_birth),
            "latest": str(q.latest_date_of_birth or "the day of the run"),
        },
    )


# Fields a rule of their own judges: field_issue_share leaves them out, so one bad value is judged once.
JUDGED_APART = ("date_of_birth", "national_id")


def field_issue_share(
    con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig, *, staged: bool = False
) -> RuleResult:
    """For every mapped field but those judged by a rule of their own (JUDGED_APART: birth dates, national IDs),
    values set aside (not parsed or not valid) stay at most `max_field_issue_share` of the records."""
    tables = IngestTables.of(source.name, staged=staged)
    total = _scalar(con, f"SELECT count(*) FROM {tables.canonical}")
    apart = ", ".join(f"'{f}'" for f in JUDGED_APART)
    per_field = dict(
        con.execute(
            f"SELECT field, count(*) FROM {tables.field_issues} WHERE source = ? AND field NOT IN ({apart}) "
            "GROUP BY 1 ORDER BY 2 DESC, 1",
            [source.name],
        ).fetchall()
    )
    worst = max(per_field, key=per_field.get) if per_field else None
    bad = _issues(con, source.name, worst, tables) if worst else pl.DataFrame(schema={"record_id": pl.String})
    result = share_within(
        "field_issue_share",
        bad=bad,
        total=total,
        what=f"records have a quarantined {worst or 'value'} (the worst field; birth dates and IDs are judged apart)",
        **_bound(q, "max_field_issue_share"),
        figures={"issues_per_field": per_field},
    )
    return result


def rejected_share(
    con: duckdb.DuckDBPyConnection, source: str, q: QualityConfig, *, rows_in: int | None = None, staged: bool = False
) -> RuleResult:
    """Rows rejected at ingest, at most `max_rejected_share` of the rows read (at 95% confidence).

    `rows_in`: the rows read from the extract under audit; without it, the latest load in `ingest_log`."""
    tables = IngestTables.of(source, staged=staged)
    sample = con.sql(
        f"SELECT file, line, reason FROM {tables.rejected} WHERE source = ? ORDER BY line", params=[source]
    ).pl()
    rejected = sample.height
    if rows_in is None:
        last = con.execute(
            "SELECT rows_in, rows_rejected FROM ingest_log WHERE source = ? ORDER BY loaded_at DESC LIMIT 1", [source]
        ).fetchall()
        rows_in, rejected = last[0] if last else (0, 0)
    reasons = dict(
        con.execute(
            f"SELECT split_part(reason, ':', 1), count(*) FROM {tables.rejected} WHERE source = ? GROUP BY 1 ORDER BY 2 DESC, 1",
            [source],
        ).fetchall()
    )
    result = share_within(
        "rejected_share",
        bad=sample,
        total=rows_in,
        what="rows rejected",
        **_bound(q, "max_rejected_share"),
        figures={"reasons": reasons},
        bad_count=rejected,
    )
    result.figures |= {"rows_in": rows_in, "rejected": rejected}
    return result


def last_accepted_load(con: duckdb.DuckDBPyConnection, source: str, *, before: Any = None) -> tuple[int, Any] | None:
    """(rows loaded, loaded at) of the source's latest accepted or released load (before `before`, when given):
    the reference a new extract is judged against. A held or rejected load never is."""
    status = ", ".join(f"'{s}'" for s in ACCEPTED_STATUSES)
    where = " AND loaded_at < ?" if before is not None else ""
    rows = con.execute(
        f"SELECT rows_loaded, loaded_at FROM ingest_log WHERE source = ? AND coalesce(status, 'accepted') IN ({status}){where} "
        "ORDER BY loaded_at DESC LIMIT 1",
        [source, *([before] if before is not None else [])],
    ).fetchall()
    return rows[0] if rows else None


def row_count_drift(
    con: duckdb.DuckDBPyConnection,
    source: str,
    q: QualityConfig,
    *,
    rows_loaded: int | None = None,
    allow_empty: bool = False,
) -> RuleResult:
    """Rows loaded changed by at most `max_row_count_drift` (a share) against the last *accepted* load, and an
    extract with no records is held back unless the source declares `allow_empty: true` (first load or not).

    `rows_loaded`: the extract under audit; without it, the latest load in `ingest_log` (judged against the
    accepted load before it)."""
    if rows_loaded is None:
        latest = con.execute(
            "SELECT rows_loaded, loaded_at FROM ingest_log WHERE source = ? ORDER BY loaded_at DESC LIMIT 1", [source]
        ).fetchall()
        now, when = latest[0] if latest else (0, None)
        previous = last_accepted_load(con, source, before=when) if latest else None
    else:
        now, previous = rows_loaded, last_accepted_load(con, source)
    if now == 0 and not allow_empty:
        had = f"; the last accepted load had {previous[0]:,}" if previous else " (first load)"
        return RuleResult(
            "row_count_drift",
            False,
            f"the extract holds no records{had}: an empty or header-only file is held back "
            f"(declare allow_empty: true on the source if empty is normal)",
            {
                "rows_loaded": 0,
                "previous": previous[0] if previous else None,
                "bound": q.max_row_count_drift,
                "setting": "sources[].allow_empty",
            },
        )
    if previous is None:
        return RuleResult("row_count_drift", True, "first load: nothing to compare with", {"rows_loaded": now})
    before = previous[0]
    if now == 0:  # allowed empty
        return RuleResult(
            "row_count_drift",
            True,
            f"an empty extract (allow_empty) against {before:,} rows last accepted",
            {"rows_loaded": 0, "previous": before, "bound": q.max_row_count_drift},
        )
    drift = abs(now - before) / before if before else float("inf")
    return RuleResult(
        "row_count_drift",
        drift <= q.max_row_count_drift,
        f"{now:,} rows loaded against {before:,} in the last accepted load ({drift:+.1%} drift, bound "
        f"{q.max_row_count_drift:.0%}, set by quality.max_row_count_drift)",
        {
            "rows_loaded": now,
            "previous": before,
            "drift": round(drift, 5),
            "bound": q.max_row_count_drift,
            "setting": "quality.max_row_count_drift",
        },
    )


def required_sources_accepted(con: duckdb.DuckDBPyConnection, required: list[str]) -> RuleResult:
    """No source declared `required_for_publication` has its latest extract held back: open data built without
    that source's newest data must not be published."""
    held = con.sql(
        "SELECT source, loaded_at AS held_since, reason FROM ingest_log l WHERE status = 'held' AND list_contains(?, source) "
        "AND loaded_at = (SELECT max(loaded_at) FROM ingest_log m WHERE m.source = l.source) ORDER BY source",
        params=[required],
    ).pl()
    names = held.get_column("source").to_list()
    summary = (
        f"held back, and required for publication (sources[].required_for_publication): {', '.join(names)}; "
        f"release or reject the extract (citizen-view release|reject SOURCE) to publish"
        if names
        else f"every source required for publication has its latest extract accepted ({', '.join(required)})"
    )
    return RuleResult(
        "required_sources_accepted", not names, summary, {"required": required, "held": names}, _sample(held)
    )


# --- linkage ---------------------------------------------------------------------------------------


def every_record_linked_once(con: duckdb.DuckDBPyConnection) -> RuleResult:
    """Every loaded source record appears in citizen_source_link exactly once, and nothing else does."""
    bad = con.sql(
        """
        SELECT coalesce(r.record_key, l.record_key) AS record_key, count(l.citizen_id) AS links
        FROM source_records r FULL JOIN citizen_source_link l USING (record_key)
        GROUP BY ALL HAVING count(l.citizen_id) <> 1 OR bool_or(r.record_key IS NULL)
        """
    ).pl()
    total = _scalar(con, "SELECT count(*) FROM source_records")
    return RuleResult(
        "every_record_linked_once",
        bad.height == 0,
        f"{bad.height:,} of {total:,} records not linked exactly once",
        {"records": total, "violations": bad.height},
        _sample(bad),
    )


def no_empty_citizen(con: duckdb.DuckDBPyConnection) -> RuleResult:
    """Every citizen has at least one linked record, and every linked citizen has a golden record."""
    bad = con.sql(
        """
        SELECT coalesce(c.citizen_id, l.citizen_id) AS citizen_id, c.citizen_id IS NULL AS no_golden_record,
               l.citizen_id IS NULL AS no_records
        FROM citizen c FULL JOIN (SELECT DISTINCT citizen_id FROM citizen_source_link) l USING (citizen_id)
        WHERE c.citizen_id IS NULL OR l.citizen_id IS NULL
        """
    ).pl()
    return RuleResult(
        "no_empty_citizen",
        bad.height == 0,
        f"{bad.height:,} citizens without records or without a golden record",
        {"citizens": _scalar(con, "SELECT count(*) FROM citizen"), "violations": bad.height},
        _sample(bad),
    )


def citizen_sizes(con: duckdb.DuckDBPyConnection, q: QualityConfig) -> RuleResult:
    """No citizen looks chained: more records than the data's own bound, or records its links do not connect.

    The bound is a robust outlier fence on records per citizen (`clusters.size_bound`), lowered by
    `quality.max_citizen_records` when set. A citizen whose records fall into several pieces on its links
    at or above the threshold (and reviewers' `same` decisions) was put together by something other than
    evidence. The evidence names each offender with its size, link density, pieces and bridge links.
    """
    from citizen_view.linkage.clusters import size_bound

    sizes = con.sql("SELECT citizen_id, count(*) AS records FROM citizen_source_link GROUP BY 1").pl()
    bound = size_bound(sizes.get_column("records").to_numpy(), cap=q.max_citizen_records)
    shapes = _citizen_shapes(con, sizes)
    flagged = sizes.join(shapes, on="citizen_id", how="left")
    too_big = pl.col("records") > bound if bound is not None else pl.lit(False)
    bad = (
        flagged.filter(too_big | (pl.col("pieces").fill_null(1) > 1))
        .with_columns(
            pl.when(too_big)
            .then(pl.lit(f"more than {bound} records"))
            .otherwise(pl.lit("records not connected by links"))
            .alias("why")
        )
        .sort(["records", "citizen_id"], descending=[True, False])
    )
    if shapes.height:  # bridges are counted for the offenders shown only (a graph walk each)
        bad = _with_bridges(con, bad.head(SAMPLE_ROWS)).vstack(
            bad.slice(SAMPLE_ROWS).with_columns(pl.lit(None, dtype=pl.Int64).alias("bridges"))
        )
        bad = bad.select("citizen_id", "records", "density", "pieces", "bridges", "why")
    else:  # not linked by this warehouse's model (no scored pairs): sizes only
        bad = bad.select("citizen_id", "records")
    dist = dict(
        con.execute(
            "SELECT least(n, 10)::VARCHAR || CASE WHEN n >= 10 THEN '+' ELSE '' END, count(*) "
            "FROM (SELECT count(*) AS n FROM citizen_source_link GROUP BY citizen_id) GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    largest = int(sizes.get_column("records").max() or 0)
    shown = "none" if bound is None else f"{bound:,}"
    return RuleResult(
        "citizen_sizes",
        bad.height == 0,
        f"largest citizen holds {largest:,} records (bound {shown}, from the records per citizen"
        f"{'' if q.max_citizen_records is None else f' and the cap {q.max_citizen_records}'}); {bad.height:,} look chained",
        {
            "largest": largest,
            "bound": bound,
            "cap": q.max_citizen_records,
            "citizens_by_record_count": dist,
            "chained": bad.height,
        },
        _sample(bad),
    )


def _citizen_links(con: duckdb.DuckDBPyConnection, *, rows: bool = False) -> pl.DataFrame | None:
    """Pairs of records of one citizen joined by a link at or above the threshold or a reviewer's `same` (citizen_id,
    a, b: their record keys; with `rows`, i and j: their `citizen_source_link` row ids instead); None before linkage."""
    from citizen_view.warehouse import table_exists

    if not (table_exists(con, "main", "match_edges") and table_exists(con, "main", "linkage_threshold")):
        return None
    same = (
        "UNION ALL SELECT record_key_l, record_key_r FROM link_overrides WHERE decision = 'same'"
        if table_exists(con, "main", "link_overrides")
        else ""
    )
    ends = "a.rowid AS i, b.rowid AS j" if rows else "e.record_key_l AS a, e.record_key_r AS b"
    return con.sql(
        f"""
        SELECT a.citizen_id, {ends}
        FROM (SELECT record_key_l, record_key_r FROM match_edges
              WHERE match_weight >= (SELECT threshold_weight FROM linkage_threshold) {same}) e
        JOIN citizen_source_link a ON a.record_key = e.record_key_l
        JOIN citizen_source_link b ON b.record_key = e.record_key_r AND a.citizen_id = b.citizen_id
        """
    ).pl()


def _citizen_shapes(con: duckdb.DuckDBPyConnection, sizes: pl.DataFrame) -> pl.DataFrame:
    """Per citizen: link density and the number of pieces its links leave it in (empty before linkage). Records are
    numbered by their `citizen_source_link` row ids, joined to the links in DuckDB: integers from there on (at 1M the
    same figures as numbering sorted record keys in Polars, in 2.9 instead of 4.5 s)."""
    from citizen_view.linkage.clusters import components

    pairs = _citizen_links(con, rows=True)
    if pairs is None:
        return pl.DataFrame(schema={"citizen_id": pl.String, "density": pl.Float64, "pieces": pl.UInt32})
    members = con.sql("SELECT rowid AS i, citizen_id FROM citizen_source_link").pl()
    nodes = int(members.get_column("i").max() or 0) + 1  # row ids of deleted rows are nodes of no citizen
    _, label = components(nodes, pairs.get_column("i").to_numpy(), pairs.get_column("j").to_numpy())
    pieces = (
        members.with_columns(pl.Series("piece", label[members.get_column("i").to_numpy()]))
        .group_by("citizen_id")
        .agg(pl.col("piece").n_unique().alias("pieces"))
    )
    n_links = pairs.select(
        "citizen_id", pl.min_horizontal("i", "j").alias("i"), pl.max_horizontal("i", "j").alias("j")
    ).unique()
    n_links = n_links.group_by("citizen_id").agg(pl.len().alias("links"))
    return (
        sizes.join(pieces, on="citizen_id", how="left")
        .join(n_links, on="citizen_id", how="left")
        .with_columns(
            pl.when(pl.col("records") > 1)
            .then((pl.col("links").fill_null(0) / (pl.col("records") * (pl.col("records") - 1) / 2)).round(4))
            .otherwise(1.0)
            .alias("density")
        )
        .select("citizen_id", "density", "pieces")
    )


def _with_bridges(con: duckdb.DuckDBPyConnection, bad: pl.DataFrame) -> pl.DataFrame:
    """`bad` with the number of bridge links (links whose removal splits the citizen) of each citizen."""
    from citizen_view.linkage.clusters import cluster_shape

    links = _citizen_links(con)
    counts = []
    for citizen_id in bad.get_column("citizen_id").to_list():
        keys = con.execute(
            "SELECT record_key FROM citizen_source_link WHERE citizen_id = ? ORDER BY 1", [citizen_id]
        ).fetchall()
        at = {k: i for i, (k,) in enumerate(keys)}
        mine = (
            links.filter(pl.col("citizen_id") == citizen_id) if links is not None else pl.DataFrame({"a": [], "b": []})
        )
        shape = cluster_shape(len(at), [at[k] for k in mine.get_column("a")], [at[k] for k in mine.get_column("b")])
        counts.append(shape.bridges)
    return bad.with_columns(pl.Series("bridges", counts, dtype=pl.Int64))


def cross_source_share(con: duckdb.DuckDBPyConnection, q: QualityConfig, *, dedupe_only: bool = False) -> RuleResult:
    """Share of records whose citizen is known to two or more sources, within the configured bounds. It does not
    apply to one source deduplicated on its own, or to sources each deduplicated apart (`link_type: dedupe_only`):
    nothing can be linked across sources there, so the gate passes and says why."""
    sources = _scalar(con, "SELECT count(DISTINCT source) FROM citizen_source_link") or 0
    if sources < 2 or dedupe_only:
        why = "one source, deduplicated on its own" if sources < 2 else "link_type dedupe_only: sources are not linked"
        return RuleResult("cross_source_share", True, f"not applicable: {why}", {"sources": sources, "applies": False})
    share = (
        _scalar(
            con,
            """
        SELECT avg((s.n_sources >= 2)::INT) FROM citizen_source_link l
        JOIN (SELECT citizen_id, count(DISTINCT source) AS n_sources FROM citizen_source_link GROUP BY 1) s USING (citizen_id)
        """,
        )
        or 0.0
    )
    ok = q.min_cross_source_share <= share <= q.max_cross_source_share
    hint = ""
    if (
        share < q.min_cross_source_share
        and column_exists(con, "main", "source_records", "enc_initial")
        and _scalar(
            con,
            "SELECT count(DISTINCT source) FROM source_records WHERE enc_initial IS NOT NULL OR enc_family_name IS NOT NULL",
        )
        >= 2
    ):  # encodings under different secrets never agree: they link nothing rather than link wrongly
        hint = "; encoded sources: were they all encoded with the same secret and schema (citizen-view encode)?"
    return RuleResult(
        "cross_source_share",
        ok,
        f"{share:.2%} of records linked across sources (bounds {q.min_cross_source_share:.0%}..{q.max_cross_source_share:.0%}){hint}",
        {
            "share": round(share, 5),
            "min": q.min_cross_source_share,
            "max": q.max_cross_source_share,
            "sources": sources,
        },
    )


def weak_links(con: duckdb.DuckDBPyConnection, q: QualityConfig) -> RuleResult:
    """Linked records whose strongest link is below probability 0.5, at most `max_weak_link_share`."""
    bad = con.sql(
        "SELECT citizen_id, record_key, match_probability FROM citizen_source_link "
        "WHERE match_probability < 0.5 ORDER BY match_probability"
    ).pl()
    linked = _scalar(con, "SELECT count(match_probability) FROM citizen_source_link")
    median = _scalar(con, "SELECT median(match_probability) FROM citizen_source_link")
    share = bad.height / linked if linked else 0.0
    return RuleResult(
        "match_probability_distribution",
        share <= q.max_weak_link_share,
        f"{bad.height:,} of {linked:,} linked records ({share:.2%}) rest on a link below probability 0.5",
        {
            "linked_records": linked,
            "weak": bad.height,
            "share": round(share, 5),
            "median_probability": median,
            "bound": q.max_weak_link_share,
        },
        _sample(bad),
    )


def areas_matched(con: duckdb.DuckDBPyConnection, q: QualityConfig) -> RuleResult:
    """Citizens whose address matched no official area stay at most `max_unmatched_area_share` of the citizens with an
    address (they are only counted nationally; a citizen with no address at all is counted apart). Without an area list (a country with none shipped and none declared in `publication.areas`) nothing
    can match: the tables are published nationally and the gate passes, saying so."""
    from citizen_view.areas import Method

    methods = dict(con.execute("SELECT method, count(*) FROM citizen_area GROUP BY 1 ORDER BY 2 DESC").fetchall())
    if set(methods) == {Method.NO_AREA_LIST.value}:
        return RuleResult(
            "areas_matched",
            True,
            "not applicable: no official area list for this country (declare publication.areas to publish by area); "
            "open data is published at national level only",
            {"citizens": methods[Method.NO_AREA_LIST.value], "applies": False},
        )
    # a citizen with no address at all (a record resolved online with a name and a birth date, say) is no address
    # matched to no area: counted apart, and left out of the share, which judges how addresses are matched
    bad = con.sql(
        "SELECT city, postcode, count(*) AS citizens FROM citizen_area WHERE area_code IS NULL "
        "AND (city IS NOT NULL OR postcode IS NOT NULL) GROUP BY ALL ORDER BY citizens DESC, city"
    ).pl()
    total, without = con.execute(
        "SELECT count(*), count(*) FILTER (area_code IS NULL AND city IS NULL AND postcode IS NULL) FROM citizen_area"
    ).fetchall()[0]
    addressed = total - without
    unmatched = int(bad.get_column("citizens").sum() or 0) if bad.height else 0
    share = unmatched / addressed if addressed else 0.0
    return RuleResult(
        "areas_matched",
        share <= q.max_unmatched_area_share,
        f"{unmatched:,} of {addressed:,} citizens with an address ({share:.2%}) have one matched to no official area "
        f"(bound {q.max_unmatched_area_share:.0%}); {without:,} have no address",
        {
            "citizens": total,
            "without_address": without,
            "unmatched": unmatched,
            "share": round(share, 5),
            "bound": q.max_unmatched_area_share,
            "by_method": methods,
        },
        _sample(bad),
    )


def published_person_share(loss: dict[str, Any], q: QualityConfig) -> RuleResult:
    """People counted in published finest cells (a municipality, no total) are at least `min_published_person_share`."""
    share = loss["published_person_share"]
    return RuleResult(
        "published_person_share",
        share >= q.min_published_person_share,
        f"{share:.2%} of {loss['persons_in_finest_cells']:,} people are counted in published municipality-level cells; "
        f"{loss['suppressed_cell_share']:.2%} of cells suppressed (bound at least {q.min_published_person_share:.0%})",
        {**loss, "bound": q.min_published_person_share},
    )


# --- publication -----------------------------------------------------------------------------------

# Columns that identify or help identify a person: never in an open-data table.
IDENTIFYING_COLUMNS = frozenset(
    {
        "citizen_id",
        "record_key",
        "source_record_id",
        "given_name",
        "middle_name",
        "family_name",
        "full_name",
        "national_id",
        "date_of_birth",
        "date_of_death",
        "street",
        "house_number",
        "unit",
        "postcode",
        "email",
        "phone",
        "birth_place",
        "initials",
    }
)
# Columns of a rule's evidence whose values are shown by their shape only (value_shape): the identifying columns and
# an agency's raw value (a national ID failing its checksum), but not the keys a reader needs to find the row in the
# quarantine (citizen_id, record_key, source_record_id), a postcode (a place, listed with counts where areas go
# unmatched) or initials. A rule's sample goes to Dagster's run storage and the warehouse's quality_results, which
# outlive the quarantine (a rejected extract's rows are dropped, its evidence not); the values stay in the quarantine.
IDENTIFYING_EVIDENCE = (
    IDENTIFYING_COLUMNS - {"citizen_id", "record_key", "source_record_id", "postcode", "initials"}
) | {"raw"}
_ID_LIKE = r"^\d{9}$|^\d{11}$|@|^\+?\d{8,}$"


def no_identifying_columns(table: pl.DataFrame, *, declared: tuple[str, ...]) -> RuleResult:
    """Only the declared columns, none of them identifying, and no value that looks like an ID, e-mail or phone."""
    extra = [c for c in table.columns if c not in declared]
    missing = [c for c in declared if c not in table.columns]
    identifying = sorted(set(table.columns) & IDENTIFYING_COLUMNS)
    text_cols = [c for c, t in table.schema.items() if t == pl.String]
    id_like = (
        table.filter(pl.any_horizontal(pl.col(c).str.contains(_ID_LIKE).fill_null(False) for c in text_cols))
        if text_cols
        else table.clear()
    )
    ok = not (extra or missing or identifying or id_like.height)
    return RuleResult(
        "no_identifying_columns",
        ok,
        f"columns {table.columns}; undeclared {extra}, missing {missing}, identifying {identifying}, "
        f"{id_like.height} value(s) that look like an ID, e-mail or phone",
        {
            "columns": table.columns,
            "undeclared": extra,
            "missing": missing,
            "identifying": identifying,
            "id_like_rows": id_like.height,
        },
        _sample(id_like),
    )


def cells_at_or_above_minimum(table: pl.DataFrame, rules) -> RuleResult:
    """Every published count is at least the minimum cell, or suppressed."""
    from citizen_view.disclosure import cells_below_minimum

    bad = cells_below_minimum(table, rules)
    return RuleResult(
        "disclosure_minimum_cell",
        bad.height == 0,
        f"{bad.height} published cell(s) below the minimum of {rules.min_cell}",
        {
            "cells": table.height,
            "below_minimum": bad.height,
            "suppressed": table.get_column("count").null_count(),
            "min_cell": rules.min_cell,
        },
        _sample(bad),
    )


def suppression_not_recoverable(
    table: pl.DataFrame,
    *,
    dims: tuple[str, ...],
    margins: tuple[str, ...],
    hierarchies: dict[str, dict[str, str]] | None = None,
    zeros_published: bool = True,
) -> RuleResult:
    """No suppressed cell is alone in a line that adds up to a published total (at any level of a hierarchy), nor
    determined by several lines together (a linear programme over every line, knowing a suppressed cell holds at least
    one person where zeros are published: disclosure.derived_cells)."""
    from citizen_view.disclosure import derived_cells, recoverable_cells

    bad = recoverable_cells(table, dims=list(dims), margins=list(margins), hierarchies=hierarchies)
    derived = derived_cells(
        table, dims=list(dims), margins=list(margins), hierarchies=hierarchies, zeros_published=zeros_published
    )
    return RuleResult(
        "disclosure_not_recoverable",
        bad.height == 0 and derived.height == 0,
        f"{bad.height} suppressed cell(s) could be recomputed from the totals, {derived.height} from several lines together",
        {
            "suppressed": table.get_column("count").null_count(),
            "recoverable": bad.height,
            "derived": derived.height,
            "margins": list(margins),
        },
        _sample(bad) if bad.height else _sample(derived),
    )


def expectation_suite(info, table: pl.DataFrame, disclosure) -> RuleResult:
    """A published table against its Great Expectations suite (`info`: an open_data.TableInfo, whose `spec` it is)."""
    from citizen_view.quality.expectations import validate_tables

    outcome = validate_tables(
        {info.name: table},
        {info.name: info.spec},
        min_cell=disclosure.min_cell,
        allow_zero=not disclosure.suppress_zeros,
    )[info.name]
    return RuleResult(
        "expectation_suite",
        outcome.success,
        f"{outcome.evaluated - len(outcome.failed)} of {outcome.evaluated} expectations met",
        {"evaluated": outcome.evaluated, "failed": len(outcome.failed)},
        outcome.failed[:5],
    )


def totals_consistent(
    con: duckdb.DuckDBPyConnection,
    name: str,
    table: pl.DataFrame,
    *,
    reference: dt.date,
    tolerance: int = 0,
    services: list[str] | None = None,
) -> RuleResult:
    """Published totals equal the same counts taken straight from the linked view (within rounding): the reference
    totals the table declares in `open_data.TABLES`. A table declaring none passes and says so."""
    from citizen_view.open_data import TABLES, NoReferenceTotals, Scope

    info = TABLES[name]
    if isinstance(info.totals, NoReferenceTotals):
        return RuleResult(
            "totals_consistent",
            True,
            f"no reference totals declared: {info.totals.reason}",
            {"compared": 0, "mismatches": 0, "suppressed_totals": 0, "declared": False},
        )
    scope = Scope(reference, services=tuple(services or ()))
    checks: list[tuple[str, int | float | None, int | float]] = []
    for total in info.totals:
        for key, truth in con.execute(total.truth(scope)).fetchall():
            row = table.filter(total.row(key))
            checks.append((total.what.format(key=key), row[total.column][0] if row.height else None, truth))
    bad = [
        {"total": what, "published": pub, "linked_view": truth}
        for what, pub, truth in checks
        if pub is not None and abs(pub - truth) > tolerance
    ]
    return RuleResult(
        "totals_consistent",
        not bad,
        f"{len(checks) - len(bad)} of {len(checks)} published total(s) match the linked view",
        {"compared": len(checks), "mismatches": len(bad), "suppressed_totals": sum(p is None for _, p, _ in checks)},
        _sample(bad),
    )
