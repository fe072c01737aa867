"""The accuracy benchmark's baseline: plain Splink with a generic model, as its own tutorials build one.

Reads the standardised records our ingest wrote (`source_records`), so both systems see the same
records with the same cleaning (folded names, parsed dates, normalised postcodes); everything after
that is generic Splink 5:

- comparisons from `splink.comparison_library` on the columns that are populated (>= 5% of records):
  NameComparison on first and family name (term-frequency adjusted), DateOfBirthComparison on the date
  as yyyymmdd text, DamerauLevenshteinAtThresholds on the national ID and postcode, ExactMatch on house
  number, sex, phone, birth place, and EmailComparison; street (JaroWinkler) and city (ExactMatch) only
  where there is no postcode, as Splink's FEBRL 4 tutorial advises (`location="all"` adds them anyway);
- prediction blocking rules on first + family name, the names swapped, birth date, national ID,
  postcode, street + house number, email, phone (as in Splink's FEBRL and 50k tutorials);
- training as the tutorials do it: the match rate from deterministic rules (recall 0.8), u from
  random pairs, m by EM on two or three blocking rules (a session Splink 5.0 cannot finish, an m
  probability of 0, is skipped and noted);
- prediction down to match weight -10, then clusters by connected components.

Unlike our pipeline, which chooses its threshold without truth, the baseline is given its best
threshold: every distinct match weight is tried as the threshold and the one with the best pairwise
F1 against the truth wins. That is an upper bound on what plain Splink could reach with this model.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import polars as pl

log = logging.getLogger(__name__)

# A column is compared when at least this share of all records have it.
POPULATED_SHARE = 0.05
PREDICT_FLOOR_WEIGHT = -10.0
# A blocking rule (or EM session) that would pair more records than this is left out: a column with one
# value for nearly everyone (pseudopeople's sample has zipcode 00000 and city Anytown on every record)
# makes a single-column rule a cross join no engineer would run.
MAX_RULE_PAIRS = 20_000_000

_INPUT_COLUMNS = (
    "first_name_std",
    "family_name_std",
    "national_id",
    "postcode",
    "city_std",
    "street_std",
    "house_number",
    "sex",
    "email",
    "phone",
    "birth_place_std",
)


def _input_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The columns the baseline compares. A national ID our ingest quarantined (checksum failed: left empty
    in `national_id`, kept as received in `national_id_text`) is compared as received, with separators
    stripped: plain Splink has no checksum step, and a mistyped ID one edit away is evidence it would use."""
    have = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE source_records)").fetchall()}
    exprs = [f'"{c}"' for c in _INPUT_COLUMNS]
    if "national_id_text" in have:
        exprs[_INPUT_COLUMNS.index("national_id")] = (
            "coalesce(national_id, nullif(regexp_replace(national_id_text, '[^0-9A-Za-z]', '', 'g'), '')) AS national_id"
        )
    return con.sql(
        f"SELECT record_key, source, source_record_id, {', '.join(exprs)}, strftime(date_of_birth, '%Y%m%d') AS dob "
        "FROM source_records"
    ).pl()


