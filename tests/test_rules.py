"""Every quality rule in `citizen_view/quality/rules.py`, called directly, fails on data built to break it
(naming the offending row or figure) and passes on good data, including data that sits exactly on its bound.

So no rule can be replaced by "always pass" or "always fail" without this file going red. Each test
builds only the tables its rule reads, in a real DuckDB warehouse file (`warehouse.connect`) under
`tmp_path`, or a polars frame (or an information-loss dict) for the publication rules, and states the
bound it exercises through an explicit `QualityConfig` / `DisclosureConfig`. Published tables use the
official areas (`citizen_area`, real CBS codes) with their hierarchy: municipality -> province -> country,
and the unmatched residual (`UNKNOWN`) under the country.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import polars as pl
import pytest

from citizen_view import open_data
from citizen_view.areas import load_areas, match_areas
from citizen_view.contract import DisclosureConfig, QualityConfig, SourceConfig
from citizen_view.disclosure import TOTAL
from citizen_view.open_data import TABLES, PublishedTable
from citizen_view.quality import rules
from citizen_view.standardise import CANONICAL_COLUMNS
from citizen_view.warehouse import connect

UTC = dt.timezone.utc


# --- building blocks -------------------------------------------------------------------------------


@pytest.fixture
def con(tmp_path):
    """A fresh warehouse file with the shared tables (rejected_records, field_issues, ingest_log)."""
    with connect(tmp_path / "w.duckdb") as con:
        yield con


def rid(i: int) -> str:
    """The source_record_id of the i-th record (1-based) that `canonical` creates."""
    return f"r{i:02d}"


def assert_share_rule(r, rule: str, passed: bool, *, total: int, bad: Iterable[int], **figures) -> None:
    """A share rule's result: its name and verdict, `total` judged, the `bad` records (positions) counted and first
    in its sample, and the other `figures` it reports."""
    bad = list(bad)
    assert (r.rule, r.passed) == (rule, passed)
    assert (r.figures["total"], r.figures["bad"]) == (total, len(bad))
    assert {k: r.figures[k] for k in figures} == figures
    assert [row["record_id"] for row in r.sample] == [rid(i) for i in bad][: rules.SAMPLE_ROWS]


def canonical(con, source: str, n: int, **columns: list) -> None:
    """canonical.<source> with exactly the canonical columns and types, n records r01..; unset columns null."""
    data: dict[str, list] = {c: [None] * n for c in CANONICAL_COLUMNS}
    data |= {
        "source": [source] * n,
        "source_record_id": [rid(i) for i in range(1, n + 1)],
        "source_file": [f"{source}.csv"] * n,
        "source_line": list(range(2, n + 2)),
    }
    data |= columns
    con.register("_canonical", pl.DataFrame(data, schema=CANONICAL_COLUMNS))
    con.execute(f'CREATE TABLE canonical."{source}" AS SELECT * FROM _canonical')
    con.unregister("_canonical")


def with_gaps(value: str, n: int, gaps: Iterable[int]) -> list[str | None]:
    """n copies of value, null at the 1-based positions in gaps."""
    gaps = set(gaps)
    return [None if i in gaps else value for i in range(1, n + 1)]


def insert(con, sql: str, rows: list[tuple]) -> None:
    if rows:  # DuckDB's executemany refuses an empty list
        con.executemany(sql, rows)


def issues(con, source: str, field: str, positions: Iterable[int], *, reason: str = "invalid") -> None:
    """field_issues rows: the value of `field` of records at these positions was set aside at ingest."""
    insert(
        con,
        "INSERT INTO field_issues (source, file, line, record_id, field, raw, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(source, f"{source}.csv", i + 1, rid(i), field, f"bad-{field}-{i}", reason) for i in positions],
    )


def source_config(*fields: str, name: str = "tax", required: Iterable[str] = ()) -> SourceConfig:
    return SourceConfig(
        name=name, path=f"{name}/*.csv", format="csv", fields={f: f"col_{f}" for f in fields}, required=list(required)
    )


def load(con, source: str, when: dt.datetime, *, rows_in: int, rejected: int = 0, loaded: int | None = None) -> None:
    """One ingest_log row (a load of `source` at `when`)."""
    con.execute(
        "INSERT INTO ingest_log (source, loaded_at, files, rows_in, rows_loaded, rows_rejected) VALUES (?, ?, ?, ?, ?, ?)",
        [source, when, [f"{source}.csv"], rows_in, rows_in - rejected if loaded is None else loaded, rejected],
    )


def reject(con, source: str, lines: Iterable[int], reason: str) -> None:
    insert(
        con,
        "INSERT INTO rejected_records (source, file, line, reason, raw) VALUES (?, ?, ?, ?, ?)",
        [(source, f"{source}.csv", line, reason, f"raw line {line}") for line in lines],
    )


def linked_view(
    con, links: list[tuple], *, records: Iterable[str] | None = None, citizens: list[tuple] | None = None
) -> None:
    """source_records, citizen_source_link and citizen.

    links: (citizen_id, record_key[, match_probability]); a record_key's source is its prefix ("tax:1").
    records: the loaded record keys (default: the linked ones). citizens: golden records as
    (citizen_id, city, sex, date_of_birth, date_of_death) (default: one bare row per linked citizen); their
    postcode is null.
    """
    links = [(c, k, p[0] if p else None) for c, k, *p in links]
    keys = list(dict.fromkeys(k for _, k, _ in links)) if records is None else list(records)
    if citizens is None:
        citizens = [(c, None, None, None, None) for c in dict.fromkeys(c for c, _, _ in links)]
    con.execute("CREATE TABLE source_records (record_key VARCHAR, source VARCHAR, source_record_id VARCHAR)")
    con.execute(
        "CREATE TABLE citizen_source_link (citizen_id VARCHAR, source VARCHAR, source_record_id VARCHAR, "
        "record_key VARCHAR, match_probability DOUBLE)"
    )
    con.execute(
        "CREATE TABLE citizen (citizen_id VARCHAR, city VARCHAR, sex VARCHAR, date_of_birth DATE, date_of_death DATE, "
        "source_count BIGINT, postcode VARCHAR)"
    )
    if keys:
        con.executemany("INSERT INTO source_records VALUES (?, ?, ?)", [(k, *k.split(":")) for k in keys])
    if links:
        con.executemany(
            "INSERT INTO citizen_source_link VALUES (?, ?, ?, ?, ?)", [(c, *k.split(":"), k, p) for c, k, p in links]
        )
    sources_of = {c: len({k.split(":")[0] for cc, k, _ in links if cc == c}) for c, *_ in citizens}
    if citizens:
        con.executemany(
            "INSERT INTO citizen VALUES (?, ?, ?, ?, ?, ?, NULL)", [(*c, sources_of[c[0]]) for c in citizens]
        )


# --- raw / canonical -------------------------------------------------------------------------------


def test_canonical_schema_passes_on_the_canonical_columns(con):
    canonical(con, "tax", 2)
    r = rules.canonical_schema(con, "tax")
    assert r.rule == "canonical_schema"
    assert r.passed is True, r.sample
    assert r.figures == {"columns": len(CANONICAL_COLUMNS), "differences": 0}
    assert r.sample == []


@pytest.mark.parametrize(
    ("alter", "difference"),
    [
        pytest.param(
            "ALTER TABLE canonical.tax ALTER source_line TYPE VARCHAR",
            {"column": "source_line", "expected": "BIGINT", "found": "VARCHAR"},
            id="wrong-type",
        ),
        pytest.param(
            "ALTER TABLE canonical.tax DROP COLUMN attributes",
            {"column": "attributes", "expected": "VARCHAR", "found": "missing"},
            id="missing-column",
        ),
        pytest.param(
            "ALTER TABLE canonical.tax ADD COLUMN shoe_size INTEGER",
            {"column": "shoe_size", "expected": "absent", "found": "INTEGER"},
            id="extra-column",
        ),
    ],
)
def test_canonical_schema_names_the_column_that_differs(con, alter, difference):
    canonical(con, "tax", 2)
    con.execute(alter)
    r = rules.canonical_schema(con, "tax")
    assert r.passed is False
    assert r.figures["differences"] == 1
    assert r.sample == [difference]


def test_canonical_schema_fails_when_the_table_is_absent(con):
    r = rules.canonical_schema(con, "tax")
    assert r.passed is False
    assert r.figures == {"columns": 0, "differences": len(CANONICAL_COLUMNS)}
    assert {"column": "source_record_id", "expected": "VARCHAR", "found": "missing"} in r.sample


Q_REQUIRED = QualityConfig(max_missing_required_share=0.1)


@pytest.mark.parametrize(
    ("gaps", "passed"), [((), True), ((7,), True), ((1, 2, 3, 4, 5, 6), False)], ids=["none", "at-bound", "above"]
)
def test_required_fields_share_of_records_missing_a_required_field(con, gaps, passed):
    """10 records; each gap blanks family_name of one record: 1 in 10 is exactly the 10% bound; 6 in 10 is beyond it
    with 95% confidence (Wilson interval 31%..83%)."""
    canonical(con, "tax", 10, given_name=["Jan"] * 10, family_name=with_gaps("Berg", 10, gaps))
    r = rules.required_fields(
        con, source_config("given_name", "family_name", required=["given_name", "family_name"]), Q_REQUIRED
    )
    assert r.rule == "required_fields"
    assert r.passed is passed
    assert r.figures["records"] == 10
    assert r.figures["missing"] == len(gaps)
    assert r.figures["bound"] == 0.1
    assert [row["source_record_id"] for row in r.sample] == [rid(i) for i in gaps][: rules.SAMPLE_ROWS]


def test_required_fields_counts_a_record_once_whichever_required_field_it_misses(con):
    canonical(con, "tax", 10, given_name=with_gaps("Jan", 10, [2]), family_name=with_gaps("Berg", 10, [2, 5]))
    r = rules.required_fields(
        con, source_config("given_name", "family_name", required=["given_name", "family_name"]), Q_REQUIRED
    )
    assert r.passed is True  # 2 in 10 (not 3): above the 10% bound, but within its 95% interval (6%..51%)
    assert r.figures["missing"] == 2
    assert r.figures["share"] == 0.2
    assert r.sample[0] == {"source_record_id": "r02", "source_line": "3", "given_name": None, "family_name": None}


def test_required_fields_passes_when_nothing_is_required(con):
    canonical(con, "tax", 3)  # every field null, but none is required
    r = rules.required_fields(con, source_config("given_name"), Q_REQUIRED)
    assert r.passed is True
    assert r.summary == "no required fields declared"


@pytest.mark.parametrize(
    ("bad", "total", "bounds", "passed", "share"),
    [
        pytest.param(0, 0, {"max_share": 0.0}, True, 0.0, id="empty"),
        pytest.param(1, 4, {"max_share": 0.25}, True, 0.25, id="max-at-bound"),
        pytest.param(2, 4, {"max_share": 0.25}, True, 0.5, id="max-above-but-within-the-interval"),
        pytest.param(4, 4, {"max_share": 0.25}, False, 1.0, id="max-above-with-confidence"),
        pytest.param(1, 4, {"min_share": 0.75}, True, 0.75, id="min-at-bound"),
        pytest.param(2, 4, {"min_share": 0.75}, True, 0.5, id="min-below-but-within-the-interval"),
        pytest.param(4, 4, {"min_share": 0.75}, False, 0.0, id="min-below-with-confidence"),
        pytest.param(2, 37, {"min_share": 0.98}, True, 0.94595, id="2-of-37-is-noise"),
        pytest.param(2_000, 37_000, {"min_share": 0.98}, False, 0.94595, id="2000-of-37000-is-broken"),
        pytest.param(1, 4, {}, False, 0.25, id="no-bound-means-none-allowed"),
    ],
)
def test_share_within(bad, total, bounds, passed, share):
    rows = pl.DataFrame({"record_id": [f"bad{i}" for i in range(bad)]}, schema={"record_id": pl.String})
    r = rules.share_within("some_rule", bad=rows, total=total, what="things", figures={"extra": 1}, **bounds)
    assert r.rule == "some_rule"
    assert r.passed is passed
    assert r.figures["total"] == total
    assert r.figures["bad"] == bad
    assert r.figures["share"] == share
    assert r.figures["extra"] == 1
    assert r.sample == [{"record_id": f"bad{i}"} for i in range(min(bad, rules.SAMPLE_ROWS))]
    assert r.figures["interval_low"] <= r.figures["share"] <= r.figures["interval_high"]


Q_IDS = QualityConfig(min_national_id_valid_share=0.9)


@pytest.mark.parametrize(
    ("bad", "passed"), [((), True), ((4,), True), ((2, 4, 6, 8, 9), False)], ids=["all-valid", "at-bound", "below"]
)
def test_national_id_validity_share_of_ids_passing_the_checksum(con, bad, passed):
    """10 IDs present in the extract; each bad one was quarantined (null in canonical, a row in field_issues)."""
    canonical(con, "tax", 10, national_id=with_gaps("111222333", 10, bad))
    issues(con, "tax", "national_id", bad, reason="checksum")
    issues(con, "tax", "date_of_birth", [1, 2, 3])  # another field's issues do not count
    issues(con, "benefits", "national_id", [1, 2, 3])  # nor another source's
    r = rules.national_id_validity(con, source_config("national_id"), Q_IDS, scheme="nl.bsn")
    assert_share_rule(r, "national_id_validity", passed, total=10, bad=bad, scheme="nl.bsn")


def test_national_id_validity_passes_an_opaque_identifier_whatever_the_issues(con):
    canonical(con, "tax", 4, national_id=with_gaps("X-1", 4, [1, 2, 3]))
    issues(con, "tax", "national_id", [1, 2, 3])
    r = rules.national_id_validity(con, source_config("national_id"), Q_IDS, scheme="none")
    assert r.passed is True
    assert "opaque" in r.summary
    assert r.figures == {"scheme": "none"}


def test_national_id_validity_passes_a_source_without_national_id(con):
    canonical(con, "tax", 2)
    issues(con, "tax", "national_id", [1, 2])  # not even consulted
    r = rules.national_id_validity(con, source_config("given_name"), Q_IDS, scheme="nl.bsn")
    assert r.passed is True
    assert r.summary == "source has no national ID"


Q_DOB = QualityConfig(
    min_date_of_birth_valid_share=0.75,
    earliest_date_of_birth=dt.date(1900, 1, 1),
    latest_date_of_birth=dt.date(2024, 12, 31),
)


UNREADABLE = "unreadable: not in the format %Y-%m-%d (column col_date_of_birth)"
IMPOSSIBLE = "impossible: digits in the format %Y-%m-%d, but no such date (column col_date_of_birth)"


@pytest.mark.parametrize(
    ("bad", "passed"), [((), True), ((2,), True), ((1, 2, 3, 4), False)], ids=["all-valid", "at-bound", "below"]
)
def test_date_of_birth_validity_share_of_readable_dates(con, bad, passed):
    canonical(con, "tax", 4, date_of_birth=[None if i in bad else dt.date(1980, 1, i) for i in range(1, 5)])
    issues(con, "tax", "date_of_birth", bad, reason=UNREADABLE)
    issues(con, "tax", "national_id", [1, 4])  # another field's issues do not count
    r = rules.date_of_birth_validity(con, source_config("date_of_birth"), Q_DOB)
    assert_share_rule(r, "date_of_birth_validity", passed, total=4, bad=bad, format="%Y-%m-%d")
    assert all(row["reason"] == UNREADABLE for row in r.sample)


Q_TYPOS = QualityConfig(max_date_of_birth_typo_share=0.25)


@pytest.mark.parametrize(
    ("typos", "passed"), [((), True), ((2,), True), ((1, 2, 3, 4, 5, 6, 7), False)], ids=["none", "at-bound", "above"]
)
def test_date_of_birth_typos_share_of_readable_dates(con, typos, passed):
    """8 readable birth dates, some impossible ("1856-86-18") or implausible: keying typos, judged by their own bound
    (25% here); 7 in 8 is beyond it with 95% confidence. Unreadable dates are not typos: they do not count here."""
    unreadable = (9, 10)
    dates = [None if i in typos or i in unreadable else dt.date(1980, 1, i) for i in range(1, 11)]
    canonical(con, "tax", 10, date_of_birth=dates)
    for i in typos:
        kind = IMPOSSIBLE if i % 2 else "implausible: outside 1900-01-01 .. 2024-12-31 (quality settings)"
        issues(con, "tax", "date_of_birth", [i], reason=kind)
    issues(con, "tax", "date_of_birth", unreadable, reason=UNREADABLE)  # judged by date_of_birth_validity
    r = rules.date_of_birth_typos(con, source_config("date_of_birth"), Q_TYPOS)
    assert_share_rule(r, "date_of_birth_typos", passed, total=8, bad=typos, bound=0.25)
    assert "quality.max_date_of_birth_typo_share" in r.summary
    # and the typos are readable dates: they do not move the validity rule
    v = rules.date_of_birth_validity(con, source_config("date_of_birth"), QualityConfig())
    assert (v.figures["bad"], v.figures["total"]) == (2, 10)


@pytest.mark.parametrize(
    ("typos", "passed"), [(2, True), (10, True), (2_000, False)], ids=["2-of-37", "10-of-370", "2000-of-3700"]
)
def test_date_of_birth_typos_default_bound(con, typos, passed):
    """The default typo bound (8%, README "Bounds"): keying typos at a transcription rate pass, whatever the size
    of the extract; more than half the dates impossible (a day/month swap in the declared format) does not."""
    records = {2: 37, 10: 370, 2_000: 3_700}[typos]
    canonical(
        con,
        "survey",
        records,
        date_of_birth=[None if i <= typos else dt.date(1980, 1, 1) for i in range(1, records + 1)],
    )
    issues(con, "survey", "date_of_birth", range(1, typos + 1), reason=IMPOSSIBLE)
    r = rules.date_of_birth_typos(con, source_config("date_of_birth", name="survey"), QualityConfig())
    assert r.passed is passed
    v = rules.date_of_birth_validity(con, source_config("date_of_birth", name="survey"), QualityConfig())
    assert v.passed is True and v.figures["bad"] == 0


def test_date_of_birth_validity_passes_a_source_without_date_of_birth(con):
    canonical(con, "tax", 2)
    issues(con, "tax", "date_of_birth", [1, 2])
    r = rules.date_of_birth_validity(con, source_config("national_id"), Q_DOB)
    assert r.passed is True
    assert r.summary == "source has no date of birth"
    r = rules.date_of_birth_typos(con, source_config("national_id"), Q_DOB)
    assert (r.rule, r.passed, r.summary) == ("date_of_birth_typos", True, "source has no date of birth")


Q_ISSUES = QualityConfig(max_field_issue_share=0.2)


@pytest.mark.parametrize(
    ("per_field", "passed", "worst"),
    [
        pytest.param({}, True, None, id="no-issues"),
        # 3 issues in all (30%), but the bound is per field: the worst, national_id, has 2 in 10 = the bound.
        pytest.param({"email": [3, 8], "postcode": [5]}, True, "email", id="worst-field-at-bound"),
        pytest.param({"email": [3], "postcode": [1, 2, 3, 5, 6, 7, 9]}, False, "postcode", id="worst-field-above"),
    ],
)
def test_field_issue_share_bounds_the_worst_field(con, per_field, passed, worst):
    canonical(con, "tax", 10)
    for field_name, positions in per_field.items():
        issues(con, "tax", field_name, positions)
    issues(con, "benefits", "postcode", range(1, 10))  # another source's issues do not count
    # nor birth dates and national IDs, which rules of their own judge (one bad value is judged once)
    issues(con, "tax", "date_of_birth", range(1, 11), reason=IMPOSSIBLE)
    issues(con, "tax", "national_id", range(1, 11))
    r = rules.field_issue_share(con, source_config("national_id", "postcode", "email", "date_of_birth"), Q_ISSUES)
    issues_per_field = {f: len(p) for f, p in per_field.items()}
    bad = per_field[worst] if worst else []
    assert_share_rule(r, "field_issue_share", passed, total=10, bad=bad, issues_per_field=issues_per_field)


Q_REJECTED = QualityConfig(max_rejected_share=0.1)
T0 = dt.datetime(2024, 1, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rejected", "passed"), [(0, True), (10, True), (20, False)], ids=["none", "at-bound", "above"]
)
def test_rejected_share_of_rows_read(con, rejected, passed):
    load(con, "tax", T0, rows_in=100, rejected=rejected)
    reject(con, "tax", range(2, 2 + rejected), "too many fields: expected 5, got 6")
    r = rules.rejected_share(con, "tax", Q_REJECTED)
    assert r.rule == "rejected_share"
    assert r.passed is passed
    assert (r.figures["rows_in"], r.figures["rejected"], r.figures["bound"]) == (100, rejected, 0.1)
    assert r.figures["reasons"] == ({"too many fields": rejected} if rejected else {})
    assert [row["line"] for row in r.sample] == [str(line) for line in range(2, 2 + min(rejected, rules.SAMPLE_ROWS))]


@pytest.mark.parametrize(
    ("earlier", "latest", "passed"), [(50, 5, True), (5, 50, False)], ids=["recovered", "worsened"]
)
def test_rejected_share_judges_the_latest_load(con, earlier, latest, passed):
    load(con, "tax", T0, rows_in=100, rejected=earlier)
    load(con, "tax", T0 + dt.timedelta(days=1), rows_in=100, rejected=latest)
    load(con, "benefits", T0 + dt.timedelta(days=2), rows_in=100, rejected=100 - latest)  # another source's load
    r = rules.rejected_share(con, "tax", Q_REJECTED)
    assert r.passed is passed
    assert r.figures["rejected"] == latest


Q_DRIFT = QualityConfig(max_row_count_drift=0.5)


@pytest.mark.parametrize(
    ("before", "now", "passed"),
    [(100, 100, True), (100, 150, True), (100, 50, True), (100, 151, False), (100, 49, False), (0, 10, False)],
    ids=["same", "up-at-bound", "down-at-bound", "jump", "drop", "from-empty"],
)
def test_row_count_drift_against_the_previous_load(con, before, now, passed):
    load(con, "tax", T0 - dt.timedelta(days=30), rows_in=1_000)  # an older load: not the one compared with
    load(con, "tax", T0, rows_in=before)
    load(con, "tax", T0 + dt.timedelta(days=1), rows_in=now)
    load(con, "benefits", T0 + dt.timedelta(days=2), rows_in=1)  # another source's load
    r = rules.row_count_drift(con, "tax", Q_DRIFT)
    assert r.rule == "row_count_drift"
    assert r.passed is passed
    assert (r.figures["rows_loaded"], r.figures["previous"], r.figures["bound"]) == (now, before, 0.5)


def test_row_count_drift_passes_a_first_load(con):
    load(con, "tax", T0, rows_in=10)
    load(con, "benefits", T0, rows_in=1_000)
    r = rules.row_count_drift(con, "tax", Q_DRIFT)
    assert r.passed is True
    assert r.summary.startswith("first load")
    assert r.figures == {"rows_loaded": 10}


# --- linkage ---------------------------------------------------------------------------------------

GOOD_LINKS = [("c1", "tax:1", 0.99), ("c1", "benefits:1", 0.97), ("c2", "tax:2", None), ("c3", "benefits:2", None)]


@pytest.mark.parametrize(
    ("rule", "figures"),
    [
        pytest.param(rules.every_record_linked_once, {"records": 4, "violations": 0}, id="each-record-one-citizen"),
        pytest.param(rules.no_empty_citizen, {"citizens": 3, "violations": 0}, id="each-citizen-records-and-golden"),
    ],
)
def test_linkage_rules_pass_on_well_formed_links(con, rule, figures):
    linked_view(con, GOOD_LINKS)
    r = rule(con)
    assert r.rule == rule.__name__
    assert r.passed is True
    assert r.figures == figures


@pytest.mark.parametrize(
    ("links", "records", "offender"),
    [
        pytest.param([*GOOD_LINKS, ("c3", "tax:2", None)], None, {"record_key": "tax:2", "links": "2"}, id="twice"),
        pytest.param(
            GOOD_LINKS,
            ["tax:1", "benefits:1", "tax:2", "benefits:2", "tax:3"],
            {"record_key": "tax:3", "links": "0"},
            id="unlinked",
        ),
        pytest.param(
            GOOD_LINKS,
            ["tax:1", "benefits:1", "tax:2"],
            {"record_key": "benefits:2", "links": "1"},
            id="link-to-unloaded-record",
        ),
    ],
)
def test_every_record_linked_once_names_the_record(con, links, records, offender):
    linked_view(con, links, records=records)
    r = rules.every_record_linked_once(con)
    assert r.passed is False
    assert r.figures["violations"] == 1
    assert r.sample == [offender]


@pytest.mark.parametrize(
    ("citizens", "offender"),
    [
        pytest.param(
            ["c1", "c2", "c3", "c9"],
            {"citizen_id": "c9", "no_golden_record": "False", "no_records": "True"},
            id="citizen-without-records",
        ),
        pytest.param(
            ["c1", "c3"],
            {"citizen_id": "c2", "no_golden_record": "True", "no_records": "False"},
            id="records-without-golden-record",
        ),
    ],
)
def test_no_empty_citizen_names_the_citizen(con, citizens, offender):
    linked_view(con, GOOD_LINKS, citizens=[(c, None, None, None, None) for c in citizens])
    r = rules.no_empty_citizen(con)
    assert r.passed is False
    assert r.figures["violations"] == 1
    assert r.sample == [offender]


Q_SIZES = QualityConfig(max_citizen_records=3)


def test_citizen_sizes_passes_a_citizen_exactly_at_the_bound(con):
    linked_view(con, [("big", f"tax:{i}") for i in range(3)] + [("small", "tax:9")])
    r = rules.citizen_sizes(con, Q_SIZES)
    assert r.rule == "citizen_sizes"
    assert r.passed is True
    assert r.figures["largest"] == 3
    assert r.figures["citizens_by_record_count"] == {"1": 1, "3": 1}
    assert r.sample == []


def test_citizen_sizes_names_the_citizen_above_the_bound(con):
    linked_view(con, [("big", f"tax:{i}") for i in range(4)] + [("ok", f"benefits:{i}") for i in range(3)])
    r = rules.citizen_sizes(con, Q_SIZES)
    assert r.passed is False
    assert (r.figures["largest"], r.figures["bound"]) == (4, 3)
    assert r.sample == [{"citizen_id": "big", "records": "4"}]


Q_CROSS = QualityConfig(min_cross_source_share=0.5, max_cross_source_share=0.8)


@pytest.mark.parametrize(
    ("links", "share", "passed"),
    [
        # c1 is known to two sources: 2 of its records out of 4 = 50%, the lower bound.
        pytest.param([("c1", "tax:1"), ("c1", "benefits:1"), ("c2", "tax:2"), ("c3", "tax:3")], 0.5, True, id="at-min"),
        pytest.param(
            [("c1", "tax:1"), ("c1", "benefits:1"), ("c2", "tax:2"), ("c2", "benefits:2"), ("c3", "tax:3")],
            0.8,
            True,
            id="at-max",
        ),
        # Two records of one source in one citizen are a duplicate, not a cross-source link.
        pytest.param([("c1", "tax:1"), ("c1", "tax:2"), ("c2", "tax:3"), ("c3", "benefits:1")], 0.0, False, id="below"),
        pytest.param(
            [("c1", "tax:1"), ("c1", "benefits:1"), ("c2", "tax:2"), ("c2", "benefits:2")], 1.0, False, id="above"
        ),
    ],
)
def test_cross_source_share_within_both_bounds(con, links, share, passed):
    linked_view(con, links)
    r = rules.cross_source_share(con, Q_CROSS)
    assert r.rule == "cross_source_share"
    assert r.passed is passed
    assert r.figures == {"share": share, "min": 0.5, "max": 0.8, "sources": 2}


@pytest.mark.parametrize(
    ("links", "dedupe_only", "applies"),
    [
        pytest.param([("c1", "tax:1"), ("c1", "tax:2"), ("c2", "tax:3")], False, False, id="one-source"),
        pytest.param([("c1", "tax:1"), ("c1", "tax:2"), ("c2", "benefits:1")], True, False, id="dedupe-only"),
        pytest.param(
            [("c1", "tax:1"), ("c1", "tax:2"), ("c2", "benefits:1")], False, True, id="two-sources-none-linked"
        ),
    ],
)
def test_cross_source_share_does_not_apply_to_one_source_or_to_dedupe_only(con, links, dedupe_only, applies):
    """Deduplicating one register (or each source apart) links nothing across sources: the bound would block it."""
    linked_view(con, links)
    r = rules.cross_source_share(con, Q_CROSS, dedupe_only=dedupe_only)
    assert r.passed is not applies  # where it applies, 0% linked across two sources is below the bound
    assert r.figures.get("applies", True) is applies
    assert ("not applicable" in r.summary) is not applies


Q_WEAK = QualityConfig(max_weak_link_share=0.25)


@pytest.mark.parametrize(
    ("probabilities", "passed", "weak"),
    [
        # 1 of 4 scored records is weak (25%, the bound); 0.5 itself is not weak; singletons (null) are not scored.
        pytest.param([0.99, 0.9, 0.5, 0.3, None], True, ["tax:3"], id="at-bound"),
        pytest.param([0.99, 0.49, 0.3, 0.9, None], False, ["tax:2", "tax:1"], id="above"),
    ],
)
def test_weak_links_share_of_records_below_probability_half(con, probabilities, passed, weak):
    linked_view(con, [(f"c{i}", f"tax:{i}", p) for i, p in enumerate(probabilities)])
    r = rules.weak_links(con, Q_WEAK)
    assert r.rule == "match_probability_distribution"
    assert r.passed is passed
    assert (r.figures["linked_records"], r.figures["weak"], r.figures["bound"]) == (4, len(weak), 0.25)
    assert [row["record_key"] for row in r.sample] == weak


# Official areas (CBS codes as shipped in areas_data/nl_municipalities.csv): code -> (level, name, parent code).
COUNTRY = "NL"
AREAS = {
    "GM0503": ("municipality", "Delft", "PV28"),
    "GM0546": ("municipality", "Leiden", "PV28"),
    "GM0599": ("municipality", "Rotterdam", "PV28"),
    "GM0307": ("municipality", "Amersfoort", "PV26"),
    "GM0344": ("municipality", "Utrecht", "PV26"),
    "PV28": ("region", "Zuid-Holland", COUNTRY),
    "PV26": ("region", "Utrecht", COUNTRY),
    open_data.UNKNOWN_AREA: ("unknown", "not matched to an official area", COUNTRY),
    COUNTRY: ("country", "Netherlands", None),
}


def citizen_area(con, rows: list[tuple[str, str | None, str, str | None, str | None]]) -> None:
    """citizen_area as match_areas writes it, from (citizen_id, area_code, method, city, postcode); null code = unmatched."""
    con.execute(
        "CREATE TABLE citizen_area (citizen_id VARCHAR, area_code VARCHAR, area_name VARCHAR, region_code VARCHAR, "
        "region_name VARCHAR, method VARCHAR, city VARCHAR, postcode VARCHAR)"
    )
    insert(
        con,
        "INSERT INTO citizen_area VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                c,
                code,
                *((AREAS[code][1], AREAS[code][2], AREAS[AREAS[code][2]][1]) if code else (None, None, None)),
                m,
                city,
                pc,
            )
            for c, code, m, city, pc in rows
        ],
    )


Q_AREAS = QualityConfig(max_unmatched_area_share=0.1)
ATLANTIS = ("Atlantis", "9999ZZ")


@pytest.mark.parametrize(
    ("unmatched", "passed", "sample"),
    [
        pytest.param([], True, [], id="all-matched"),
        # 2 of 20 citizens = the 10% bound: passes, and still shows who they are.
        pytest.param(
            [ATLANTIS, ATLANTIS], True, [{"city": "Atlantis", "postcode": "9999ZZ", "citizens": "2"}], id="at-bound"
        ),
        pytest.param(
            [ATLANTIS, (None, "1234XY"), ATLANTIS],
            False,
            [
                {"city": "Atlantis", "postcode": "9999ZZ", "citizens": "2"},
                {"city": None, "postcode": "1234XY", "citizens": "1"},
            ],
            id="above",
        ),
        # 1 with an address of no area, and 3 with no address at all (an online record of a name and a birth date):
        # 1 of the 17 with an address, within the bound; the 3 are counted apart (4 of 20 failed it before)
        pytest.param(
            [ATLANTIS, (None, None), (None, None), (None, None)],
            True,
            [{"city": "Atlantis", "postcode": "9999ZZ", "citizens": "1"}],
            id="no-address-apart",
        ),
    ],
)
def test_areas_matched_share_of_citizens_without_an_official_area(con, unmatched, passed, sample):
    matched = [
        (f"m{i:02d}", "GM0503" if i % 2 else "GM0344", "name", "Delft" if i % 2 else "Utrecht", None)
        for i in range(20 - len(unmatched))
    ]
    citizen_area(con, matched + [(f"u{i}", None, "unmatched", city, pc) for i, (city, pc) in enumerate(unmatched)])
    r = rules.areas_matched(con, Q_AREAS)
    assert r.rule == "areas_matched"
    assert r.passed is passed
    without = sum(1 for city, pc in unmatched if city is None and pc is None)
    addressed = len(unmatched) - without
    assert (r.figures["citizens"], r.figures["unmatched"], r.figures["bound"]) == (20, addressed, 0.1)
    assert r.figures["without_address"] == without
    assert r.figures["share"] == round(addressed / (20 - without), 5)
    assert r.figures["by_method"] == {"name": 20 - len(unmatched)} | (
        {"unmatched": len(unmatched)} if unmatched else {}
    )
    assert r.sample == sample


# --- publication -----------------------------------------------------------------------------------

SERVICE_UPTAKE = TABLES["service_uptake_by_area"]
POPULATION = TABLES["population_by_area"]


def uptake(rows: list[tuple[str, str, int | None]], **extra: list) -> pl.DataFrame:
    """A service_uptake_by_area table from (service, area_code, count); level, name and parent from AREAS; a null
    count is suppressed."""
    return pl.DataFrame(
        {
            "service": [s for s, _, _ in rows],
            "level": [AREAS[a][0] for _, a, _ in rows],
            "area_code": [a for _, a, _ in rows],
            "area_name": [AREAS[a][1] for _, a, _ in rows],
            "parent_code": [AREAS[a][2] for _, a, _ in rows],
            "count": [c for _, _, c in rows],
            "flag": ["suppressed" if c is None else "" for _, _, c in rows],
            **extra,
        },
        schema_overrides={"count": pl.Int64, "parent_code": pl.String},
    )


def hide(rows: list[tuple[str, str, int | None]], *codes: str) -> list[tuple[str, str, int | None]]:
    """The rows with the counts of these area codes suppressed."""
    return [(s, a, None if a in codes else c) for s, a, c in rows]


def row(service: str, code: str, count: int | None) -> dict[str, str | None]:
    """A service_uptake_by_area row as a rule's sample shows it."""
    level, name, parent = AREAS[code]
    return {
        "service": service,
        "level": level,
        "area_code": code,
        "area_name": name,
        "parent_code": parent,
        "count": None if count is None else str(count),
        "flag": "suppressed" if count is None else "",
    }


