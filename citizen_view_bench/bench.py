"""`citizen-view bench ingest|link`: wall time, throughput and peak memory per stage (benchmarks, not tests)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from citizen_view_bench.machine import describe as describe_machine
from citizen_view_bench.machine import summary as machine_summary


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process's threads: on a shared machine, less bent by others' load
    peak_rss_mb: float = 0.0
    # this process's system CPU time (the kernel's: page faults, file reads, every other system call) and minor page
    # faults (fresh memory touched) in the stage, the memory samplers' own left out. On a VM that hands idle memory back
    # to its host, the same faults and reads cost several times the kernel time after a pause (docs/measurements.md,
    # "Incremental runs"): where two runs of the same work differ, this says whether the machine did
    system_seconds: float = 0.0
    page_faults: int = 0
    extra: dict = field(default_factory=dict)


_LIVE_SAMPLERS: set[_PeakSampler] = set()
# What the memory samplers that finished spent themselves: CPU seconds, system seconds, page faults (as _thread_own)
_FINISHED_SAMPLER = [0.0, 0.0, 0]


def _thread_own() -> tuple[float, float, int]:
    """The calling thread's CPU seconds, system seconds and minor page faults so far (the last two 0 where the kernel
    does not count them by thread)."""
    if not hasattr(resource, "RUSAGE_THREAD"):
        return time.thread_time(), 0.0, 0
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return time.thread_time(), usage.ru_stime, usage.ru_minflt


def _samplers_own(i: int) -> float:
    """Figure `i` of _thread_own summed over the memory samplers, finished and live."""
    return _FINISHED_SAMPLER[i] + sum(s.own[i] for s in list(_LIVE_SAMPLERS))


def work_cpu() -> float:
    """CPU seconds this process spent so far, less the memory samplers' own: a load-independent clock for work."""
    return time.process_time() - _samplers_own(0)


def work_kernel() -> tuple[float, int]:
    """System seconds and minor page faults of this process so far, less the memory samplers' own (each scan of /proc
    costs 0.6 ms of system time with 90 processes, 10 ms with 700)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_stime - _samplers_own(1), usage.ru_minflt - int(_samplers_own(2))


# One lock for every sampler: a restart (a stage's or a step's start) folds the peak so far into every live sampler
# while their threads sample; reentrant, as the restarting sampler is one of them.
_SAMPLERS_LOCK = threading.RLock()


def _own_high_water() -> int | None:
    """This process's peak resident memory since it was last reset (Linux's VmHWM, in bytes); None where not kept."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def _reset_own_high_water() -> bool:
    """Start a new window for _own_high_water; whether that worked. The kernel keeps one peak per process, so every
    live sampler first takes the peak so far (a stage inside a stage keeps the outer stage's peak whole)."""
    before = _own_high_water()
    if before is None:
        return False
    for sampler in list(_LIVE_SAMPLERS):
        sampler.keep(before)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # 5: reset the peak resident set size to the present one (Linux >= 4.0)
    except OSError:
        return False
    return True


def _children_high_water() -> int:
    """The largest peak resident memory of any child process this one has waited for, in bytes (getrusage: kB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def _child_pids(pid: int) -> list[int] | None:
    """The pids of a process's children from the kernel's per-thread lists (`/proc/<pid>/task/<tid>/children`); None
    where the kernel keeps no such list."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return [] if not os.path.exists(f"/proc/{pid}") else None  # ended meanwhile: no children
    pids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                pids += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended between the listing and the read
            return None  # a kernel without the lists
        except OSError:
            continue
    return pids


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    """`proc`'s children and theirs. From the kernel's per-thread child lists: a few small reads, where psutil's
    `children()` reads every process's stat file (about 1 ms with 70 processes; polled every 20 ms by each of a bench's
    two samplers while a Dagster step has its log-capturing child: 3.7% of py-spy's samples of a 1M `bench pipeline`).
    psutil's scan where the kernel keeps no such list."""
    found: list[psutil.Process] = []
    pending = [proc.pid]
    while pending:
        pids = _child_pids(pending.pop())
        if pids is None:
            return proc.children(recursive=True)
        for pid in pids:
            try:
                found.append(psutil.Process(pid))
            except psutil.Error:
                continue  # ended meanwhile
            pending.append(pid)
    return found


