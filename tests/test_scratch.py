"""Nothing personal outlives its step, and one folder belongs to one warehouse.

A real `citizen-view run` is killed with SIGKILL in two linkage steps (train, inside its scratch folder, and the golden
record, the last); the next run's start removes what it left, and at the end the warehouse's folder holds no given
name, family name or national ID of the input outside the DuckDB file and the declared outputs. On DuckDB the linkage
input crosses to Splink in memory; what a killed step can leave in its scratch folder (Splink's spill files, the
Parquet input of a Spark run) is put there by the test, so the check has something to find.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from citizen_view.layout import FolderClaimed, WarehouseLayout, prepare
from citizen_view_app.cli import main as cli_main

CLI = Path(sys.executable).with_name("citizen-view")


class _Run:
    """A `citizen-view run` in a subprocess, its standard output collected line by line."""

    def __init__(self, sources: Path, warehouse: Path):
        env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # an ephemeral instance: nothing to share
        self.proc = subprocess.Popen(
            [str(CLI), "run", "--sources", str(sources), "--warehouse", str(warehouse)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def kill_when(self, ready, what: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while not ready(self):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(
                    f"the run ended (exit {self.proc.poll()}) or took too long before {what}:\n"
                    + "".join(self.lines[-30:])
                )
            time.sleep(0.02)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def _in_scratch(prefix: str, layout: WarehouseLayout):
    """Ready when a step works in its scratch folder."""

    def ready(_run: _Run) -> bool:
        return any(p.is_dir() for p in layout.scratch_dir.glob(f".{prefix}-*"))

    return ready


def _leave_input_in(folder: Path, warehouse: Path) -> None:
    """Personal values in a Parquet file in a killed step's scratch folder, as a step leaves its input there."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute(f"COPY (SELECT * FROM source_records) TO '{folder / 'input.parquet'}' (FORMAT parquet)")
    finally:
        con.close()


def _whole_parquet(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return len(data) > 8 and data[:4] == data[-4:] == b"PAR1"


def _step_started(asset: str):
    def ready(run: _Run) -> bool:
        return any(line.strip() == f"> {asset} ..." for line in run.lines)

    return ready


def _personal_values(warehouse: Path) -> set[str]:
    """Given names, family names and national IDs of the input (as loaded), long enough to be unambiguous."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'canonical'"
            ).fetchall()
        ]
        values: set[str] = set()
        for t in tables:
            for col in ("given_name", "family_name", "national_id_text"):
                values |= {v for (v,) in con.execute(f'SELECT DISTINCT {col} FROM canonical."{t}"').fetchall() if v}
    finally:
        con.close()
    return {v for v in values if len(v) >= 5}


def _texts(path: Path) -> str:
    """A file's text as a reader would see it: Parquet decoded, anything else its bytes."""
    if _whole_parquet(path):
        return "\n".join(map(str, duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()))
    return path.read_bytes().decode("utf-8", errors="replace")


def _leaks(layout: WarehouseLayout, values: set[str]) -> dict[str, list[str]]:
    """Files beside or under the warehouse, outside the DuckDB file and the declared outputs, holding input values."""
    declared = [layout.serving_dir, layout.exports_dir()]
    found: dict[str, list[str]] = {}
    pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))
    for path in [*layout.warehouse.parent.iterdir(), *layout.root.rglob("*")]:
        if not path.is_file() or path.name.startswith(layout.warehouse.name):  # the DuckDB file and its WAL
            continue
        if any(path.is_relative_to(d) for d in declared):
            continue
        hits = sorted(set(pattern.findall(_texts(path))))
        if hits:
            found[str(path.relative_to(layout.warehouse.parent))] = hits[:5]
    return found