CLEAN_UPTAKE = [
    ("benefits", "GM0503", 12),
    ("benefits", "GM0344", 30),
    ("benefits", "PV28", 12),
    ("benefits", "PV26", 30),
    ("benefits", COUNTRY, 42),
]


def test_no_identifying_columns_passes_a_clean_table():
    r = rules.no_identifying_columns(uptake(CLEAN_UPTAKE), declared=SERVICE_UPTAKE.columns)
    assert r.rule == "no_identifying_columns"
    assert r.passed is True, r.summary
    assert (r.figures["undeclared"], r.figures["missing"], r.figures["identifying"], r.figures["id_like_rows"]) == (
        [],
        [],
        [],
        0,
    )


@pytest.mark.parametrize(
    ("table", "declared", "figure", "value"),
    [
        # An identifying column is caught even when the table declares it.
        pytest.param(
            uptake(CLEAN_UPTAKE, postcode=["2611AB", "3511CD", None, None, None]),
            (*SERVICE_UPTAKE.columns, "postcode"),
            "identifying",
            ["postcode"],
            id="identifying-column",
        ),
        pytest.param(
            uptake(CLEAN_UPTAKE, note=["a", "b", "c", "d", "e"]),
            SERVICE_UPTAKE.columns,
            "undeclared",
            ["note"],
            id="undeclared-column",
        ),
        pytest.param(
            uptake(CLEAN_UPTAKE).drop("flag"), SERVICE_UPTAKE.columns, "missing", ["flag"], id="missing-column"
        ),
        pytest.param(
            uptake(CLEAN_UPTAKE).drop("parent_code"),
            SERVICE_UPTAKE.columns,
            "missing",
            ["parent_code"],
            id="missing-parent-code",
        ),
    ],
)
def test_no_identifying_columns_catches_a_column(table, declared, figure, value):
    r = rules.no_identifying_columns(table, declared=declared)
    assert r.passed is False
    assert r.figures[figure] == value


