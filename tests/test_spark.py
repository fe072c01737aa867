"""The same linkage on Spark (local, 2 cores) as on DuckDB: one saved model scores on both, incremental runs link
new records alike, and explanations match.

Spark is slow to start and slow on small data: these tests share one local session and a small generated set, and
start from the session's one whole run on Spark (`spark_cluster_run`: linked on a standalone cluster, its agreement
with DuckDB's run checked in tests/test_spark_cluster.py) rather than linking the same set whole a second time.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from citizen_view.contract import LinkageConfig, SparkConfig, load_sources
from citizen_view.layout import WarehouseLayout
from citizen_view.linkage.explain import explain_pair
from citizen_view.linkage.steps import link_citizens, score_pairs
from tests.conftest import citizen_of_records
from tests.spark_fixtures import SMALL_DATA_CONF

SPARK = {"backend": "spark", "spark": {"master": "local[2]", "conf": SMALL_DATA_CONF}}


@pytest.fixture(scope="module")
def runs(duckdb_linked, spark_cluster_run):
    """The generated set run whole on DuckDB and on Spark (the sources file says `linkage.backend: spark`):
    (the Spark run's root, the DuckDB warehouse, the Spark warehouse), read only."""
    assert spark_cluster_run.returncode == 0, spark_cluster_run.log.read_text(errors="replace")[-10000:]
    return spark_cluster_run.root, duckdb_linked[1], spark_cluster_run.warehouse


def test_one_saved_model_scores_the_same_on_both_backends(runs, tmp_path):
    root, duck, _ = runs
    copy = tmp_path / "rescored.duckdb"
    shutil.copy(duck, copy)
    shutil.copytree(WarehouseLayout.of(duck).root, WarehouseLayout.of(copy).root)
    spark = LinkageConfig(backend="spark", spark=SparkConfig(**SPARK["spark"]))
    con = duckdb.connect(str(copy))
    try:
        edges_duck = dict(
            con.execute(
                "SELECT least(record_key_l, record_key_r) || '~' || greatest(record_key_l, record_key_r), match_weight FROM match_edges"
            ).fetchall()
        )
        score_pairs(con, WarehouseLayout.of(copy), linkage=spark)  # the DuckDB-trained model, scored by Spark
        edges_spark = dict(
            con.execute(
                "SELECT least(record_key_l, record_key_r) || '~' || greatest(record_key_l, record_key_r), match_weight FROM match_edges"
            ).fetchall()
        )
        link_citizens(con, WarehouseLayout.of(copy), run_id="rescored-on-spark", linkage=spark)
    finally:
        con.close()
    assert set(edges_duck) == set(edges_spark)
    off = [k for k in edges_duck if abs(edges_duck[k] - edges_spark[k]) > 1e-6]
    # Spark's Jaro-Winkler differs from DuckDB's on a few name pairs: at most 0.1% of pairs may score differently
    assert len(off) <= max(1, len(edges_duck) // 1000), off[:5]
    before, after = citizen_of_records(duck), citizen_of_records(copy)
    moved = [k for k in before if before[k] != after[k]]
    assert len(moved) <= max(1, len(before) // 1000), moved[:5]  # same clusters, same stable citizen IDs


def test_an_incremental_run_on_spark_links_new_records_as_on_duckdb(runs, tmp_path):
    _, _, spark_wh = runs
    results = {}
    for backend in ("duckdb", "spark"):
        copy = tmp_path / backend / "cv.duckdb"
        copy.parent.mkdir()
        shutil.copy(spark_wh, copy)
        shutil.copytree(WarehouseLayout.of(spark_wh).root, WarehouseLayout.of(copy).root)
        linkage = LinkageConfig(backend=backend, spark=SparkConfig(**SPARK["spark"]))
        con = duckdb.connect(str(copy))
        try:
            con.execute(
                "CREATE TEMP TABLE _late AS SELECT record_key FROM source_records WHERE source = 'tax' ORDER BY record_key DESC LIMIT 40"
            )
            con.execute("DELETE FROM citizen_source_link WHERE record_key IN (SELECT record_key FROM _late)")
            con.execute(
                "DELETE FROM match_edges WHERE record_key_l IN (SELECT record_key FROM _late) OR record_key_r IN (SELECT record_key FROM _late)"
            )
            report = link_citizens(
                con, WarehouseLayout.of(copy), run_id=f"late-{backend}", linkage=linkage, incremental=True
            )
            assert report.incremental and report.new_records == 40
            results[backend] = dict(
                con.execute(
                    "SELECT l.record_key, list(o.record_key ORDER BY o.record_key) FROM citizen_source_link l "
                    "JOIN citizen_source_link o USING (citizen_id) WHERE l.record_key IN (SELECT record_key FROM _late) GROUP BY 1"
                ).fetchall()
            )
        finally:
            con.close()
    assert results["spark"] == results["duckdb"]  # each late record joined the same records on both backends
    assert sum(len(v) > 1 for v in results["spark"].values()) >= 30  # and most of them did join someone


def test_explain_gives_the_same_evidence_on_spark(runs):
    _, duck, _ = runs
    con = duckdb.connect(str(duck), read_only=True)
    try:
        left, right = con.execute(
            "SELECT record_key_l, record_key_r FROM match_edges ORDER BY match_weight DESC LIMIT 1"
        ).fetchall()[0]
        on_duck = explain_pair(con, left, right, layout=WarehouseLayout.of(duck))
        on_spark = explain_pair(
            con,
            left,
            right,
            layout=WarehouseLayout.of(duck),
            linkage=LinkageConfig(backend="spark", spark=SparkConfig(**SPARK["spark"])),
        )
    finally:
        con.close()
    assert [(f.comparison, f.level) for f in on_duck.fields] == [(f.comparison, f.level) for f in on_spark.fields]
    assert abs(on_duck.match_weight - on_spark.match_weight) < 1e-6


def test_the_backend_is_a_setting_of_the_sources_file(runs):
    root, _, _ = runs
    assert load_sources(root / "data/cluster.yaml").linkage.backend == "spark"
    assert load_sources(root / "data/sources.yaml").linkage.backend == "duckdb"
