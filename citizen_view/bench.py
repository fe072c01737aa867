"""`citizen-view bench ingest|link`: wall time, throughput and peak memory per stage (benchmarks, not tests)."""

from __future__ import annotations

import argparse
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    extra: dict = field(default_factory=dict)


class _PeakSampler:
    """Peak resident memory of this process (and its children) while a stage runs, sampled every 20 ms."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self.peak = max(self.peak, self._rss())


@contextmanager
def measure(stages: list[Stage], name: str):
    """Time a stage and sample its peak memory; appends a Stage to `stages`."""
    stage = Stage(name)
    sampler = _PeakSampler()
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    started = time.perf_counter()
    try:
        yield stage
    finally:
        stage.seconds = round(time.perf_counter() - started, 2)
        sampler.stop()
        thread.join()
        stage.peak_rss_mb = round(sampler.peak / 2**20, 1)
        stages.append(stage)
        print(f"  {name:<22} {stage.seconds:>8.1f} s  peak {stage.peak_rss_mb:>8.0f} MB  {_fmt(stage.extra)}", flush=True)


def _fmt(extra: dict) -> str:
    return "  ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in extra.items())


def _generated(args: argparse.Namespace, stages: list[Stage]) -> Path:
    from citizen_view.generate import generate

    data = Path(args.workdir) / f"{args.country.lower()}_{args.persons}_{args.seed}"
    if args.reuse and (data / "sources.yaml").is_file():
        print(f"  reusing extracts in {data}")
        return data
    with measure(stages, "generate") as st:
        report = generate(data, persons=args.persons, seed=args.seed, country=args.country)
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
                print(f"    {s.name:<12} {report.rows_in:>10,} rows in {report.seconds:6.1f} s "
                      f"({report.rows_rejected:,} rejected)", flush=True)  # fmt: skip
        st.extra = {"rows": total_rows}
    st.extra["rows_per_s"] = int(total_rows / max(st.seconds, 1e-9))


def bench_ingest(args: argparse.Namespace) -> dict:
    stages: list[Stage] = []
    print(f"bench ingest: {args.persons:,} persons, seed {args.seed}, {args.country}")
    data = _generated(args, stages)
    _ingest(data, Path(args.workdir) / f"bench_ingest_{args.persons}.duckdb", stages)
    return {"stages": [asdict(s) for s in stages]}


def bench_link(args: argparse.Namespace) -> dict:
    from citizen_view.contract import load_sources
    from citizen_view.linkage.evaluate import evaluate_links, load_truth
    from citizen_view.linkage.golden import build_citizen
    from citizen_view.linkage.records import build_source_records
    from citizen_view.linkage.steps import link_citizens, score_pairs, train_and_store
    from citizen_view.warehouse import connect

    stages: list[Stage] = []
    print(f"bench link: {args.persons:,} persons, seed {args.seed}, {args.country}")
    data = _generated(args, stages)
    warehouse = Path(args.workdir) / f"bench_link_{args.persons}.duckdb"
    if not (args.reuse and warehouse.is_file()):
        _ingest(data, warehouse, stages)
    sources = load_sources(data / "sources.yaml")
    with connect(warehouse) as con:
        for table in ("citizen_source_link", "citizen", "citizen_id_history"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        with measure(stages, "source_records") as st:
            st.extra = {"records": build_source_records(con, [s.name for s in sources.sources])}
        with measure(stages, "train model") as st:
            trained, _ = train_and_store(con, warehouse)
            st.extra = {"fields": len(trained.fields_used)}
        with measure(stages, "score pairs") as st:
            edges = score_pairs(con)
            st.extra = {"pairs_kept": edges.pairs_kept, "above_threshold": edges.links_above_threshold,
                        "threshold": edges.threshold}  # fmt: skip
        with measure(stages, "cluster + stable IDs") as st:
            link = link_citizens(con, run_id="bench")
            st.extra = {"citizens": link.citizens, "merges_refused": link.merges_refused}
        with measure(stages, "golden record") as st:
            st.extra = {"citizens": build_citizen(con, sources)}
        links = con.sql("SELECT source, source_record_id, citizen_id FROM citizen_source_link").pl()
    figures = evaluate_links(links, load_truth(data / "truth"))
    linkage_seconds = sum(s.seconds for s in stages if s.name not in ("generate", "ingest (all sources)"))
    linkage_peak = max(s.peak_rss_mb for s in stages if s.name not in ("generate", "ingest (all sources)"))
    print(f"  linkage total {linkage_seconds:.1f} s, peak {linkage_peak:.0f} MB")
    print(f"  precision {figures['precision']:.5f}  recall {figures['recall']:.5f}  F1 {figures['f1']:.5f}")
    return {"stages": [asdict(s) for s in stages], "linkage_seconds": linkage_seconds,
            "linkage_peak_rss_mb": linkage_peak, "evaluation": figures}  # fmt: skip


def main(args: argparse.Namespace) -> int:
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    result = {"ingest": bench_ingest, "link": bench_link}[args.stage](args)
    result |= {"persons": args.persons, "seed": args.seed, "country": args.country, "cpu_count": psutil.cpu_count(),
               "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    out = Path(args.workdir) / f"bench_{args.stage}_{args.persons}.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"  report: {out}")
    return 0