@pytest.mark.parametrize(
    "leak", ["jan.jansen@example.org", "123456782", "12345678901", "+31612345678"], ids=["email", "bsn", "fnr", "phone"]
)
def test_no_identifying_columns_catches_an_identifying_value_in_an_allowed_column(leak):
    table = uptake(CLEAN_UPTAKE).with_columns(
        pl.when(pl.col("area_code") == "GM0344").then(pl.lit(leak)).otherwise(pl.col("area_name")).alias("area_name")
    )
    r = rules.no_identifying_columns(table, declared=SERVICE_UPTAKE.columns)
    assert r.passed is False
    assert r.figures["identifying"] == []
    assert r.figures["id_like_rows"] == 1
    assert r.sample == [row("benefits", "GM0344", 30) | {"area_name": leak}]


def disclosure(**config) -> DisclosureConfig:
    """The rules the gates use, from the sources file's `disclosure:` block."""
    return DisclosureConfig(**config)


def test_cells_at_or_above_minimum_passes_counts_at_the_minimum_zeros_and_suppressed_cells():
    table = uptake(
        [
            ("benefits", "GM0503", 10),
            ("benefits", "GM0546", 0),
            ("benefits", "GM0599", None),
            ("benefits", "GM0344", None),
            ("benefits", "PV28", 17),
            ("benefits", "PV26", 10),
            ("benefits", COUNTRY, 27),
        ]
    )
    r = rules.cells_at_or_above_minimum(table, disclosure(min_cell=10, suppress_zeros=False))
    assert r.rule == "disclosure_minimum_cell"
    assert r.passed is True
    assert r.figures == {"cells": 7, "below_minimum": 0, "suppressed": 2, "min_cell": 10}


