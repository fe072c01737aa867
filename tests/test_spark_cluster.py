"""Linkage on a Spark standalone cluster: a master and one worker (2 cores) as separate processes on loopback, from
pyspark's own distribution; the pipeline run as `citizen-view run` with `linkage.spark.master: spark://...` and
a checkpoint folder of its own (the session's `spark_cluster_run`, tests/conftest.py); its links agree with DuckDB's.
tests/test_spark.py starts its local Spark work (scoring, incremental runs, explanations) from the same run.

One Spark session per Python process: the cluster run is a subprocess, so it never meets the local session of
tests/test_spark.py. Nothing here needs the network: the cluster, the driver and the executor talk on 127.0.0.1.
"""

from __future__ import annotations

import json

import duckdb

from citizen_view.linkage.evaluate import load_truth
from tests.spark_fixtures import assert_links_agree


def test_a_run_linked_on_a_spark_cluster_agrees_with_duckdb(duckdb_linked, spark_cluster, spark_cluster_run):
    run, cluster = spark_cluster_run, spark_cluster
    warehouse, checkpoints = run.warehouse, run.checkpoints
    assert run.returncode == 0, run.log.read_text(errors="replace")[-10000:]

    apps = cluster.completed_apps("citizen-view-linkage")
    assert apps, cluster.status()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        training = con.sql("SELECT * FROM linkage_model").pl().to_dicts()[0]
    finally:
        con.close()
    assert "trained on spark" in json.dumps(training, default=str)
    # the executor wrote Splink's tables to the checkpoint folder, and the run removed its own folder there at exit
    executor_logs = "".join(
        p.read_text(errors="replace") for a in apps for p in (cluster.folder / "work" / a["id"]).glob("*/stderr")
    )
    assert "Running task" in executor_logs  # the linkage ran on the worker's executor, not in the driver
    assert f"to file:{checkpoints}/" in executor_logs and "/__splink__" in executor_logs
    assert list(checkpoints.iterdir()) == []
    root, duck = duckdb_linked
    assert_links_agree(duck, warehouse, load_truth(root / "data/truth"))
    print(f"\ncitizen-view run on the cluster: {run.seconds:.0f} s")
