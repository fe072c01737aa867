"""The linkage steps as warehouse operations: train, score, link, build the golden record.

Each step reads tables the previous one wrote and replaces its own tables in one transaction, so a
step that fails leaves the previous run's outputs as they were.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from citizen_view.linkage.citizen_ids import assign_citizen_ids
from citizen_view.linkage.clusters import cluster_records
from citizen_view.linkage.review import build_review_queue, constraints, load_overrides, store_overrides
from citizen_view.linkage.scoring import TrainedModel, choose_threshold, predict_edges, save_model, train
from citizen_view.warehouse import table_exists

if TYPE_CHECKING:
    import duckdb

LINKAGE_TABLES = """
CREATE TABLE IF NOT EXISTS citizen_id_history (
    citizen_id VARCHAR NOT NULL,
    event VARCHAR NOT NULL,            -- created | split | merged | retired
    related_citizen_id VARCHAR,        -- split: the ID it split from; merged: the surviving ID
    records BIGINT,
    run_id VARCHAR,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


def model_dir(warehouse_path: str | Path) -> Path:
    """Where the model JSON and Splink's charts are written: beside the warehouse file."""
    return Path(warehouse_path).resolve().parent / "linkage"


def store_model(con: duckdb.DuckDBPyConnection, trained: TrainedModel, warehouse_path: str | Path) -> Path:
    """Save the fitted model as JSON beside the warehouse and in `linkage_model`."""
    path = save_model(trained.model, model_dir(warehouse_path) / "splink_model.json")
    con.execute("BEGIN TRANSACTION")
    con.execute(
        "CREATE OR REPLACE TABLE linkage_model (trained_at TIMESTAMPTZ, model_json JSON, fields_used VARCHAR[], notes VARCHAR[])"
    )
    con.execute(
        "INSERT INTO linkage_model VALUES (now(), ?, ?, ?)",
        [json.dumps(trained.model), trained.fields_used, trained.training_notes],
    )
    con.execute("COMMIT")
    return path


def saved_model(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    if not table_exists(con, "main", "linkage_model"):
        raise RuntimeError("no trained linkage model in the warehouse: materialise linkage_model first")
    return json.loads(con.execute("SELECT model_json FROM linkage_model").fetchall()[0][0])


@dataclass
class EdgeReport:
    pairs_kept: int
    threshold: float
    threshold_method: str
    links_above_threshold: int
    histogram: list[tuple[float, int]] = field(default_factory=list)
    seconds: float = 0.0


def score_pairs(con: duckdb.DuckDBPyConnection) -> EdgeReport:
    """Score candidate pairs with the saved model into `match_edges` and choose the link threshold."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="citizen-view-score-") as tmp:
        path = predict_edges(con, saved_model(con), Path(tmp) / "match_edges.parquet")
        weights = con.sql(f"SELECT match_weight FROM read_parquet('{path}')").fetchnumpy()["match_weight"]
        threshold, method = choose_threshold(weights)
        counts, bounds = np.histogram(weights, bins=24, range=(-4, 20)) if weights.size else (np.array([]), np.array([0]))
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE OR REPLACE TABLE match_edges AS SELECT * FROM read_parquet('{path}')")
        con.execute("CREATE OR REPLACE TABLE linkage_threshold (threshold_weight DOUBLE, method VARCHAR, chosen_at TIMESTAMPTZ)")
        con.execute("INSERT INTO linkage_threshold VALUES (?, ?, now())", [threshold, method])
        con.execute("COMMIT")
    return EdgeReport(
        pairs_kept=int(weights.size),
        threshold=threshold,
        threshold_method=method,
        links_above_threshold=int((weights >= threshold).sum()),
        histogram=[(float(b), int(c)) for b, c in zip(bounds[:-1], counts)],
        seconds=time.perf_counter() - started,
    )


@dataclass
class LinkReport:
    records: int
    citizens: int
    created: int
    split: int
    merged: int
    retired: int
    components_with_conflicts: int
    merges_refused: int
    overrides_same: int = 0
    overrides_different: int = 0
    review_queue: int = 0
    seconds: float = 0.0


def link_citizens(
    con: duckdb.DuckDBPyConnection, *, run_id: str, overrides_path: Path | None = None,
    review_band: tuple[float, float] | None = None, max_citizen_records: int = 50,
) -> LinkReport:
    """Cluster records on the scored pairs (reviewers' decisions first), give every cluster its stable
    citizen ID, and queue what still needs a reviewer."""
    started = time.perf_counter()
    con.execute(LINKAGE_TABLES)
    threshold = con.execute("SELECT threshold_weight FROM linkage_threshold").fetchall()[0][0]
    overrides = load_overrides(overrides_path)
    same, different = constraints(overrides)
    records = con.sql(
        "SELECT record_key, national_id, national_id_valid, strftime(date_of_birth, '%Y%m%d') AS dob FROM source_records"
    ).pl()
    edges = con.sql("SELECT record_key_l, record_key_r, match_weight FROM match_edges").pl()
    clustered = cluster_records(records, edges, threshold=threshold, same=same, different=different)
    previous = (
        con.sql("SELECT record_key, citizen_id FROM citizen_source_link").pl()
        if table_exists(con, "main", "citizen_source_link")
        else None
    )
    taken = {r[0] for r in con.execute("SELECT DISTINCT citizen_id FROM citizen_id_history").fetchall()}
    links, history = assign_citizen_ids(clustered.labels, previous, taken=taken)
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("_links", links)
        con.register("_history", history)
        con.execute(
            f"""
            CREATE OR REPLACE TABLE citizen_source_link AS
            WITH best AS (
                SELECT record_key, max(match_probability) AS match_probability, max(match_weight) AS match_weight
                FROM (
                    SELECT e.record_key_l AS record_key, e.match_probability, e.match_weight
                    FROM match_edges e JOIN _links a ON a.record_key = e.record_key_l
                    JOIN _links b ON b.record_key = e.record_key_r AND a.citizen_id = b.citizen_id
                    UNION ALL
                    SELECT e.record_key_r, e.match_probability, e.match_weight
                    FROM match_edges e JOIN _links a ON a.record_key = e.record_key_l
                    JOIN _links b ON b.record_key = e.record_key_r AND a.citizen_id = b.citizen_id
                ) GROUP BY record_key
            )
            SELECT l.citizen_id, r.source, r.source_record_id, l.record_key,
                   best.match_probability, best.match_weight,
                   count(*) OVER (PARTITION BY l.citizen_id) AS citizen_record_count,
                   '{run_id}' AS run_id, now() AS linked_at
            FROM _links l JOIN source_records r USING (record_key) LEFT JOIN best USING (record_key)
            ORDER BY l.citizen_id, r.source, r.source_record_id
            """
        )
        con.execute(
            "INSERT INTO citizen_id_history (citizen_id, event, related_citizen_id, records, run_id) "
            "SELECT citizen_id, event, related_citizen_id, records, ? FROM _history",
            [run_id],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_links")
        con.unregister("_history")
    store_overrides(con, overrides)
    queued = build_review_queue(
        con, overrides, threshold=threshold, band=review_band, max_citizen_records=max_citizen_records, run_id=run_id
    )
    events = history.get_column("event").value_counts()
    count = dict(zip(events.get_column("event").to_list(), events.get_column("count").to_list()))
    return LinkReport(
        records=links.height,
        citizens=links.get_column("citizen_id").n_unique(),
        created=count.get("created", 0),
        split=count.get("split", 0),
        merged=count.get("merged", 0),
        retired=count.get("retired", 0),
        components_with_conflicts=clustered.components_with_conflicts,
        merges_refused=clustered.merges_refused,
        overrides_same=len(same),
        overrides_different=len(different),
        review_queue=queued,
        seconds=time.perf_counter() - started,
    )


def train_and_store(con: duckdb.DuckDBPyConnection, warehouse_path: str | Path, *, seed: int = 1) -> tuple[TrainedModel, Path]:
    trained = train(con, seed=seed, reports_dir=model_dir(warehouse_path))
    return trained, store_model(con, trained, warehouse_path)
