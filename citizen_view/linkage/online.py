"""One record resolved online: the saved model's own comparison SQL for one record against candidates, the record of
each resolution, and how the next run takes those records in.

Scoring reuses Splink: the model's settings as Splink renders them give each comparison's level SQL (run on the
candidates the service's index probes found) and the weights of each level, term-frequency adjustment and prior,
added up as Splink adds them (tests/test_resolve.py checks the sums against Splink's own scoring). Splink's full
scoring SQL costs hundreds of milliseconds to plan for one record; a Linker per call ~100 ms. Every resolution is appended to `online/resolutions.jsonl` beside the warehouse
(file-locked, fsync'ed, like reviewers' decisions: the service never opens the warehouse). The next run takes each
resolved record in as a record of the source `online` (`take_in`), so linkage places it like any other record; its
answer online is kept in the record's attributes. Its record ID is the agency's source and key (`benefits:APP-1`), the
same at every resolution of that key: sent again, the record changes, not its identity, so its citizen keeps its ID.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from citizen_view.contract import CANONICAL_FIELDS
from citizen_view.linkage.records import INPUT_COLUMNS  # noqa: F401  (the service reads it from here)

if TYPE_CHECKING:
    import duckdb

    from citizen_view.contract import SourcesFile

ONLINE_SOURCE = "online"
RESOLUTIONS_FILE = "resolutions.jsonl"
# What the record of a resolution keeps beside the record's fields (shown as the record's attributes in a profile).
ANSWER_KEYS = (
    "resolution_id",
    "decision",
    "citizen_id",
    "match_weight",
    "resolved_at",
    "resolved_by",
    "submitted_by",
    "agency_record_id",
)


def resolutions_file(root: Path) -> Path:
    """The resolutions recorded online for the warehouse whose folder is `root`."""
    return root / ONLINE_SOURCE / RESOLUTIONS_FILE


def record_resolution(path: Path, entry: dict[str, Any]) -> None:
    """Append one resolution (file-locked, fsync'ed): the record's fields as given and the answer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, sort_keys=True, ensure_ascii=True, default=str) + "\n"
    with path.open("a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_resolutions(path: Path) -> list[dict[str, Any]]:
    """Every well-formed resolution in the file (a torn last line from a crash is skipped)."""
    if not path.is_file():
        return []
    out = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("resolution_id"), str):
            out.append(entry)
    return out


def take_in(con: duckdb.DuckDBPyConnection, root: Path, sources: SourcesFile) -> int:
    """`canonical.online` from the resolutions recorded online, standardised as ingest standardises a source (the
    canonical path itself); dropped when there are none. Returns how many records it holds."""
    from citizen_view.canonical import Rules, canonical_records
    from citizen_view.contract import SourceConfig

    latest: dict[tuple[str, str], dict[str, Any]] = {}  # one record per agency key: its latest resolution
    for entry in read_resolutions(resolutions_file(root)):
        if entry.get("submitted_by") is not None and entry.get("agency_record_id") is not None:
            latest[str(entry["submitted_by"]), str(entry["agency_record_id"])] = entry
    entries = list(latest.values())
    if not entries or any(s.name == ONLINE_SOURCE for s in sources.sources):
        con.execute(f"DROP TABLE IF EXISTS canonical.{ONLINE_SOURCE}")
        return 0
    source = SourceConfig(
        name=ONLINE_SOURCE, path=RESOLUTIONS_FILE, format="jsonl", fields={f: {"column": f} for f in CANONICAL_FIELDS}
    )
    columns = [*CANONICAL_FIELDS, *ANSWER_KEYS]
    rows = {c: [None if e.get("record", {}).get(c) is None else str(e["record"][c]) for e in entries] for c in columns}
    for key in ANSWER_KEYS:
        rows[key] = [None if e.get(key) is None else str(e[key]) for e in entries]
    frame = pl.DataFrame(
        {
            **rows,
            "_rid": [f"{e['submitted_by']}:{e['agency_record_id']}" for e in entries],  # the agency's source and key
            "_file": [RESOLUTIONS_FILE] * len(entries),
            "_line": list(range(1, len(entries) + 1)),
            "_extracted_at": [dt.datetime.fromisoformat(e["resolved_at"]) for e in entries],
        },
        schema_overrides={c: pl.String for c in columns},
    )
    rules = Rules.of(source, country=sources.country, quality=sources.quality)
    canonical, _issues = canonical_records(frame, source, rules=rules, data_columns=columns)
    con.execute("CREATE SCHEMA IF NOT EXISTS canonical")
    con.register("_online_canonical", canonical)
    try:
        con.execute(f"CREATE OR REPLACE TABLE canonical.{ONLINE_SOURCE} AS SELECT * FROM _online_canonical")
    finally:
        con.unregister("_online_canonical")
    return len(entries)


