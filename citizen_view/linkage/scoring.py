"""Train the Splink model on `source_records` and score candidate pairs into `match_edges`.

Splink's Linker works on its own engine (engine.py: an in-memory DuckDB that spills to the warehouse's scratch
folder, or Spark), never in the warehouse; its input and its scored pairs cross as Parquet (training's input on
DuckDB as Arrow). Scoring on DuckDB needs no Linker: the model's own Splink SQL (kept with it, the SQL an incremental
update scores with) runs in the warehouse over every record. A saved model is re-rendered for the engine that scores
it, so a model trained on one backend scores on the other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from splink import Linker
from splink.internals.exceptions import EMTrainingException

import citizen_view.linkage.common_values as cv
from citizen_view.contract import Backend, LinkType
from citizen_view.linkage.engine import Engine
from citizen_view.linkage.model import ModelPlan, plan_model, render_for, rule_sql, settings_for, tf_columns
from citizen_view.linkage.new_pairs import score_pairs_sql, scoring_pipeline, term_frequency_sql
from citizen_view.linkage.records import field_shares, key_hash_items, linkage_input_sql

if TYPE_CHECKING:
    from splink import SplinkDataFrame

log = logging.getLogger(__name__)

# Pairs scored at or above this weight are kept in match_edges (for explanation and review);
# only pairs at or above the chosen threshold are linked.
EDGE_FLOOR_WEIGHT = -4.0
# Random pairs for estimating u, whatever the number of records. At 1e6 pairs a level with u >= 1e-4 is seen >= 100
# times (relative error <= 10%, <= 0.15 bit of match weight), and Splink stops early for a comparison whose levels all
# reach 100. Rarer levels (same ID, same date of birth, names swapped: u ~ 1e-5) are not resolved by 5e6 pairs either:
# at that size their count is of the same order as the true matches a random sample holds (about 1 pair in
# records/persons-per-record), so more pairs buy precision below the estimate's bias and cost time in proportion.
U_SAMPLE_PAIRS = 1e6
# The smallest prior a model gets when no pair of records agrees on the deterministic rules (an empty link).
MIN_MATCH_RATE = 1e-9
# SKIP_VALIDATION: Splink's settings validation parses every level's SQL with sqlglot to find columns missing from the
# input and only *logs* what it finds, at WARNING, which our linkers' ERROR level hides: about a second of CPU per
# linker, at any size, for nothing. The comparisons only read columns linkage_input_sql writes (every run checks it).
EDGE_COLUMN_PREFIXES = ("gamma_", "bf_", "mw_")


@dataclass
class TrainedModel:
    """A fitted model: Splink's JSON plus what we chose and why."""

    model: dict[str, Any]
    fields_used: list[str]
    fields_skipped: dict[str, str]
    training_notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    common_values: list[cv.CommonValue] = field(default_factory=list)  # treated as missing in linkage


def _input(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    db_api: Any,
    name: str = "source_records",
    where: str = "",
    common_values: str | None = None,
    *,
    in_memory: bool = False,
    params: list[Any] | None = None,
) -> SplinkDataFrame:
    """The model's input columns, computed by the warehouse's DuckDB, as an input table of Splink's engine
    (`in_memory`: see Engine.register_query)."""
    sql = f"SELECT * FROM ({linkage_input_sql(con, common_values)}) {where}"
    return engine.register_query(db_api, con, sql, name, in_memory=in_memory, params=params)


def train(
    con: duckdb.DuckDBPyConnection,
    *,
    engine: Engine,
    seed: int = 1,
    reports_dir: Path | None = None,
    link_type: LinkType = LinkType.LINK_AND_DEDUPE,
    min_share: float = 0.05,
) -> TrainedModel:
    """Fit the model on all records in `source_records`, without ground truth; save Splink's charts as HTML."""
    started = time.perf_counter()
    common = cv.find_common_values(con)
    cv.store(con, common, table="_training_common_values", temporary=True)
    plan = plan_model(field_shares(con, "_training_common_values"), link_type=link_type, min_share=min_share)
    db_api = engine.db_api()
    linker = Linker(
        _input(con, engine, db_api, common_values="_training_common_values", in_memory=True),
        settings_for(plan),
        log_level=logging.ERROR,
        validate_settings=False,  # see SKIP_VALIDATION
    )
    notes = _fit(linker, plan, seed=seed) + cv.notes(common)
    notes.append(f"trained on {engine.backend.value}")
    model = linker.misc.save_model_to_json()
    if reports_dir is not None:
        reports_dir.mkdir(parents=True, exist_ok=True)
        linker.visualisations.match_weights_chart().save(str(reports_dir / "match_weights_chart.html"), inline=True)
        linker.visualisations.m_u_parameters_chart().save(str(reports_dir / "m_u_parameters_chart.html"), inline=True)
    if engine.backend == Backend.DUCKDB:  # its input table is in memory, and the Linker lives on until collected
        db_api.duckdb_con.close()
    return TrainedModel(model, plan.fields_used, plan.skipped, notes, time.perf_counter() - started, common)


