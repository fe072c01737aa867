"""What the Spark tests share: the small-data session settings, a standalone cluster on loopback, the one whole
pipeline run linked on it, and the comparisons of a warehouse's links with another's (tests/test_spark.py,
tests/test_spark_cluster.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from citizen_view.linkage.evaluate import evaluate_links
from tests.service_fixtures import free_port

# Short-lived JVMs on small data: C1 only (the C2 compiler took half of the CPU time on this set) and a serial GC.
SHORT_RUN_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# A few hundred persons: two shuffle partitions, one per core (Spark's 200 would make hundreds of empty tasks), and
# no whole-stage code generation (compiling each stage costs more than running it on this little data).
SMALL_DATA_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.codegen.wholeStage": "false",
    "spark.driver.extraJavaOptions": SHORT_RUN_JVM,
    "spark.executor.extraJavaOptions": SHORT_RUN_JVM,
}
START_SECONDS = 180  # master and worker up: a bound for a busy shared machine
RUN_SECONDS = 1500  # the whole run on the cluster: a bound for a busy shared machine, not the expected time


def pairs(wh: Path) -> set[tuple[str, str]]:
    """The record pairs a warehouse's citizens join."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return set(
            con.execute(
                "SELECT a.record_key, b.record_key FROM citizen_source_link a JOIN citizen_source_link b USING (citizen_id) "
                "WHERE a.record_key < b.record_key"
            ).fetchall()
        )
    finally:
        con.close()


def f1(wh: Path, truth) -> float:
    """The F1 of a warehouse's links against the generator's truth."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    finally:
        con.close()
    return evaluate_links(links, truth)["f1"]


def assert_links_agree(duck: Path, other: Path, truth) -> None:
    """Two warehouses of the same sources link alike: 99% of pairs in common and the same F1 within 0.005."""
    a, b = pairs(duck), pairs(other)
    assert len(a & b) / len(a | b) >= 0.99, (len(a - b), len(b - a))
    assert abs(f1(duck, truth) - f1(other, truth)) <= 0.005  # a model trained on Spark is as good


@dataclass
class Cluster:
    """A standalone master and its workers on loopback: the URL to link on and the master's status page."""

    master_url: str
    webui_port: int
    folder: Path

    def status(self) -> dict:
        """The master's status as JSON (workers, running and finished applications)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui_port}/json/", timeout=5) as response:
            return json.load(response)

    def completed_apps(self, name: str, wait_seconds: float = 60) -> list[dict]:
        """The finished applications called `name` (the master marks an application finished when its driver has gone)."""
        deadline = time.monotonic() + wait_seconds
        while True:
            apps = [a for a in self.status()["completedapps"] if a["name"] == name]
            if apps or time.monotonic() > deadline:
                return apps
            time.sleep(1)

    def logs(self) -> str:
        return "\n".join(
            f"{p.name}:\n{p.read_text(errors='replace')[-5000:]}" for p in sorted(self.folder.glob("*.log"))
        )


def _spark_class(spark_home: Path, main: str, args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """One Spark daemon as a process of its own (spark-class execs the JVM), in a session of its own."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(spark_home / "bin/spark-class"), main, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (a worker then stops its executors), SIGKILL to the process group if it does not end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def standalone_cluster(folder: Path, *, cores: int = 2, memory: str = "2g") -> Iterator[Cluster]:
    """A Spark standalone master and one worker (`cores`, `memory`) as separate processes on loopback, from
    pyspark's own distribution; both stopped (by their process IDs) on exit."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(folder),
        "SPARK_WORKER_DIR": str(folder / "work"),
        "SPARK_DAEMON_JAVA_OPTS": SHORT_RUN_JVM,
    }
    port, ui, worker_ui = free_port(), free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", ui, folder)
    processes: list[subprocess.Popen] = []
    try:
        master_args = ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)]
        processes.append(
            _spark_class(spark_home, "org.apache.spark.deploy.master.Master", master_args, env, folder / "master.log")
        )
        worker_args = [cluster.master_url, "--host", "127.0.0.1", "--cores", str(cores), "--memory", memory]
        worker_args += ["--webui-port", str(worker_ui)]
        processes.append(
            _spark_class(spark_home, "org.apache.spark.deploy.worker.Worker", worker_args, env, folder / "worker.log")
        )
        _wait_for_worker(cluster, processes)
        yield cluster
    finally:
        for process in reversed(processes):
            _stop(process)


def _wait_for_worker(cluster: Cluster, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        assert all(p.poll() is None for p in processes), cluster.logs()
        with contextlib.suppress(OSError, ValueError):
            if any(w["state"] == "ALIVE" for w in cluster.status()["workers"]):
                return
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(1)


@dataclass
class ClusterRun:
    """`citizen-view run` of the generated set (copied to root/data) with `linkage.backend: spark` on a cluster."""

    root: Path
    sources: Path  # root/data/cluster.yaml: the generated sources.yaml with the cluster's linkage settings
    warehouse: Path
    checkpoints: Path  # the checkpoint folder the sources file names, shared by driver and executor
    log: Path  # what the run printed
    returncode: int
    seconds: float


def cluster_sources(generated: Path, root: Path, master_url: str, checkpoints: Path) -> Path:
    """The generated set copied to root/data, with a sources file (cluster.yaml) that links on `master_url`."""
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


def run_on_cluster(generated: Path, root: Path, cluster: Cluster) -> ClusterRun:
    """The whole pipeline as a user starts it (`citizen-view run`, a process of its own, so its Spark session is not
    this process's), linked on `cluster`; outside any DAGSTER_HOME or backend override of the test's environment."""
    checkpoints = root / "shared-checkpoints"
    checkpoints.mkdir(parents=True)
    sources = cluster_sources(generated, root, cluster.master_url, checkpoints)
    warehouse = root / "cluster/cv.duckdb"
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "CITIZEN_VIEW_LINKAGE_BACKEND")}
    cli = Path(sys.executable).with_name("citizen-view")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "citizen_view_app.cli"]
    log = root / "run.log"
    started = time.monotonic()
    with log.open("wb") as out:
        run = subprocess.run(
            [*command, "run", "--sources", str(sources), "--warehouse", str(warehouse)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_SECONDS,
        )
    return ClusterRun(root, sources, warehouse, checkpoints, log, run.returncode, time.monotonic() - started)
