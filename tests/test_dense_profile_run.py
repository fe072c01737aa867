"""The dense profile out of the box: `citizen-view generate --profile dense` then `citizen-view run` with the
sources.yaml the generator writes (default bounds) links, passes every gate and publishes. Its ~7% impossible
birth dates (month 86, day 00) are keying typos, judged by their own bound; none of its dates is unreadable."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from citizen_view_app.cli import main
from citizen_view_synth.run import generate


def test_the_dense_profile_runs_and_publishes_with_default_settings(tmp_path: Path, capsys) -> None:
    generate(tmp_path / "data", persons=150, seed=5, profile="dense")
    args = ["--sources", str(tmp_path / "data/sources.yaml"), "--warehouse", str(tmp_path / "wh/cv.duckdb")]
    assert main(["run", *args]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "HELD BACK" not in out and "export bundle:" in out
    with duckdb.connect(str(tmp_path / "wh/cv.duckdb"), read_only=True) as con:
        checks = {
            name: (passed, json.loads(evidence or "{}"))
            for name, passed, evidence in con.execute(
                "SELECT check_name, passed, evidence FROM quality_results WHERE asset = 'source/register'"
            ).fetchall()
        }
        reasons = dict(
            con.execute(
                "SELECT split_part(reason, ':', 1), count(*) FROM field_issues WHERE field = 'date_of_birth' GROUP BY 1"
            ).fetchall()
        )
    assert all(passed for passed, _ in checks.values()), checks
    assert "date_of_birth_typos" in checks and "date_of_birth_validity" in checks
    assert reasons.get("impossible", 0) > 0.04 * 2_000 and "unreadable" not in reasons  # typos, not a broken extract
    assert main(["publish", *args]) == 0, capsys.readouterr().err