def _fit(linker: Linker, plan: ModelPlan, *, seed: int) -> list[str]:
    """Estimate the match rate, u and m; each note says what was done and how long it took (where training time goes)."""
    notes: list[str] = []
    started = time.perf_counter()
    try:
        linker.training.estimate_probability_two_random_records_match(plan.deterministic_rules, recall=0.8)
        notes.append(f"match rate from deterministic rules ({time.perf_counter() - started:.1f} s)")
    except (ValueError, ZeroDivisionError, EMTrainingException) as exc:  # the rules pair no records at all
        notes.append(f"match rate: Splink's default (deterministic rules found no pairs: {str(exc).splitlines()[0]})")
    core = linker._settings_obj.core_model_settings
    if not core.probability_two_random_records_match > 0:  # no pair agrees on the rules: a floor, not a zero prior
        core.probability_two_random_records_match = MIN_MATCH_RATE
        notes.append(f"match rate: no deterministic pair found, floor {MIN_MATCH_RATE:g} used")
    max_pairs = U_SAMPLE_PAIRS
    started = time.perf_counter()
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    notes.append(f"u from {max_pairs:,.0f} random pairs ({time.perf_counter() - started:.1f} s)")
    fitted = 0
    for rule in plan.training_rules:
        name = rule_sql(rule)
        started = time.perf_counter()
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
            fitted += 1
            notes.append(f"EM on {name}: ok ({time.perf_counter() - started:.1f} s)")
        except (ValueError, ZeroDivisionError, EMTrainingException) as exc:
            # Splink 5.0 raises on an m probability of 0 (very clean data) instead of clamping it, and on a rule that
            # pairs no records (encodings made with different secrets never agree); the other sessions still run.
            notes.append(f"EM on {name}: skipped ({str(exc).splitlines()[0]})")
            log.warning("EM session on %s skipped: %s", name, exc)
    if fitted == 0:
        notes.append("no EM session converged: m probabilities are Splink's defaults")
    for name in plan.m_not_estimated:  # see model.fixed_in_every_block
        notes.append(f"m of {name} not estimated by EM: every training block fixes it (Splink's starting values stand)")
    return notes


def _edge_columns(scored: SplinkDataFrame) -> list[str]:
    return _kept([c.unquote().name for c in scored.columns])


def _kept(columns: list[str]) -> list[str]:
    """The columns of Splink's scored pairs match_edges keeps."""
    keep = ["record_key_l", "record_key_r", "source_l", "source_r", "match_weight", "match_probability"]
    return keep + [c for c in columns if c.startswith(EDGE_COLUMN_PREFIXES)]


def _saved_linker(
    engine: Engine, model: dict[str, Any], records: SplinkDataFrame, *, all_term_frequencies: bool = False
) -> Linker:
    """A linker for a saved model on the engine; `all_term_frequencies`: computed from `records` up front, for scoring
    a subset of them as a full run would."""
    settings = dict(render_for(model, engine.dialect))
    # Scored pairs keep their levels and weights (gamma_, bf_, mw_), not both records' values: those are in the
    # warehouse already, and carrying them through every candidate pair cost about a fifth of scoring's CPU time.
    settings["retain_matching_columns"] = False
    linker = Linker(records, settings, log_level=logging.ERROR, validate_settings=False)  # see SKIP_VALIDATION
    if all_term_frequencies:
        for column in tf_columns(model):
            linker.table_management.compute_tf_table(column)
    return linker


def predict_edges(con: duckdb.DuckDBPyConnection, model: dict[str, Any], *, engine: Engine, into: str) -> None:
    """Score every candidate pair the blocking rules produce; pairs at or above EDGE_FLOOR_WEIGHT go to the warehouse
    table `into` (created or replaced). On DuckDB in the warehouse itself (see _predict_in_warehouse), else by
    Splink's Linker on the engine."""
    if engine.backend == Backend.DUCKDB:
        _predict_in_warehouse(con, model, into)
    else:
        predict_with_linker(con, model, engine=engine, into=into)


