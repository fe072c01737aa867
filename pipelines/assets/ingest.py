"""Ingest assets: one per source declared in sources.yaml, each staging, auditing and publishing (or holding back)
its extract, with the audit as the asset's own checks.

Write-audit-publish as Dagster models it (an asset that reports its checks with its materialisation): the
checks are ERROR severity but not blocking, so a failing extract shows as a failed check with its evidence
while linkage, the served view and open data go on with the source's last accepted extract.
"""

# No `from __future__ import annotations`: Dagster reads the real type hints of asset functions.

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from citizen_view.contract import SourceConfig, SourcesFile
from citizen_view.ingest import INGEST_RULES, READABLE, IngestReport, LoadStatus, ingest_or_hold
from citizen_view.quality.results import record
from pipelines.metadata import counts, evidence
from pipelines.resources import WarehouseResource

INGEST_GROUP = "ingest"

RULE_DESCRIPTIONS = {
    READABLE: "The extract can be read at all: its files exist, open in the declared format and have the mapped columns.",
    "canonical_schema": "The canonical table has the canonical columns and types.",
    "required_fields": "Records missing a declared required field stay within the bound (95% confidence).",
    "national_id_validity": "National IDs pass their declared scheme's checksum at the configured rate (95% confidence).",
    "date_of_birth_validity": "Birth dates are readable in the declared format at the configured rate (95% confidence).",
    "date_of_birth_typos": "Readable birth dates that are impossible or implausible (keying typos) stay under the configured share (95% confidence).",
    "field_issue_share": "Values set aside in fields without a rule of their own stay under the configured share per field (95% confidence).",
    "rejected_share": "Rejected rows stay under the configured ceiling (95% confidence).",
    "row_count_drift": "Rows loaded did not jump or drop against the last accepted load; an empty extract is held back.",
}


def source_asset_key(name: str) -> AssetKey:
    """The asset key of a source's ingest: `source/<name>`."""
    return AssetKey(["source", name])


def build_ingest_assets(sources: SourcesFile) -> list[AssetsDefinition]:
    """One ingest asset per configured source."""
    return [_ingest_asset(sources, s) for s in sources.sources]


def _ingest_asset(sources: SourcesFile, source: SourceConfig) -> AssetsDefinition:
    key = source_asset_key(source.name)
    description = (
        f"{source.description or source.name}: `{source.path}` ({source.format}) staged, audited by the ingest rules, "
        f"then published into `raw.{source.name}` (rows as received) and `canonical.{source.name}` (standardised records), "
        f"or held back in `staging` while the last accepted extract stays current; malformed rows go to "
        f"`rejected_records` with their reason."
    )

    @asset(
        key=key,
        group_name=INGEST_GROUP,
        description=description,
        kinds={"duckdb", "polars"},
        tags={"source": source.name},
        check_specs=[
            AssetCheckSpec(rule, asset=key, description=RULE_DESCRIPTIONS[rule], blocking=False)
            for rule in INGEST_RULES
        ],
    )
    def _ingest(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        with warehouse.connect() as con:
            report = ingest_or_hold(con, sources, source.name)
            for result in report.audit:
                record(con, run_id=context.run.run_id, asset=key.to_user_string(), result=result, blocking=False)
        context.log.info(
            f"{source.name}: {report.rows_in} rows in = {report.rows_loaded} loaded + {report.rows_rejected} rejected; "
            f"{_status_line(report)}"
        )
        if report.held:
            context.log.warning(f"{source.name} held back: " + "; ".join(r.summary for r in report.failed_rules))
        return MaterializeResult(metadata=_metadata(source, report), check_results=_check_results(report))

    return _ingest


def _status_line(report: IngestReport) -> str:
    if report.held:
        return "held back (the last accepted extract stays current)"
    if report.status == LoadStatus.UNCHANGED:
        since = f" since {report.unchanged_since:%Y-%m-%d %H:%M} UTC" if report.unchanged_since else ""
        return f"unchanged{since}: the same files, contract and code as the last load, not read again"
    if report.released_by:
        return f"accepted: content released by {report.released_by}"
    return "accepted"


def _metadata(source: SourceConfig, report: IngestReport) -> dict:
    metadata = {
        "status": "held back" if report.held else report.status.value,
        "status_detail": _status_line(report),
        "rows_in": report.rows_in,
        "rows_loaded": report.rows_loaded,
        "rows_rejected": report.rows_rejected,
        "dagster/row_count": report.rows_loaded,
        "files": MetadataValue.json(report.files),
        "content_hash": report.content_hash,
        "rejected_by_reason": counts(report.rejected_by_reason, key="reason", value="rows"),
        "field_issues_per_field": counts(report.field_issues, key="field", value="issues"),
        "field_issues": sum(report.field_issues.values()),
        "tables": MetadataValue.json([f"raw.{source.name}", f"canonical.{source.name}", "rejected_records"]),
        "seconds": round(report.seconds, 3),
    }
    if report.held:
        metadata["held_reasons"] = MetadataValue.json([f"{r.rule}: {r.summary}" for r in report.failed_rules])
        metadata["held_evidence"] = MetadataValue.json(report.evidence)
        if _unreadable(report):
            metadata["release_with"] = (
                f"nothing to release: fix the extract and run again, or citizen-view reject {source.name}"
            )
        else:
            metadata["held_tables"] = MetadataValue.json(
                [
                    f'staging."raw_{source.name}"',
                    f'staging."canonical_{source.name}"',
                    "staging.rejected_records",
                    "staging.field_issues",
                ]
            )
            metadata["release_with"] = f'citizen-view release {source.name} --reason "..."'
    if report.national_id_valid_rate is not None:
        metadata["national_id_valid_rate"] = round(report.national_id_valid_rate, 4)
    if report.date_of_birth_filled_rate is not None:
        metadata["date_of_birth_filled_rate"] = round(report.date_of_birth_filled_rate, 4)
    return metadata


def _check_results(report: IngestReport) -> list[AssetCheckResult]:
    """The audit as the asset's checks: a failure is ERROR when it held the extract back, WARN when a person's
    earlier release of the same content let it through."""
    out = []
    judged = {r.rule for r in report.audit}
    if _unreadable(report):  # the other checks had nothing to judge: say so rather than leave them unreported
        out += [
            AssetCheckResult(
                check_name=rule,
                passed=False,
                severity=AssetCheckSeverity.WARN,
                description=f"not judged: the extract could not be read (see {READABLE})",
                metadata={"extract": "held back", "judged": "no"},
            )
            for rule in INGEST_RULES
            if rule not in judged
        ]
    for result in report.audit:
        summary = (
            result.summary
            if result.passed or report.held
            else f"{result.summary} (accepted: released by {report.released_by})"
        )
        out.append(
            AssetCheckResult(
                check_name=result.rule,
                passed=result.passed,
                severity=AssetCheckSeverity.ERROR if report.held or result.passed else AssetCheckSeverity.WARN,
                description=summary,
                metadata={
                    **evidence(result),
                    "summary": summary,
                    "extract": "held back" if report.held else report.status.value,
                },
            )
        )
    return out


def _unreadable(report: IngestReport) -> bool:
    return any(r.rule == READABLE for r in report.failed_rules)
