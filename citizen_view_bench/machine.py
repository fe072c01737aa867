"""Which machine a benchmark ran on, and how fast it is at fixed work: so that figures from two machines (or from one
machine on two days) can be told apart from a change in the code.

The same code measured on two of this project's 2-core machines differed by nearly twofold (README, "Measured",
2026-12-04), and a ratio such as the incremental run's against the rebuild moved with it, because the two sides lean
on different parts of the machine. Every `bench` report therefore carries the machine's description and three
yardsticks, each the best of three timings of fixed work (lower is faster):

- `python_s`: pure Python arithmetic (the service's request handling, the pipeline's glue);
- `duckdb_s`: DuckDB on one thread, hashing and summing integers (scoring, clustering, every scan);
- `first_touch_s`: writing once to each page of 256 MB of fresh memory, i.e. the kernel's page faults and zeroing
  (what a cold incremental update pays for every block it reads; on a VM that hands idle memory back, the cost
  of touching memory varies most).
"""

from __future__ import annotations

import mmap
import os
import platform
import resource
import time
from collections.abc import Callable

import duckdb
import psutil

PYTHON_N = 2_000_000
DUCKDB_N = 20_000_000
TOUCH_BYTES = 256 * 2**20
ROUNDS = 3


def python_work(n: int = PYTHON_N) -> int:
    """Fixed pure-Python work, with a result known in advance (the tests check it)."""
    return sum(i * i % 7 for i in range(n))


def duckdb_work(n: int = DUCKDB_N) -> int:
    """Fixed work for DuckDB's engine on one thread (a fresh in-memory database)."""
    with duckdb.connect() as con:
        con.execute("SET threads = 1")
        return con.execute(f"SELECT sum((range * 2654435761) % 1000003)::BIGINT FROM range({n})").fetchall()[0][0]


def first_touch(size: int = TOUCH_BYTES) -> int:
    """Write one byte to each page of `size` bytes of fresh anonymous memory; returns the page faults it took."""
    page = mmap.PAGESIZE
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with mmap.mmap(-1, size) as block:
        for offset in range(0, size, page):
            block[offset] = 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _best(work: Callable[[], int]) -> tuple[float, int]:
    """The shortest of ROUNDS timings of `work`, and its result."""
    times, result = [], 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    """The machine (CPU model, cores this process may use, memory, kernel) and its yardsticks."""
    python_s, _ = _best(python_work)
    duckdb_s, _ = _best(duckdb_work)
    touch_s, faults = _best(first_touch)
    return {
        "cpu_model": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "yardstick": {
            "python_s": round(python_s, 4),
            "duckdb_s": round(duckdb_s, 4),
            "first_touch_s": round(touch_s, 4),
            "first_touch_faults": faults,
        },
    }


def summary(machine: dict) -> str:
    """One line for a bench's output."""
    y = machine["yardstick"]
    rate = y["first_touch_faults"] / max(y["first_touch_s"], 1e-9)
    return (
        f"machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['memory_gb']:.1f} GB; yardstick (best of "
        f"{ROUNDS}, lower is faster): Python {y['python_s']:.3f} s, DuckDB on 1 thread {y['duckdb_s']:.3f} s, first "
        f"touch of {TOUCH_BYTES // 2**20} MB {y['first_touch_s']:.3f} s ({rate:,.0f} page faults/s)"
    )
