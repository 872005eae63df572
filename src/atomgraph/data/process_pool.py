"""Jobs run in worker processes, their results in the jobs' order: how streaming prediction spreads its
chunks over the cores."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any


def in_worker_processes(
    jobs: Iterator[tuple],
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple,
    in_flight: int | None = None,
    start: str = "spawn",
    died: Callable[[tuple], Any] | None = None,
) -> Iterator[Any]:
    """``function(*args)`` of every job ``(function, *args)``, each run in one of ``workers`` processes
    (each set up by ``initializer(*initargs)``), the results in the jobs' order. ``start``: how the
    processes start -- ``"spawn"`` (a fresh interpreter: imports and set-up again, seconds) or ``"fork"``
    (a copy of this process, in milliseconds, ``initargs`` passed without pickling; on Linux, for children
    that never touch CUDA). Jobs are read lazily: at most ``in_flight`` (default two per worker) are
    submitted and not yet handed back, so memory does not grow with their number. An error a job raises
    is raised here, at its turn; when the caller stops early (or an error ends it), the jobs not started
    are cancelled.

    A worker process that dies (killed by the system, e.g. for memory, or a crash in native code) breaks
    the pool, and every job not yet handed back loses its process. Without ``died`` that is raised
    (``BrokenProcessPool``). With it, each of those jobs is run again alone, in a fresh process; a job
    whose process dies again gets ``died(job)`` as its result, and the others go on in a new pool."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    in_flight = 2 * workers if in_flight is None else in_flight
    context = multiprocessing.get_context(start)

    def pool_of(size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(size, context, initializer=initializer, initargs=initargs)

    def alone(job: tuple) -> Any:
        """``job`` run once more in a process of its own: its result, or ``died(job)``."""
        with pool_of(1) as single:
            try:
                return single.submit(*job).result()
            except BrokenProcessPool:
                return died(job)

    pool = pool_of(workers)
    pending: deque = deque()  # (job, future), in the jobs' order
    try:
        source = iter(jobs)
        while True:
            while len(pending) < max(in_flight, 1):
                job = next(source, None)
                if job is None:
                    break
                pending.append((job, pool.submit(*job)))
            if not pending:
                return
            job, future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool:
                if died is None:
                    raise
                pool.shutdown(wait=True, cancel_futures=True)
                # this job and those after it that the break cost their result, again one by one
                redone = [alone(job)]
                while pending and not _completed(pending[0][1]):
                    redone.append(alone(pending.popleft()[0]))
                pool = pool_of(workers)  # those done before the break keep their results
                pending = deque((job, _resubmitted(pool, job, future)) for job, future in pending)
                yield from redone
                continue
            yield result
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _completed(future) -> bool:
    """Whether ``future`` finished with a result (not an error, not cancelled)."""
    return future.done() and not future.cancelled() and future.exception() is None


def _resubmitted(pool, job: tuple, future):
    """``future`` when it holds a result, else ``job`` submitted to ``pool``."""
    return future if _completed(future) else pool.submit(*job)