class _PeakSampler:
    """Peak resident memory of this process and its children while a stage runs.

    This process's own peak is the kernel's (VmHWM, reset when the stage starts): exact, with no thread polling it. A
    thread samples the children's memory (with this process's at that moment): every 100 ms while there are none,
    every 20 ms once there are. A child that ended in the stage counts with the peak the kernel kept for it (when
    larger than any child's before), added to this process's own: an upper bound. A poll sees a child only as it is at
    that moment: one that came and went between two polls is not seen at all, and one seen as it started (an
    interpreter loading) may reach its peak between polls and end before the next. A sampler
    polling this process every 20 ms cost the measured work 2-5% of its wall time in a one-second stage (a thread
    scanning /proc on one of two cores) and could miss a short peak. Where the kernel keeps no peak, this process is
    sampled every 20 ms as well."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self.own = (0.0, 0.0, 0)  # this sampler thread's CPU, system time and page faults (kept out of the stage's)
        self._stop = threading.Event()
        self._exact = False
        self._window = 0  # bumped by each restart: a sample read before it is not the new window's
        self._children_before = 0

    def keep(self, peak: int, window: int | None = None) -> None:
        """Take `peak` into this sampler's peak (not when read in an earlier `window` than this one)."""
        with _SAMPLERS_LOCK:
            if window is None or window == self._window:
                self.peak = max(self.peak, peak)

    def restart(self) -> None:
        """A new window: the peak from now on (called when the stage starts)."""
        with _SAMPLERS_LOCK:
            _LIVE_SAMPLERS.add(self)
            self._exact = _reset_own_high_water()
            self._window += 1
            self.peak = self.proc.memory_info().rss
            self._children_before = _children_high_water()

    def _sample(self) -> bool:
        """Take one sample into `peak`; whether the process has children."""
        window = self._window
        children = _descendants(self.proc)
        if not children and self._exact:
            return False
        total = self.proc.memory_info().rss
        for child in children:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        self.keep(total, window)
        return bool(children)

    def current_peak(self) -> int:
        """The peak since the window started, this process's own from the kernel's count."""
        self._sample()
        own = (_own_high_water() if self._exact else None) or 0
        with _SAMPLERS_LOCK:
            peak = max(self.peak, own)
            unseen = _children_high_water()
            if unseen > self._children_before:  # a child ended in the window, its own peak perhaps between polls
                peak = max(peak, own + unseen)
        return peak

    def run(self) -> None:
        _LIVE_SAMPLERS.add(self)
        while not self._stop.is_set():
            children = self._sample()
            self.own = _thread_own()
            self._stop.wait(0.02 if children or not self._exact else 0.1)
        self.own = _thread_own()
        with _SAMPLERS_LOCK:
            for i, spent in enumerate(self.own):
                _FINISHED_SAMPLER[i] += spent
            _LIVE_SAMPLERS.discard(self)

    def stop(self) -> None:
        """Stop the sampling thread (join it, then read current_peak)."""
        self._stop.set()


@contextmanager
def measure(stages: list[Stage], name: str):
    """Time a stage and sample its peak memory; appends a Stage to `stages`."""
    stage = Stage(name)
    sampler = _PeakSampler()
    sampler.restart()
    thread = threading.Thread(target=sampler.run, daemon=True)
    # CPU, system time and faults read before the thread starts: its first scan, done before it first records its own,
    # would otherwise count in the stage's start and come off again at its end (a quiet stage read -3 to -7 faults)
    cpu, kernel = work_cpu(), work_kernel()
    thread.start()
    started = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds = round(time.perf_counter() - started, 2)
        sampler.stop()
        thread.join()
        stage.cpu_seconds = round(work_cpu() - cpu, 2)
        system, faults = work_kernel()
        stage.system_seconds, stage.page_faults = round(system - kernel[0], 2), faults - kernel[1]
        stage.peak_rss_mb = round(sampler.current_peak() / 2**20, 1)
        stages.append(stage)
        print(
            f"  {name:<22} {stage.seconds:>8.1f} s (cpu {stage.cpu_seconds:.1f} s)  peak {stage.peak_rss_mb:>8.0f} MB  {_fmt(stage.extra)}",
            flush=True,
        )


def _fmt(extra: dict) -> str:
    return "  ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in extra.items())


def _generated(args: argparse.Namespace, stages: list[Stage]) -> Path:
    from citizen_view_synth import generate

    data = Path(args.workdir) / f"{args.country.lower()}_{args.persons}_{args.seed}"
    if args.reuse and (data / "sources.yaml").is_file():
        print(f"  reusing extracts in {data}")
        return data
    with measure(stages, "generate") as st:
        from citizen_view_app.progress import Progress

        report = generate(
            data, persons=args.persons, seed=args.seed, country=args.country, progress=Progress("generating")
        )
        st.extra = {"persons": report.persons, "records": sum(report.records.values())}
    return data


def _ingest(data: Path, warehouse: Path, stages: list[Stage]) -> None:
    from citizen_view.contract import load_sources
    from citizen_view.ingest import ingest_source
    from citizen_view.warehouse import connect

    sources = load_sources(data / "sources.yaml")
    warehouse.unlink(missing_ok=True)
    total_rows = 0
    with measure(stages, "ingest (all sources)") as st:
        with connect(warehouse) as con:
            for s in sources.sources:
                report = ingest_source(con, sources, s.name)
                total_rows += report.rows_in
                print(
                    f"    {s.name:<12} {report.rows_in:>10,} rows in {report.seconds:6.1f} s "
                    f"({report.rows_rejected:,} rejected)",
                    flush=True,
                )
        st.extra = {"rows": total_rows}
    st.extra["rows_per_s"] = int(total_rows / max(st.seconds, 1e-9))


def bench_ingest(args: argparse.Namespace) -> dict:
    stages: list[Stage] = []
    print(f"bench ingest: {args.persons:,} persons, seed {args.seed}, {args.country}")
    data = _generated(args, stages)
    _ingest(data, Path(args.workdir) / f"bench_ingest_{args.persons}.duckdb", stages)
    return {"stages": [asdict(s) for s in stages]}


