"""`citizen-view`: the command line of the application: run, publish, serve, review, audit; generate and bench (tools)."""

from __future__ import annotations

import argparse
import os
import shutil
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

    from citizen_view_app.progress import Progress

    try:
        report = generate(
            Path(args.out),
            persons=args.persons,
            seed=args.seed,
            country=args.country,
            profile=args.profile,
            noise=NoiseConfig().scaled(args.noise),
            bad_row_rate=args.bad_row_rate,
            progress=Progress("generating"),
        )
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    country = args.country or synth.PROFILE_COUNTRY.get(args.profile, "NL")
    print(
        f"Generated {report.persons:,} persons ({args.profile} profile, {country}, seed {args.seed}) "
        f"in {report.seconds:.1f} s into {args.out}"
    )
    for source, n in report.records.items():
        print(f"  {source:<12} {n:>10,} records")
    print(f"  sources file: {Path(args.out) / 'sources.yaml'}")
    print(f"  ground truth: {Path(args.out) / 'truth'}  (never read by the pipeline)")
    return 0


# `citizen-view run` exit statuses: 0 all accepted and published; 1 a step failed or a blocking gate (linkage,
# areas, publication) failed; 3 everything ran but at least one source's extract was held back.
EXIT_HELD_BACK = 3


def cmd_run(args: argparse.Namespace) -> int:
    from citizen_view.contract import ConfigError
    from citizen_view.layout import FolderClaimed, prepare
    from citizen_view_app.runner import instance_for_cli, run_pipeline

    sources = Path(args.sources) if args.sources else _default_sources()
    try:
        from pipelines.definitions import FULL_JOB, INCREMENTAL_JOB

        prepare(
            WarehouseLayout.of(args.warehouse)
        )  # the folder is this warehouse's; nothing a killed run left survives

        job = INCREMENTAL_JOB if args.incremental else FULL_JOB
        print(
            f"Citizen View {'incremental ' if args.incremental else ''}run of {sources} into {Path(args.warehouse).resolve()}",
            flush=True,
        )
        outcome = run_pipeline(
            sources_path=sources,
            warehouse_path=args.warehouse,
            instance=instance_for_cli(),
            job_name=job,
            progress=sys.stdout,
        )
    except (ConfigError, FolderClaimed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _report_run(outcome, sources=sources, warehouse=args.warehouse)


def _report_run(outcome, *, sources: Path, warehouse: str) -> int:
    """The run's summary: what each step did, the gates, what was held back and why; the exit status."""
    print(f"Citizen View run {outcome.run_id}")
    print(f"  sources:   {sources}")
    print(f"  warehouse: {Path(warehouse).resolve()}")
    for key, meta in outcome.materialized.items():  # in the order they ran
        print(f"  {key:<22} {_describe(meta)}")
    held = {
        key: meta
        for key, meta in outcome.materialized.items()
        if key.startswith("source/") and meta.get("status") == "held back"
    }
    failed_checks = sorted(name for name, check in outcome.checks.items() if not check["passed"])
    unjudged = [n for n in failed_checks if outcome.checks[n]["metadata"].get("judged") == "no"]
    failed_checks = [n for n in failed_checks if n not in unjudged]
    held_checks = [n for n in failed_checks if n.split(":")[0] in held]
    waived = [n for n in failed_checks if n.startswith("source/") and n not in held_checks]
    blocking = [n for n in failed_checks if not n.startswith("source/")]
    if outcome.checks:
        parts = [f"{len(held_checks)} failed on held-back extracts"] if held_checks else []
        parts += [f"{len(waived)} failed on extracts a person released"] if waived else []
        parts += [f"{len(unjudged)} not judged: their extract could not be read"] if unjudged else []
        extra = f" ({'; '.join(parts)})" if parts else ""
        passed = len(outcome.checks) - len(failed_checks) - len(unjudged)
        print(f"  quality gates: {passed} of {len(outcome.checks)} passed{extra}")
    for key, meta in held.items():
        name = key.split("/", 1)[1]
        print(
            f"  HELD BACK {key}: its last accepted extract stays in linkage, the served view and open data",
            file=sys.stderr,
        )
        for reason in meta.get("held_reasons") or []:
            print(f"    failed {reason}", file=sys.stderr)
        for item in (meta.get("held_evidence") or [])[:5]:
            examples = ", ".join(repr(e) for e in item.get("examples", []))
            print(
                f"    {item['count']:>7,} x {item['what']}" + (f"  e.g. {examples}" if examples else ""),
                file=sys.stderr,
            )
        where = f"--sources {sources} --warehouse {warehouse}"
        if meta.get("release_with", "").startswith("nothing to release"):
            print("    nothing to release: fix or replace the extract and run again", file=sys.stderr)
        else:
            print(f'    release it with: citizen-view release {name} {where} --reason "..."', file=sys.stderr)
        print(f'    or discard it:   citizen-view reject {name} {where} --reason "..."', file=sys.stderr)
    for name in waived:
        print(f"  accepted although {name} failed: {outcome.checks[name]['metadata'].get('summary', '')}")
    for name in blocking:
        print(f"  GATE FAILED {name}: {outcome.checks[name]['metadata'].get('summary', '')}", file=sys.stderr)
    if blocking:
        print("  publication blocked: no export bundle was written for this run", file=sys.stderr)
    for step, message in sorted(outcome.failed.items()):
        print(f"  FAILED {step}: {message}", file=sys.stderr)
    if outcome.skipped:
        print(f"  skipped (upstream failed): {', '.join(sorted(outcome.skipped))}", file=sys.stderr)
    print("  rejected rows: SELECT * FROM rejected_records  (in the warehouse)")
    bundle = outcome.materialized.get("open_data/bundle", {}).get("bundle")
    if bundle:
        print(f"  export bundle: {bundle}  (publish it with: citizen-view publish)")
    if not outcome.success or blocking:
        return 1
    return EXIT_HELD_BACK if held else 0


def cmd_release(args: argparse.Namespace) -> int:
    """Publish a source's held-back extract (who and why in ingest_log), then run the pipeline so it is linked."""
    return _decide(args, release=True)


def cmd_reject(args: argparse.Namespace) -> int:
    """Discard a source's held-back extract; its last accepted extract stays current."""
    return _decide(args, release=False)


def _decide(args: argparse.Namespace, *, release: bool) -> int:
    import getpass

    import duckdb

    from citizen_view.contract import ConfigError, load_sources
    from citizen_view.ingest import NothingHeld, reject_held, release_held
    from citizen_view.warehouse import connect

    layout = _warehouse(args)
    sources_path = Path(args.sources) if args.sources else _default_sources()
    try:
        sources = load_sources(sources_path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.source not in {s.name for s in sources.sources}:
        raise UsageError(
            f"no source {args.source!r} in {sources_path} (sources: {', '.join(s.name for s in sources.sources)})"
        )
    decide = release_held if release else reject_held
    try:
        with connect(layout.warehouse) as con:
            done = decide(con, args.source, by=args.by or getpass.getuser(), reason=args.reason)
    except NothingHeld as exc:
        raise UsageError(f"{exc}: nothing to {'release' if release else 'reject'}") from None
    except duckdb.IOException as exc:
        raise UsageError(
            f"the warehouse {layout.warehouse} cannot be opened now ({exc}); try again when the run ends"
        ) from None
    print(
        f"{done.status.value} the extract of {args.source} held since {done.held_since:%Y-%m-%d %H:%M} UTC "
        f"({done.rows_loaded:,} records; held for: {done.held_reason})"
    )
    if not release or args.no_run:
        return 0
    args.incremental = False
    args.sources = str(sources_path)
    return cmd_run(args)


class UsageError(Exception):
    """A command that cannot run as asked: printed as one line, exit status 2."""


def _warehouse(args: argparse.Namespace, *, must_exist: bool = True) -> WarehouseLayout:
    from citizen_view.layout import FolderClaimed

    layout = WarehouseLayout.of(args.warehouse)
    if must_exist and not layout.warehouse.is_file():
        raise UsageError(
            f"no warehouse at {layout.warehouse}: run the pipeline first (citizen-view run --warehouse ...)"
        )
    try:
        layout.check_owner()
    except FolderClaimed as exc:
        raise UsageError(str(exc)) from None
    return layout


def _connect_read_only(layout: WarehouseLayout):
    import duckdb

    from citizen_view.warehouse import connect

    try:
        return connect(layout.warehouse, read_only=True)
    except duckdb.IOException as exc:  # a running pipeline holds the file
        raise UsageError(
            f"the warehouse {layout.warehouse} cannot be opened now ({exc}); try again when the run ends"
        ) from None


def _require_tables(con, *tables: str) -> None:
    from citizen_view.warehouse import table_exists

    missing = [t for t in tables if not table_exists(con, "main", t)]
    if missing:
        raise UsageError(
            f"the warehouse has no {', '.join(missing)} yet: run the whole pipeline first (citizen-view run)"
        )


def cmd_publish(args: argparse.Namespace) -> int:
    from citizen_view.contract import load_sources
    from citizen_view.export import PublishRefused, bundle_dirs, currently_published, publish

    layout = _warehouse(args)
    sources = load_sources(Path(args.sources) if args.sources else _default_sources())
    exports, published = bundle_dirs(sources, layout)
    with _connect_read_only(layout) as con:
        try:
            done = publish(con, exports_dir=exports, published_dir=published, sources=sources)
        except PublishRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            for name in exc.failed:
                print(f"  failed gate: {name}", file=sys.stderr)
            previous = currently_published(published)
            if previous is None:
                print(f"  nothing has been published yet ({published} does not exist)", file=sys.stderr)
            else:
                print(
                    f"  the previously published bundle stays published: {published} -> {previous.name}",
                    file=sys.stderr,
                )
            return 1
    print(f"Published {done.bundle.name} to {done.target} (DCAT catalogue: {done.target / 'catalog.ttl'})")
    return 0


def _audit_path(args: argparse.Namespace) -> Path:
    return Path(args.audit_log) if args.audit_log else WarehouseLayout.of(args.warehouse).audit_log


def _anchor_sinks(args: argparse.Namespace) -> list[str]:
    """Where audit anchors are copied: as given, else the warehouse layout's second location."""
    from citizen_view.audit import parse_sink

    specs = list(args.anchor_sink or []) or [
        f"file:{WarehouseLayout.of(args.warehouse).anchor_copy(_audit_path(args))}"
    ]
    for spec in specs:
        try:
            parse_sink(spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return specs


def _access_file(args: argparse.Namespace, layout: WarehouseLayout) -> Path:
    """The roles and users file: --access, $CITIZEN_VIEW_ACCESS, or the warehouse's own access.yaml."""
    given = args.access or os.environ.get("CITIZEN_VIEW_ACCESS")
    path = Path(given).expanduser() if given else layout.access_file
    if not path.is_file():
        raise UsageError(
            f"no access file at {path}: pass --access FILE, set CITIZEN_VIEW_ACCESS, or write the example "
            f"(demo roles and tokens) there with: citizen-view init --warehouse {layout.warehouse}"
        )
    return path


def cmd_init(args: argparse.Namespace) -> int:
    """Write the example access file into the warehouse's folder (never over an existing one)."""
    from citizen_view.serving.access import EXAMPLE_ACCESS_FILE

    layout = WarehouseLayout.of(args.warehouse)
    target = layout.access_file
    if target.exists():
        print(f"{target} exists already: left as it is")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE_ACCESS_FILE, target)
    print(f"Wrote the example access file (demo roles, users and tokens for synthetic data) to {target}")
    print(
        "  replace its users and tokens before serving real data; token hashes: python -c "
        "\"from citizen_view.serving.access import hash_token; print(hash_token('...'))\""
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.workers > 1:
        from citizen_view.serving.workers import metrics_folder

        with metrics_folder():  # the workers' metrics are summed from files there (before the app's first import)
            return _serve(args)
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from citizen_view.contract import ConfigError
    from citizen_view.serving.app import create_app
    from citizen_view.serving.server import run_server
    from citizen_view.serving.snapshot import current_view

    layout = _warehouse(args, must_exist=False)
    access = _access_file(args, layout)
    sinks = _anchor_sinks(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, not {args.workers}")
    if args.failed_sign_ins < 0:
        raise UsageError(f"--failed-sign-ins must be 0 (no limit) or more, not {args.failed_sign_ins}")
    options = dict(
        serving_folder=layout.serving_dir,
        access_file=access,
        audit_file=_audit_path(args),
        decisions_file=layout.overrides_file,
        anchor_sinks=sinks,
        trusted_proxies=list(args.trusted_proxy or ()),
        failed_sign_ins=args.failed_sign_ins,
    )
    try:
        app = create_app(**options)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    view = current_view(layout.serving_dir)
    print(f"Citizen View caseworker service on http://{args.host}:{args.port}/  (API docs: /api/docs)")
    print(f"  view:      {view or 'none yet: run the pipeline (citizen-view run) to publish one'}")
    print(f"  access:    {access}")
    print(f"  audit log: {_audit_path(args)}  (anchors also in {', '.join(sinks)})")
    if args.workers > 1:
        from citizen_view.serving.workers import run_workers

        app.state.audit.close()  # checked and caught up here; each worker opens its own writer on the same chain
        # one session key for all: a form or purpose one worker signed is accepted by the others
        options["session_key"] = app.state.parts.csrf_key
        print(f"  workers:   {args.workers} processes, one audit chain")
        return run_workers(options, host=args.host, port=args.port, workers=args.workers)
    run_server(app, host=args.host, port=args.port)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    import getpass

    from citizen_view.audit import acknowledge, entries_for_citizen, parse_sink, verify, write_csv, write_json
    from citizen_view.serving.report import render_access_report_html, served_speech

    path = _audit_path(args)
    sinks = [parse_sink(s) for s in _anchor_sinks(args)]
    if args.audit_command in ("verify", "acknowledge") and not path.exists() and verify(path, sinks=sinks).anchors == 0:
        raise UsageError(f"no audit log at {path} and no anchors of one: nothing was audited here yet")
    if args.audit_command == "acknowledge":
        entry = acknowledge(path, user=getpass.getuser(), reason=args.reason, sinks=sinks)
        if entry is None:
            print(f"{path}: no recovered entries waiting for an acknowledgement")
        else:
            ranges = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in entry["query"]["acknowledges"])
            print(f"{path}: acknowledged recovered entries (seq {ranges}) as {entry['user']} in entry {entry['seq']}")
        return 0
    if args.audit_command == "verify":
        report = verify(path, sinks=sinks)
        state = "intact" if report.ok else "TAMPERED"
        print(
            f"{path}: {report.entries:,} entries, {report.anchors:,} anchors, {report.unprotected:,} unprotected: {state}"
        )
        for problem in report.problems:
            print(f"  problem: {problem}")
        for warning in report.warnings:
            print(f"  warning: {warning}")
        return 0 if report.ok else 1
    if not args.citizen:
        raise UsageError("audit export needs --citizen ID")
    if not path.is_file():
        raise UsageError(f"no audit log at {path}")
    entries = entries_for_citizen(path, args.citizen, _predecessors(args.warehouse, args.citizen))
    if args.format == "json":
        write_json(args.citizen, entries, sys.stdout)
    elif args.format == "csv":
        write_csv(entries, sys.stdout)
    else:
        lang, labels = served_speech(WarehouseLayout.of(args.warehouse).serving_dir)
        print(render_access_report_html(args.citizen, entries, args.language or lang, labels))
    return 0


def _predecessors(warehouse: Path, citizen_id: str) -> list:
    """The IDs that held some of this citizen's records, and until when, from the served view (none before one)."""
    from citizen_view.serving.lookups import predecessors
    from citizen_view.serving.snapshot import read_current_view

    return read_current_view(WarehouseLayout.of(warehouse).serving_dir, lambda con: predecessors(con, citizen_id), [])


def cmd_review(args: argparse.Namespace) -> int:
    import getpass

    from citizen_view.audit import AuditEvent, AuditLog
    from citizen_view.linkage import Linkage
    from citizen_view.linkage.review import ReviewKind, load_overrides, open_items, pair_id, record_decision

    layout = _warehouse(args)
    decisions = layout.overrides_file
    if args.review_command == "next":
        decided = {pair_id(a, b) for a, b in load_overrides(decisions).select("record_key_l", "record_key_r").rows()}
        with _connect_read_only(layout) as con:
            _require_tables(con, "review_queue", "linkage_model")
            page = open_items(con, decided, kind=args.kind, source=args.source, limit=1)
            print(
                f"{page.total:,} item(s) to review"
                + (f" ({', '.join(f'{n} {k}' for k, n in page.by_kind.items())})" if page.total else "")
            )
            if not page.items:
                return 0
            first = page.items[0]
            item_id, kind, left, right, citizen_id = (
                first[k] for k in ("item_id", "kind", "record_key_l", "record_key_r", "citizen_id")
            )
            print(f"\n{kind}: {item_id}\n  model: {first['model_decision']}; {first['reason']}\n")
            if kind == ReviewKind.UNCERTAIN_LINK:
                print(Linkage(con, layout).explain(left, right).render())
            else:
                for row in con.execute(
                    "SELECT record_key, r.full_name, r.date_of_birth, r.national_id FROM citizen_source_link l "
                    "JOIN source_records r USING (record_key) WHERE l.citizen_id = ? ORDER BY record_key",
                    [citizen_id],
                ).fetchall():
                    print("  " + "  ".join(str(v) for v in row))
        print(f'\ndecide with: citizen-view review decide {left} {right} same|different|unsure --reason "..."')
        return 0
    if not (args.left and args.right and args.decision):
        raise UsageError("review decide needs LEFT RIGHT same|different|unsure --reason TEXT")
    if not (args.reason or "").strip():
        raise UsageError("a decision needs a reason (--reason TEXT)")
    unknown = _unknown_records(layout, [args.left, args.right])
    if unknown:
        raise UsageError(f"no record {', '.join(unknown)} in the warehouse (keys are source:source_record_id)")
    try:
        d = record_decision(
            decisions,
            left=args.left,
            right=args.right,
            decision=args.decision,
            reviewer=args.reviewer or getpass.getuser(),
            reason=args.reason or "",
            role="cli",
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with AuditLog(_audit_path(args), sinks=_anchor_sinks(args)) as audit:
        audit.append(
            AuditEvent(
                user=d.reviewer,
                role="cli",
                organisation=None,
                action="review_decision",
                purpose="clerical review",
                case_reference=None,
                query={"pair": pair_id(d.record_key_l, d.record_key_r), "decision": d.decision, "reason": d.reason},
                citizen_ids=[],
                fields=[],
                status=200,
                authorisation_rule="cli",
            )
        )
    print(f"recorded: {d.record_key_l} and {d.record_key_r} are {d.decision!r} ({decisions}); the next run applies it")
    return 0


def _unknown_records(layout: WarehouseLayout, keys: list[str]) -> list[str]:
    """The keys that name no loaded record: checked in the served view when there is one (the warehouse may be
    held by a running pipeline), else in the warehouse."""
    import duckdb

    from citizen_view.serving.snapshot import current_view

    view = current_view(layout.serving_dir)
    if view is not None and view.is_file():
        con = duckdb.connect(str(view), read_only=True)
        table, key = "records", "source || ':' || source_record_id"
    else:
        con = duckdb.connect(str(layout.warehouse), read_only=True)
        table, key = "source_records", "record_key"
    try:
        found = {r[0] for r in con.execute(f"SELECT {key} FROM {table} WHERE {key} IN (?, ?)", keys).fetchall()}
    finally:
        con.close()
    return [k for k in keys if k not in found]


def cmd_areas(args: argparse.Namespace) -> int:
    """Refresh the official area lists from CBS / SSB into the warehouse's folder, or show which list is in use."""
    import datetime as dt

    from citizen_view.areas import load_areas
    from citizen_view.areas_refresh import refresh

    layout = WarehouseLayout.of(args.warehouse)
    if args.areas_command == "refresh":
        try:
            path = refresh(args.country, layout.areas_dir, date=dt.date.fromisoformat(args.date) if args.date else None)
        except (OSError, ValueError) as exc:  # no network, an answer in another shape
            raise UsageError(f"could not refresh the {args.country} areas: {exc}") from None
        print(f"Wrote {path}; the next run of this warehouse publishes by it")
        return 0
    areas = load_areas(args.country, folder=layout.areas_dir)
    if areas is None:
        raise UsageError(f"no official area list for {args.country}: give one in sources.yaml (publication.areas)")
    print(
        f"{areas.country_name}: {areas.municipalities.height} municipalities ({areas.level}) in "
        f"{areas.municipalities.get_column('region_code').n_unique()} regions ({areas.region_level}); "
        f"{areas.aliases.height} aliases; source: {areas.source}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from citizen_view.linkage.evaluate import evaluate_links, load_truth

    layout = _warehouse(args)
    if not Path(args.truth).is_dir():
        raise UsageError(f"no truth folder at {args.truth}")
    try:
        truth = load_truth(args.truth)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    with _connect_read_only(layout) as con:
        _require_tables(con, "citizen_source_link")
        links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    figures = evaluate_links(links, truth)
    print(f"Linkage accuracy of {layout.warehouse} against {args.truth}")
    for key, value in figures.items():
        print(f"  {key:<30} {value:>12,.6f}" if isinstance(value, float) else f"  {key:<30} {value:>12,}")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from citizen_view.contract import ConfigError, SourceError, load_sources
    from citizen_view.encoding.encode import Hardening, encode_source
    from citizen_view.encoding.pseudonym import SecretError, read_secret

    try:
        sources = load_sources(args.sources)
        secret = read_secret(Path(args.secret_file))
        report = encode_source(sources, args.source, secret, Path(args.out), hardening=Hardening(args.harden))
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except (ConfigError, SecretError, SourceError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"source/{report.source}: {report.records:,} records encoded ({report.rejected:,} rejected, not encoded) "
        f"-> {report.out_file}; entry in {report.sources_file}"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from citizen_view.linkage import Linkage

    layout = _warehouse(args)
    with _connect_read_only(layout) as con:
        _require_tables(con, "linkage_model", "linkage_threshold", "source_records")
        try:
            explanation = Linkage(con, layout).explain(args.left, args.right)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    print(explanation.render())
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from citizen_view.backup import BackupError, backup

    layout = _warehouse(args)
    try:
        done = backup(layout.warehouse, args.to)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    print(f"Backed up {layout.warehouse} (schema version {done.schema_version}) to {done.folder}")
    print(
        f"  {done.files:,} files, {done.bytes / 1e6:,.1f} MB in {done.seconds:.1f} s; sha256 of each in {done.folder / 'MANIFEST.json'}"
    )
    print(f"  restore with: citizen-view restore --from {done.folder} --warehouse NEW.duckdb")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from citizen_view.audit import parse_sink, verify
    from citizen_view.backup import BackupError, restore

    try:
        done = restore(args.source, args.warehouse)
    except BackupError as exc:
        raise UsageError(str(exc)) from None
    layout = WarehouseLayout.of(done.warehouse)
    print(
        f"Restored {done.source_warehouse} (backed up {done.backed_up_at}, schema version {done.schema_version}) "
        f"to {done.warehouse}: {done.files:,} files, {done.bytes / 1e6:,.1f} MB, every sha256 checked"
    )
    if layout.audit_log.exists():
        report = verify(layout.audit_log, sinks=[parse_sink(f"file:{layout.anchor_copy()}")])
        print(
            f"  audit log: {report.entries:,} entries, {report.anchors:,} anchors: {'intact' if report.ok else 'NOT INTACT'}"
        )
        for problem in report.problems:
            print(f"  problem: {problem}", file=sys.stderr)
        if not report.ok:
            return 1
    return 0


def _describe(meta: dict) -> str:
    """One line per asset from the metadata it recorded."""
    if "rows_in" in meta:
        line = (
            f"{meta['rows_in']:>9,} rows in = {meta['rows_loaded']:>9,} loaded + {meta['rows_rejected']:>6,} rejected"
        )
        tail = {"held back": "  HELD BACK", "unchanged": "  unchanged, not read again"}.get(meta.get("status"), "")
        return line + tail
    if "citizens" in meta:
        line = (
            f"{meta['dagster/row_count']:,} records -> {meta['citizens']:,} citizens "
            f"({meta['ids_minted']:,} IDs minted, {meta['ids_merged']:,} merged, {meta['ids_retired']:,} retired)"
        )
        if meta.get("mode") == "incremental":
            line += (
                f"; incremental: {meta['new_records']:,} new records, {meta.get('changed_records', 0):,} changed, "
                f"{meta['earlier_records_relinked']:,} earlier "
                f"records re-linked, {meta['records_left_alone']:,} left alone"
            )
        if "eval_f1" in meta:
            line += f"; vs truth: precision {meta['eval_precision']:.4f} recall {meta['eval_recall']:.4f} F1 {meta['eval_f1']:.4f}"
        return line
    if "threshold_match_weight" in meta:
        return (
            f"{meta['dagster/row_count']:,} scored pairs, link threshold weight {meta['threshold_match_weight']:+.2f}"
        )
    if "model_json" in meta:
        return f"model {meta['model_json']} (compares {', '.join(meta['fields_compared'])})"
    if "dagster/row_count" in meta:
        return f"{meta['dagster/row_count']:,} rows"
    return "materialised"


def cmd_bench(args: argparse.Namespace) -> int:
    bench = _tool("citizen_view_bench.bench", "bench")
    return bench.main(args)


def _warehouse_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    return parser


def _pipeline_options(parser: argparse.ArgumentParser) -> None:
    """--sources and --warehouse, as every command that runs or publishes takes them."""
    parser.add_argument("--sources", help="sources.yaml (default: the committed sample)")
    _warehouse_option(parser)


def _audit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audit-log", help="default: audit/access.jsonl in the warehouse's folder")
    parser.add_argument(
        "--anchor-sink",
        action="append",
        help="a second place for the audit anchors: file:PATH, syslog or "
        "syslog:HOST:PORT (repeatable; default: a file in the warehouse folder's audit-anchors/)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line: one small function per group of commands, in the order `--help` lists them."""
    parser = argparse.ArgumentParser(prog="citizen-view", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add_commands in (
        _generate_command,
        _pipeline_commands,
        _service_commands,
        _review_command,
        _areas_command,
        _linkage_commands,
        _backup_commands,
        _bench_command,
    ):
        add_commands(sub)
    return parser


def _generate_command(sub) -> None:
    """generate: synthetic extracts with their ground truth."""
    g = sub.add_parser("generate", help="write synthetic extracts from five siloed systems, with ground truth")
    g.add_argument("--persons", type=int, default=2000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--out", required=True, help="output folder (gets sources.yaml, one folder per system, truth/)")
    g.add_argument(
        "--profile",
        choices=["default", "dense", "multi-agency"],
        default="default",
        help="default: five NL/NO systems; dense: one GB-style register, 5-25 entries a person; "
        "multi-agency: seven US agencies, most without SSN",
    )
    g.add_argument("--country", choices=["NL", "NO"], default=None, help="the default profile's country (default NL)")
    g.add_argument("--noise", type=float, default=1.0, help="scale every noise rate (0 = clean, 2 = twice the default)")
    g.add_argument("--bad-row-rate", type=float, default=0.002, help="share of malformed rows per text extract")
    g.set_defaults(func=cmd_generate)


def _pipeline_commands(sub) -> None:
    """run, release, reject, publish: the pipeline and the decisions on held-back extracts."""
    r = sub.add_parser("run", help="materialise every asset through Dagster, in-process")
    _pipeline_options(r)
    r.add_argument(
        "--incremental", action="store_true", help="link only new records with the saved model (no retraining)"
    )
    r.set_defaults(func=cmd_run)

    for verb, func, text in (
        (
            "release",
            cmd_release,
            "publish a source's held-back extract (recorded with who and why), then run the pipeline",
        ),
        ("reject", cmd_reject, "discard a source's held-back extract; its last accepted extract stays current"),
    ):
        d = sub.add_parser(verb, help=text)
        d.add_argument("source", help="the source whose held-back extract to " + verb)
        d.add_argument("--reason", help="why (kept in ingest_log)")
        d.add_argument("--by", help="who decides (default: the login name)")
        _pipeline_options(d)
        if verb == "release":
            d.add_argument(
                "--no-run", action="store_true", help="only release; link, serve and publish it on the next run"
            )
        d.set_defaults(func=func)

    p = sub.add_parser("publish", help="copy the newest export bundle whose gates all passed to the publication folder")
    _pipeline_options(p)
    p.set_defaults(func=cmd_publish)


def _service_commands(sub) -> None:
    """serve, init, audit: the caseworker service, its access file and its audit trail."""
    v = sub.add_parser("serve", help="the caseworker service: search and profile API plus web pages")
    v.add_argument(
        "--warehouse", default=str(DEFAULT_WAREHOUSE), help="serves the view published beside this warehouse"
    )
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument(
        "--access", help="roles and users (default: $CITIZEN_VIEW_ACCESS, else access.yaml in the warehouse's folder)"
    )
    _audit_options(v)
    v.add_argument(
        "--trusted-proxy",
        action="append",
        help="an address or network whose X-Forwarded-For names the client (repeatable)",
    )
    v.add_argument(
        "--workers", type=int, default=1, help="service processes sharing the port and one audit chain (default 1)"
    )
    v.add_argument(
        "--failed-sign-ins",
        type=int,
        default=10,
        help="unknown tokens one address may send a minute before it is refused with 429 (default 10; 0: no limit)",
    )
    v.set_defaults(func=cmd_serve)

    init = sub.add_parser(
        "init", help="write the example access file (demo roles and tokens) into the warehouse's folder"
    )
    _warehouse_option(init).set_defaults(func=cmd_init)

    a = sub.add_parser(
        "audit",
        help="verify the access log, acknowledge entries recovered after a crash, or list who "
        "looked at a citizen and why",
    )
    a.add_argument("audit_command", choices=["verify", "acknowledge", "export"])
    a.add_argument("--reason", help="acknowledge: why the recovered entries are accepted (recorded in the log)")
    a.add_argument("--citizen", help="citizen ID (for export)")
    a.add_argument(
        "--format", choices=["json", "csv", "html"], default="json", help="export: how to write it (default json)"
    )
    a.add_argument(
        "--language",
        choices=["en", "nl", "no"],
        help="export --format html: the page's language (default: the served view's, from sources.yaml serving.language)",
    )
    _warehouse_option(a)
    _audit_options(a)
    a.set_defaults(func=cmd_audit)


def _review_command(sub) -> None:
    """review: clerical review of uncertain links."""
    rv = sub.add_parser("review", help="clerical review of uncertain links: show the next item, or record a decision")
    rv.add_argument("review_command", choices=["next", "decide"])
    rv.add_argument("left", nargs="?", help="decide: SOURCE:ID")
    rv.add_argument("right", nargs="?", help="decide: SOURCE:ID")
    rv.add_argument("decision", nargs="?", choices=["same", "different", "unsure"])
    rv.add_argument("--reason", help="decide: why (required)")
    rv.add_argument("--reviewer", help="decide: who (default: the login name)")
    rv.add_argument("--kind", choices=["uncertain link", "suspicious citizen"], help="next: only items of this kind")
    rv.add_argument("--source", help="next: only items with a record of this source")
    _warehouse_option(rv)
    _audit_options(rv)
    rv.set_defaults(func=cmd_review)


def _areas_command(sub) -> None:
    """areas: the official area lists open data is published by."""
    ar = sub.add_parser(
        "areas", help="the official area lists open data is published by: show, or refresh from CBS/SSB"
    )
    ar.add_argument("areas_command", choices=["show", "refresh"])
    ar.add_argument("--country", choices=["NL", "NO"], required=True)
    ar.add_argument("--date", help="refresh: the list valid at this date (yyyy-mm-dd, default today)")
    _warehouse_option(ar)
    ar.set_defaults(func=cmd_areas)


def _linkage_commands(sub) -> None:
    """evaluate, encode, explain: accuracy, privacy-preserving encoding and per-pair evidence."""
    e = sub.add_parser("evaluate", help="pairwise and cluster accuracy of the linked view against a ground truth")
    e.add_argument("--truth", required=True, help="folder of truth CSVs (source, record_id, person_id)")
    _warehouse_option(e)
    e.set_defaults(func=cmd_evaluate)

    en = sub.add_parser(
        "encode",
        help="at an agency: encode one source's identifiers (pseudonyms, Bloom filters) for "
        "linkage without sharing them",
    )
    en.add_argument("--sources", required=True, help="the agency's sources.yaml")
    en.add_argument("--source", required=True, help="the source to encode")
    en.add_argument("--secret-file", required=True, help="the linkage project's secret (never leaves the agencies)")
    en.add_argument("--out", required=True, help="folder for <source>/encoded.parquet and the sources.yaml entry")
    en.add_argument(
        "--harden",
        choices=["none", "xor-fold", "salt-year"],
        default="none",
        help="harden the Bloom filters against frequency attacks (costs accuracy; see README)",
    )
    en.set_defaults(func=cmd_encode)

    x = sub.add_parser("explain", help="why two records were or were not linked (per-field weights)")
    x.add_argument("left", help="SOURCE:ID, e.g. tax:T00000123")
    x.add_argument("right", help="SOURCE:ID")
    _warehouse_option(x)
    x.set_defaults(func=cmd_explain)


def _backup_commands(sub) -> None:
    """backup, restore: the warehouse and its folder, checked against a manifest."""
    bk = sub.add_parser(
        "backup",
        help="copy the warehouse and everything in its folder to a new folder (refused while "
        "a pipeline run writes; fine while the service serves)",
    )
    _warehouse_option(bk)
    bk.add_argument("--to", required=True, help="a new (or empty) folder")
    bk.set_defaults(func=cmd_backup)

    rs = sub.add_parser("restore", help="restore a backup as a new warehouse, checking every file against its manifest")
    rs.add_argument("--from", dest="source", required=True, help="a folder written by citizen-view backup")
    rs.add_argument("--warehouse", required=True, help="the new warehouse file (must not exist)")
    rs.set_defaults(func=cmd_restore)


def _bench_command(sub) -> None:
    """bench: benchmarks (not tests)."""
    b = sub.add_parser("bench", help="benchmarks (wall time, rows/s, peak memory); not tests")
    b.add_argument("stage", choices=["ingest", "link", "pipeline", "serve", "resolve", "incremental", "accuracy"])
    b.add_argument(
        "--persons", type=int, default=None, help="persons to generate (default 1,000,000; 2,000 per set for accuracy)"
    )
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--country", choices=["NL", "NO"], default="NL")
    b.add_argument("--workdir", default="bench_data", help="where generated extracts and the warehouse go")
    b.add_argument("--reuse", action="store_true", help="reuse extracts already generated in --workdir")
    b.add_argument(
        "--concurrency", type=int, default=8, help="concurrent clients for `bench serve` and `bench resolve`"
    )
    b.add_argument(
        "--requests",
        type=int,
        default=None,
        help="`bench serve`: requests per kind (2,000); `resolve`: records (1,200)",
    )
    b.add_argument("--new-records", type=int, default=1000, help="`bench incremental`: records arriving late")
    b.add_argument(
        "--workers",
        type=int,
        default=None,
        help="`bench serve` and `bench resolve`: service processes (`serve --workers`; default 2, one per core)",
    )
    b.add_argument(
        "--no-rebuild",
        action="store_true",
        help="`bench incremental`: time the update only, against the rebuild of the last full report in --workdir",
    )
    b.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="`bench incremental`: time the update this many times in all (after the rebuild, each on a fresh copy "
        "in a fresh process) and compare the rebuild with their median",
    )
    b.add_argument(
        "--warehouse", help="`bench serve`/`resolve`: a linked warehouse to serve (default: the `bench link` one)"
    )
    b.add_argument(
        "--keep-view",
        action="store_true",
        help="`bench serve`/`resolve`: serve the view published before, if there is one, instead of publishing anew",
    )
    b.add_argument("--backend", choices=["duckdb", "spark"], default="duckdb", help="`bench link`: where linkage runs")
    b.add_argument(
        "--sets",
        help="`bench accuracy`: comma-separated data sets (default: FEBRL 1-4, the generator "
        "at low, default and high noise for NL and NO, dense-register and us-agencies)",
    )
    b.set_defaults(func=cmd_bench)


def main(argv: list[str] | None = None) -> int:
    from citizen_view.contract import ConfigError
    from citizen_view.warehouse import WarehouseVersionError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ConfigError, WarehouseVersionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
