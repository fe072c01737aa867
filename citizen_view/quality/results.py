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
    checked_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def record(con: duckdb.DuckDBPyConnection, *, run_id: str, asset: str, result: RuleResult) -> None:
    """Append one gate outcome."""
    con.execute(_DDL)
    con.execute(
        f"INSERT INTO {RESULTS_TABLE} (run_id, asset, check_name, passed, summary, evidence) VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, asset, result.rule, result.passed, result.summary,
         json.dumps({"figures": result.figures, "sample": result.sample}, default=str)],
    )  # fmt: skip


def run_results(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    """Every gate outcome recorded by one run."""
    con.execute(_DDL)
    rows = con.execute(
        f"SELECT asset, check_name, passed, summary FROM {RESULTS_TABLE} WHERE run_id = ? ORDER BY asset, check_name",
        [run_id],
    ).fetchall()
    return [{"asset": a, "check": c, "passed": p, "summary": s} for a, c, p, s in rows]


def latest_gate_failures(con: duckdb.DuckDBPyConnection) -> tuple[str | None, list[str]]:
    """The latest run that evaluated gates, and the checks that failed in it (what `publish` refuses on)."""
    if not table_exists(con, "main", RESULTS_TABLE):
        return None, []
    latest = con.execute(f"SELECT run_id FROM {RESULTS_TABLE} ORDER BY checked_at DESC LIMIT 1").fetchall()
    if not latest:
        return None, []
    run_id = latest[0][0]
    failed = [
        f"{asset}:{check}"
        for asset, check in con.execute(
            f"SELECT asset, check_name FROM {RESULTS_TABLE} WHERE run_id = ? AND NOT passed ORDER BY asset, check_name",
            [run_id],
        ).fetchall()
    ]
    return run_id, failed
