"""`bench` counts CPU time beside wall time, without the memory sampler's own: the figure that stays fair on a
machine others load."""

from __future__ import annotations

import time

from citizen_view_bench import bench


def test_a_stage_counts_its_own_work_and_not_the_samplers():
    stages: list[bench.Stage] = []
    before = bench._FINISHED_SAMPLER_CPU[0]
    with bench.measure(stages, "waiting"):
        time.sleep(3)
    sampler_cpu = bench._FINISHED_SAMPLER_CPU[0] - before
    # the sampler spent CPU (about 150 samples of /proc) that the stage does not count
    assert stages[0].cpu_seconds <= 0.01 < sampler_cpu

    with bench.measure(stages, "working") as stage:
        started = time.thread_time()
        total = sum(i * i for i in range(3_000_000))
        worked = time.thread_time() - started
        stage.extra = {"total": total}
    assert worked > 0.05
    assert abs(stages[1].cpu_seconds - worked) <= 0.02 + 0.1 * worked