@pytest.mark.parametrize(
    ("small", "config"),
    [(9, {"min_cell": 10}), (1, {"min_cell": 10}), (0, {"min_cell": 10, "suppress_zeros": True})],
    ids=["just-below", "one", "zero-when-zeros-are-suppressed"],
)
def test_cells_at_or_above_minimum_names_the_small_cell(small, config):
    table = uptake(
        [
            ("benefits", "GM0503", small),
            ("benefits", "GM0546", 30),
            ("benefits", "PV28", 30 + small),
            ("benefits", COUNTRY, 30 + small),
        ]
    )
    r = rules.cells_at_or_above_minimum(table, disclosure(**config))
    assert r.passed is False
    assert r.figures["below_minimum"] == 1
    assert r.sample == [row("benefits", "GM0503", small)]


def not_recoverable(table: pl.DataFrame, info=SERVICE_UPTAKE) -> rules.RuleResult:
    """The rule as the gate calls it: the table's dims and margins, and the hierarchies read from the table."""
    return rules.suppression_not_recoverable(
        table, dims=info.dims, margins=info.margins, hierarchies=info.hierarchies_of(table)
    )


def test_suppression_not_recoverable_passes_when_every_line_hides_two_cells():
    # Delft and Leiden are both hidden in the Zuid-Holland line; every other line hides nothing.
    table = uptake(
        [
            ("benefits", "GM0503", None),
            ("benefits", "GM0546", None),
            ("benefits", "GM0599", 30),
            ("benefits", "PV28", 45),
            ("benefits", "GM0344", 20),
            ("benefits", "PV26", 20),
            ("benefits", COUNTRY, 65),
            ("tax", "GM0503", 40),
            ("tax", "PV28", 40),
            ("tax", COUNTRY, 40),
        ]
    )
    r = not_recoverable(table)
    assert r.rule == "disclosure_not_recoverable"
    assert r.passed is True
    assert r.figures == {"suppressed": 2, "recoverable": 0, "derived": 0, "margins": ["area_code"]}


