"""Train the Splink model on `source_records` and score candidate pairs into `match_edges`.

Splink works in its own DuckDB (in memory, spilling to a temp folder) so its scratch tables never
land in the warehouse; `make_db_api` is the seam for running the same model on Spark.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import polars as pl
from splink import DuckDBAPI, Linker

from citizen_view.contract import LinkType
from citizen_view.linkage.model import ModelPlan, plan_model, rule_sql, settings_for
from citizen_view.linkage.records import LINKAGE_INPUT_SQL, field_shares

if TYPE_CHECKING:
    from splink.internals.database_api import DatabaseAPISubClass

log = logging.getLogger(__name__)

# Pairs scored at or above this weight are kept in match_edges (for explanation and review);
# only pairs at or above the chosen threshold are linked.
EDGE_FLOOR_WEIGHT = -4.0
# The threshold is looked for in this weight range (probability ~0.2 .. ~0.999).
THRESHOLD_RANGE = (-2.0, 10.0)
# Splink's own DuckDB gets a bounded share of the machine; the rest spills to disk.
SPLINK_MEMORY_LIMIT = os.environ.get("CITIZEN_VIEW_SPLINK_MEMORY", "6GB")
# Random pairs for estimating u: enough for stable estimates (Splink suggests 1e6-1e7), bounded in memory.
U_SAMPLE_PAIRS = 5e6


@dataclass
class TrainedModel:
    """A fitted model: Splink's JSON plus what we chose and why."""

    model: dict[str, Any]
    fields_used: list[str]
    fields_skipped: dict[str, str]
    training_notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def make_db_api(*, backend: str = "duckdb", spill_dir: str | None = None, threads: int | None = None) -> DatabaseAPISubClass:
    """Splink's database: an in-memory DuckDB that spills to disk (default), or Spark for larger estates."""
    if backend == "duckdb":
        con = duckdb.connect(":memory:")
        con.execute(f"SET temp_directory = '{spill_dir or tempfile.gettempdir()}'")
        con.execute(f"SET memory_limit = '{SPLINK_MEMORY_LIMIT}'")
        con.execute("SET preserve_insertion_order = false")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        return DuckDBAPI(connection=con)
    if backend == "spark":  # pragma: no cover - needs pyspark and Java; see README "Scaling out"
        from pyspark.sql import SparkSession
        from splink import SparkAPI
        from splink.backends.spark import similarity_jar_location

        spark = SparkSession.builder.config("spark.jars", similarity_jar_location()).getOrCreate()
        return SparkAPI(spark_session=spark)
    raise ValueError(f"unknown linkage backend {backend!r} (expected duckdb or spark)")


def _input_sql() -> str:
    return LINKAGE_INPUT_SQL


