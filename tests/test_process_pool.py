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
