"""Quality gates as blocking Dagster asset checks: linkage on `citizen`, areas and required sources on `citizen_area`,
disclosure on each table. (The ingest rules audit each extract inside its ingest asset, `assets/ingest.py`: a bad
extract holds back itself, not the product.)

Each check evaluates one rule from `quality/rules.py`, records the outcome in `quality_results` (so
`citizen-view publish` can refuse after a failed run) and returns the rule's evidence as metadata.
ERROR severity and `blocking=True`: a failing gate stops everything downstream of its asset.
"""

# No `from __future__ import annotations`: Dagster reads the real type hints of check functions.

from collections.abc import Callable

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    asset_check,
)

from citizen_view.contract import LinkType, SourcesFile
from citizen_view.open_data import TABLES, built_reference, information_loss
from citizen_view.quality import rules
from citizen_view.quality.results import record
from pipelines.metadata import evidence
from pipelines.resources import WarehouseResource

Evaluate = Callable[..., rules.RuleResult]


def gate(asset_key: AssetKey, name: str, description: str, evaluate: Evaluate) -> AssetChecksDefinition:
    """A blocking, ERROR-severity check of one rule on one asset."""

    @asset_check(asset=asset_key, name=name, description=description, blocking=True)
    def _gate(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            result = evaluate(con)
            record(con, run_id=context.run.run_id, asset=asset_key.to_user_string(), result=result)
        return AssetCheckResult(
            passed=result.passed,
            severity=AssetCheckSeverity.ERROR,
            description=result.summary,
            metadata=evidence(result),
        )

    return _gate


def required_source_gates(sources: SourcesFile, area_key: AssetKey) -> list[AssetChecksDefinition]:
    """When a source is `required_for_publication`, a held-back extract of it blocks the open-data tables and the
    bundle (the check sits on `citizen_area`, upstream of publication only: the served view still updates)."""
    required = [s.name for s in sources.sources if s.required_for_publication]
    if not required:
        return []
    return [
        gate(
            area_key,
            "required_sources_accepted",
            "No source required for publication is held back.",
            lambda con: rules.required_sources_accepted(con, required),
        )
    ]


def area_gates(sources: SourcesFile, area_key: AssetKey) -> list[AssetChecksDefinition]:
    """Citizens' addresses match official areas (the unmatched are only counted nationally)."""
    return [
        gate(
            area_key,
            "areas_matched",
            "Citizens whose address matches no official area stay under the bound.",
            lambda con: rules.areas_matched(con, sources.quality),
        )
    ]


def linkage_gates(sources: SourcesFile, citizen_key: AssetKey) -> list[AssetChecksDefinition]:
    """Linkage sanity on the finished linked view (so it is built even when publication is blocked)."""
    q = sources.quality
    return [
        gate(
            citizen_key,
            "every_record_linked_once",
            "Every loaded record is linked to exactly one citizen.",
            rules.every_record_linked_once,
        ),
        gate(citizen_key, "no_empty_citizen", "Every citizen has records and a golden record.", rules.no_empty_citizen),
        gate(
            citizen_key,
            "citizen_sizes",
            "No citizen holds an implausible number of records.",
            lambda con: rules.citizen_sizes(con, q),
        ),
        gate(
            citizen_key,
            "cross_source_share",
            "The share of records linked across sources is within bounds.",
            lambda con: rules.cross_source_share(con, q, dedupe_only=sources.linkage.link_type == LinkType.DEDUPE_ONLY),
        ),
        gate(
            citizen_key,
            "match_probability_distribution",
            "Few linked records rest on a weak link.",
            lambda con: rules.weak_links(con, q),
        ),
    ]


def publication_gates(sources: SourcesFile, table_key: Callable[[str], AssetKey]) -> list[AssetChecksDefinition]:
    """Per published table: no identifiers, disclosure control holds, totals agree (at the reference date the table
    was built at), GX suite passes."""
    disclosure = sources.disclosure
    tolerance = (disclosure.round_to or 0) // 2 + (1 if disclosure.round_to else 0)
    checks = []
    for name, info in TABLES.items():
        key = table_key(name)

        def published(con, n=name):
            return con.sql(f'SELECT * FROM open_data."{n}"').pl()

        checks += [
            gate(
                key,
                "no_identifying_columns",
                "No direct or quasi-identifier column or value is published.",
                lambda con, i=info, t=published: rules.no_identifying_columns(t(con), declared=i.columns),
            ),
            gate(
                key,
                "totals_consistent",
                "Published totals equal the linked view's counts.",
                lambda con, n=name, t=published: rules.totals_consistent(
                    con,
                    n,
                    t(con),
                    reference=built_reference(con, n, sources),
                    tolerance=tolerance,
                    services=sources.service_sources(),
                ),
            ),
            gate(
                key,
                "expectation_suite",
                "The table meets its Great Expectations suite (quality/expectations.py).",
                lambda con, i=info, t=published: rules.expectation_suite(i, t(con), disclosure),
            ),
        ]
        if info.count_column:
            checks += [
                gate(
                    key,
                    "disclosure_minimum_cell",
                    "Every published count is at least the minimum cell or suppressed.",
                    lambda con, t=published: rules.cells_at_or_above_minimum(t(con), disclosure),
                ),
                gate(
                    key,
                    "disclosure_not_recoverable",
                    "No suppressed cell can be recomputed from published totals, at any level.",
                    lambda con, i=info, t=published: rules.suppression_not_recoverable(
                        t(con),
                        dims=i.dims,
                        margins=i.margins,
                        hierarchies=i.hierarchies_of(t(con)),
                        zeros_published=not disclosure.suppress_zeros,
                    ),
                ),
            ]
        if info.area_hierarchy:
            checks.append(
                gate(
                    key,
                    "published_person_share",
                    "Most people are counted in published municipality-level cells.",
                    lambda con, n=name: rules.published_person_share(information_loss(con, n), sources.quality),
                )
            )
    return checks
