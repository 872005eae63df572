"""Jobs in worker processes (atomgraph.data.process_pool): results in the jobs' order, and a worker
process that dies costs only the job it died on."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from atomgraph.data.process_pool import in_worker_processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux")


def _nothing() -> None:
    pass


def _square(k: int, deadly: int, flag: str | None) -> int:
    """k², except that the process running job ``deadly`` kills itself (every time, or with ``flag``
    only the first time: the file is made then)."""
    if k == deadly and (flag is None or not os.path.exists(flag)):
        if flag is not None:
            Path(flag).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return k * k


def _jobs(deadly: int, flag: str | None = None, count: int = 12) -> list[tuple]:
    return [(_square, k, deadly, flag) for k in range(count)]


def test_results_come_in_the_jobs_order():
    out = list(in_worker_processes(iter(_jobs(-1)), 2, _nothing, (), start="fork"))
    assert out == [k * k for k in range(12)]


def test_a_worker_that_dies_raises_without_a_fallback():
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        list(in_worker_processes(iter(_jobs(5)), 2, _nothing, (), start="fork"))


@pytest.mark.parametrize("deadly", [0, 5, 11])
def test_a_job_that_kills_its_process_gets_the_fallback_and_the_others_their_results(deadly):
    died = []
    out = list(
        in_worker_processes(
            iter(_jobs(deadly)), 2, _nothing, (), start="fork", died=lambda job: died.append(job) or "died"
        )
    )
    assert out == ["died" if k == deadly else k * k for k in range(12)]
    assert [job[1] for job in died] == [deadly]


def test_a_job_whose_process_died_once_is_run_again_alone(tmp_path):
    flag = str(tmp_path / "died_once")
    out = list(
        in_worker_processes(iter(_jobs(3, flag)), 2, _nothing, (), start="fork", died=lambda job: "died")
    )
    assert out == [k * k for k in range(12)] and os.path.exists(flag)


def _quick(k: int, deadly: int, broken: int) -> int:
    """k², except that job ``deadly`` kills its process and job ``broken`` raises."""
    if k == deadly:
        os.kill(os.getpid(), signal.SIGKILL)
    if k == broken:
        raise ValueError(f"job {k} is broken")
    return k * k


def test_a_worker_that_dies_while_the_caller_writes_costs_only_its_job():
    """The death happens between two results (the caller busy with the first): the pool is broken when
    the next job comes, and that job is not a death."""
    import time

    out = []
    jobs = iter([(_quick, k, 2, -1) for k in range(12)])
    for result in in_worker_processes(jobs, 2, _nothing, (), start="fork", died=lambda job: "died"):
        out.append(result)
        if len(out) == 1:
            time.sleep(0.5)  # job 2 runs and kills its worker meanwhile
    assert out == ["died" if k == 2 else k * k for k in range(12)]


def test_an_error_after_a_death_is_raised_at_its_turn():
    """Job 2 raises while job 1's death breaks the pool: job 1's fallback still comes first."""
    out = []
    jobs = iter([(_quick, k, 1, 2) for k in range(6)])
    with pytest.raises(ValueError, match="job 2 is broken"):
        for result in in_worker_processes(jobs, 2, _nothing, (), start="fork", died=lambda job: "died"):
            out.append(result)
    assert out == [0, "died"]


def _failing_set_up() -> None:
    raise RuntimeError("the set-up failed")


def test_a_failing_set_up_is_an_error_not_a_death_of_every_job():
    jobs = iter([(_quick, k, -1, -1) for k in range(4)])
    with pytest.raises(RuntimeError, match="the set-up failed"):
        list(in_worker_processes(jobs, 2, _failing_set_up, (), start="fork", died=lambda job: "died"))


@pytest.mark.parametrize(
    "files, quota",
    [
        ({"cpu.max": "200000 100000\n"}, 2),
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 cores: two processes
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_the_worker_count_keeps_to_the_container_s_cpu_quota(tmp_path, files, quota):
    from atomgraph.graphs.arrays import cpu_quota, default_workers

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpu_quota(tmp_path) == quota
    cores = len(os.sched_getaffinity(0))
    assert default_workers(tmp_path) == (cores if quota is None else min(cores, quota))


def test_a_death_no_job_explains_leaves_one_worker_less(tmp_path, caplog):
    """Job 3's process dies once (as the system kills a process when the workers together run out of
    memory) and its job runs alone fine: the pool goes on with one worker less. A job that kills its
    process every time explains its death: the pool keeps its size."""
    import logging

    flag = str(tmp_path / "died_once")
    with caplog.at_level(logging.WARNING, logger="atomgraph.data.process_pool"):
        out = list(in_worker_processes(iter(_jobs(3, flag)), 2, _nothing, (), start="fork", died=lambda j: 0))
    assert out == [k * k for k in range(12)]
    assert "1 worker(s) from now on" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="atomgraph.data.process_pool"):
        out = list(in_worker_processes(iter(_jobs(3)), 2, _nothing, (), start="fork", died=lambda j: "died"))
    assert out == ["died" if k == 3 else k * k for k in range(12)]
    assert "a worker process died" in caplog.text and "from now on" not in caplog.text
