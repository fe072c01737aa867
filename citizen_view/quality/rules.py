"""Quality rules: each is a query for the rows that break it, plus the evidence a reviewer needs.

Rules are plain functions over the warehouse (tests call them directly); `assets/gates.py` wraps each
as a blocking Dagster asset check. A rule passes when its bad rows stay within the bound configured
in `sources.yaml` (`quality:`), and reports the figures and a sample of offending rows either way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

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


def _sample(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: (str(v) if v is not None else None) for k, v in row.items()} for row in df.head(SAMPLE_ROWS).to_dicts()]


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    return con.execute(sql, params or []).fetchall()[0][0]


# --- raw / canonical -------------------------------------------------------------------------------


def canonical_schema(con: duckdb.DuckDBPyConnection, source: str) -> RuleResult:
    """The canonical table has exactly the canonical columns with their types."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'canonical' AND table_name = ? ORDER BY ordinal_position",
        [source],
    ).fetchall()
    have = dict(rows)
    expected = {name: _duck_type(t) for name, t in CANONICAL_COLUMNS.items()}
    bad = [
        {"column": c, "expected": t, "found": have.get(c, "missing")} for c, t in expected.items() if have.get(c) != t
    ] + [{"column": c, "expected": "absent", "found": t} for c, t in have.items() if c not in expected]
    return RuleResult(
        "canonical_schema", not bad, f"{len(bad)} column(s) differ from the canonical schema",
        {"columns": len(have), "differences": len(bad)}, bad[:SAMPLE_ROWS],
    )  # fmt: skip


def _duck_type(t: pl.DataType) -> str:
    return {pl.String: "VARCHAR", pl.Int64: "BIGINT", pl.Date: "DATE", pl.Boolean: "BOOLEAN"}.get(
        t, "TIMESTAMP WITH TIME ZONE"
    )


def required_fields(con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig) -> RuleResult:
    """Records missing a field the source declares `required`, within `max_missing_required_share`."""
    if not source.required:
        return RuleResult("required_fields", True, "no required fields declared", {"required": []})
    missing = " OR ".join(f"{quote(f)} IS NULL" for f in source.required)
    table = f"canonical.{quote(source.name)}"
    bad = con.sql(f"SELECT source_record_id, source_line, {', '.join(source.required)} FROM {table} WHERE {missing}").pl()
    total = _scalar(con, f"SELECT count(*) FROM {table}")
    share = bad.height / total if total else 0.0
    return RuleResult(
        "required_fields", share <= q.max_missing_required_share,
        f"{bad.height:,} of {total:,} records ({share:.2%}) miss a required field {source.required}",
        {"records": total, "missing": bad.height, "share": round(share, 5), "bound": q.max_missing_required_share},
        _sample(bad),
    )  # fmt: skip


def share_within(
    rule: str, *, bad: pl.DataFrame, total: int, what: str, max_share: float | None = None, min_share: float | None = None,
    figures: dict[str, Any] | None = None,
) -> RuleResult:
    """The one "share within a bound" rule: `bad` rows out of `total`, as a share of bad rows (`max_share`)
    or of good rows (`min_share`), with the offending rows as evidence."""
    share_bad = bad.height / total if total else 0.0
    if min_share is not None:
        share, bound, ok = 1 - share_bad, min_share, 1 - share_bad >= min_share
        summary = f"{share:.2%} of {total:,} {what} (bound at least {bound:.0%})"
    else:
        bound = 0.0 if max_share is None else max_share
        share, ok = share_bad, share_bad <= bound
        summary = f"{bad.height:,} of {total:,} {what} ({share:.2%}, bound at most {bound:.0%})"
    return RuleResult(
        rule, ok, summary, {"total": total, "bad": bad.height, "share": round(share, 5), "bound": bound, **(figures or {})},
        _sample(bad),
    )


def _issues(con: duckdb.DuckDBPyConnection, source: str, field: str) -> pl.DataFrame:
    return con.sql(
        "SELECT record_id, line, raw, reason FROM field_issues WHERE source = ? AND field = ? ORDER BY line",
        params=[source, field],
    ).pl()


