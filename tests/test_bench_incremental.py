"""`bench incremental --repeat`: the update timed again in fresh processes, each on a fresh copy, beside the rebuild.

A benchmark, not a test of speed: this checks what it reports (every run's counts alike, each in its own process, the
median and the ratio from them, the late records placed as the rebuild places them), on a small generated set."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import pytest

PERSONS = "400"


def _cli(*args: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from citizen_view_app.cli import main; sys.exit(main(sys.argv[1:]))",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )


def test_the_update_is_timed_again_in_fresh_processes_and_compared_by_its_median(tmp_path):
    workdir = str(tmp_path)
    _cli("bench", "link", "--persons", PERSONS, "--workdir", workdir)
    _cli(
        "bench",
        "incremental",
        "--persons",
        PERSONS,
        "--reuse",
        "--workdir",
        workdir,
        "--new-records",
        "20",
        "--repeat",
        "3",
    )

    report = json.loads((tmp_path / f"bench_incremental_{PERSONS}_nl_duckdb.json").read_text(encoding="utf-8"))
    runs = report["repeated"]
    assert len(runs) == 3 and len({r["pid"] for r in runs}) == 3
    first = runs[0]["extra"]
    assert first["new"] == 20 and first["relinked"] >= 20
    assert all(r["extra"] == first for r in runs)  # the same update each time: new, re-linked, citizens
    assert report["late_records_placed_differently"] == 0
    rebuild = next(s for s in report["stages"] if s["name"].startswith("full rebuild"))
    median = statistics.median(r["seconds"] for r in runs)
    assert report["median_seconds"] == median
    assert report["speedup_median"] == pytest.approx(rebuild["seconds"] / median)
    assert report["new_records_per_second_median"] == pytest.approx(20 / median)
    assert not (tmp_path / f"bench_incremental_{PERSONS}_repeat.duckdb").exists()
    # which machine, and how fast at fixed work, so that another machine's figures can be told apart
    assert report["machine"]["cores"] >= 1 and report["machine"]["yardstick"]["duckdb_s"] > 0


def test_repeat_is_refused_without_the_rebuild_or_below_one(tmp_path):
    for extra in (["--repeat", "0"], ["--no-rebuild", "--repeat", "2"]):
        with pytest.raises(subprocess.CalledProcessError) as refused:
            _cli("bench", "incremental", "--persons", PERSONS, "--workdir", str(tmp_path), *extra)
        assert b"--repeat takes a positive number, and only with the rebuild" in refused.value.stderr