def predict_with_linker(con: duckdb.DuckDBPyConnection, model: dict[str, Any], *, engine: Engine, into: str) -> None:
    """predict_edges by Splink's Linker on the engine: the input crosses to it, the scored pairs come back as Parquet."""
    db_api = engine.db_api()
    linker = _saved_linker(engine, model, _input(con, engine, db_api))
    scored = linker.inference.predict(threshold_match_weight=EDGE_FLOOR_WEIGHT)
    engine.copy_into(
        scored, _edge_columns(scored), con, into, engine.scratch / "edges.parquet", computed=key_hash_items(into)
    )
    scored.drop_table_from_database_and_remove_from_cache()


POOL = "_linkage_pool"


def _predict_in_warehouse(con: duckdb.DuckDBPyConnection, model: dict[str, Any], into: str) -> None:
    """predict_edges on DuckDB: Splink's own scoring SQL for the model (kept with it: new_pairs.scoring_pipeline, the SQL
    an incremental update scores with), run by the warehouse's DuckDB over every record, the pairs straight into `into`.

    The same pairs and weights as Splink's `predict` (its blocking: a pair once, left key below right key, any rule
    true; its term frequencies: count / non-null count over all records), at less of the work: each rule's pairs are
    formed on a record number in record_key's order instead of the key's text, and collected once instead of each rule
    re-testing every earlier rule on its pairs; and nothing crosses to another database and back (at 200k persons the
    input's Parquet alone was 1.1 s of CPU, the scored pairs' 1.0 s)."""
    pipeline = scoring_pipeline(con, model, floor=EDGE_FLOOR_WEIGHT)
    records = f"({linkage_input_sql(con)})"  # computed again by each count below: cheaper than holding it twice
    numbers = "SELECT record_key, row_number() OVER (ORDER BY record_key) AS record_number FROM source_records"
    numbered = f"(SELECT * FROM {records} JOIN ({numbers}) USING (record_key))"
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {POOL} AS "
            + term_frequency_sql(model, records, numbered, pool_values_only=False)
        )
        scored = score_pairs_sql(
            model, POOL, floor=EDGE_FLOOR_WEIGHT, pipeline=pipeline, key="record_number", new_only=False
        )
        kept = [f'"{c}"' for c in _kept(con.sql(f"SELECT * FROM ({scored}) LIMIT 0").columns)]
        columns = ", ".join(kept + key_hash_items(into))
        con.execute(f"CREATE OR REPLACE TABLE {into} AS SELECT {columns} FROM ({scored})")
    except BaseException:
        # Inside a transaction a failed statement aborts it and the drop would fail too, hiding the real error; the
        # caller's rollback removes a pool created in it. Outside one the drop works and the pool goes.
        with contextlib.suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {POOL}")
        raise
    con.execute(f"DROP TABLE IF EXISTS {POOL}")


def score_two(
    con: duckdb.DuckDBPyConnection, model: dict[str, Any], left: str, right: str, *, engine: Engine
) -> dict[str, Any]:
    """The saved model's full comparison of two records (term frequencies from all records): one row as a dict."""
    db_api = engine.db_api()
    linker = _saved_linker(engine, model, _input(con, engine, db_api, "all_records"), all_term_frequencies=True)
    sides = [
        _input(con, engine, db_api, f"pair_{i}", "WHERE record_key = ?", params=[key])
        for i, key in enumerate((left, right))
    ]
    scored = linker.inference.score_pairs(sides[0], sides[1])
    return scored.as_record_list()[0]


def estimate_comparisons(con: duckdb.DuckDBPyConnection, model: dict[str, Any], *, scratch: Path) -> int:
    """Candidate pairs the prediction blocking rules generate: exact up to ~200k records, else from a sample."""
    import warnings

    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    n = con.execute("SELECT count(*) FROM source_records").fetchall()[0][0]
    sample = min(1.0, 200_000 / max(n, 1))
    warnings.filterwarnings("ignore", message="The sampled blocking analysis estimate")
    engine = Engine(Backend.DUCKDB, scratch)
    db_api = engine.db_api()
    sdf = _input(con, engine, db_api)
    rules = render_for(model, "duckdb")["blocking_rules_to_generate_predictions"]
    counts = count_comparisons_from_blocking_rules(
        sdf,
        blocking_rules=[r["blocking_rule"] for r in rules],
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        record_sample_proportion=sample,
    )
    return int(counts[-1]["cumulative_comparison_count"]) if counts else 0


def save_model(model: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(model, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path