def national_id_validity(con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig, *, scheme: str) -> RuleResult:
    """Share of present national IDs that pass their declared scheme's checksum, at least `min_national_id_valid_share`.

    An opaque identifier (scheme `none`) has no checksum: the rule passes and says so.
    """
    if "national_id" not in source.fields:
        return RuleResult("national_id_validity", True, "source has no national ID", {})
    if scheme == "none":
        return RuleResult("national_id_validity", True, "opaque identifier (scheme none): no checksum to check", {"scheme": scheme})
    bad = _issues(con, source.name, "national_id")
    valid = _scalar(con, f"SELECT count(national_id) FROM canonical.{quote(source.name)}")
    return share_within(
        "national_id_validity", bad=bad, total=valid + bad.height, what=f"national IDs pass the {scheme} checksum",
        min_share=q.min_national_id_valid_share, figures={"scheme": scheme},
    )


def date_of_birth_validity(con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig) -> RuleResult:
    """Share of present birth dates that are dates, and plausible (quality.earliest/latest_date_of_birth), at least
    `min_date_of_birth_valid_share`."""
    if "date_of_birth" not in source.fields:
        return RuleResult("date_of_birth_validity", True, "source has no date of birth", {})
    bad = _issues(con, source.name, "date_of_birth")
    good = _scalar(con, f"SELECT count(date_of_birth) FROM canonical.{quote(source.name)}")
    return share_within(
        "date_of_birth_validity", bad=bad, total=good + bad.height, what="birth dates are plausible dates",
        min_share=q.min_date_of_birth_valid_share,
        figures={"earliest": str(q.earliest_date_of_birth), "latest": str(q.latest_date_of_birth or "the day of the run")},
    )


def field_issue_share(con: duckdb.DuckDBPyConnection, source: SourceConfig, q: QualityConfig) -> RuleResult:
    """For every mapped field, values set aside (not parsed or not valid) stay at most `max_field_issue_share` of the records."""
    total = _scalar(con, f"SELECT count(*) FROM canonical.{quote(source.name)}")
    per_field = dict(
        con.execute("SELECT field, count(*) FROM field_issues WHERE source = ? GROUP BY 1 ORDER BY 2 DESC", [source.name]).fetchall()
    )
    worst = max(per_field, key=per_field.get) if per_field else None
    bad = _issues(con, source.name, worst) if worst else pl.DataFrame(schema={"record_id": pl.String})
    result = share_within(
        "field_issue_share", bad=bad, total=total, what=f"records have a quarantined {worst or 'value'} (the worst field)",
        max_share=q.max_field_issue_share, figures={"issues_per_field": per_field},
    )
    return result


def rejected_share(con: duckdb.DuckDBPyConnection, source: str, q: QualityConfig) -> RuleResult:
    """Rows rejected at ingest, at most `max_rejected_share` of the rows read."""
    last = con.execute(
        "SELECT rows_in, rows_rejected FROM ingest_log WHERE source = ? ORDER BY loaded_at DESC LIMIT 1", [source]
    ).fetchall()
    rows_in, rejected = last[0] if last else (0, 0)
    share = rejected / rows_in if rows_in else 0.0
    sample = con.sql(
        "SELECT file, line, reason FROM rejected_records WHERE source = ? ORDER BY line", params=[source]
    ).pl()
    reasons = dict(
        con.execute(
            "SELECT split_part(reason, ':', 1), count(*) FROM rejected_records WHERE source = ? GROUP BY 1 ORDER BY 2 DESC",
            [source],
        ).fetchall()
    )
    return RuleResult(
        "rejected_share", share <= q.max_rejected_share,
        f"{rejected:,} of {rows_in:,} rows rejected ({share:.2%}, ceiling {q.max_rejected_share:.0%})",
        {"rows_in": rows_in, "rejected": rejected, "share": round(share, 5), "bound": q.max_rejected_share, "reasons": reasons},
        _sample(sample),
    )  # fmt: skip