@dataclass(frozen=True)
class Level:
    label: str
    match_weight: float
    tf_column: str | None = None  # a term-frequency adjusted level: the column, its weight, log2(u) and floor
    tf_weight: float = 0.0
    log2_u: float = 0.0
    tf_minimum: float = 0.0


@dataclass(frozen=True)
class OnlineScorer:
    """The saved model as Splink renders it, for one record against a few candidates: Splink's own SQL for each
    comparison's level (gamma), then Splink's weights (level weight, term-frequency adjustment, prior) added up."""

    gamma_sql: str
    levels: dict[str, dict[int, Level]]
    prior_weight: float
    tf_columns: tuple[str, ...]

    def weights(self, row: dict[str, Any]) -> tuple[float, dict[str, tuple[str, float]]]:
        """(match weight, comparison -> (level label, weight with its term-frequency adjustment)) of a scored row."""
        fields = {}
        for name, levels in self.levels.items():
            level = levels[int(row[f"gamma_{name}"])]
            weight = level.match_weight
            if level.tf_column is not None:
                tf_l, tf_r = row.get(f"tf_{level.tf_column}_l"), row.get(f"tf_{level.tf_column}_r")
                if tf_l is not None or tf_r is not None:
                    tf = max(tf_l if tf_l is not None else tf_r, tf_r if tf_r is not None else tf_l, level.tf_minimum)
                    weight += level.tf_weight * (level.log2_u - math.log2(tf))
            fields[name] = (level.label, weight)
        return self.prior_weight + sum(w for _, w in fields.values()), fields


def probability(weight: float) -> float:
    return 2**weight / (1 + 2**weight)


@functools.lru_cache(maxsize=4)
def scorer(model_json: str) -> OnlineScorer:
    """The scorer of a saved model (built once per model)."""
    from splink import SettingsCreator

    settings = SettingsCreator.from_path_or_dict(json.loads(model_json)).get_settings("duckdb")
    levels: dict[str, dict[int, Level]] = {}
    for comparison in settings.comparisons:
        name = comparison.output_column_name
        levels[name] = {}
        for cl in comparison.comparison_levels:
            label = cl.label_for_charts or cl.sql_condition
            if cl.is_null_level:
                levels[name][cl.comparison_vector_value] = Level("missing on either side", 0.0)
                continue
            level = Level(label, float(cl._match_weight))
            if cl._has_tf_adjustments and cl._tf_adjustment_weight and not cl._is_else_level:
                u = cl._u_probability_corresponding_to_exact_match(comparison.comparison_levels)
                level = Level(
                    label,
                    level.match_weight,
                    cl._tf_adjustment_input_column.unquote().name,
                    float(cl._tf_adjustment_weight),
                    math.log2(u),
                    float(cl._tf_minimum_u_value),
                )
            levels[name][cl.comparison_vector_value] = level
    lam = settings._probability_two_random_records_match
    tfs = tuple(sorted({lv.tf_column for by in levels.values() for lv in by.values() if lv.tf_column}))
    gamma_sql = ", ".join(c._case_statement for c in settings.comparisons)
    return OnlineScorer(gamma_sql, levels, math.log2(lam / (1 - lam)), tfs)
