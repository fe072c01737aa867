"""`bench pipeline` meters each Dagster step from the run's own events: its wall time, its CPU time and its peak
memory, in a real in-process run."""

from __future__ import annotations

import time

from dagster import DagsterInstance, Definitions, asset, define_asset_job, in_process_executor

from citizen_view_bench.bench import _PeakSampler, work_cpu
from citizen_view_bench.steps import StepMeter, phase


@asset
def busy() -> int:
    """Works about 0.3 s of CPU."""
    started, total = time.thread_time(), 0
    while time.thread_time() - started < 0.3:
        total += sum(i * i for i in range(10_000))
    return 1


@asset(deps=[busy])
def big() -> None:
    """Holds 300 MB for a second."""
    block = bytearray(300 * 2**20)
    for i in range(0, len(block), 4096):  # touch every page, so it is resident
        block[i] = 1
    time.sleep(1.0)
    del block


def test_each_step_gets_its_own_time_cpu_and_peak():
    meter = StepMeter(_PeakSampler(), work_cpu)
    defs = Definitions(
        assets=[busy, big],
        jobs=[define_asset_job("both", selection=[busy, big])],
        loggers={"step_meter": meter.listener()},
        executor=in_process_executor,
    )
    with meter:
        result = defs.resolve_job_def("both").execute_in_process(
            instance=DagsterInstance.ephemeral(), run_config={"loggers": {"step_meter": {"config": {}}}}
        )
    assert result.success
    steps = {s.step: s for s in meter.steps}
    assert set(steps) == {"busy", "big"} and {s.status for s in meter.steps} == {"ok"}
    assert steps["busy"].cpu_seconds >= 0.3 and steps["busy"].seconds >= steps["busy"].cpu_seconds * 0.5
    # sleeping is not work: the second asleep is in the step's wall time, not its CPU (touching 300 MB
    # of pages costs CPU of its own, more on some machines than on others, so it is not compared with busy)
    assert steps["big"].cpu_seconds <= steps["big"].seconds - 0.7
    assert steps["big"].peak_rss_mb >= steps["busy"].peak_rss_mb + 250  # the 300 MB block was seen in its step only
    assert steps["big"].seconds >= 1.0


def test_steps_fall_into_the_phases_of_a_run():
    assets = {"source__tax", "match_edges", "open_data__bundle", "serving__view"}
    assert phase("source__tax", assets) == "ingest"
    assert phase("match_edges", assets) == "linkage"
    assert phase("open_data__bundle", assets) == "open data"
    assert phase("serving__view", assets) == "served view"
    assert phase("open_data__bundle_expectation_suite", assets) == "gates (asset checks)"
