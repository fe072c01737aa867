"""Gate outcomes kept in the warehouse, so `citizen-view publish` knows whether the latest run passed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from citizen_view.warehouse import table_exists

if TYPE_CHECKING:
    import duckdb

    from citizen_view.quality.rules import RuleResult

RESULTS_TABLE = "quality_results"
_DDL = f"""
CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} (
    run_id VARCHAR NOT NULL,
    asset VARCHAR NOT NULL,
    check_name VARCHAR NOT NULL,
    passed BOOLEAN NOT NULL,
    summary VARCHAR,
    evidence JSON,
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    blocking BOOLEAN DEFAULT true
);
ALTER TABLE {RESULTS_TABLE} ADD COLUMN IF NOT EXISTS blocking BOOLEAN DEFAULT true;
"""


def record(
    con: duckdb.DuckDBPyConnection, *, run_id: str, asset: str, result: RuleResult, blocking: bool = True
) -> None:
    """Append one gate outcome. `blocking=False`: an ingest audit, which holds back its extract, not the run's
    publication (unless the source is required for publication: that is its own blocking gate)."""
    con.execute(_DDL)
    con.execute(
        f"INSERT INTO {RESULTS_TABLE} (run_id, asset, check_name, passed, summary, evidence, blocking) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            asset,
            result.rule,
            result.passed,
            result.summary,
            json.dumps({"figures": result.figures, "sample": result.sample}, default=str),
            blocking,
        ],
    )


def run_results(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    """Every gate outcome recorded by one run."""
    con.execute(_DDL)
    rows = con.execute(
        f"SELECT asset, check_name, passed, summary, coalesce(blocking, true) FROM {RESULTS_TABLE} WHERE run_id = ? "
        "ORDER BY asset, check_name",
        [run_id],
    ).fetchall()
    return [{"asset": a, "check": c, "passed": p, "summary": s, "blocking": b} for a, c, p, s, b in rows]


def latest_gate_failures(con: duckdb.DuckDBPyConnection) -> tuple[str | None, list[str]]:
    """The latest run that evaluated gates, and the blocking checks that failed in it (what `publish` refuses on;
    a held-back extract is not one: publication goes on with that source's last accepted extract)."""
    if not table_exists(con, "main", RESULTS_TABLE):
        return None, []
    has_blocking = bool(
        con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_catalog = current_database() "
            f"AND table_name = '{RESULTS_TABLE}' AND column_name = 'blocking'"
        ).fetchall()[0][0]
    )
    latest = con.execute(f"SELECT run_id FROM {RESULTS_TABLE} ORDER BY checked_at DESC LIMIT 1").fetchall()
    if not latest:
        return None, []
    run_id = latest[0][0]
    failed = [
        f"{asset}:{check}"
        for asset, check in con.execute(
            f"SELECT asset, check_name FROM {RESULTS_TABLE} WHERE run_id = ? AND NOT passed "
            f"{'AND coalesce(blocking, true) ' if has_blocking else ''}ORDER BY asset, check_name",
            [run_id],
        ).fetchall()
    ]
    return run_id, failed