def test_suppression_not_recoverable_catches_a_lone_suppressed_cell_in_a_line_with_a_total():
    # benefits in Delft = 42 - 30: the Zuid-Holland total gives it away. The tax line hides two cells and is safe.
    table = uptake(
        [
            ("benefits", "GM0503", None),
            ("benefits", "GM0599", 30),
            ("benefits", "PV28", 42),
            ("benefits", COUNTRY, 42),
            ("tax", "GM0503", None),
            ("tax", "GM0546", None),
            ("tax", "GM0599", 20),
            ("tax", "PV28", 35),
            ("tax", COUNTRY, 35),
        ]
    )
    r = not_recoverable(table)
    assert r.passed is False
    assert r.figures["recoverable"] == 1
    assert r.sample == [row("benefits", "GM0503", None)]


# One service by official area: Zuid-Holland (Delft, Leiden, Rotterdam), Utrecht (Amersfoort, Utrecht), the unmatched, NL.
BY_AREA = [
    ("benefits", "GM0503", 12),
    ("benefits", "GM0546", 15),
    ("benefits", "GM0599", 30),
    ("benefits", "PV28", 57),
    ("benefits", "GM0307", 11),
    ("benefits", "GM0344", 40),
    ("benefits", "PV26", 51),
    ("benefits", open_data.UNKNOWN_AREA, 14),
    ("benefits", COUNTRY, 122),
]


