"""Shared fixtures: small extracts written by hand, and a generated sample set per session.

The test session keeps its own DAGSTER_HOME (a fresh temporary folder), whatever the caller's
environment says: deliberately failing test runs must never show up in the user's Dagster UI. Nothing
is written into the work tree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PREFIX = "citizen-view-tests-dagster-"
# A process a test starts (a spawned worker importing a test module) shares its session's folder: one of its own
# would outlive it, as only the session removes its folder.
_SESSION_HOME = Path(os.environ.get("CITIZEN_VIEW_TESTS_DAGSTER_HOME", "/nonexistent"))
if (
    _SESSION_HOME.name.startswith(_PREFIX)
    and _SESSION_HOME.parent == Path(tempfile.gettempdir())
    and _SESSION_HOME.is_dir()
):
    TEST_DAGSTER_HOME, OWN_HOME = _SESSION_HOME, False
else:
    TEST_DAGSTER_HOME, OWN_HOME = Path(tempfile.mkdtemp(prefix=_PREFIX)), True
    (TEST_DAGSTER_HOME / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    os.environ["CITIZEN_VIEW_TESTS_DAGSTER_HOME"] = str(TEST_DAGSTER_HOME)
os.environ["DAGSTER_HOME"] = str(TEST_DAGSTER_HOME)
# Hypothesis (under schemathesis) keeps its caches in ./.hypothesis unless told otherwise: not in the work tree.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(TEST_DAGSTER_HOME.parent / "citizen-view-tests-hypothesis"))


def pytest_sessionfinish(session, exitstatus):
    """The session's Dagster instance is its own: remove it, so runs do not pile up in the temp folder."""
    if OWN_HOME:
        shutil.rmtree(TEST_DAGSTER_HOME, ignore_errors=True)


def write(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding=encoding)
    return path


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    """A generated NL set of 400 persons (extracts, sources.yaml and truth)."""
    from citizen_view_synth import generate

    out = tmp_path_factory.mktemp("generated")
    generate(out, persons=400, seed=7, country="NL")
    return out


@dataclass(frozen=True)
class LinkedWorld:
    """The generated set at root/data, run whole by the pipeline into root/wh/cv.duckdb, and what the run said."""

    root: Path
    warehouse: Path
    outcome: object  # citizen_view_app.runner.RunOutcome


@pytest.fixture(scope="session")
def linked_world(generated, tmp_path_factory) -> LinkedWorld:
    """One linked warehouse per session: tests copy it (`linked_copy`) instead of linking the same set again."""
    from citizen_view_app.runner import run_pipeline

    root = tmp_path_factory.mktemp("linked")
    shutil.copytree(generated, root / "data")
    wh = root / "wh" / "cv.duckdb"
    outcome = run_pipeline(sources_path=root / "data/sources.yaml", warehouse_path=wh)
    assert outcome.success, outcome.failed
    return LinkedWorld(root, wh, outcome)


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """A Spark standalone master and one worker (2 cores, 2 GB) on loopback, for the whole test run."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (.ci/run installs openjdk-17-jre-headless)")
    from tests.spark_fixtures import standalone_cluster

    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), cores=2, memory="2g") as running:
        yield running


@pytest.fixture(scope="session")
def spark_cluster_run(generated, spark_cluster, tmp_path_factory):
    """The session's one whole pipeline run on Spark: `citizen-view run` of the generated set linked on the cluster
    (a spark:// master, a checkpoint folder). tests/test_spark_cluster.py checks the run itself; tests/test_spark.py
    compares it with DuckDB's and starts its local Spark work from its warehouse. Read only: copy it to change it."""
    from tests.spark_fixtures import run_on_cluster

    return run_on_cluster(generated, tmp_path_factory.mktemp("on-cluster"), spark_cluster)


@pytest.fixture(scope="session")
def duckdb_linked(linked_world) -> tuple[Path, Path]:
    """The session's linked world (DuckDB), for tests that compare another backend's run with it: (root, warehouse),
    read only."""
    return linked_world.root, linked_world.warehouse


def copy_world(world: LinkedWorld, root: Path) -> tuple[Path, Path]:
    """A copy of the linked world (data and warehouse folder) at `root`, for a test that changes it: (root, warehouse)."""
    shutil.copytree(world.root, root)
    return root, root / world.warehouse.relative_to(world.root)


def linked_copy(world: LinkedWorld, tmp_path_factory, name: str) -> tuple[Path, Path]:
    """A copy of the session's linked world in a fresh folder named after `name`: (root, warehouse)."""
    return copy_world(world, tmp_path_factory.mktemp(name) / "world")


def citizen_of_records(warehouse: Path) -> dict[str, str]:
    """record_key -> citizen_id of every linked record in a warehouse (opened read only)."""
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return dict(con.execute("SELECT record_key, citizen_id FROM citizen_source_link").fetchall())
    finally:
        con.close()


@contextmanager
def collected_chain(generated: Path, root: Path) -> Iterator[tuple]:
    """The generated set copied to root/data, ingested without Dagster into root/cv.duckdb and collected by the
    linkage facade, ready to run: (open connection, `Linkage`)."""
    from citizen_view.contract import load_sources
    from citizen_view.ingest import ingest_source
    from citizen_view.layout import WarehouseLayout
    from citizen_view.linkage import Linkage
    from citizen_view.warehouse import connect

    shutil.copytree(generated, root / "data")
    sources = load_sources(root / "data" / "sources.yaml")
    with connect(root / "cv.duckdb") as con:
        for source in sources.sources:
            ingest_source(con, sources, source.name)
        chain = Linkage(con, WarehouseLayout.of(root / "cv.duckdb"), sources)
        chain.collect()
        yield con, chain


def empty_record(con, source: str, record_id: str) -> None:
    """Re-deliver one record of a collected chain as nobody: every field linkage reads emptied in its canonical
    table (its key and source kept), so the next run splits it off whatever citizen held it."""
    from citizen_view.linkage.records import SOURCE_COLUMNS

    present = {r[0] for r in con.execute(f"SELECT name FROM pragma_table_info('canonical.{source}')").fetchall()}
    emptied = [c for c in SOURCE_COLUMNS if c in present and c not in ("source", "national_id_valid")]
    con.execute(
        f"UPDATE canonical.{source} SET {', '.join(f'{c} = NULL' for c in emptied)} WHERE source_record_id = ?",
        [record_id],
    )