def bench_link(args: argparse.Namespace) -> dict:
    """Ours (train, score, cluster, golden) on the chosen backend, then the competent user's plain Splink model
    (`baseline.fair_splink`) on the same standardised records: wall time and peak memory per stage, comparisons
    scored, F1 of both, and the train + score ratio ours / baseline."""
    from citizen_view.contract import Backend, LinkageConfig, load_sources
    from citizen_view.layout import WarehouseLayout
    from citizen_view.linkage import Linkage
    from citizen_view.linkage.evaluate import evaluate_links, load_truth
    from citizen_view.warehouse import connect

    stages: list[Stage] = []
    backend = Backend(args.backend)
    print(f"bench link: {args.persons:,} persons, seed {args.seed}, {args.country}, linkage on {backend.value}")
    data = _generated(args, stages)
    warehouse = Path(args.workdir) / f"bench_link_{args.persons}_{args.country.lower()}.duckdb"
    layout = WarehouseLayout.of(warehouse)
    if not (args.reuse and warehouse.is_file()):
        _ingest(data, warehouse, stages)
    sources = load_sources(data / "sources.yaml")
    linkage = LinkageConfig(**{**sources.linkage.model_dump(), "backend": backend})
    truth = load_truth(data / "truth")
    with connect(warehouse) as con:
        for table in ("citizen_source_link", "citizen", "citizen_id_history"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        _timed_chain(Linkage(con, layout, sources, linkage=linkage), stages)
        links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
        comparisons, plain = _timed_baseline(con, layout, truth, stages, seed=args.seed)
    return _link_report(stages, backend.value, evaluate_links(links, truth), comparisons, plain)


def _timed_chain(chain, stages: list[Stage]) -> None:
    """Our linkage chain step by step, each stage timed on its own."""
    with measure(stages, "source_records") as st:
        st.extra = {"records": chain.collect().records}
    with measure(stages, "train model") as st:
        trained, _ = chain.train()
        st.extra = {"fields": len(trained.fields_used)}
    for note in trained.training_notes:  # where training time goes
        print(f"    {note}")
    with measure(stages, "score pairs") as st:
        edges = chain.score()
        st.extra = {
            "pairs_kept": edges.pairs_kept,
            "above_threshold": edges.links_above_threshold,
            "threshold": edges.threshold,
        }
    with measure(stages, "cluster + stable IDs") as st:
        link = chain.link(run_id="bench")
        st.extra = {"citizens": link.citizens, "merges_refused": link.merges_refused}
    with measure(stages, "golden record") as st:
        st.extra = {"citizens": chain.golden().citizens}


def _timed_baseline(con, layout, truth, stages: list[Stage], *, seed: int) -> tuple[int, dict]:
    """(comparisons our model scores, the plain Splink baseline's result), both timed outside the pipeline."""
    from citizen_view.linkage.scoring import estimate_comparisons
    from citizen_view.linkage.steps import saved_model
    from citizen_view_bench.baseline import fair_splink

    with measure(stages, "count comparisons (not part of the pipeline)") as st, layout.scratch("count") as scratch:
        comparisons = estimate_comparisons(con, saved_model(con), scratch=scratch)
        st.extra = {"comparisons_scored": comparisons}
    with measure(stages, "plain splink (fair baseline): train + score (DuckDB)") as st:
        plain = fair_splink(con, truth, seed=seed, cpu_clock=work_cpu)
        st.extra = {
            "train_s": plain["train_seconds"],
            "score_s": plain["score_seconds"],
            "pairs": plain["pairs_scored"],
        }
    return comparisons, plain


def _link_report(stages: list[Stage], backend: str, figures: dict, comparisons: int, plain: dict) -> dict:
    """Print ours against the baseline and return the report."""
    ours_train_score = next(s.seconds for s in stages if s.name == "train model") + next(
        s.seconds for s in stages if s.name == "score pairs"
    )
    plain_train_score = plain["train_seconds"] + plain["score_seconds"]
    ours_cpu = sum(s.cpu_seconds for s in stages if s.name in ("train model", "score pairs"))
    plain_cpu = plain["train_cpu_seconds"] + plain["score_cpu_seconds"]
    outside = ("generate", "ingest (all sources)")
    ours = [s for s in stages if s.name not in outside and not s.name.startswith(("count", "plain"))]
    linkage_seconds = sum(s.seconds for s in ours)
    linkage_peak = max(s.peak_rss_mb for s in ours)
    ratio = ours_train_score / plain_train_score if plain_train_score else float("nan")
    print(
        f"  ours ({backend}): linkage total {linkage_seconds:.1f} s, peak {linkage_peak:.0f} MB; "
        f"precision {figures['precision']:.5f} recall {figures['recall']:.5f} F1 {figures['f1']:.5f}"
    )
    print(
        f"  plain splink (fair baseline, DuckDB): train {plain['train_seconds']:.1f} s + score {plain['score_seconds']:.1f} s "
        f"= {plain_train_score:.1f} s; best F1 with truth {plain['f1']:.5f} (threshold {plain['threshold']:.2f}), "
        f"F1 at its threshold (probability 0.5) {plain['at_probability_half']['f1']:.5f}"
    )
    split = ", ".join(f"{k} {v:.1f} s" for k, v in plain["training_split"].items())
    print(f"    baseline training: {split}; {'; '.join(plain['training_notes'])}")
    print(
        f"  train + score: ours {ours_train_score:.1f} s vs plain {plain_train_score:.1f} s = {ratio:.2f}x; "
        f"~{comparisons:,} comparisons scored by ours, {plain['pairs_scored']:,} pairs kept by plain"
    )
    print(  # CPU time counts the work done, not the wait for a core: the fairer ratio on a loaded machine
        f"  train + score CPU time: ours {ours_cpu:.1f} s vs plain {plain_cpu:.1f} s = {ours_cpu / max(plain_cpu, 1e-9):.2f}x"
    )
    return {
        "stages": [asdict(s) for s in stages],
        "backend": backend,
        "linkage_seconds": linkage_seconds,
        "linkage_peak_rss_mb": linkage_peak,
        "evaluation": figures,
        "comparisons_scored": comparisons,
        "train_score_seconds": ours_train_score,
        "train_score_cpu_seconds": ours_cpu,
        "train_score_cpu_ratio": ours_cpu / max(plain_cpu, 1e-9),
        "plain_splink": {k: v for k, v in plain.items() if k != "evaluation"},
        "train_score_ratio": ratio,
        "baseline": "fair",
    }


PIPELINE_TARGET_SECONDS = 360  # issue 20: ingest to published at 1M on 2 cores
PIPELINE_TARGET_PEAK_MB = 8 * 1024


def bench_pipeline(args: argparse.Namespace) -> dict:
    """The whole Dagster job on generated extracts (ingest to published bundle): the run's wall time, CPU time and
    peak memory; per step and per phase the same; Dagster's own share; and the next lever (the costliest step)."""
    from citizen_view_app.runner import run_pipeline
    from citizen_view_bench.steps import StepMeter

    stages: list[Stage] = []
    print(f"bench pipeline: {args.persons:,} persons, seed {args.seed}, {args.country}")
    data = _generated(args, stages)
    root = Path(args.workdir) / f"pipeline_{args.persons}"
    with StepMeter(_PeakSampler(), work_cpu) as meter, measure(stages, "full pipeline (Dagster)") as st:
        outcome = run_pipeline(
            sources_path=data / "sources.yaml",
            warehouse_path=root / "warehouse" / "citizen_view.duckdb",
            listeners={"step_meter": meter.listener()},
        )
        st.extra = {"success": outcome.success, "gates": len(outcome.checks)}
    return _pipeline_report(stages[-1], meter, outcome, stages)


def _pipeline_report(run: Stage, meter, outcome, stages: list[Stage]) -> dict:
    from citizen_view_bench.steps import phase

    asset_steps = {k.replace("/", "__") for k in outcome.materialized}
    steps = sorted(meter.steps, key=lambda s: -s.cpu_seconds)
    print(f"    {'step (costliest CPU first)':<56} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}")
    for s in steps[:15]:
        gate = "" if s.step in asset_steps else " (gate)"
        print(f"    {s.step + gate:<56} {s.seconds:>8.1f} {s.cpu_seconds:>8.1f} {s.peak_rss_mb:>8.0f}")
    phases: dict[str, dict] = {}
    for s in meter.steps:
        p = phases.setdefault(
            phase(s.step, asset_steps), {"steps": 0, "seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_mb": 0.0}
        )
        p["steps"] += 1
        p["seconds"] += s.seconds
        p["cpu_seconds"] += s.cpu_seconds
        p["peak_rss_mb"] = max(p["peak_rss_mb"], s.peak_rss_mb)
    for name, p in sorted(phases.items(), key=lambda kv: -kv[1]["cpu_seconds"]):
        print(
            f"    phase {name:<24} {p['steps']:>3} steps {p['seconds']:>8.1f} s wall {p['cpu_seconds']:>8.1f} s cpu  peak {p['peak_rss_mb']:>6.0f} MB"
        )
    outside = {
        "seconds": run.seconds - sum(s.seconds for s in meter.steps),
        "cpu_seconds": run.cpu_seconds - sum(s.cpu_seconds for s in meter.steps),
    }
    print(
        f"    Dagster outside the steps (in-process executor): {outside['seconds']:.1f} s wall, {outside['cpu_seconds']:.1f} s cpu"
    )
    lever = steps[0] if steps else None
    met = run.seconds <= PIPELINE_TARGET_SECONDS and run.peak_rss_mb <= PIPELINE_TARGET_PEAK_MB
    print(
        f"  run: {run.seconds:.1f} s wall, {run.cpu_seconds:.1f} s cpu, peak {run.peak_rss_mb:.0f} MB "
        f"(target {PIPELINE_TARGET_SECONDS} s and {PIPELINE_TARGET_PEAK_MB} MB at 1M: {'met' if met else 'NOT met'})"
    )
    if lever:
        print(
            f"  next lever: {lever.step} ({lever.cpu_seconds:.1f} s cpu, {lever.cpu_seconds / max(run.cpu_seconds, 1e-9):.0%} of the run's cpu)"
        )
    gate_seconds = phases.get("gates (asset checks)", {}).get("seconds", 0.0)
    return {
        "stages": [asdict(s) for s in stages],
        "run_seconds": run.seconds,
        "run_cpu_seconds": run.cpu_seconds,
        "peak_rss_mb": run.peak_rss_mb,
        "target_met": met,
        "phases": phases,
        "dagster_outside_steps": outside,
        "next_lever": asdict(lever) if lever else None,
        "gate_seconds": gate_seconds,
        "gate_share": gate_seconds / max(sum(p["seconds"] for p in phases.values()), 1e-9),
        "steps": [asdict(s) for s in meter.steps],
        "failed_gates": [k for k, c in outcome.checks.items() if not c["passed"]],
        "failed_steps": outcome.failed,
    }


# Service processes `bench serve` starts unless --workers says otherwise: one per core of the 2-core machine the
# targets are set on (measured: docs/measurements.md, "Benchmark runs").
SERVE_WORKERS = 2


def bench_serve(args: argparse.Namespace) -> dict:
    """Search latency and throughput of the caseworker service (its own process) from a load generator on loopback."""
    stages: list[Stage] = []
    print(f"bench serve: {args.persons:,} persons, seed {args.seed}, {args.country}")
    warehouse, view = _published_view(args, stages)
    workload = _serve_workload(view, seed=args.seed)
    n = args.requests or 2000  # per kind of request
    workload.ids, workload.name_queries, workload.citizens = (
        workload.ids[:n],
        workload.name_queries[:n],
        workload.citizens[:n],
    )
    workers = args.workers or SERVE_WORKERS
    print(f"  service: citizen-view serve --workers {workers} ({os.cpu_count()} cores)")
    server, base = _start_service(warehouse, Path(args.workdir) / "bench_serve_audit.jsonl", workers=workers)
    try:
        results = {}
        for label, path, queries in [
            ("national_id search", "/api/search/national-id", [{"national_id": i} for i in workload.ids]),
            ("name + date search", "/api/search/name-and-date-of-birth", workload.name_queries),
            ("profile", None, workload.citizens),
        ]:
            results[label] = r = _load_test(
                base, path, queries, expected=workload.expected, concurrency=args.concurrency, server_pid=server.pid
            )
            print(
                f"  {label:<20} {r['requests']:>5} requests ({r['ok']} ok)  p50 {r['p50_ms']:>6.1f} ms  "
                f"p95 {r['p95_ms']:>6.1f} ms  {r['throughput_rps']:>6.1f} req/s  ({args.concurrency} concurrent)  "
                f"CPU/request: service {r['service_cpu_ms_per_request']:.1f} ms + client {r['client_cpu_ms_per_request']:.1f} ms"
                + (f"  right citizen in top 3: {r['found_in_top3']:.1%}" if "found_in_top3" in r else "")
                + _shares(r)
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "stages": [asdict(s) for s in stages],
        "concurrency": args.concurrency,
        "workers": workers,
        "results": results,
    }


@dataclass
class _Workload:
    ids: list[str]
    name_queries: list[dict[str, str]]
    expected: dict[str, str]  # "name|date" -> the citizen the query should find
    citizens: list[str]


def _serve_workload(view: Path, *, seed: int) -> _Workload:
    """Queries sampled from the served view: national IDs, names with a typo and dates (some day/month swapped), citizens."""
    import random

    import duckdb

    rng = random.Random(seed)
    con = duckdb.connect(str(view), read_only=True)
    ids = [r[0] for r in con.execute("SELECT national_id FROM search_ids USING SAMPLE 2000 ROWS").fetchall()]
    people = con.execute(
        "SELECT given_name, family_name, date_of_birth, citizen_id FROM records WHERE source = 'population' "
        "AND date_of_birth IS NOT NULL AND family_name IS NOT NULL USING SAMPLE 1000 ROWS"
    ).fetchall()
    citizens = [r[0] for r in con.execute("SELECT citizen_id FROM citizen USING SAMPLE 1000 ROWS").fetchall()]
    con.close()

    def typo(name: str) -> str:
        i = rng.randrange(1, max(2, len(name)))
        return name[:i] + name[i + 1 :] if len(name) > 4 else name

    name_queries = []
    expected: dict[str, str] = {}
    for given, family, dob, citizen_id in people:
        swapped = dob.day <= 12 and rng.random() < 0.3
        # ISO, as the API takes it; a day and month swapped where both could be a month (a common keying slip)
        date = f"{dob.year}-{dob.day:02d}-{dob.month:02d}" if swapped else dob.isoformat()
        query = {"name": f"{(given or '').split(' ')[0]} {typo(family)}", "date_of_birth": date}
        expected[query["name"] + "|" + date] = citizen_id
        name_queries.append(query)
    return _Workload(ids, name_queries, expected, citizens)


def _start_service(warehouse: Path, audit: Path, *, workers: int = 1):
    """`citizen-view serve --workers N` in its own process on a free loopback port, as a user starts it, once it answers
    /health and all its workers have finished starting (its CPU use has settled): (process, base URL)."""
    import socket
    import subprocess
    import sys

    import httpx

    from citizen_view.serving.access import EXAMPLE_ACCESS_FILE
    from citizen_view_bench.load import wait_until_idle

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "citizen_view_app.cli",
            "serve",
            "--warehouse",
            str(warehouse),
            "--port",
            str(port),
            "--audit-log",
            str(audit),
            "--access",
            str(EXAMPLE_ACCESS_FILE),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        wait_until_idle(server.pid)
    except BaseException:
        server.terminate()
        raise
    return server, base


def _load_test(
    base: str, path: str | None, queries: list, *, expected: dict[str, str], concurrency: int, server_pid: int
) -> dict:
    """One kind of request (`path` None: a citizen's profile) from `concurrency` clients after a warm-up: latency,
    throughput and, for name searches, how often the right citizen is in the top 3."""
    from citizen_view_bench.load import PURPOSE, load

    def send(client, q):
        if path is None:
            return client.get(f"/api/citizens/{q}", params=PURPOSE)
        return client.get(path, params={**q, **PURPOSE})

    def read(q, r) -> tuple[int, bool | None]:
        key = f"{q.get('name')}|{q.get('date_of_birth')}" if isinstance(q, dict) else None
        if key in expected and r.status_code == 200:
            return r.status_code, expected[key] in [c["citizen_id"] for c in r.json()["candidates"][:3]]
        return r.status_code, None

    run = load(base, queries, send, read, warmup=20, concurrency=concurrency, timeout=30, service_pid=server_pid)
    hits = [hit for _, hit in run.outcomes if hit is not None]
    result = {
        "requests": len(run.latencies_ms),
        "ok": int(sum(1 for status, _ in run.outcomes if status == 200)),
        **run.percentiles(),
        "throughput_rps": run.per_second(),
        **run.cpu_per_request(),
    }
    if hits:
        result["found_in_top3"] = round(sum(hits) / len(hits), 4)
    result["service_cpu_shares"] = run.worker_shares()
    return result


def _shares(result: dict) -> str:
    """The service processes' shares of its CPU, e.g. "  CPU by process 52/47/1%": how evenly the workers were loaded."""
    shares = result.get("service_cpu_shares")
    return f"  CPU by process {'/'.join(f'{s:.0%}'.rstrip('%') for s in shares)}%" if shares else ""


def _published_view(args: argparse.Namespace, stages: list[Stage]) -> tuple[Path, Path]:
    """(the linked warehouse `bench link` left, or --warehouse; a served view of it published now, timed, or with
    --keep-view the one its serving folder already points at)."""
    from citizen_view.contract import load_sources
    from citizen_view.layout import WarehouseLayout
    from citizen_view.serving.snapshot import current_view, publish_view
    from citizen_view.warehouse import connect

    data = _generated(args, stages)
    default = Path(args.workdir) / f"bench_link_{args.persons}_{args.country.lower()}.duckdb"
    warehouse = Path(args.warehouse) if args.warehouse else default
    if not warehouse.is_file():
        raise SystemExit(
            f"no linked warehouse at {warehouse}: run `citizen-view bench link --persons {args.persons}` "
            "first, or pass --warehouse"
        )
    serving = WarehouseLayout.of(warehouse).serving_dir
    if getattr(args, "keep_view", False) and (kept := current_view(serving)) is not None and kept.is_file():
        print(f"  serving the view published before: {kept.name} (--keep-view; not published again)")
        return warehouse, kept
    sources = load_sources(data / "sources.yaml")
    with measure(stages, "publish served view") as st, connect(warehouse) as con:
        view = publish_view(con, sources, serving, run_id="bench")
        st.extra = {"view_mb": int(view.stat().st_size / 2**20)}
    return warehouse, view


def bench_resolve(args: argparse.Namespace) -> dict:
    """Publish a served view of a linked warehouse, serve it, and resolve records of it again: one at a time, then
    from `--concurrency` clients (lookups: taken in by no later run unless they name a source and its key)."""
    from citizen_view_bench.online import _records, _run

    stages: list[Stage] = []
    workers = args.workers or SERVE_WORKERS
    print(f"bench resolve: {args.persons:,} persons, seed {args.seed}, {args.country}, {workers} service worker(s)")
    warehouse, view = _published_view(args, stages)
    n = args.requests or 1200  # a third one at a time, the rest from `--concurrency` clients
    records = _records(view, seed=args.seed, n=n)
    server, base = _start_service(warehouse, Path(args.workdir) / "bench_resolve_audit.jsonl", workers=workers)
    try:
        results = {
            "sequential": _run(base, records[: n // 3], concurrency=1, server_pid=server.pid),
            f"concurrency {args.concurrency}": _run(
                base, records[n // 3 :], concurrency=args.concurrency, server_pid=server.pid
            ),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    for label, r in results.items():
        print(
            f"  {label:<16} {r['records']:>5} records ({r['ok']} ok)  p50 {r['p50_ms']:>6.1f} ms  p95 {r['p95_ms']:>6.1f} ms  "
            f"{r['records_per_s']:>6.1f} records/s  CPU/record: service {r['service_cpu_ms_per_record']:.1f} ms + "
            f"client {r['client_cpu_ms_per_record']:.1f} ms  matched to its own citizen "
            f"{r['matched_to_its_citizen']:.1%}  {r['decisions']}" + _shares(r)
        )
    return {
        "stages": [asdict(s) for s in stages],
        "concurrency": args.concurrency,
        "workers": workers,
        "results": results,
    }


def bench_incremental(args: argparse.Namespace) -> dict:
    """1,000 new records into a linked warehouse: the incremental link against a full rebuild, side by side; with
    `--repeat N`, the update N times in all (the others each on a fresh copy in a fresh process, after the rebuild)."""
    from citizen_view.contract import load_sources
    from citizen_view.layout import WarehouseLayout
    from citizen_view.linkage import Linkage
    from citizen_view.warehouse import connect

    stages: list[Stage] = []
    repeat = getattr(args, "repeat", 1)
    if repeat < 1 or (repeat > 1 and getattr(args, "no_rebuild", False)):
        raise SystemExit("bench incremental: --repeat takes a positive number, and only with the rebuild")
    print(f"bench incremental: {args.new_records:,} new records into {args.persons:,} persons")
    data = _generated(args, stages)
    source = Path(args.workdir) / f"bench_link_{args.persons}_{args.country.lower()}.duckdb"
    if not source.is_file():
        raise SystemExit(
            f"no linked warehouse at {source}: run `citizen-view bench link --persons {args.persons}` first"
        )
    warehouse = Path(args.workdir) / f"bench_incremental_{args.persons}.duckdb"
    _fresh_copy(source, warehouse)
    sources = load_sources(data / "sources.yaml")
    with connect(warehouse) as con:
        _timed_update(con, warehouse, sources, args.new_records, stages)
        if getattr(args, "no_rebuild", False):
            return _against_last_rebuild(args, stages[-1])
        con.execute("CREATE TEMP TABLE _incremental_links AS SELECT record_key, citizen_id FROM citizen_source_link")
        with measure(stages, "full rebuild (train, score, link, golden)") as st:
            report = Linkage(con, WarehouseLayout.of(warehouse), sources).run(run_id="bench-full").link
            st.extra = {"citizens": report.citizens}
        differ = _late_records_placed_differently(con)
    inc, full = stages[-2], stages[-1]
    speedup, cpu_speedup = full.seconds / max(inc.seconds, 1e-9), full.cpu_seconds / max(inc.cpu_seconds, 1e-9)
    print(
        f"  incremental {inc.seconds:.1f} s (cpu {inc.cpu_seconds:.1f} s, {inc.peak_rss_mb:.0f} MB) vs full "
        f"{full.seconds:.1f} s (cpu {full.cpu_seconds:.1f} s, {full.peak_rss_mb:.0f} MB): "
        f"{speedup:.1f}x faster (cpu {cpu_speedup:.1f}x)"
    )
    print(
        f"  late records whose citizen holds other records than after the rebuild: {differ:,} of {args.new_records:,}"
    )
    result = {
        "stages": [asdict(s) for s in stages],
        "speedup": speedup,
        "cpu_speedup": cpu_speedup,
        "late_records_placed_differently": differ,
    }
    if repeat > 1:
        result |= _repeated(args, source, data, inc, full)
    return result


def _timed_update(con, warehouse: Path, sources, new_records: int, stages: list[Stage]) -> None:
    """On a fresh copy of a linked warehouse: the newest tax records taken back, then the timed update (a Stage)."""
    from citizen_view.layout import WarehouseLayout
    from citizen_view.linkage import Linkage

    # The lookup tables an update reads (blocking keys, term frequencies, components) come with the full run; a
    # warehouse linked before they existed gets them here, outside the update's time, as the full run would have.
    chain = Linkage(con, WarehouseLayout.of(warehouse), sources)
    with measure(stages, "lookup tables a full run writes (only if missing; not part of the update)") as st:
        st.extra = {"written": chain.prepare_update()}
    # The newest tax records arrive late: their links, scored pairs, blocking keys and components are taken back,
    # so the next run sees them as new.
    con.execute(
        "CREATE TEMP TABLE _held AS SELECT record_key FROM source_records WHERE source = 'tax' ORDER BY record_key DESC LIMIT ?",
        [new_records],
    )
    chain.take_back("_held")
    with measure(stages, "incremental link + golden") as st:
        report, _ = Linkage(con, WarehouseLayout.of(warehouse), sources).update(run_id="bench-incremental")
        st.extra = {
            "new": report.new_records,
            "changed": report.changed_records,
            "relinked": report.records_relinked,
            "citizens": report.citizens,
        }


def _update_in_fresh_process(source: str, copy: str, data: str, new_records: int) -> dict:
    """One update on a fresh copy of `source`, run in a process of its own (a spawned interpreter, as a pipeline run
    is): its Stage, as a dict."""
    from citizen_view.contract import load_sources
    from citizen_view.warehouse import connect

    _fresh_copy(Path(source), Path(copy))
    stages: list[Stage] = []
    with connect(Path(copy)) as con:
        _timed_update(con, Path(copy), load_sources(Path(data) / "sources.yaml"), new_records, stages)
    return asdict(stages[-1]) | {"pid": os.getpid()}


def _repeated(args: argparse.Namespace, source: Path, data: Path, first: Stage, full: Stage) -> dict:
    """`--repeat N`: the update N - 1 more times, each on a fresh copy in a fresh process after the rebuild; all N
    times printed, the rebuild's time against their median, and that median as new records a second (on a VM that takes idle memory back, the first of a
    series can be a slow outlier: docs/measurements.md, "Incremental runs")."""
    import multiprocessing
    import statistics
    from concurrent.futures import ProcessPoolExecutor

    copy = Path(args.workdir) / f"bench_incremental_{args.persons}_repeat.duckdb"
    runs = [asdict(first) | {"pid": os.getpid()}]
    try:  # a child killed (say, out of memory) raises BrokenProcessPool here rather than leaving the bench waiting
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn, max_tasks_per_child=1) as pool:
            for _ in range(args.repeat - 1):
                run = pool.submit(_update_in_fresh_process, str(source), str(copy), str(data), args.new_records)
                runs.append(run.result())
    finally:
        _remove(copy)
    seconds = [r["seconds"] for r in runs]
    median, cpu_median = statistics.median(seconds), statistics.median(r["cpu_seconds"] for r in runs)
    speedup, cpu_speedup = full.seconds / max(median, 1e-9), full.cpu_seconds / max(cpu_median, 1e-9)
    # the same median as an absolute rate: unlike the ratio, it does not move when the rebuild gets faster or slower
    rate = args.new_records / max(median, 1e-9)
    print(
        f"  the update {len(runs)} times (the first above, then each on a fresh copy in a fresh process): "
        f"{' / '.join(f'{s:.2f}' for s in seconds)} s; median {median:.2f} s (cpu {cpu_median:.2f} s): "
        f"{speedup:.1f}x against the rebuild (cpu {cpu_speedup:.1f}x); {rate:,.0f} new records a second"
    )
    system = " / ".join(f"{r['system_seconds']:.2f}" for r in runs)
    faults = " / ".join(f"{r['page_faults']:,}" for r in runs)
    print(f"  system CPU time (the kernel's: page faults, file reads) of each: {system} s; page faults: {faults}")
    return {
        "repeated": runs,
        "median_seconds": median,
        "median_cpu_seconds": cpu_median,
        "speedup_median": speedup,
        "cpu_speedup_median": cpu_speedup,
        "new_records_per_second_median": rate,
    }


def _remove(warehouse: Path) -> None:
    """A bench's copy of a warehouse and its write-ahead log, if any (a log left beside a new copy would be replayed
    into it)."""
    warehouse.unlink(missing_ok=True)
    warehouse.with_name(warehouse.name + ".wal").unlink(missing_ok=True)


def _fresh_copy(source: Path, warehouse: Path) -> None:
    """A fresh copy of a linked warehouse (any earlier copy and its log removed first), written through to disk."""
    import shutil

    _remove(warehouse)
    shutil.copy(source, warehouse)
    _flush(warehouse)


def _flush(path: Path) -> None:
    """Write a fresh copy of a warehouse through to disk before anything is timed. Left to the kernel, its gigabytes of
    dirty pages (2.3 GB at 1M) are written back from 30 s after the copy, which is when the update runs: the bench's
    set-up, not the update's cost, on the same cores."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _against_last_rebuild(args: argparse.Namespace, inc: Stage) -> dict:
    """`--no-rebuild`: the update's time against the rebuild of the last full report in the workdir, labelled as such."""
    report = Path(args.workdir) / f"bench_incremental_{args.persons}_{args.country.lower()}_duckdb.json"
    last = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    full = next((s for s in last.get("stages", []) if s["name"].startswith("full rebuild")), None)
    measured = last.get("measured_at")
    if full is None and last.get("rebuild"):  # the last report was a --no-rebuild one: its rebuild, passed on
        full = {k: v for k, v in last["rebuild"].items() if k != "from_report_measured_at"}
        measured = last["rebuild"]["from_report_measured_at"]
    print(f"  incremental {inc.seconds:.1f} s (cpu {inc.cpu_seconds:.1f} s, {inc.peak_rss_mb:.0f} MB); no rebuild run")
    if full is None:
        print(f"  no earlier full report at {report}: no ratio")
        return {"stages": [asdict(inc)], "rebuild": None}
    print(
        f"  the last measured rebuild ({measured}, not this run): {full['seconds']:.1f} s "
        f"(cpu {full['cpu_seconds']:.1f} s): {full['seconds'] / max(inc.seconds, 1e-9):.1f}x "
        f"(cpu {full['cpu_seconds'] / max(inc.cpu_seconds, 1e-9):.1f}x); placement against a rebuild not checked"
    )
    return {
        "stages": [asdict(inc)],
        "rebuild": {"from_report_measured_at": measured, **full},
        "speedup_against_last_rebuild": full["seconds"] / max(inc.seconds, 1e-9),
        "cpu_speedup_against_last_rebuild": full["cpu_seconds"] / max(inc.cpu_seconds, 1e-9),
    }


def _late_records_placed_differently(con) -> int:
    """Held-back records whose fellow records (same citizen) after the incremental run differ from the rebuild's."""
    return con.execute(
        """
        WITH inc AS (SELECT h.record_key, list(o.record_key ORDER BY o.record_key) AS fellows FROM _held h
                     JOIN _incremental_links m USING (record_key) JOIN _incremental_links o USING (citizen_id) GROUP BY 1),
             rebuilt AS (SELECT h.record_key, list(o.record_key ORDER BY o.record_key) AS fellows FROM _held h
                      JOIN citizen_source_link m USING (record_key) JOIN citizen_source_link o USING (citizen_id) GROUP BY 1)
        SELECT count(*) FROM inc FULL JOIN rebuilt USING (record_key) WHERE inc.fellows IS DISTINCT FROM rebuilt.fellows
        """
    ).fetchall()[0][0]


def bench_accuracy(args: argparse.Namespace) -> dict:
    """Ours and plain Splink on public labelled sets and the generator at three noise levels: one table."""
    from citizen_view_bench.accuracy import ALL_SETS, render_table, run_accuracy

    sets = [s.strip() for s in (args.sets or ",".join(ALL_SETS)).split(",") if s.strip()]
    print(f"bench accuracy: {', '.join(sets)} ({args.persons:,} persons per generated set, seed {args.seed})")
    rows = run_accuracy(Path(args.workdir) / "accuracy", sets=sets, persons=args.persons, seed=args.seed)
    table = render_table(rows)
    print(table)
    (Path(args.workdir) / "accuracy.md").write_text(table, encoding="utf-8")
    return {"rows": rows}


def main(args: argparse.Namespace) -> int:
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.persons is None:
        args.persons = 2000 if args.stage == "accuracy" else 1_000_000
    # before the work, on the machine as it is: figures from two machines, or two days, are compared through this
    machine = describe_machine()
    print(f"  {machine_summary(machine)}")
    result = {
        "ingest": bench_ingest,
        "link": bench_link,
        "pipeline": bench_pipeline,
        "serve": bench_serve,
        "incremental": bench_incremental,
        "accuracy": bench_accuracy,
        "resolve": bench_resolve,
    }[args.stage](args)
    result |= {
        "persons": args.persons,
        "seed": args.seed,
        "country": args.country,
        "cpu_count": psutil.cpu_count(),
        "machine": machine,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    backend = getattr(args, "backend", None) or "duckdb"
    out = Path(args.workdir) / f"bench_{args.stage}_{args.persons}_{args.country.lower()}_{backend}.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"  report: {out}")
    return 0
