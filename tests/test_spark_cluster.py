"""Linkage on a Spark standalone cluster: a master and one worker (2 cores) as separate processes on loopback, from
pyspark's own distribution; the pipeline run as `citizen-view run` with `linkage.spark.master: spark://...` and
a checkpoint folder of its own; its links agree with DuckDB's as on local Spark (tests/test_spark.py).

One Spark session per Python process: the cluster run is a subprocess, so it never meets the local session of
tests/test_spark.py. Nothing here needs the network: the cluster, the driver and the executor talk on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from citizen_view.linkage.evaluate import load_truth
from tests.spark_fixtures import SMALL_DATA_CONF, assert_links_agree, standalone_cluster

RUN_SECONDS = 1500  # a bound for a busy shared machine, not the expected time


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A standalone master and one worker (2 cores, 2 GB) on loopback, for the whole test run."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (.ci/run installs openjdk-17-jre-headless)")
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), cores=2, memory="2g") as running:
        yield running


def _cluster_sources(generated: Path, root: Path, master_url: str, checkpoints: Path) -> Path:
    shutil.copytree(generated, root / "data")
    config = yaml.safe_load((root / "data/sources.yaml").read_text(encoding="utf-8"))
    config["linkage"] = {
        "backend": "spark",
        "spark": {
            "master": master_url,
            "checkpoint_dir": checkpoints.as_uri(),  # a Hadoop path, as an hdfs:// or s3a:// one would be
            "conf": {
                **SMALL_DATA_CONF,
                "spark.driver.host": "127.0.0.1",  # executors call the driver back on loopback
                "spark.driver.memory": "1g",
                "spark.executor.memory": "1g",
                "spark.executor.cores": "2",
                "spark.pyspark.python": sys.executable,  # the executor's Python workers: the driver's version
            },
        },
    }
    path = root / "data/cluster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_a_run_linked_on_a_spark_cluster_agrees_with_duckdb(generated, duckdb_linked, cluster, tmp_path):
    checkpoints = tmp_path / "shared-checkpoints"
    checkpoints.mkdir()
    sources = _cluster_sources(generated, tmp_path, cluster.master_url, checkpoints)
    warehouse = tmp_path / "cluster/cv.duckdb"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "CITIZEN_VIEW_LINKAGE_BACKEND")}
    cli = Path(sys.executable).with_name("citizen-view")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "citizen_view_app.cli"]
    log = tmp_path / "run.log"
    started = time.monotonic()
    with log.open("wb") as out:
        run = subprocess.run(
            [*command, "run", "--sources", str(sources), "--warehouse", str(warehouse)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_SECONDS,
        )
    seconds = time.monotonic() - started
    assert run.returncode == 0, log.read_text(errors="replace")[-10000:]

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
    print(f"\ncitizen-view run on the cluster: {seconds:.0f} s")
