"""Dagster as in production: the instance of deploy/dagster.yaml on PostgreSQL, sensors run by `dagster-daemon`.

A throwaway PostgreSQL cluster (the machine's own binaries) holds the run, event-log and schedule storage; the
real daemon process loads this repo's workspace.yaml, its landing sensor sees an extract dropped in a landing
folder and queues the incremental landing job, the daemon launches it, and the run, its asset materialisations
and its quality gates are read back from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context

from citizen_view.layout import WarehouseLayout
from citizen_view_app.runner import run_pipeline
from pipelines.definitions import FULL_JOB, build_definitions, landing_job_name
from tests.conftest import ROOT
from tests.service_fixtures import free_port

LATE = 30  # tax records held back from the first run: they arrive later through the landing folder
WAIT_SECONDS = (
    480  # a bound for a busy shared machine (the run took 283 s under load 19 on 2 cores), not the expected time
)


def _pg_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl): on PATH, else the newest Debian install."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    installs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return installs[-1].parent if installs else None


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on loopback with an empty `dagster` database: its URL (psycopg2 driver)."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it: apt-get install -y postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="citizen-view-tests-postgres-"))  # not under pytest's root-only folder
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the cluster belongs to the postgres user
        shutil.chown(folder, user="postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run(
        [*as_owner, pg_bin / "initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True, capture_output=True
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_owner, pg_bin / "pg_ctl", "-D", data, "-o", options, "-l", folder / "log", "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE dagster")
        con.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/dagster"
    finally:
        subprocess.run([*as_owner, pg_bin / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _landing_set(generated: Path, root: Path) -> tuple[Path, bytes]:
    """The generated set with `tax` read from tax/*/*.csv and landing in tax/landing/; the held-back extract's bytes."""
    shutil.copytree(generated, root)
    config = yaml.safe_load((root / "sources.yaml").read_text(encoding="utf-8"))
    tax = next(s for s in config["sources"] if s["name"] == "tax")
    (extract,) = sorted(root.glob(tax["path"]))
    header, *rows = extract.read_bytes().splitlines(keepends=True)
    (root / "tax/base").mkdir(parents=True)
    (root / "tax/landing").mkdir()
    (root / "tax/base/tax.csv").write_bytes(header + b"".join(rows[:-LATE]))
    extract.unlink()
    tax.update(path="tax/*/*.csv", landing="tax/landing")
    (root / "sources.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root / "sources.yaml", header + b"".join(rows[-LATE:])


def test_the_landing_sensor_links_new_records_once_a_model_is_saved(generated, tmp_path):
    sources, late = _landing_set(generated, tmp_path / "data")
    wh = tmp_path / "wh/cv.duckdb"
    defs = build_definitions(sources_path=sources, warehouse_path=wh)
    sensor = next(s for s in defs.sensors if s.name == "landing_tax")
    (tmp_path / "data/tax/landing/late.csv").write_bytes(late)
    instance = DagsterInstance.ephemeral()

    def requested(cursor):
        data = sensor.evaluate_tick(build_sensor_context(cursor=cursor, instance=instance))
        return data.cursor, [r.job_name for r in data.run_requests]

    cursor, first = requested(None)
    assert first == []  # one look: the file may still be growing
    assert requested(cursor)[1] == [FULL_JOB]  # nothing trained yet: the first extract starts everything
    WarehouseLayout.of(wh).model_file.parent.mkdir(parents=True)
    WarehouseLayout.of(wh).model_file.write_text("{}", encoding="utf-8")
    assert requested(cursor)[1] == [landing_job_name("tax")]
    landed = {
        k.to_user_string() for k in defs.resolve_job_def(landing_job_name("tax")).asset_layer.executable_asset_keys
    }
    assert {"source/tax", "source_records", "citizen_source_link", "citizen", "serving/view"} <= landed
    assert not landed & {"linkage_model", "match_edges", "source/population"}  # no retraining, no other source


def _daemon_log(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-20000:] if log.exists() else "(no log)"


def _daemon_env(home: Path, postgres: str, sources: Path, wh: Path) -> dict[str, str]:
    """The environment of `deploy/dagster.yaml` as production sets it, with a short landing-sensor interval."""
    home.mkdir()
    shutil.copy(ROOT / "deploy/dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": postgres,
        "CITIZEN_VIEW_SOURCES": str(sources),
        "CITIZEN_VIEW_WAREHOUSE": str(wh),
        "CITIZEN_VIEW_LANDING_INTERVAL": "3",
    }


@contextlib.contextmanager
def _running_daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on this repo's workspace.yaml, logging to `log`; stopped (with its code server and run
    workers, should any be left) when the block ends."""
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dagster._daemon", "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield daemon
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        try:
            os.killpg(daemon.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _finished_landing_run(instance: DagsterInstance, daemon: subprocess.Popen, log: Path, started: float):
    """The first landing run of `tax` the daemon finished, waiting at most WAIT_SECONDS from `started`."""
    while time.monotonic() - started < WAIT_SECONDS:
        assert daemon.poll() is None, f"the daemon stopped ({daemon.returncode}):\n{_daemon_log(log)}"
        runs = instance.get_runs(RunsFilter(job_name=landing_job_name("tax")))
        if runs and runs[0].is_finished:
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"no finished landing run after {WAIT_SECONDS} s; daemon log:\n{_daemon_log(log)}")


def _assert_incremental_landing_run(instance: DagsterInstance, run) -> None:
    """The run's quality gates all passed, and it linked the late records incrementally without retraining."""
    checks = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    assert {"source/tax", "citizen"} <= {c.asset_key.to_user_string() for c in checks}
    linked = {
        e.dagster_event.event_specific_data.materialization.asset_key.to_user_string(): e.dagster_event.event_specific_data.materialization.metadata
        for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    }
    assert "linkage_model" not in linked and "serving/view" in linked
    assert linked["citizen_source_link"]["mode"].value == "incremental"
    assert linked["citizen_source_link"]["new_records"].value == LATE


