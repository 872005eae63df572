"""Jobs run in worker processes, their results in the jobs' order: how streaming prediction spreads its
chunks over the cores."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)
_END = object()


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
    the pool: every job it had not handed back loses its result. Without ``died`` that is raised
    (``BrokenProcessPool``). With it, a warning is logged and each of those jobs is run again alone, in a
    process of its own (``workers`` at a time); a job whose process dies again gets ``died(job)`` as its
    result, and the jobs after them go on in a new pool -- with one worker less when no job died alone (a
    process the system killed, e.g. when the workers together ran out of memory). A set-up that fails
    is then every job's error, raised at the first one's turn, not a death."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    in_flight = max(2 * workers if in_flight is None else in_flight, 1)
    context = multiprocessing.get_context(start)
    if died is not None:
        initializer, initargs = _set_up_or_keep_the_error, (initializer, *initargs)

    def pool_of(size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(size, context, initializer=initializer, initargs=initargs)

    def submit(pool: ProcessPoolExecutor, job: tuple):
        """The future of ``job`` in ``pool``, or None (with ``died``) when the pool has already broken."""
        try:
            return pool.submit(*job) if died is None else pool.submit(_after_set_up, *job)
        except BrokenProcessPool:
            if died is None:
                raise
            return None

    size = workers  # the pool's, one less after each death no job explains
    guilty: list[tuple] = []  # the jobs whose process died again, alone

    def each_alone(lost: list[tuple]) -> Iterator[Any]:
        """The results of ``lost``, in order, each job run in a process of its own, ``size`` at a
        time; ``died(job)`` for a job whose process dies again (called once its process is gone)."""
        for first in range(0, len(lost), size):
            group = lost[first : first + size]
            singles = [pool_of(1) for _ in group]
            futures = [submit(single, job) for single, job in zip(singles, group, strict=True)]
            for single in singles:
                single.shutdown(wait=True)
            for job, future in zip(group, futures, strict=True):
                error = future.exception() if future is not None else BrokenProcessPool()
                if isinstance(error, BrokenProcessPool):
                    guilty.append(job)
                    yield died(job)
                elif error is not None:
                    raise error
                else:
                    yield future.result()

    pool = pool_of(size)
    pending: deque = deque()  # (job, its future, or None: the pool had broken when it came), in order
    try:
        source = iter(jobs)
        while True:
            while len(pending) < in_flight and not (pending and pending[-1][1] is None):
                job = next(source, _END)
                if job is _END:
                    break
                pending.append((job, submit(pool, job)))
            if not pending:
                return
            future = pending[0][1]
            if future is not None:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    if died is None:
                        raise
                else:
                    pending.popleft()
                    yield result
                    continue
            # the pool broke: a worker died
            pool.shutdown(wait=True, cancel_futures=True)
            lost = []  # the jobs that may have been running when it died, at the head of the line
            while pending and _lost(pending[0][1]):
                lost.append(pending.popleft()[0])
            log.warning(
                "a worker process died (killed by the system, e.g. for memory, or a crash in native code); "
                "its %d job(s) in flight run again, each alone",
                len(lost),
            )
            before = len(guilty)
            yield from each_alone(lost)
            if len(guilty) == before and size > 1:  # no job killed its process alone: the system did
                size -= 1
                log.warning("no job killed its worker alone (memory?): %d worker(s) from now on", size)
            pool = pool_of(size)
            pending = deque((job, f if _completed(f) else submit(pool, job)) for job, f in pending)
    finally:
        for _, future in pending:
            if future is not None:
                future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _completed(future) -> bool:
    """Whether ``future`` (None: never submitted) finished with a result."""
    return future is not None and future.done() and not future.cancelled() and future.exception() is None


def _lost(future) -> bool:
    """Whether ``future`` (None: never submitted) lost its result to a broken pool."""
    from concurrent.futures.process import BrokenProcessPool

    return (
        future is not None
        and future.done()
        and not future.cancelled()
        and isinstance(future.exception(), BrokenProcessPool)
    )


#: in a worker process: the error its set-up raised (see _set_up_or_keep_the_error)
_SET_UP_ERROR: list[BaseException] = []


def _set_up_or_keep_the_error(initializer: Callable[..., None], *initargs) -> None:
    """A worker's set-up whose error is kept for its jobs to raise: a failing initializer would
    otherwise end the process, which the pool reports as a death."""
    try:
        initializer(*initargs)
    except Exception as error:
        _SET_UP_ERROR.append(error)


def _after_set_up(function: Callable[..., Any], *args) -> Any:
    """``function(*args)``, or the error the worker's set-up raised."""
    if _SET_UP_ERROR:
        raise _SET_UP_ERROR[0]
    return function(*args)
