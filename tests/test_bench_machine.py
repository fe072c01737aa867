"""The machine a bench ran on: its description and yardsticks, so that figures from two machines can be compared."""

from __future__ import annotations

import os

import numpy as np

from citizen_view_bench import machine


def test_the_yardsticks_do_their_fixed_work():
    assert machine.python_work(7_000) == 14 * 1_000  # i*i % 7 over one period of 7: 0+1+4+2+2+4+1
    n = 100_000
    expected = int(((np.arange(n, dtype=np.int64) * 2654435761) % 1000003).sum())
    assert machine.duckdb_work(n) == expected
    size = 16 * 2**20
    # one fault per page written, or one per huge page where the kernel hands those out unasked (THP "always")
    assert machine.first_touch(size) >= size // (2 * 2**20)


def test_the_description_names_the_machine_and_times_each_yardstick():
    described = machine.describe()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert described["cores"] == affinity and described["memory_gb"] > 0 and described["cpu_model"]
    y = described["yardstick"]
    assert all(y[k] > 0 for k in ("python_s", "duckdb_s", "first_touch_s", "first_touch_faults"))
    line = machine.summary(described)
    assert line.startswith("machine: ") and f"{described['cores']} cores" in line and "page faults/s" in line
