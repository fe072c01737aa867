"""What the Dagster UI shows is true: every scored pair in the histogram, "k of N" samples, empty evidence as a table."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
from dagster import TableMetadataValue

from citizen_view.linkage.steps import _histogram_chart, weight_histogram
from citizen_view.quality import rules
from pipelines.metadata import chart_link, evidence


def test_the_histogram_counts_every_scored_pair_over_the_real_range():
    weights = np.concatenate([np.random.default_rng(3).normal(8, 12, 6_450), [-38.7, 42.3, 20.0, -4.0]])
    bins = weight_histogram(weights)
    assert sum(c for _, _, c in bins) == weights.size
    assert bins[0][0] <= weights.min() and bins[-1][1] >= weights.max()
    assert all(a[1] == b[0] for a, b in zip(bins, bins[1:]))  # contiguous: no pair falls between bins
    assert len(bins) <= 60
    assert weight_histogram(np.array([3.0])) == [(3.0, 4.0, 1)]


def test_the_histogram_chart_opens_offline_with_every_bin_and_the_threshold(tmp_path):
    bins = weight_histogram(np.random.default_rng(4).normal(5, 6, 2_000))
    html = _histogram_chart(bins, 3.75, tmp_path / "h.html").read_text(encoding="utf-8")
    assert 'src="http' not in html and "src='http" not in html and "vegaEmbed" in html
    spec = json.loads(re.search(r"vegaEmbed\(document.getElementById\('[^']+'\), (\{.*\}), \{\}\)", html).group(1))
    bars, rule = spec["layer"]
    assert [(v["weight"], v["end"], v["pairs"]) for v in bars["data"]["values"]] == bins
    assert rule["data"]["values"] == [{"threshold": 3.75}] and "+3.75" in spec["title"]


def _bad_rows(n: int) -> pl.DataFrame:
    return pl.DataFrame({"record_id": [f"r{i}" for i in range(n)], "value": [str(i) for i in range(n)]})


def test_a_truncated_sample_says_k_of_n():
    result = rules.share_within("demo", bad=_bad_rows(31), total=400, what="rows", max_share=0.0)
    meta = evidence(result)
    assert len(result.sample) == rules.SAMPLE_ROWS and result.sample_total == 31
    assert meta["offending_rows_shown"] == "5 of 31"
    assert len(meta["offending_rows"].records) == 5


def test_empty_evidence_is_an_empty_table_with_its_columns():
    result = rules.share_within("demo", bad=_bad_rows(0), total=400, what="rows", max_share=0.0)
    meta = evidence(result)
    assert result.passed and meta["offending_rows_shown"] == "0 of 0"
    rows = meta["offending_rows"]
    assert isinstance(rows, TableMetadataValue) and rows.records == []
    assert [c.name for c in rows.schema.columns] == ["record_id", "value"]


def test_nested_figures_are_tables_not_dict_text():
    result = rules.RuleResult("demo", False, "x", {"reasons": {"bad date": 3, "no id": 1}, "rows_in": 9})
    meta = evidence(result)
    assert [r.data for r in meta["reasons"].records] == [
        {"value": "bad date", "count": 3},
        {"value": "no id", "count": 1},
    ]
    assert all("{" not in str(r.data["value"]) for r in meta["figures"].records)


def test_a_chart_is_a_file_url(tmp_path):
    page = tmp_path / "chart.html"
    page.write_text("<html></html>", encoding="utf-8")
    assert chart_link(page).url == page.resolve().as_uri() and chart_link(page).url.startswith("file:///")