@pytest.mark.parametrize(
    ("hidden", "recoverable"),
    [
        pytest.param((), [], id="nothing-hidden"),
        # Delft = Zuid-Holland - Leiden - Rotterdam.
        pytest.param(("GM0503",), ["GM0503"], id="only-suppressed-child-of-its-province"),
        pytest.param(("GM0503", "GM0546"), [], id="a-sibling-also-suppressed"),
        # Two hidden cells in the service, but each alone under its own province: both recoverable.
        pytest.param(("GM0503", "GM0307"), ["GM0503", "GM0307"], id="one-under-each-province"),
    ],
)
def test_suppression_not_recoverable_follows_municipalities_into_their_province(hidden, recoverable):
    r = not_recoverable(uptake(hide(BY_AREA, *hidden)))
    assert r.passed is (not recoverable)
    assert r.figures["recoverable"] == len(recoverable)
    assert [row["area_code"] for row in r.sample] == recoverable


@pytest.mark.parametrize(
    ("hidden", "recoverable"),
    [
        # Utrecht province hides two cells in its own line (itself and Amersfoort), but it is the only hidden cell
        # of the country's line: Utrecht = NL - Zuid-Holland - UNKNOWN.
        pytest.param(("PV26", "GM0307"), ["PV26"], id="province-alone-in-the-country-line"),
        # The unmatched residual suppressed as well protects it.
        pytest.param(("PV26", "GM0307", open_data.UNKNOWN_AREA), [], id="residual-also-suppressed"),
    ],
)
def test_suppression_not_recoverable_follows_provinces_into_the_country(hidden, recoverable):
    r = not_recoverable(uptake(hide(BY_AREA, *hidden)))
    assert r.passed is (not recoverable)
    assert [row["area_code"] for row in r.sample] == recoverable