def rule_pairs(df: pl.DataFrame, cols: tuple[str, ...]) -> int:
    """Pairs of records a blocking rule on equal `cols` would compare (records with all of them set)."""
    sizes = df.drop_nulls(list(cols)).group_by(list(cols)).len().get_column("len")
    return int((sizes * (sizes - 1) // 2).sum())


def _too_broad(df: pl.DataFrame, candidates: list[tuple[str, ...]]) -> set[tuple[str, ...]]:
    return {cols for cols in candidates if all(c in df.columns for c in cols) and rule_pairs(df, cols) > MAX_RULE_PAIRS}


def _populated(df: pl.DataFrame) -> set[str]:
    n = max(df.height, 1)
    return {c for c in (*_INPUT_COLUMNS, "dob") if df.get_column(c).is_not_null().sum() / n >= POPULATED_SHARE}


def generic_settings(
    populated: set[str],
    *,
    link_type: str,
    location: str = "tutorial",
    blocking: str = "tutorial",
    too_broad: set[tuple[str, ...]] = frozenset(),
):
    """Splink settings a competent engineer writes from the tutorials, on the populated columns.

    `location="tutorial"`: postcode and house number, and street/city only when there is no postcode
    (Splink's FEBRL 4 tutorial: "we don't consider further location columns as they will be strongly
    correlated with postcode"); `"all"`: street and city as well, each as its own comparison.
    """
    from splink import SettingsCreator

    if location not in ("tutorial", "all"):
        raise ValueError(f"location must be 'tutorial' or 'all', not {location!r}")
    compare = set(populated)
    if location == "tutorial" and "postcode" in compare:
        compare -= {"street_std", "city_std"}
    comparisons = _tutorial_comparisons(compare)
    rules = _tutorial_rules(populated, blocking=blocking, too_broad=too_broad)
    settings = SettingsCreator(
        link_type=link_type,
        unique_id_column_name="record_key",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        additional_columns_to_retain=["source", "source_record_id"],
        retain_intermediate_calculation_columns=False,
    )
    return settings, [c.get_comparison("duckdb").output_column_name for c in comparisons]


def _tutorial_comparisons(compare: set[str]) -> list:
    """One comparison per column to compare, as the Splink tutorials write them."""
    import splink.comparison_library as cl

    has = compare.__contains__
    comparisons = []
    if has("first_name_std"):
        comparisons.append(cl.NameComparison("first_name_std").configure(term_frequency_adjustments=True))
    if has("family_name_std"):
        comparisons.append(cl.NameComparison("family_name_std").configure(term_frequency_adjustments=True))
    if has("dob"):
        comparisons.append(
            cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True)
        )
    if has("national_id"):
        comparisons.append(cl.DamerauLevenshteinAtThresholds("national_id", [1, 2]))
    if has("postcode"):
        comparisons.append(
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True)
        )
    if has("street_std"):
        comparisons.append(cl.JaroWinklerAtThresholds("street_std", [0.9, 0.7]))
    if has("house_number"):
        comparisons.append(cl.ExactMatch("house_number").configure(term_frequency_adjustments=True))
    if has("city_std"):
        comparisons.append(cl.ExactMatch("city_std").configure(term_frequency_adjustments=True))
    if has("sex"):
        comparisons.append(cl.ExactMatch("sex"))
    if has("email"):
        comparisons.append(cl.EmailComparison("email"))
    if has("phone"):
        comparisons.append(cl.ExactMatch("phone"))
    if has("birth_place_std"):
        comparisons.append(cl.ExactMatch("birth_place_std").configure(term_frequency_adjustments=True))
    return comparisons


def _tutorial_rules(populated: set[str], *, blocking: str, too_broad: set[tuple[str, ...]]) -> list[Any]:
    """Blocking rules on any populated column: the tutorials' single columns, or the scalable pairs."""
    from splink import block_on

    has = populated.__contains__  # blocking may use any populated column
    rules: list[Any] = []
    if has("first_name_std") and has("family_name_std"):
        rules.append(block_on("first_name_std", "family_name_std"))
        rules.append("l.first_name_std = r.family_name_std AND l.family_name_std = r.first_name_std")
    if blocking == "tutorial":  # single columns, as the tutorials' 10k-record examples do
        singles = [("dob",), ("national_id",), ("postcode",), ("street_std", "house_number"), ("email",), ("phone",)]
    elif blocking == "scalable":  # no single-column rule on a common value: what one writes for half a million records
        singles = [
            ("national_id",),
            ("dob", "family_name_std"),
            ("dob", "first_name_std"),
            ("postcode", "house_number"),
            ("street_std", "house_number"),
            ("email",),
            ("phone",),
        ]
    else:
        raise ValueError(f"blocking must be 'tutorial' or 'scalable', not {blocking!r}")
    for cols in singles:
        if all(has(c) for c in cols) and cols not in too_broad:
            rules.append(block_on(*cols))
    return rules