def test_killed_runs_leave_nothing_personal(generated, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(generated, data)
    layout = WarehouseLayout.of(tmp_path / "wh" / "cv.duckdb")
    sources = data / "sources.yaml"
    # Two kills cover both ways a step can die: inside its scratch folder (train), and in the last step, after the
    # run killed there went through score and link (their own scratch is then left by a normal finish).
    kill_points = [
        ("train", _in_scratch("train", layout)),
        ("golden", _step_started("citizen")),
    ]
    left_before: set[Path] = set()
    values: set[str] = set()
    for step, ready in kill_points:
        run = _Run(sources, layout.warehouse)
        run.kill_when(ready, f"the {step} step")
        # the run killed now started by removing what the one before it left (its start holds the write lock)
        assert not (left_before & set(layout.scratch_dir.glob(".*"))), f"still there when {step} ran: {left_before}"
        left_before = set(layout.scratch_dir.glob(".*")) if layout.scratch_dir.is_dir() else set()
        if step == "train":
            assert left_before, f"killing {step} should leave its scratch folder (the test would prove nothing)"
            _leave_input_in(next(p for p in left_before if p.is_dir()), layout.warehouse)
            values = _personal_values(layout.warehouse)
            assert len(values) > 100
            assert _leaks(layout, values), f"the killed {step} step's input should be on disk until the next start"
    prepare(layout)  # what the next run (the pipeline's resource, or `citizen-view run`) does first
    assert _leaks(layout, values) == {}


# --- one folder per warehouse -------------------------------------------------------------------------------


@pytest.mark.parametrize("first, second", [("a.duckdb", "a.db"), ("a.d.duckdb", "a")])
def test_a_second_warehouse_file_cannot_share_a_folder(tmp_path, first, second, capsys):
    one, two = WarehouseLayout.of(tmp_path / first), WarehouseLayout.of(tmp_path / second)
    assert one.root == two.root  # the names lead to one folder
    prepare(one)
    assert one.owner() == one.warehouse
    with pytest.raises(FolderClaimed, match="belongs to the warehouse"):
        prepare(two)
    prepare(one)  # its owner keeps using it
    assert cli_main(["run", "--warehouse", str(two.warehouse)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the folder") and "\n" not in err and first in err


def test_a_warehouse_from_before_the_marker_keeps_its_folder(tmp_path):
    legacy = WarehouseLayout.of(tmp_path / "cv.duckdb")
    legacy.linkage_dir.mkdir(parents=True)
    duckdb.connect(str(legacy.warehouse)).close()
    with pytest.raises(FolderClaimed):
        prepare(WarehouseLayout.of(tmp_path / "cv.db"))  # the folder is cv.duckdb's by the old naming rule
    prepare(legacy)
    assert legacy.marker.read_text(encoding="utf-8").strip() == "cv.duckdb"


def test_a_warehouse_copied_with_its_folder_under_another_name_is_its_own(tmp_path):
    first = WarehouseLayout.of(tmp_path / "a.duckdb")
    prepare(first)
    copy = WarehouseLayout.of(tmp_path / "backup" / "b.duckdb")
    copy.root.parent.mkdir()
    shutil.copy(first.warehouse, copy.warehouse)
    shutil.copytree(first.root, copy.root)  # its marker still names a.duckdb, whose folder is another
    prepare(copy)
    assert copy.owner() == copy.warehouse and first.owner() == first.warehouse


def test_a_local_spark_session_keeps_its_folders_in_the_warehouse_scratch(tmp_path):
    pytest.importorskip("pyspark")
    from citizen_view.contract import Backend, SparkConfig
    from citizen_view.linkage import engine as engine_module
    from tests.spark_fixtures import SMALL_DATA_CONF

    if engine_module._spark_session is not None:
        pytest.skip("this process already has a Spark session (made for another warehouse)")
    layout = WarehouseLayout.of(tmp_path / "cv.duckdb")
    # test_spark.py's settings: the session is the process's, and that module's tests reuse it as they would their own
    spark = SparkConfig(master="local[2]", conf=SMALL_DATA_CONF)
    engine = engine_module.Engine(Backend.SPARK, layout.scratch_dir / ".train-x.partial", spark)
    session = engine.spark_session()
    for folder in (
        session.conf.get("spark.local.dir"),
        session.conf.get("spark.sql.warehouse.dir"),
        session.sparkContext.getCheckpointDir(),
    ):
        assert str(layout.scratch_dir) in folder, folder
    assert layout.clean_scratch() == []  # this process's session is alive: its folder stays