@pytest.mark.parametrize(
    ("hidden", "recoverable"),
    [
        pytest.param(set(), [], id="nothing-hidden"),
        pytest.param({("GM0503", "F"), ("GM0503", "M"), ("GM0546", "F"), ("GM0546", "M")}, [], id="hidden-in-a-square"),
        # Two hidden in the Zuid-Holland women's line, but each alone in its municipality's F + M = Total line.
        pytest.param(
            {("GM0503", "F"), ("GM0546", "F")}, [("GM0503", "F"), ("GM0546", "F")], id="hidden-in-one-sex-only"
        ),
    ],
)
def test_suppression_not_recoverable_checks_the_area_hierarchy_and_the_other_margins(hidden, recoverable):
    """population_by_area (all ages): the area lines follow the hierarchy, the sex lines add up to Total."""
    counts = {"GM0503": (11, 19), "GM0546": (15, 20), "PV28": (26, 39), COUNTRY: (26, 39)}
    cells = [(a, s, v) for a, (f, m) in counts.items() for s, v in (("F", f), ("M", m), (TOTAL, f + m))]
    table = pl.DataFrame(
        {
            "level": [AREAS[a][0] for a, _, _ in cells],
            "area_code": [a for a, _, _ in cells],
            "area_name": [AREAS[a][1] for a, _, _ in cells],
            "parent_code": [AREAS[a][2] for a, _, _ in cells],
            "age_band": [TOTAL] * len(cells),
            "sex": [s for _, s, _ in cells],
            "count": [None if (a, s) in hidden else v for a, s, v in cells],
        },
        schema_overrides={"count": pl.Int64, "parent_code": pl.String},
    )
    r = not_recoverable(table, POPULATION)
    assert r.passed is (not recoverable)
    assert [(row["area_code"], row["sex"]) for row in r.sample] == recoverable


@pytest.mark.parametrize(
    ("hidden", "recoverable"),
    [((), []), (("citizens", "duplicate_records"), []), (("duplicate_records",), ["duplicate_records"])],
    ids=["nothing-hidden", "both-parts-hidden", "one-part-hidden"],
)
def test_suppression_not_recoverable_uses_a_fixed_hierarchy(hidden, recoverable):
    """duplicates_per_source: records = citizens + duplicate_records, per source (TableInfo.hierarchies)."""
    counts = {"records": 50, "citizens": 45, "duplicate_records": 5}
    table = pl.DataFrame(
        {
            "source": ["tax"] * 3,
            "measure": list(counts),
            "count": [None if m in hidden else v for m, v in counts.items()],
        },
        schema_overrides={"count": pl.Int64},
    )
    r = not_recoverable(table, TABLES["duplicates_per_source"])
    assert r.passed is (not recoverable)
    assert [row["measure"] for row in r.sample] == recoverable


@pytest.mark.parametrize(
    ("hidden", "recoverable"),
    [
        ((), []),
        ({("A", "F"), ("A", "M"), ("B", "F"), ("B", "M")}, []),
        ({("A", "F"), ("A", "M")}, [("A", "F"), ("A", "M")]),
    ],
    ids=["nothing-hidden", "hidden-in-a-square", "hidden-in-one-row-only"],
)
def test_suppression_not_recoverable_checks_every_margin(hidden, recoverable):
    """area x sex with both margins and no hierarchy: hiding A's two cells protects the A row, but each is alone
    in its sex column."""
    counts = {("A", "F"): 11, ("A", "M"): 19, ("B", "F"): 15, ("B", "M"): 20}
    cells = {**counts, ("A", TOTAL): 30, ("B", TOTAL): 35, (TOTAL, "F"): 26, (TOTAL, "M"): 39, (TOTAL, TOTAL): 65}
    table = pl.DataFrame(
        {
            "area": [a for a, _ in cells],
            "sex": [s for _, s in cells],
            "count": [None if k in hidden else v for k, v in cells.items()],
        },
        schema_overrides={"count": pl.Int64},
    )
    r = rules.suppression_not_recoverable(table, dims=("area", "sex"), margins=("area", "sex"))
    assert r.passed is (not recoverable)
    assert [(row["area"], row["sex"]) for row in r.sample] == recoverable


Q_PUBLISHED = QualityConfig(min_published_person_share=0.9)


@pytest.mark.parametrize(
    ("persons", "published", "passed"),
    [(100, 100, True), (100, 90, True), (100, 89, False), (0, 0, True)],
    ids=["all-published", "at-bound", "below", "no-people"],
)
def test_published_person_share_of_people_in_published_municipality_cells(persons, published, passed):
    """The loss dict as PublishedTable.information_loss gives it: 2 of BY_AREA's 9 cells suppressed."""
    table = uptake(hide(BY_AREA, "GM0503", "GM0546"))
    loss = PublishedTable(
        SERVICE_UPTAKE, table, primary=1, secondary=1, cells=table.height, persons=persons, persons_published=published
    ).information_loss()
    r = rules.published_person_share(loss, Q_PUBLISHED)
    assert r.rule == "published_person_share"
    assert r.passed is passed
    assert r.figures["published_person_share"] == (published / persons if persons else 1.0)
    assert (r.figures["bound"], r.figures["cells_suppressed"], r.figures["suppressed_cell_share"]) == (
        0.9,
        2,
        round(2 / 9, 5),
    )
    assert (r.figures["persons_in_finest_cells"], r.figures["persons_in_published_finest_cells"]) == (
        persons,
        published,
    )


# totals_consistent: a small linked view. Living at REFERENCE: c1, c2, c3, c5, c6 (c5 dies after it; c4 died before);
# c6 lives in no official area (counted in the country's total through the unknown level only).
REFERENCE = dt.date(2024, 1, 1)
LINKS = [
    ("c1", "tax:1"),
    ("c1", "benefits:1"),
    ("c2", "tax:2"),
    ("c3", "tax:3"),
    ("c3", "benefits:2"),
    ("c3", "benefits:3"),
    ("c4", "tax:4"),
    ("c4", "benefits:4"),
    ("c5", "benefits:5"),
    ("c6", "tax:5"),
    ("c6", "benefits:6"),
]
CITIZENS = [
    ("c1", "Utrecht", "F", dt.date(1980, 2, 1), None),
    ("c2", "Amersfoort", "M", dt.date(1990, 3, 1), None),
    ("c3", "Delft", "F", dt.date(1975, 4, 1), None),
    ("c4", "Delft", "M", dt.date(1950, 5, 1), dt.date(2020, 5, 1)),
    ("c5", "Delft", "M", dt.date(1960, 6, 1), dt.date(2024, 6, 1)),
    ("c6", "Atlantis", "F", dt.date(2000, 7, 1), None),
]
NATIONAL = pl.col("level") == "country"
# Per table: the row holding the total the rule compares, its column, the label the rule gives it and the truth.
TOTALS = {
    "population_by_area": (
        NATIONAL & (pl.col("age_band") == TOTAL) & (pl.col("sex") == TOTAL),
        "count",
        "living citizens",
        5,
    ),
    "agencies_per_citizen": (pl.col("agencies") == TOTAL, "count", "living citizens", 5),
    "service_uptake_by_area": ((pl.col("service") == "benefits") & NATIONAL, "count", "benefits users", 4),
    "duplicates_per_source": (
        (pl.col("source") == "tax") & (pl.col("measure") == "records"),
        "count",
        "tax records",
        5,
    ),
    "linkage_quality": (pl.col("metric") == "citizens", "value", "citizens", 6),
}