def splink_input(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The columns the model compares, with dates as yyyymmdd text (and day/month swapped) for typo levels."""
    return con.sql(_input_sql()).pl()


def _register_input(con: duckdb.DuckDBPyConnection, db_api: DatabaseAPISubClass, folder: Path):
    """Hand the model's input to Splink's database as Parquet (no copy through Python)."""
    path = folder / "splink_input.parquet"
    con.execute(f"COPY ({_input_sql()}) TO '{path}' (FORMAT parquet)")
    return db_api.register(db_api.duckdb_con.read_parquet(str(path)), dataset_display_name="source_records")


def train(
    con: duckdb.DuckDBPyConnection, *, seed: int = 1, db_api: DatabaseAPISubClass | None = None,
    reports_dir: Path | None = None, link_type: LinkType = LinkType.LINK_AND_DEDUPE, min_share: float = 0.05,
) -> TrainedModel:
    """Fit the model on all records in `source_records`, without ground truth; save Splink's charts as HTML."""
    started = time.perf_counter()
    plan = plan_model(field_shares(con), link_type=link_type, min_share=min_share)
    n_records = con.execute("SELECT count(*) FROM source_records").fetchall()[0][0]
    with tempfile.TemporaryDirectory(prefix="citizen-view-train-") as tmp:
        db_api = db_api or make_db_api(spill_dir=tmp)
        linker = Linker(_register_input(con, db_api, Path(tmp)), settings_for(plan), log_level=logging.ERROR)
        notes = _fit(linker, plan, n_records, seed=seed)
        model = linker.misc.save_model_to_json()
        if reports_dir is not None:
            reports_dir.mkdir(parents=True, exist_ok=True)
            linker.visualisations.match_weights_chart().save(str(reports_dir / "match_weights_chart.html"))
            linker.visualisations.m_u_parameters_chart().save(str(reports_dir / "m_u_parameters_chart.html"))
    return TrainedModel(model, plan.fields_used, plan.skipped, notes, time.perf_counter() - started)


def _fit(linker: Linker, plan: ModelPlan, n_records: int, *, seed: int) -> list[str]:
    notes: list[str] = []
    linker.training.estimate_probability_two_random_records_match(plan.deterministic_rules, recall=0.8)
    max_pairs = float(min(max(n_records * 20, 1e6), U_SAMPLE_PAIRS))
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    notes.append(f"u from {max_pairs:,.0f} random pairs")
    fitted = 0
    for rule in plan.training_rules:
        name = rule_sql(rule)
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)
            fitted += 1
            notes.append(f"EM on {name}: ok")
        except (ValueError, ZeroDivisionError) as exc:
            # Splink 5.0 raises on an m probability of 0 (very clean data) instead of clamping it;
            # the other sessions still estimate that comparison.
            notes.append(f"EM on {name}: skipped ({exc})")
            log.warning("EM session on %s skipped: %s", name, exc)
    if fitted == 0:
        notes.append("no EM session converged: m probabilities are Splink's defaults")
    return notes


def load_linker(model: dict[str, Any], records: pl.DataFrame, *, db_api: DatabaseAPISubClass | None = None) -> Linker:
    """A linker for a saved model over the given records."""
    db_api = db_api or make_db_api()
    return Linker(db_api.register(records, dataset_display_name="source_records"), model, log_level=logging.ERROR)


EDGE_COLUMN_PREFIXES = ("gamma_", "bf_", "mw_")


def _copy_edges(db_api: DatabaseAPISubClass, scored, out: Path) -> None:
    columns = [c.unquote().name for c in scored.columns]
    keep = ["record_key_l", "record_key_r", "source_l", "source_r", "match_weight", "match_probability"]
    keep += [c for c in columns if c.startswith(EDGE_COLUMN_PREFIXES)]
    select = ", ".join(f'"{c}"' for c in keep)
    db_api.duckdb_con.execute(f"COPY (SELECT {select} FROM {scored.physical_name}) TO '{out}' (FORMAT parquet)")
    scored.drop_table_from_database_and_remove_from_cache()