def row_count_drift(con: duckdb.DuckDBPyConnection, source: str, q: QualityConfig) -> RuleResult:
    """Rows loaded changed by at most `max_row_count_drift` (a share) against the previous load."""
    loads = con.execute(
        "SELECT rows_loaded, loaded_at FROM ingest_log WHERE source = ? ORDER BY loaded_at DESC LIMIT 2", [source]
    ).fetchall()
    if len(loads) < 2:
        return RuleResult("row_count_drift", True, "first load: nothing to compare with", {"rows_loaded": loads[0][0] if loads else 0})
    now, before = loads[0][0], loads[1][0]
    drift = abs(now - before) / before if before else (0.0 if now == 0 else float("inf"))
    return RuleResult(
        "row_count_drift", drift <= q.max_row_count_drift,
        f"{now:,} rows loaded against {before:,} last time ({drift:+.1%} drift, bound {q.max_row_count_drift:.0%})",
        {"rows_loaded": now, "previous": before, "drift": round(drift, 5), "bound": q.max_row_count_drift},
    )  # fmt: skip


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
        "every_record_linked_once", bad.height == 0, f"{bad.height:,} of {total:,} records not linked exactly once",
        {"records": total, "violations": bad.height}, _sample(bad),
    )  # fmt: skip


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
        "no_empty_citizen", bad.height == 0, f"{bad.height:,} citizens without records or without a golden record",
        {"citizens": _scalar(con, "SELECT count(*) FROM citizen"), "violations": bad.height}, _sample(bad),
    )  # fmt: skip