@pytest.fixture
def linked(con):
    linked_view(con, [(c, k, 0.99) for c, k in LINKS], citizens=CITIZENS)
    report = match_areas(con, load_areas(COUNTRY))  # writes citizen_area, as the citizen_area asset does
    assert (report.unmatched, report.unmatched_values) == (1, [("Atlantis", None, 1)])
    con.execute("CREATE TABLE linkage_threshold AS SELECT 3.0 AS threshold_weight")
    return con


def published(con, name: str, *, delta: int | None = 0) -> pl.DataFrame:
    """The table as open_data builds it from the linked view, its compared total moved by delta (None: suppressed)."""
    where = {"country": COUNTRY, "country_name": "Netherlands"}
    build = {
        "population_by_area": lambda: open_data.population_by_area(con, reference=REFERENCE, **where),
        "agencies_per_citizen": lambda: open_data.agencies_per_citizen(con, reference=REFERENCE),
        "service_uptake_by_area": lambda: open_data.service_uptake_by_area(
            con, services=["benefits"], reference=REFERENCE, **where
        ),
        "duplicates_per_source": lambda: open_data.duplicates_per_source(con),
        "linkage_quality": lambda: open_data.linkage_quality(con),
    }[name]
    column = TOTALS[name][1]
    moved = pl.lit(None) if delta is None else pl.col(column) + delta
    return build().with_columns(pl.when(TOTALS[name][0]).then(moved).otherwise(pl.col(column)).alias(column))


def consistent(con, name: str, table: pl.DataFrame, tolerance: int = 0) -> rules.RuleResult:
    return rules.totals_consistent(con, name, table, reference=REFERENCE, tolerance=tolerance, services=["benefits"])


@pytest.mark.parametrize("name", TOTALS)
def test_totals_consistent_passes_the_tables_as_built(linked, name):
    table = published(linked, name)
    assert table.filter(TOTALS[name][0]).height == 1  # the compared total is one row of the built table
    r = consistent(linked, name, table)
    assert r.rule == "totals_consistent"
    assert r.passed is True, r.sample
    assert r.figures["mismatches"] == 0
    assert r.figures["compared"] >= 1


def test_totals_consistent_reads_the_national_row_not_a_region_or_the_unknown_residual(linked):
    """Every level of the area table has its own all-ages total; only the country's is the living population."""
    table = published(linked, "population_by_area")
    totals = table.filter((pl.col("age_band") == TOTAL) & (pl.col("sex") == TOTAL))
    assert dict(zip(totals["area_code"], totals["count"])) == {
        "GM0307": 1,
        "GM0344": 1,
        "GM0503": 2,
        "PV26": 2,
        "PV28": 2,
        open_data.UNKNOWN_AREA: 1,
        COUNTRY: 5,
    }
    assert consistent(linked, "population_by_area", table).passed is True
    # Without the national row nothing is compared (as for a suppressed total): no region stands in for the country.
    r = consistent(linked, "population_by_area", table.filter(~NATIONAL))
    assert r.figures == {"compared": 1, "mismatches": 0, "suppressed_totals": 1}


@pytest.mark.parametrize("name", TOTALS)
def test_totals_consistent_catches_a_total_that_differs_from_the_linked_view(linked, name):
    # For the population tables, truth + 1 is the count that includes c4, who died before the reference date.
    _, _, label, truth = TOTALS[name]
    r = consistent(linked, name, published(linked, name, delta=1))
    assert r.passed is False
    assert r.figures["mismatches"] == 1
    assert r.sample == [{"total": label, "published": truth + 1, "linked_view": truth}]


@pytest.mark.parametrize(("delta", "passed"), [(-2, True), (2, True), (-3, False), (3, False)])
def test_totals_consistent_allows_the_rounding_tolerance_and_no_more(linked, delta, passed):
    r = consistent(linked, "population_by_area", published(linked, "population_by_area", delta=delta), tolerance=2)
    assert r.passed is passed
    assert r.figures["mismatches"] == (0 if passed else 1)


def test_totals_consistent_skips_a_suppressed_total(linked):
    r = consistent(linked, "agencies_per_citizen", published(linked, "agencies_per_citizen", delta=None))
    assert r.passed is True
    assert r.figures == {"compared": 1, "mismatches": 0, "suppressed_totals": 1}


def test_the_totals_gate_checks_a_table_at_the_date_it_was_built_at(linked):
    """A table built at one reference date is checked at that date, not at whatever "today" is when the gate runs
    (a run can cross midnight, and a warehouse is re-checked later): the date is stored with the table."""
    from citizen_view.contract import SourcesFile

    def sources(reference: dt.date | None) -> SourcesFile:
        return SourcesFile.model_validate(
            {
                "country": COUNTRY,
                "sources": [],
                "base_dir": ".",
                "publication": {"reference_date": reference},
                "disclosure": {"min_cell": 1},
            }
        )  # five people: publish them

    built = {name: open_data.publish_table(linked, name, sources(REFERENCE)) for name in TABLES}
    later = sources(None)  # the default: today, by when c5 has died
    assert {t.reference for t in built.values()} == {REFERENCE}
    assert open_data.built_reference(linked, "agencies_per_citizen", later) == REFERENCE
    assert {t.reference for t in open_data.load_published(linked)} == {REFERENCE}
    table = linked.sql('SELECT * FROM open_data."agencies_per_citizen"').pl()
    at = open_data.built_reference(linked, "agencies_per_citizen", later)
    assert rules.totals_consistent(linked, "agencies_per_citizen", table, reference=at, services=[]).passed is True
    today = open_data.reference_date(later)
    assert rules.totals_consistent(linked, "agencies_per_citizen", table, reference=today, services=[]).passed is False


@pytest.mark.parametrize(
    ("records", "invalid", "passed"), [(37, 2, True), (37_000, 2_000, False)], ids=["2-of-37", "2000-of-37000"]
)
def test_date_bounds_respect_sample_size(con, records, invalid, passed):
    """The default bound (98% readable birth dates) on the "wrong date format" case of the issue's library-card
    onboarding: dates such as `14/03/1985` in a `%Y-%m-%d` column. 2 such dates in a 37-row survey extract are noise
    (95% interval of the readable share 82%..99%), the same share in 37,000 rows is a broken extract (94.4%..94.8%)."""
    bad = range(1, invalid + 1)
    canonical(
        con,
        "survey",
        records,
        date_of_birth=[None if i <= invalid else dt.date(1980, 1, 1) for i in range(1, records + 1)],
    )
    issues(con, "survey", "date_of_birth", bad, reason=UNREADABLE)
    r = rules.date_of_birth_validity(con, source_config("date_of_birth", name="survey"), QualityConfig())
    assert r.passed is passed
    assert r.figures["bad"] == invalid and r.figures["total"] == records
    assert "quality.min_date_of_birth_valid_share" in r.summary and "95% interval" in r.summary
