"""Linkage accuracy against a ground truth in the generator's format (`truth/*.csv`: source, record_id, person_id).

Pairwise figures count record pairs put in one citizen (predicted) and pairs that are one person
(true); cluster figures count people whose records form exactly one citizen, false merges (citizens
holding several people) and splits (people spread over several citizens). Only evaluation reads truth.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl


def load_truth(truth_dir: str | Path) -> pl.DataFrame:
    """All truth files in a folder, as source, source_record_id, person_id."""
    files = sorted(Path(truth_dir).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no truth CSV files in {truth_dir}")
    frames = [pl.read_csv(f, infer_schema_length=0) for f in files]
    truth = pl.concat(frames, how="diagonal")
    missing = {"source", "record_id", "person_id"} - set(truth.columns)
    if missing:
        raise ValueError(f"truth files need columns source, record_id, person_id (missing {sorted(missing)})")
    return truth.select("source", pl.col("record_id").alias("source_record_id"), "person_id").unique(
        ["source", "source_record_id"], keep="first"
    )


def _pairs(counts: pl.Expr) -> pl.Expr:
    return (counts * (counts - 1) / 2).sum()


def evaluate_links(links: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float | int]:
    """Pairwise precision/recall/F1 and cluster measures of `links` (source, source_record_id, citizen_id)."""
    joined = links.select("source", "source_record_id", "citizen_id").join(
        truth, on=["source", "source_record_id"], how="inner"
    )
    both = joined.group_by("citizen_id", "person_id").agg(pl.len().alias("n"))
    tp = both.select(_pairs(pl.col("n"))).item() or 0
    predicted = joined.group_by("citizen_id").agg(pl.len().alias("n")).select(_pairs(pl.col("n"))).item() or 0
    actual = joined.group_by("person_id").agg(pl.len().alias("n")).select(_pairs(pl.col("n"))).item() or 0
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    persons_per_citizen = both.group_by("citizen_id").agg(pl.len().alias("people"))
    citizens_per_person = both.group_by("person_id").agg(pl.len().alias("citizens"))
    person_sizes = joined.group_by("person_id").agg(pl.len().alias("records"))
    citizen_sizes = joined.group_by("citizen_id").agg(pl.len().alias("records"))
    exact = (
        both.join(person_sizes, on="person_id")
        .join(citizen_sizes, on="citizen_id", suffix="_c")
        .filter((pl.col("n") == pl.col("records")) & (pl.col("n") == pl.col("records_c")))
        .height
    )
    n_persons = person_sizes.height
    return {
        "records_evaluated": joined.height,
        "records_without_truth": links.height - joined.height,
        "pairs_true": int(actual),
        "pairs_predicted": int(predicted),
        "pairs_correct": int(tp),
        "precision": round(precision, 6),
        "recall": round(recall, 6),
        "f1": round(f1, 6),
        "persons": n_persons,
        "citizens": citizen_sizes.height,
        "persons_exactly_one_citizen": exact,
        "persons_exact_share": round(exact / n_persons, 6) if n_persons else 1.0,
        "citizens_with_several_persons": persons_per_citizen.filter(pl.col("people") > 1).height,
        "persons_split_over_citizens": citizens_per_person.filter(pl.col("citizens") > 1).height,
    }