def citizen_sizes(con: duckdb.DuckDBPyConnection, q: QualityConfig) -> RuleResult:
    """No citizen holds more than `max_citizen_records` records (a sign of chained false merges)."""
    bad = con.sql(
        f"SELECT citizen_id, count(*) AS records FROM citizen_source_link GROUP BY 1 "
        f"HAVING count(*) > {int(q.max_citizen_records)} ORDER BY 2 DESC"
    ).pl()
    dist = dict(
        con.execute(
            "SELECT least(n, 10)::VARCHAR || CASE WHEN n >= 10 THEN '+' ELSE '' END, count(*) "
            "FROM (SELECT count(*) AS n FROM citizen_source_link GROUP BY citizen_id) GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    largest = _scalar(con, "SELECT max(n) FROM (SELECT count(*) AS n FROM citizen_source_link GROUP BY citizen_id)")
    return RuleResult(
        "citizen_sizes", bad.height == 0,
        f"largest citizen holds {largest:,} records (bound {q.max_citizen_records}); {bad.height:,} above the bound",
        {"largest": largest, "bound": q.max_citizen_records, "citizens_by_record_count": dist}, _sample(bad),
    )  # fmt: skip


def cross_source_share(con: duckdb.DuckDBPyConnection, q: QualityConfig, *, dedupe_only: bool = False) -> RuleResult:
    """Share of records whose citizen is known to two or more sources, within the configured bounds. It does not
    apply to one source deduplicated on its own, or to sources each deduplicated apart (`link_type: dedupe_only`):
    nothing can be linked across sources there, so the gate passes and says why."""
    sources = _scalar(con, "SELECT count(DISTINCT source) FROM citizen_source_link") or 0
    if sources < 2 or dedupe_only:
        why = "one source, deduplicated on its own" if sources < 2 else "link_type dedupe_only: sources are not linked"
        return RuleResult("cross_source_share", True, f"not applicable: {why}", {"sources": sources, "applies": False})
    share = _scalar(
        con,
        """
        SELECT avg((s.n_sources >= 2)::INT) FROM citizen_source_link l
        JOIN (SELECT citizen_id, count(DISTINCT source) AS n_sources FROM citizen_source_link GROUP BY 1) s USING (citizen_id)
        """,
    ) or 0.0
    ok = q.min_cross_source_share <= share <= q.max_cross_source_share
    hint = ""
    if share < q.min_cross_source_share and column_exists(con, "main", "source_records", "enc_initial") and _scalar(
        con, "SELECT count(DISTINCT source) FROM source_records WHERE enc_initial IS NOT NULL OR enc_family_name IS NOT NULL"
    ) >= 2:  # encodings under different secrets never agree: they link nothing rather than link wrongly
        hint = "; encoded sources: were they all encoded with the same secret and schema (citizen-view encode)?"
    return RuleResult(
        "cross_source_share", ok,
        f"{share:.2%} of records linked across sources (bounds {q.min_cross_source_share:.0%}..{q.max_cross_source_share:.0%}){hint}",
        {"share": round(share, 5), "min": q.min_cross_source_share, "max": q.max_cross_source_share, "sources": sources},
    )  # fmt: skip


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
        "match_probability_distribution", share <= q.max_weak_link_share,
        f"{bad.height:,} of {linked:,} linked records ({share:.2%}) rest on a link below probability 0.5",
        {"linked_records": linked, "weak": bad.height, "share": round(share, 5), "median_probability": median,
         "bound": q.max_weak_link_share},
        _sample(bad),
    )  # fmt: skip


def areas_matched(con: duckdb.DuckDBPyConnection, q: QualityConfig) -> RuleResult:
    """Citizens whose address matched no official area stay at most `max_unmatched_area_share` (they are only counted
    nationally). Without an area list (a country with none shipped and none declared in `publication.areas`) nothing
    can match: the tables are published nationally and the gate passes, saying so."""
    from citizen_view.areas import Method

    methods = dict(con.execute("SELECT method, count(*) FROM citizen_area GROUP BY 1 ORDER BY 2 DESC").fetchall())
    if set(methods) == {Method.NO_AREA_LIST.value}:
        return RuleResult(
            "areas_matched", True,
            "not applicable: no official area list for this country (declare publication.areas to publish by area); "
            "open data is published at national level only",
            {"citizens": methods[Method.NO_AREA_LIST.value], "applies": False},
        )  # fmt: skip
    bad = con.sql(
        "SELECT city, postcode, count(*) AS citizens FROM citizen_area WHERE area_code IS NULL GROUP BY ALL ORDER BY citizens DESC, city"
    ).pl()
    total = _scalar(con, "SELECT count(*) FROM citizen_area")
    unmatched = int(bad.get_column("citizens").sum() or 0) if bad.height else 0
    share = unmatched / total if total else 0.0
    return RuleResult(
        "areas_matched", share <= q.max_unmatched_area_share,
        f"{unmatched:,} of {total:,} citizens ({share:.2%}) have an address matched to no official area "
        f"(bound {q.max_unmatched_area_share:.0%})",
        {"citizens": total, "unmatched": unmatched, "share": round(share, 5), "bound": q.max_unmatched_area_share, "by_method": methods},
        _sample(bad),
    )  # fmt: skip


def published_person_share(loss: dict[str, Any], q: QualityConfig) -> RuleResult:
    """People counted in published finest cells (a municipality, no total) are at least `min_published_person_share`."""
    share = loss["published_person_share"]
    return RuleResult(
        "published_person_share", share >= q.min_published_person_share,
        f"{share:.2%} of {loss['persons_in_finest_cells']:,} people are counted in published municipality-level cells; "
        f"{loss['suppressed_cell_share']:.2%} of cells suppressed (bound at least {q.min_published_person_share:.0%})",
        {**loss, "bound": q.min_published_person_share},
    )  # fmt: skip


# --- publication -----------------------------------------------------------------------------------

# Columns that identify or help identify a person: never in an open-data table.
IDENTIFYING_COLUMNS = frozenset(
    {"citizen_id", "record_key", "source_record_id", "given_name", "middle_name", "family_name", "full_name",
     "national_id", "date_of_birth", "date_of_death", "street", "house_number", "unit", "postcode", "email", "phone",
     "birth_place", "initials"}
)  # fmt: skip
_ID_LIKE = r"^\d{9}$|^\d{11}$|@|^\+?\d{8,}$"


def no_identifying_columns(table: pl.DataFrame, *, declared: tuple[str, ...]) -> RuleResult:
    """Only the declared columns, none of them identifying, and no value that looks like an ID, e-mail or phone."""
    extra = [c for c in table.columns if c not in declared]
    missing = [c for c in declared if c not in table.columns]
    identifying = sorted(set(table.columns) & IDENTIFYING_COLUMNS)
    text_cols = [c for c, t in table.schema.items() if t == pl.String]
    id_like = table.filter(pl.any_horizontal(pl.col(c).str.contains(_ID_LIKE).fill_null(False) for c in text_cols)) if text_cols else table.clear()
    ok = not (extra or missing or identifying or id_like.height)
    return RuleResult(
        "no_identifying_columns", ok,
        f"columns {table.columns}; undeclared {extra}, missing {missing}, identifying {identifying}, "
        f"{id_like.height} value(s) that look like an ID, e-mail or phone",
        {"columns": table.columns, "undeclared": extra, "missing": missing, "identifying": identifying, "id_like_rows": id_like.height},
        _sample(id_like),
    )  # fmt: skip


def cells_at_or_above_minimum(table: pl.DataFrame, rules) -> RuleResult:
    """Every published count is at least the minimum cell, or suppressed."""
    from citizen_view.disclosure import cells_below_minimum

    bad = cells_below_minimum(table, rules)
    return RuleResult(
        "disclosure_minimum_cell", bad.height == 0,
        f"{bad.height} published cell(s) below the minimum of {rules.min_cell}",
        {"cells": table.height, "below_minimum": bad.height, "suppressed": table.get_column("count").null_count(),
         "min_cell": rules.min_cell},
        _sample(bad),
    )  # fmt: skip


def suppression_not_recoverable(
    table: pl.DataFrame, *, dims: tuple[str, ...], margins: tuple[str, ...], hierarchies: dict[str, dict[str, str]] | None = None,
) -> RuleResult:
    """No suppressed cell is alone in a line that adds up to a published total (at any level of a hierarchy)."""
    from citizen_view.disclosure import recoverable_cells

    bad = recoverable_cells(table, dims=list(dims), margins=list(margins), hierarchies=hierarchies)
    return RuleResult(
        "disclosure_not_recoverable", bad.height == 0,
        f"{bad.height} suppressed cell(s) could be recomputed from the totals",
        {"suppressed": table.get_column("count").null_count(), "recoverable": bad.height, "margins": list(margins)},
        _sample(bad),
    )  # fmt: skip


def totals_consistent(
    con: duckdb.DuckDBPyConnection, name: str, table: pl.DataFrame, *, reference: dt.date, tolerance: int = 0,
    services: list[str] | None = None,
) -> RuleResult:
    """Published totals equal the same counts taken straight from the linked view (within rounding)."""
    living = f"(date_of_death IS NULL OR date_of_death > DATE '{reference.isoformat()}')"
    checks: list[tuple[str, int | float | None, int | float]] = []
    if name == "population_by_area":
        total = table.filter((pl.col("level") == "country") & (pl.col("age_band") == "Total") & (pl.col("sex") == "Total"))
        checks.append(("living citizens", total["count"][0] if total.height else None, _scalar(con, f"SELECT count(*) FROM citizen WHERE {living}")))
    elif name == "agencies_per_citizen":
        total = table.filter(pl.col("agencies") == "Total")
        checks.append(("living citizens", total["count"][0] if total.height else None, _scalar(con, f"SELECT count(*) FROM citizen WHERE {living}")))
    elif name == "service_uptake_by_area":
        for service in services or []:
            total = table.filter((pl.col("service") == service) & (pl.col("level") == "country"))
            truth = _scalar(con, f"SELECT count(DISTINCT l.citizen_id) FROM citizen_source_link l JOIN citizen c USING (citizen_id) WHERE l.source = ? AND {living.replace('date_of_death', 'c.date_of_death')}", [service])  # noqa: E501
            checks.append((f"{service} users", total["count"][0] if total.height else None, truth))
    elif name == "duplicates_per_source":
        for source, records in con.execute("SELECT source, count(*) FROM citizen_source_link GROUP BY 1").fetchall():
            row = table.filter((pl.col("source") == source) & (pl.col("measure") == "records"))
            checks.append((f"{source} records", row["count"][0] if row.height else None, records))
    elif name == "linkage_quality":
        values = dict(zip(table["metric"], table["value"]))
        checks.append(("records linked", values.get("records_linked"), _scalar(con, "SELECT count(*) FROM citizen_source_link")))
        checks.append(("citizens", values.get("citizens"), _scalar(con, "SELECT count(*) FROM citizen")))
    bad = [
        {"total": what, "published": pub, "linked_view": truth}
        for what, pub, truth in checks
        if pub is not None and abs(pub - truth) > tolerance
    ]
    return RuleResult(
        "totals_consistent", not bad,
        f"{len(checks) - len(bad)} of {len(checks)} published total(s) match the linked view",
        {"compared": len(checks), "mismatches": len(bad), "suppressed_totals": sum(p is None for _, p, _ in checks)},
        bad[:SAMPLE_ROWS],
    )  # fmt: skip
