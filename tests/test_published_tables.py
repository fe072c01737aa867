"""A published table is one object (`open_data.TABLES`): how it is built and the reference totals its published
totals must equal are declared with it, so a new table needs no branch anywhere else, and a table without reference
totals says so instead of passing "0 of 0"."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import polars as pl
import pytest

from citizen_view import open_data
from citizen_view.contract import SourcesFile
from citizen_view.disclosure import TOTAL
from citizen_view.open_data import TABLES, NoReferenceTotals, ReferenceTotal, TableInfo, living_citizens
from citizen_view.quality import rules
from citizen_view.warehouse import connect
from tests.test_rules import CITIZENS, LINKS, REFERENCE, linked_view

ROOT = Path(__file__).resolve().parents[1]


def _module_imports() -> dict[str, set[str]]:
    """Each domain module and the domain modules it imports, lazily inside functions too."""
    modules = {}
    for path in (ROOT / "citizen_view").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_the_domain_has_no_import_cycle():
    graph = _module_imports()
    cycles = []
    for start in graph:  # a module reachable from itself sits on a cycle
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m == start:
                cycles.append(start)
                break
            if m not in seen:
                seen.add(m)
                todo += graph[m]
    assert not cycles, sorted(cycles)


@pytest.fixture
def linked(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        linked_view(con, [(c, k, 0.99) for c, k in LINKS], citizens=CITIZENS)
        con.execute("CREATE TABLE linkage_threshold AS SELECT 3.0 AS threshold_weight")
        yield con


def _sources() -> SourcesFile:
    return SourcesFile.model_validate(
        {"sources": [], "base_dir": ".", "publication": {"reference_date": REFERENCE}, "disclosure": {"min_cell": 1}}
    )


BY_SEX = TableInfo(
    "citizens_by_sex",
    "Citizens by sex",
    "Living citizens by sex, with the total.",
    ("sex", "count", "flag"),
    ("sex",),
    ("sex",),
    build=lambda con, s: con.sql(
        f"SELECT coalesce(sex, '{TOTAL}') AS sex, count(*) AS count FROM ({living_citizens(s.reference)}) "
        "GROUP BY ROLLUP (sex) ORDER BY sex"
    ).pl(),
    totals=(
        ReferenceTotal(
            "living citizens",
            lambda s: f"SELECT NULL, count(*) FROM ({living_citizens(s.reference)})",
            lambda _: pl.col("sex") == TOTAL,
        ),
    ),
)


def test_a_new_table_is_built_and_checked_from_its_declaration_alone(linked, monkeypatch):
    monkeypatch.setitem(TABLES, BY_SEX.name, BY_SEX)
    built = open_data.build_table(linked, BY_SEX.name, _sources(), reference=REFERENCE)
    assert dict(zip(built.table["sex"], built.table["count"])) == {"F": 3, "M": 2, TOTAL: 5}  # c4 died before
    r = rules.totals_consistent(linked, BY_SEX.name, built.table, reference=REFERENCE)
    assert (r.passed, r.figures["compared"], r.summary) == (True, 1, "1 of 1 published total(s) match the linked view")
    moved = built.table.with_columns(
        pl.when(pl.col("sex") == TOTAL).then(pl.col("count") + 1).otherwise("count").alias("count")
    )
    r = rules.totals_consistent(linked, BY_SEX.name, moved, reference=REFERENCE)
    assert r.passed is False and r.sample == [{"total": "living citizens", "published": 6, "linked_view": 5}]


def test_a_table_declaring_no_reference_totals_says_so(linked, monkeypatch):
    undeclared = dataclasses.replace(BY_SEX, name="sex_shares", totals=NoReferenceTotals("shares, not counts"))
    monkeypatch.setitem(TABLES, undeclared.name, undeclared)
    r = rules.totals_consistent(linked, undeclared.name, pl.DataFrame(), reference=REFERENCE)
    assert r.passed is True
    assert r.summary == "no reference totals declared: shares, not counts"
    assert r.figures["declared"] is False


def test_a_table_cannot_leave_its_reference_totals_out():
    with pytest.raises(ValueError, match="declare its reference totals, or NoReferenceTotals"):
        dataclasses.replace(BY_SEX, totals=())


def test_every_published_table_declares_reference_totals():
    assert all(info.totals and not isinstance(info.totals, NoReferenceTotals) for info in TABLES.values())


def test_linkage_quality_writes_counts_as_whole_numbers(linked, tmp_path):
    table = open_data.build_table(linked, "linkage_quality", _sources(), reference=REFERENCE).table
    assert table.schema == {"metric": pl.String, "value": pl.Int64, "decimal": pl.Float64}
    table.write_csv(tmp_path / "lq.csv")
    table.write_parquet(tmp_path / "lq.parquet")
    lines = (tmp_path / "lq.csv").read_text().splitlines()
    assert lines[:2] == ["metric,value,decimal", "citizens,6,"]
    assert lines[-1] == "link_threshold_match_weight,,3.0"
    assert pl.read_parquet(tmp_path / "lq.parquet").schema["value"] == pl.Int64
    assert rules.totals_consistent(linked, "linkage_quality", table, reference=REFERENCE).passed is True


def test_linkage_quality_does_not_publish_the_total_of_records_duplicates_per_source_protects_by_source(linked):
    # a suppressed source's records would be that total less the other sources' (red-team pass, 2026-12-05)
    sources = _sources()
    records = open_data.build_table(linked, "duplicates_per_source", sources, reference=REFERENCE).table
    total = linked.execute("SELECT count(*) FROM citizen_source_link").fetchall()[0][0]
    assert records.filter(pl.col("measure") == "records")["count"].sum() == total  # min_cell 1: nothing hidden here
    quality = open_data.build_table(linked, "linkage_quality", sources, reference=REFERENCE).table
    assert total not in quality["value"].to_list()
