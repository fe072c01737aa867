"""`citizen-view`: the command line of the application: run, publish, serve, review, audit; generate and bench (tools)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from citizen_view.layout import DEFAULT_WAREHOUSE, WarehouseLayout


def _default_sources() -> Path:
    from pipelines.definitions import DEFAULT_SOURCES

    return DEFAULT_SOURCES


def _tool(module: str, extra: str):
    """Import a tool package installed by an extra, or explain how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(f"error: {exc}. Install the tools with: pip install 'citizen-view[{extra}]'") from None


def cmd_generate(args: argparse.Namespace) -> int:
    synth = _tool("citizen_view_synth", "synth")
    NoiseConfig, generate = synth.NoiseConfig, synth.generate

    report = generate(
        Path(args.out), persons=args.persons, seed=args.seed, country=args.country,
        noise=NoiseConfig().scaled(args.noise), bad_row_rate=args.bad_row_rate,
    )
    print(f"Generated {report.persons:,} persons ({args.country}, seed {args.seed}) in {report.seconds:.1f} s into {args.out}")
    for source, n in report.records.items():
        print(f"  {source:<12} {n:>10,} records")
    print(f"  sources file: {Path(args.out) / 'sources.yaml'}")
    print(f"  ground truth: {Path(args.out) / 'truth'}  (never read by the pipeline)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from citizen_view.contract import ConfigError
    from pipelines.runner import instance_for_cli, run_pipeline

    sources = Path(args.sources) if args.sources else _default_sources()
    try:
        from pipelines.definitions import FULL_JOB, INCREMENTAL_JOB

        job = INCREMENTAL_JOB if args.incremental else FULL_JOB
        outcome = run_pipeline(sources_path=sources, warehouse_path=args.warehouse, instance=instance_for_cli(), job_name=job)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Citizen View run {outcome.run_id}")
    print(f"  sources:   {sources}")
    print(f"  warehouse: {Path(args.warehouse).resolve()}")
    for key, meta in outcome.materialized.items():  # in the order they ran
        print(f"  {key:<22} {_describe(meta)}")
    failed_checks = sorted(name for name, check in outcome.checks.items() if not check["passed"])
    if outcome.checks:
        print(f"  quality gates: {len(outcome.checks) - len(failed_checks)} of {len(outcome.checks)} passed")
    for name in failed_checks:
        print(f"  GATE FAILED {name}: {outcome.checks[name]['metadata'].get('summary', '')}", file=sys.stderr)
    if failed_checks:
        print("  publication blocked: no export bundle was written for this run", file=sys.stderr)
    for step, message in sorted(outcome.failed.items()):
        print(f"  FAILED {step}: {message}", file=sys.stderr)
    if outcome.skipped:
        print(f"  skipped (upstream failed): {', '.join(sorted(outcome.skipped))}", file=sys.stderr)
    print("  rejected rows: SELECT * FROM rejected_records  (in the warehouse)")
    bundle = outcome.materialized.get("open_data/bundle", {}).get("bundle")
    if bundle:
        print(f"  export bundle: {bundle}  (publish it with: citizen-view publish)")
    return 0 if outcome.success and not failed_checks else 1


def cmd_publish(args: argparse.Namespace) -> int:
    from citizen_view.contract import load_sources
    from citizen_view.export import PublishRefused, bundle_dirs, publish
    from citizen_view.warehouse import connect

    sources = load_sources(Path(args.sources) if args.sources else _default_sources())
    exports, published = bundle_dirs(sources, WarehouseLayout.of(args.warehouse))
    with connect(args.warehouse, read_only=True) as con:
        try:
            done = publish(con, exports_dir=exports, published_dir=published)
        except PublishRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            for name in exc.failed:
                print(f"  failed gate: {name}", file=sys.stderr)
            print(f"  the published bundle in {published} is unchanged", file=sys.stderr)
            return 1
    print(f"Published {done.bundle.name} to {done.target}")
    return 0


DEFAULT_ACCESS = Path("config/access.yaml")


def _audit_path(args: argparse.Namespace) -> Path:
    return Path(args.audit_log) if args.audit_log else WarehouseLayout.of(args.warehouse).audit_log


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from citizen_view.contract import ConfigError
    from citizen_view.serving.app import create_app
    from citizen_view.serving.snapshot import current_view

    layout = WarehouseLayout.of(args.warehouse)
    folder = layout.serving_dir
    try:
        app = create_app(
            serving_folder=folder, access_file=Path(args.access), audit_file=_audit_path(args),
            decisions_file=layout.overrides_file,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    view = current_view(folder)
    print(f"Citizen View caseworker service on http://{args.host}:{args.port}/  (API docs: /api/docs)")
    print(f"  view:      {view or 'none yet: run the pipeline (citizen-view run) to publish one'}")
    print(f"  access:    {args.access}")
    print(f"  audit log: {_audit_path(args)}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", workers=1)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    import json

    from citizen_view.serving.audit import entries_for_citizen, verify

    path = _audit_path(args)
    if not path.is_file():
        print(f"error: no audit log at {path}", file=sys.stderr)
        return 2
    if args.audit_command == "verify":
        report = verify(path)
        print(f"{path}: {report.entries:,} entries, {report.anchors:,} anchors: {'intact' if report.ok else 'TAMPERED'}")
        for problem in report.problems:
            print(f"  {problem}")
        return 0 if report.ok else 1
    if not args.citizen:
        print("error: audit export needs --citizen ID", file=sys.stderr)
        return 2
    entries = entries_for_citizen(path, args.citizen)
    print(json.dumps({"citizen_id": args.citizen, "looked_at": entries}, indent=2, ensure_ascii=False))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    import getpass

    from citizen_view.linkage.explain import explain_pair
    from citizen_view.linkage.review import load_overrides, pair_id, record_decision
    from citizen_view.serving.audit import AuditEvent, AuditLog
    from citizen_view.warehouse import connect

    decisions = WarehouseLayout.of(args.warehouse).overrides_file
    if args.review_command == "next":
        decided = {pair_id(a, b) for a, b in load_overrides(decisions).select("record_key_l", "record_key_r").rows()}
        with connect(args.warehouse, read_only=True) as con:
            items = con.execute(
                "SELECT item_id, kind, record_key_l, record_key_r, citizen_id, model_decision, reason FROM review_queue"
            ).fetchall()
            open_items = [i for i in items if i[1] != "uncertain link" or i[0] not in decided]
            print(f"{len(open_items):,} item(s) to review")
            if not open_items:
                return 0
            item_id, kind, left, right, citizen_id, model, reason = open_items[0]
            print(f"\n{kind}: {item_id}\n  model: {model}; {reason}\n")
            if kind == "uncertain link":
                print(explain_pair(con, left, right).render())
            else:
                for row in con.execute(
                    "SELECT record_key, r.full_name, r.date_of_birth, r.national_id FROM citizen_source_link l "
                    "JOIN source_records r USING (record_key) WHERE l.citizen_id = ? ORDER BY record_key", [citizen_id]
                ).fetchall():
                    print("  " + "  ".join(str(v) for v in row))
        print(f"\ndecide with: citizen-view review decide {left} {right} same|different|unsure --reason \"...\"")
        return 0
    try:
        d = record_decision(
            decisions, left=args.left, right=args.right, decision=args.decision,
            reviewer=args.reviewer or getpass.getuser(), reason=args.reason or "", role="cli",
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with AuditLog(_audit_path(args)) as audit:
        audit.append(AuditEvent(
            user=d.reviewer, role="cli", organisation=None, action="review_decision", purpose="clerical review",
            case_reference=None, query={"pair": pair_id(d.record_key_l, d.record_key_r), "decision": d.decision,
            "reason": d.reason}, citizen_ids=[], fields=[], status=200, authorisation_rule="cli",
        ))  # fmt: skip
    print(f"recorded: {d.record_key_l} and {d.record_key_r} are {d.decision!r} ({decisions}); the next run applies it")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from citizen_view.linkage.evaluate import evaluate_links, load_truth
    from citizen_view.warehouse import connect

    with connect(args.warehouse, read_only=True) as con:
        links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    figures = evaluate_links(links, load_truth(args.truth))
    print(f"Linkage accuracy of {args.warehouse} against {args.truth}")
    for key, value in figures.items():
        print(f"  {key:<30} {value:>12,.6f}" if isinstance(value, float) else f"  {key:<30} {value:>12,}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from citizen_view.linkage.explain import explain_pair
    from citizen_view.warehouse import connect

    with connect(args.warehouse, read_only=True) as con:
        try:
            explanation = explain_pair(con, args.left, args.right)
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
    print(explanation.render())
    return 0


def _describe(meta: dict) -> str:
    """One line per asset from the metadata it recorded."""
    if "rows_in" in meta:
        return f"{meta['rows_in']:>9,} rows in = {meta['rows_loaded']:>9,} loaded + {meta['rows_rejected']:>6,} rejected"
    if "citizens" in meta:
        line = (
            f"{meta['dagster/row_count']:,} records -> {meta['citizens']:,} citizens "
            f"({meta['ids_minted']:,} IDs minted, {meta['ids_merged']:,} merged, {meta['ids_retired']:,} retired)"
        )
        if "eval_f1" in meta:
            line += f"; vs truth: precision {meta['eval_precision']:.4f} recall {meta['eval_recall']:.4f} F1 {meta['eval_f1']:.4f}"
        return line
    if "threshold_match_weight" in meta:
        return f"{meta['dagster/row_count']:,} scored pairs, link threshold weight {meta['threshold_match_weight']:+.2f}"
    if "model_json" in meta:
        return f"model {meta['model_json']} (compares {', '.join(meta['fields_compared'])})"
    if "dagster/row_count" in meta:
        return f"{meta['dagster/row_count']:,} rows"
    return "materialised"


def cmd_bench(args: argparse.Namespace) -> int:
    bench = _tool("citizen_view_bench.bench", "bench")
    return bench.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citizen-view", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write synthetic extracts from five siloed systems, with ground truth")
    g.add_argument("--persons", type=int, default=2000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--out", required=True, help="output folder (gets sources.yaml, one folder per system, truth/)")
    g.add_argument("--country", choices=["NL", "NO"], default="NL")
    g.add_argument("--noise", type=float, default=1.0, help="scale every noise rate (0 = clean, 2 = twice the default)")
    g.add_argument("--bad-row-rate", type=float, default=0.002, help="share of malformed rows per text extract")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="materialise every asset through Dagster, in-process")
    r.add_argument("--sources", help="sources.yaml (default: the committed sample)")
    r.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    r.add_argument("--incremental", action="store_true", help="link only new records with the saved model (no retraining)")
    r.set_defaults(func=cmd_run)

    p = sub.add_parser("publish", help="copy the newest export bundle whose gates all passed to the publication folder")
    p.add_argument("--sources", help="sources.yaml (default: the committed sample)")
    p.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    p.set_defaults(func=cmd_publish)

    v = sub.add_parser("serve", help="the caseworker service: search and profile API plus web pages")
    v.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE), help="serves the view published beside this warehouse")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--access", default=str(DEFAULT_ACCESS), help="roles and users (default: config/access.yaml)")
    v.add_argument("--audit-log", help="default: audit/access.jsonl beside the warehouse")
    v.set_defaults(func=cmd_serve)

    a = sub.add_parser("audit", help="verify the access log, or list who looked at a citizen and why")
    a.add_argument("audit_command", choices=["verify", "export"])
    a.add_argument("--citizen", help="citizen ID (for export)")
    a.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    a.add_argument("--audit-log", help="default: audit/access.jsonl beside the warehouse")
    a.set_defaults(func=cmd_audit)

    rv = sub.add_parser("review", help="clerical review of uncertain links: show the next item, or record a decision")
    rv.add_argument("review_command", choices=["next", "decide"])
    rv.add_argument("left", nargs="?", help="decide: SOURCE:ID")
    rv.add_argument("right", nargs="?", help="decide: SOURCE:ID")
    rv.add_argument("decision", nargs="?", choices=["same", "different", "unsure"])
    rv.add_argument("--reason", help="decide: why (required)")
    rv.add_argument("--reviewer", help="decide: who (default: the login name)")
    rv.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    rv.add_argument("--audit-log", help="default: audit/access.jsonl beside the warehouse")
    rv.set_defaults(func=cmd_review)

    e = sub.add_parser("evaluate", help="pairwise and cluster accuracy of the linked view against a ground truth")
    e.add_argument("--truth", required=True, help="folder of truth CSVs (source, record_id, person_id)")
    e.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("explain", help="why two records were or were not linked (per-field weights)")
    x.add_argument("left", help="SOURCE:ID, e.g. tax:T00000123")
    x.add_argument("right", help="SOURCE:ID")
    x.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    x.set_defaults(func=cmd_explain)

    b = sub.add_parser("bench", help="benchmarks (wall time, rows/s, peak memory); not tests")
    b.add_argument("stage", choices=["ingest", "link", "pipeline", "serve", "incremental", "accuracy"])
    b.add_argument("--persons", type=int, default=None, help="persons to generate (default 1,000,000; 2,000 per set for accuracy)")
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--country", choices=["NL", "NO"], default="NL")
    b.add_argument("--workdir", default="bench_data", help="where generated extracts and the warehouse go")
    b.add_argument("--reuse", action="store_true", help="reuse extracts already generated in --workdir")
    b.add_argument("--concurrency", type=int, default=4, help="concurrent clients for `bench serve`")
    b.add_argument("--new-records", type=int, default=1000, help="`bench incremental`: records arriving late")
    b.add_argument("--warehouse", help="`bench serve`: a linked warehouse to serve (default: the `bench link` one)")
    b.add_argument("--sets", help="`bench accuracy`: comma-separated data sets (default: FEBRL 1-4 and the generator "
                   "at low, default and high noise for NL and NO)")
    b.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