def _train(
    linker,
    populated: set[str],
    n_records: int,
    *,
    seed: int,
    blocking: str = "tutorial",
    too_broad: set[tuple[str, ...]] = frozenset(),
) -> list[str]:
    from splink import block_on

    has = populated.__contains__
    notes: list[str] = []
    deterministic = []
    if has("national_id"):
        deterministic.append(block_on("national_id"))
    if has("first_name_std") and has("family_name_std") and has("dob"):
        deterministic.append(block_on("first_name_std", "family_name_std", "dob"))
    if not deterministic and has("first_name_std") and has("family_name_std") and has("postcode"):
        deterministic.append(block_on("first_name_std", "family_name_std", "postcode"))
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
    max_pairs = 5e6 if n_records > 20_000 else 1e6
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    notes.append(f"u from {max_pairs:.0e} random pairs")
    em_candidates = (
        [("dob",), ("postcode",), ("first_name_std", "family_name_std")]
        if blocking == "tutorial"
        else [("dob", "postcode"), ("first_name_std", "family_name_std")]
    )
    em_rules = [cols for cols in em_candidates if all(has(c) for c in cols) and cols not in too_broad]
    fitted = 0
    for cols in em_rules:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*cols), estimate_without_term_frequencies=True
            )
            fitted += 1
            notes.append(f"EM on {'+'.join(cols)}: ok")
        except (ValueError, ZeroDivisionError) as exc:  # Splink 5.0 raises on an m probability of 0
            notes.append(f"EM on {'+'.join(cols)}: skipped ({str(exc)[:80]})")
    if not fitted:
        notes.append("no EM session finished: m probabilities are Splink's defaults")
    return notes