def _late_records_linked(wh: Path, late: bytes) -> int:
    """How many of the late extract's tax records have a citizen in the warehouse."""
    ids = [line.split(b";")[0].decode("latin-1") for line in late.splitlines()[1:]]
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(
            "SELECT count(*) FROM citizen_source_link WHERE source = 'tax' AND source_record_id IN ?", [ids]
        ).fetchall()[0][0]
    finally:
        con.close()


def test_the_daemon_runs_the_landing_sensor_on_postgres(generated, postgres, tmp_path, monkeypatch):
    sources, late = _landing_set(generated, tmp_path / "data")
    wh = tmp_path / "wh/cv.duckdb"
    t0 = time.monotonic()
    first = run_pipeline(sources_path=sources, warehouse_path=wh)  # the first load, trained (in-process)
    assert first.success, first.failed
    print(f"\nfirst load in-process: {time.monotonic() - t0:.0f} s")
    env = _daemon_env(tmp_path / "dagster_home", postgres, sources, wh)
    for key in ("DAGSTER_POSTGRES_URL", "CITIZEN_VIEW_SOURCES", "CITIZEN_VIEW_WAREHOUSE"):
        monkeypatch.setenv(key, env[key])
    log = tmp_path / "daemon.log"
    started = time.monotonic()
    with _running_daemon(env, log) as daemon:
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        print(f"instance ready: {time.monotonic() - started:.0f} s after the daemon started")
        (tmp_path / "data/tax/landing/late.csv.part").write_bytes(late)
        (tmp_path / "data/tax/landing/late.csv.part").rename(tmp_path / "data/tax/landing/late.csv")
        run = _finished_landing_run(instance, daemon, log, started)
        seconds = time.monotonic() - started
        stats = instance.get_run_stats(run.run_id)
        run_seconds = stats.end_time - stats.launch_time
        assert run.status == DagsterRunStatus.SUCCESS, _daemon_log(log)
        assert run.tags["file"] == "tax/landing/late.csv" and run.tags["dagster/sensor_name"] == "landing_tax"
        assert len(instance.get_runs()) == 1  # one file, one run
        _assert_incremental_landing_run(instance, run)
    assert _late_records_linked(wh, late) == LATE  # every late record has a citizen in the warehouse
    print(f"daemon started -> landing run finished: {seconds:.0f} s; the run itself: {run_seconds:.0f} s")
