"""The landing sensor starts exactly one ingest per new complete file, none for a partial one, never one twice."""

from __future__ import annotations

import json
import os

from dagster import DagsterInstance, build_sensor_context

from citizen_view.landing import integrity_problem
from pipelines.definitions import build_definitions
from tests.conftest import write

HEADER = "taxpayer_ref;tin;name;birth_date\n"
ROWS = "T1;111222333;DE VRIES, Jan;01-02-1980\nT2;123456782;BAKKER, Els;03-04-1975\n"


def _defs(tmp_path):
    write(
        tmp_path / "sources.yaml",
        """
        sources:
          - name: tax
            path: landing/tax/*.csv
            landing: landing/tax
            format: csv
            options: {delimiter: ";"}
            record_id: taxpayer_ref
            fields: {national_id: tin, full_name: name, date_of_birth: {column: birth_date, format: "%d-%m-%Y"}}
        """,
    )
    (tmp_path / "landing/tax").mkdir(parents=True)
    return build_definitions(sources_path=tmp_path / "sources.yaml", warehouse_path=tmp_path / "wh/cv.duckdb")


class Ticker:
    def __init__(self, defs):
        self.sensor = next(s for s in defs.sensors if s.name == "landing_tax")
        self.cursor = None
        self.instance = DagsterInstance.ephemeral()

    def tick(self) -> list[str]:
        data = self.sensor.evaluate_tick(build_sensor_context(cursor=self.cursor, instance=self.instance))
        self.cursor = data.cursor
        return [r.run_key for r in data.run_requests]


def _touch_later(path):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_one_run_per_new_complete_file_and_never_twice(tmp_path):
    defs = _defs(tmp_path)
    t = Ticker(defs)
    first = tmp_path / "landing/tax/extract-1.csv"
    first.write_text(HEADER + ROWS, encoding="utf-8")
    assert t.tick() == []  # just appeared: wait one look to be sure it is not growing
    runs = t.tick()
    assert len(runs) == 1 and runs[0].startswith("tax:landing/tax/extract-1.csv:")
    assert t.tick() == []  # never the same file twice
    _touch_later(first)  # rewritten with the same content: nothing new to ingest
    assert t.tick() == [] and t.tick() == []
    first.write_text(HEADER + ROWS + "T3;111222333;JANSEN, Piet;05-06-1990\n", encoding="utf-8")  # a new version
    _touch_later(first)
    assert t.tick() == []
    assert len(t.tick()) == 1
    assert json.loads(t.cursor)["ingested"]["landing/tax/extract-1.csv"]


def test_a_partial_file_is_not_picked_up_until_complete(tmp_path):
    defs = _defs(tmp_path)
    t = Ticker(defs)
    partial = tmp_path / "landing/tax/extract-2.csv"
    partial.write_text(HEADER + ROWS[:25], encoding="utf-8")  # cut off mid-line
    assert t.tick() == [] and t.tick() == [] and t.tick() == []
    assert "not terminated" in integrity_problem(partial, "csv")
    with partial.open("a", encoding="utf-8") as f:
        f.write(ROWS[25:])
    _touch_later(partial)
    assert t.tick() == []  # changed since the last look
    assert len(t.tick()) == 1


def test_the_run_ingests_that_source_only(tmp_path):
    defs = _defs(tmp_path)
    (tmp_path / "landing/tax/extract-1.csv").write_text(HEADER + ROWS, encoding="utf-8")
    result = defs.resolve_job_def("ingest_tax").execute_in_process(instance=DagsterInstance.ephemeral())
    keys = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert keys == {"source/tax"}


def test_integrity_checks_per_format(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n{"a": 2', encoding="utf-8")
    assert integrity_problem(tmp_path / "a.jsonl", "jsonl")
    (tmp_path / "b.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    assert "workbook" in integrity_problem(tmp_path / "b.xlsx", "xlsx")
    (tmp_path / "c.parquet").write_bytes(b"PAR1....")
    assert "Parquet" in integrity_problem(tmp_path / "c.parquet", "parquet")