def predict_new_edges(
    con: duckdb.DuckDBPyConnection, model: dict[str, Any], new_keys: str, out: Path,
    *, db_api: DatabaseAPISubClass | None = None,
) -> Path:
    """Score records in the table `new_keys` (one column, record_key) against all others and each other.

    Uses the saved model as it is (no retraining): Splink's predict_between (new vs existing) and
    predict_within (new vs new), with term frequencies taken from all records.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    db_api = db_api or make_db_api(spill_dir=str(out.parent))
    paths = {}
    for name, where in [("new_records", f"WHERE record_key IN (SELECT record_key FROM {new_keys})"),
                        ("old_records", f"WHERE record_key NOT IN (SELECT record_key FROM {new_keys})")]:  # fmt: skip
        paths[name] = out.parent / f"{name}.parquet"
        con.execute(f"COPY (SELECT * FROM ({_input_sql()}) {where}) TO '{paths[name]}' (FORMAT parquet)")
    both = db_api.duckdb_con.read_parquet([str(paths["old_records"]), str(paths["new_records"])])
    sdf = {n: db_api.register(db_api.duckdb_con.read_parquet(str(p)), dataset_display_name=n) for n, p in paths.items()}
    sdf["all_records"] = db_api.register(both, dataset_display_name="all_records")
    linker = Linker(sdf["all_records"], model, log_level=logging.ERROR)
    tf_columns = {lvl["tf_adjustment_column"] for c in model["comparisons"] for lvl in c["comparison_levels"] if lvl.get("tf_adjustment_column")}
    for column in sorted(tf_columns):  # term frequencies of all records, as in a full run
        linker.table_management.compute_tf_table(column)
    between = linker.inference.predict_between(sdf["new_records"], sdf["old_records"], threshold_match_weight=EDGE_FLOOR_WEIGHT)
    within = linker.inference.predict_within(sdf["new_records"], threshold_match_weight=EDGE_FLOOR_WEIGHT)
    part_a, part_b = out.parent / "between.parquet", out.parent / "within.parquet"
    _copy_edges(db_api, between, part_a)
    _copy_edges(db_api, within, part_b)
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{part_a}') UNION ALL BY NAME SELECT * FROM read_parquet('{part_b}')) "
        f"TO '{out}' (FORMAT parquet)"
    )
    return out


def predict_edges(
    con: duckdb.DuckDBPyConnection, model: dict[str, Any], out: Path, *, db_api: DatabaseAPISubClass | None = None
) -> Path:
    """Score every candidate pair the blocking rules produce; write pairs at or above EDGE_FLOOR_WEIGHT to Parquet."""
    out.parent.mkdir(parents=True, exist_ok=True)
    db_api = db_api or make_db_api(spill_dir=str(out.parent))
    linker = Linker(_register_input(con, db_api, out.parent), model, log_level=logging.ERROR)
    _copy_edges(db_api, linker.inference.predict(threshold_match_weight=EDGE_FLOOR_WEIGHT), out)
    return out


def estimate_comparisons(con: duckdb.DuckDBPyConnection, model: dict[str, Any]) -> int:
    """Candidate pairs the prediction blocking rules generate: exact up to ~200k records, else from a sample."""
    import warnings

    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    n = con.execute("SELECT count(*) FROM source_records").fetchall()[0][0]
    sample = min(1.0, 200_000 / max(n, 1))
    warnings.filterwarnings("ignore", message="The sampled blocking analysis estimate")
    with tempfile.TemporaryDirectory(prefix="citizen-view-count-") as tmp:
        db_api = make_db_api(spill_dir=tmp)
        sdf = _register_input(con, db_api, Path(tmp))
        counts = count_comparisons_from_blocking_rules(
            sdf, blocking_rules=[r["blocking_rule"] for r in model["blocking_rules_to_generate_predictions"]],
            link_type="dedupe_only", unique_id_column_name="record_key", record_sample_proportion=sample,
        )  # fmt: skip
    return int(counts[-1]["cumulative_comparison_count"]) if counts else 0


def choose_threshold(weights: np.ndarray, *, bins: int = 60) -> tuple[float, str]:
    """The match-weight threshold, from the scored pairs alone: the emptiest valley of their histogram.

    Candidate pairs are a mixture of non-matches (low weights) and matches (high weights); the
    least populated stretch between the two is where a small move of the threshold changes fewest
    decisions. Falls back to weight 0 (probability 0.5) when the histogram has no valley.
    """
    lo, hi = THRESHOLD_RANGE
    w = weights[np.isfinite(weights)]
    if w.size < 50:
        return 0.0, "too few scored pairs for a histogram: probability 0.5 (weight 0)"
    counts, edges = np.histogram(w, bins=bins, range=(min(w.min(), lo), max(w.max(), hi)))
    smooth = np.convolve(counts, np.ones(3) / 3, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    inside = (centres >= lo) & (centres <= hi)
    if not inside.any():
        return 0.0, "no histogram bins in range: probability 0.5 (weight 0)"
    idx = np.flatnonzero(inside)
    best = idx[np.argmin(smooth[idx])]
    return float(round(centres[best], 2)), f"histogram valley of {w.size:,} scored pairs in [{lo}, {hi}]"


def save_model(model: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(model, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path