def sweep_thresholds(
    records: pl.DataFrame, edges: pl.DataFrame, truth: pl.DataFrame
) -> tuple[list[tuple[float, float, float, float]], float]:
    """Pairwise precision/recall/F1 of connected components at every distinct match weight as threshold.

    `records`: record_key, source, source_record_id; `edges`: record_key_l, record_key_r, match_weight;
    `truth`: source, source_record_id, person_id (as `load_truth` gives it). Links are added strongest
    first and the in-cluster pair counts updated per merge, so every threshold is exact (same counting as
    `evaluate_links`: only records with a truth label count, but unlabelled ones still connect).
    Returns [(threshold, precision, recall, f1), ...] from the highest threshold down, and the true pair count.
    """
    rec = records.join(truth, on=["source", "source_record_id"], how="left")
    keys = rec.get_column("record_key").to_list()
    index = {k: i for i, k in enumerate(keys)}
    person = rec.get_column("person_id").to_list()
    sizes = pl.DataFrame({"p": [p for p in person if p is not None]}).group_by("p").agg(pl.len().alias("n"))
    true_pairs = int((sizes.get_column("n") * (sizes.get_column("n") - 1) // 2).sum()) if sizes.height else 0

    parent = list(range(len(keys)))
    members: list[dict[str, int]] = [({p: 1} if p is not None else {}) for p in person]
    labelled = [1 if p is not None else 0 for p in person]

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    e = edges.sort("match_weight", descending=True)
    ls = [index[k] for k in e.get_column("record_key_l").to_list()]
    rs = [index[k] for k in e.get_column("record_key_r").to_list()]
    ws = e.get_column("match_weight").to_list()
    predicted = correct = 0
    curve: list[tuple[float, float, float, float]] = []
    for j, (a, b, w) in enumerate(zip(ls, rs, ws)):
        ra, rb = find(a), find(b)
        if ra != rb:
            if len(members[ra]) < len(members[rb]):
                ra, rb = rb, ra
            predicted += labelled[ra] * labelled[rb]
            big, small = members[ra], members[rb]
            for p, n in small.items():
                correct += big.get(p, 0) * n
                big[p] = big.get(p, 0) + n
            members[rb] = {}
            labelled[ra] += labelled[rb]
            parent[rb] = ra
        if j + 1 == len(ws) or ws[j + 1] != w:  # all edges of this weight are in: a threshold at w
            precision = correct / predicted if predicted else 1.0
            recall = correct / true_pairs if true_pairs else 1.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            curve.append((float(w), precision, recall, f1))
    return curve, true_pairs


def cluster_at(records: pl.DataFrame, edges: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Connected components of the pairs at or above `threshold`: source, source_record_id, citizen_id."""
    from citizen_view.linkage.clusters import components

    keys = records.get_column("record_key").to_list()
    index = {k: i for i, k in enumerate(keys)}
    kept = edges.filter(pl.col("match_weight") >= threshold)
    left = np.array([index[k] for k in kept.get_column("record_key_l").to_list()], dtype=np.int64)
    right = np.array([index[k] for k in kept.get_column("record_key_r").to_list()], dtype=np.int64)
    _, labels = components(len(keys), left, right)
    return records.select("source", "source_record_id").with_columns(
        pl.Series("citizen_id", labels.astype(str), dtype=pl.String)
    )


def _scored_pairs(splink_con: duckdb.DuckDBPyConnection, scored) -> pl.DataFrame:
    """The pairs Splink scored (its prediction table): record_key_l, record_key_r, match_weight."""
    return pl.from_arrow(
        splink_con.sql(f"SELECT record_key_l, record_key_r, match_weight FROM {scored.physical_name}")
        .arrow()
        .read_all()
    )


@dataclass
class Judged:
    """Scored pairs judged against the truth: clustered at the threshold of best pairwise F1 (chosen with the truth:
    an upper bound), and, for reference, Splink's usual default without truth, a match probability of 0.5."""

    figures: dict[str, Any]  # threshold and its probability, precision, recall, f1, evaluation
    curve: list[tuple[float, float, float, float]]
    true_pairs: float
    at_probability_half: dict[str, float]
    sweep_seconds: float
    cluster_seconds: float


def judge(df: pl.DataFrame, edges: pl.DataFrame, truth: pl.DataFrame) -> Judged:
    """Every distinct match weight of `edges` tried as the threshold against `truth`; the links at the best one."""
    from citizen_view.linkage.evaluate import evaluate_links

    started = time.perf_counter()
    records = df.select("record_key", "source", "source_record_id")
    curve, true_pairs = sweep_thresholds(records, edges, truth)
    threshold = max(curve, key=lambda r: (r[3], r[0]))[0] if curve else math.inf
    # Without truth, Splink's usual default is a match probability of 0.5 (weight 0): for reference.
    at_zero = [r for r in curve if r[0] >= 0.0]
    default = at_zero[-1] if at_zero else (math.inf, 1.0, 0.0, 0.0)
    swept = time.perf_counter()
    links = cluster_at(records, edges, threshold)
    clustered = time.perf_counter()
    figures = evaluate_links(links, truth)
    return Judged(
        {
            "threshold": threshold,
            "threshold_probability": 1 / (1 + 2 ** (-threshold)) if math.isfinite(threshold) else None,
            "precision": figures["precision"],
            "recall": figures["recall"],
            "f1": figures["f1"],
            "evaluation": figures,
        },
        curve,
        true_pairs,
        {"precision": round(default[1], 6), "recall": round(default[2], 6), "f1": round(default[3], 6)},
        swept - started,
        clustered - swept,
    )


def plain_splink(
    con: duckdb.DuckDBPyConnection,
    truth: pl.DataFrame,
    *,
    link_type: str = "dedupe_only",
    seed: int = 1,
    location: str = "tutorial",
    blocking: str = "tutorial",
) -> dict[str, Any]:
    """Train and score a generic Splink model on `source_records`, cluster by connected components, and
    return the best pairwise F1 over all thresholds (chosen with the truth: an upper bound).

    `link_type`: "dedupe_only" (the union of all sources, within-source duplicates too) or "link_only"
    (pairs across sources only; fairer for FEBRL 4, whose two files are one-to-one and duplicate-free).
    Returns threshold (match weight) and its match probability, precision, recall, f1, the evaluation
    figures of `evaluate_links` at that threshold, seconds (train + score + one clustering at the
    threshold), train/score/sweep seconds, pairs scored, the comparisons and rules used, training notes.
    """

    if link_type not in ("dedupe_only", "link_only"):
        raise ValueError(f"link_type must be dedupe_only or link_only, not {link_type!r}")
    started = time.perf_counter()
    df = _input_frame(con)
    populated = _populated(df)
    broad = _too_broad(df, [("dob",), ("national_id",), ("postcode",), ("email",), ("phone",)])
    settings, compared = generic_settings(
        populated, link_type=link_type, location=location, blocking=blocking, too_broad=broad
    )
    edges, notes, train_seconds, score_seconds = _train_and_score(
        df, settings, populated, link_type=link_type, seed=seed, blocking=blocking, too_broad=broad
    )
    scored_at = time.perf_counter()
    judged = judge(df, edges, truth)
    threshold, curve = judged.figures["threshold"], judged.curve
    return {
        **judged.figures,
        "seconds": round((scored_at - started) + judged.cluster_seconds, 2),
        "train_seconds": round(scored_at - started - score_seconds, 2),
        "score_seconds": round(score_seconds, 2),
        "sweep_seconds": round(judged.sweep_seconds, 2),
        "pairs_scored": edges.height,
        "true_pairs": judged.true_pairs,
        "thresholds_tried": len(curve),
        "best_at_lowest_weight_scored": bool(curve) and threshold == curve[-1][0],
        "at_probability_half": judged.at_probability_half,
        "link_type": link_type,
        "location": location,
        "blocking": blocking,
        "compared": compared,
        "blocking_rules": len(settings.blocking_rules_to_generate_predictions),
        "training_notes": notes,
    }


def _train_and_score(
    df: pl.DataFrame,
    settings,
    populated: set[str],
    *,
    link_type: str,
    seed: int,
    blocking: str,
    too_broad: set,
) -> tuple[pl.DataFrame, list[str], float, float]:
    """Plain Splink in its own in-memory DuckDB: train, then score every pair above the floor weight.
    Returns (scored pairs, training notes, train seconds, score seconds)."""
    from splink import DuckDBAPI, Linker

    with tempfile.TemporaryDirectory(prefix="plain-splink-") as tmp:
        splink_con = duckdb.connect(":memory:")
        splink_con.execute(f"SET temp_directory = '{tmp}'")
        db_api = DuckDBAPI(connection=splink_con)
        if link_type == "link_only":
            sources = sorted(df.get_column("source").unique().to_list())
            if len(sources) < 2:
                raise ValueError(f"link_only needs at least two sources, have {sources}")
            inputs = [
                db_api.register(df.filter(pl.col("source") == s), dataset_display_name=f"src_{s}") for s in sources
            ]
        else:
            inputs = db_api.register(df, dataset_display_name="records")
        started = time.perf_counter()
        linker = Linker(inputs, settings, log_level=logging.ERROR)
        notes = _train(linker, populated, df.height, seed=seed, blocking=blocking, too_broad=too_broad)
        notes += [
            f"blocking/EM on {'+'.join(cols)} skipped (over {MAX_RULE_PAIRS:,} pairs)" for cols in sorted(too_broad)
        ]
        trained = time.perf_counter()
        scored = linker.inference.predict(threshold_match_weight=PREDICT_FLOOR_WEIGHT)
        edges = _scored_pairs(splink_con, scored)
        scored_at = time.perf_counter()
        splink_con.close()
    return edges, notes, trained - started, scored_at - trained


FAIR_BLOCKING = (
    ("national_id",),
    ("first_name_std", "family_name_std"),
    ("family_name_std", "dob"),
    ("first_name_std", "dob"),
    ("family_name_std", "postcode"),
    ("first_name_std", "postcode"),
    ("house_number", "street_std", "family_name_std"),
)
FAIR_PREDICT_PROBABILITY = 0.01
FAIR_U_PAIRS = 5e6
FAIR_RECALL = 0.7


def fair_settings():
    """Settings of the competent user's model: name comparisons with term frequencies, the birth date as
    text, Levenshtein <= 1 on the national ID, exact postcode and house number, Jaro-Winkler 0.9 on
    street and city; the seven blocking rules of `FAIR_BLOCKING`."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons = [
        cl.NameComparison("first_name_std").configure(term_frequency_adjustments=True),
        cl.NameComparison("family_name_std").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("dob", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True),
        cl.LevenshteinAtThresholds("national_id", [1]),
        cl.ExactMatch("postcode"),
        cl.ExactMatch("house_number"),
        cl.JaroWinklerAtThresholds("street_std", [0.9]),
        cl.JaroWinklerAtThresholds("city_std", [0.9]),
    ]
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[block_on(*cols) for cols in FAIR_BLOCKING],
        additional_columns_to_retain=["source", "source_record_id"],
        retain_intermediate_calculation_columns=False,
    )


def fair_splink(
    con: duckdb.DuckDBPyConnection, truth: pl.DataFrame, *, seed: int = 1, cpu_clock=time.process_time
) -> dict[str, Any]:
    """Train and score the competent user's model (`fair_settings`) on `source_records`: the match rate from
    the first two blocking rules at recall 0.7, u from 5M random pairs, EM on the first three rules,
    prediction at probability >= 0.01; then connected components.

    Returns train/score seconds (and where training time went), pairs scored, the best pairwise F1 over all
    thresholds (chosen with the truth: an upper bound) and the F1 at its own threshold, probability 0.5.
    """
    from splink import DuckDBAPI, Linker, block_on

    started, started_cpu = time.perf_counter(), cpu_clock()
    df = _input_frame(con)
    timings: dict[str, float] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fair-splink-") as tmp:
        splink_con = duckdb.connect(":memory:")
        splink_con.execute(f"SET temp_directory = '{tmp}'")
        db_api = DuckDBAPI(connection=splink_con)
        linker = Linker(db_api.register(df, dataset_display_name="records"), fair_settings(), log_level=logging.ERROR)
        step = time.perf_counter()
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*cols) for cols in FAIR_BLOCKING[:2]], recall=FAIR_RECALL
        )
        timings["match rate"], step = time.perf_counter() - step, time.perf_counter()
        linker.training.estimate_u_using_random_sampling(max_pairs=FAIR_U_PAIRS, seed=seed)
        timings["u from random pairs"], step = time.perf_counter() - step, time.perf_counter()
        for cols in FAIR_BLOCKING[:3]:
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(block_on(*cols))
                notes.append(f"EM on {'+'.join(cols)}: ok")
            except (ValueError, ZeroDivisionError) as exc:  # Splink 5.0 raises on an m probability of 0
                notes.append(f"EM on {'+'.join(cols)}: skipped ({str(exc)[:80]})")
        timings["EM"] = time.perf_counter() - step
        trained, trained_cpu = time.perf_counter(), cpu_clock()
        scored = linker.inference.predict(threshold_match_probability=FAIR_PREDICT_PROBABILITY)
        edges = _scored_pairs(splink_con, scored)
        scored_at, scored_cpu = time.perf_counter(), cpu_clock()
        splink_con.close()
    judged = judge(df, edges, truth)
    train_seconds = trained - started
    return {
        **judged.figures,
        "train_seconds": round(train_seconds, 2),
        "score_seconds": round(scored_at - trained, 2),
        "train_cpu_seconds": round(trained_cpu - started_cpu, 2),
        "score_cpu_seconds": round(scored_cpu - trained_cpu, 2),
        "training_split": {k: round(v, 2) for k, v in timings.items()},
        "pairs_scored": edges.height,
        "true_pairs": judged.true_pairs,
        "at_probability_half": judged.at_probability_half,
        "blocking_rules": ["+".join(cols) for cols in FAIR_BLOCKING],
        "training_notes": notes,
    }
