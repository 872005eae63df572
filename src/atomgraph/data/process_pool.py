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
) -> Iterator[Any]:
    """``function(*args)`` of every job ``(function, *args)``, each run in one of ``workers`` processes
    (each set up by ``initializer(*initargs)``), the results in the jobs' order. ``start``: how the
    processes start -- ``"spawn"`` (a fresh interpreter: imports and set-up again, seconds) or ``"fork"``
    (a copy of this process, in milliseconds, ``initargs`` passed without pickling; on Linux, for children
    that never touch CUDA). Jobs are read lazily: at most ``in_flight`` (default two per worker) are
    submitted and not yet handed back, so memory does not grow with their number. An error a job raises
    is raised here, at its turn; when the caller stops early (or an error ends it), the jobs not started
    are cancelled."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    in_flight = 2 * workers if in_flight is None else in_flight
    context = multiprocessing.get_context(start)
    with ProcessPoolExecutor(workers, context, initializer=initializer, initargs=initargs) as pool:
        pending: deque = deque()
        try:
            for function, *args in jobs:
                pending.append(pool.submit(function, *args))
                while len(pending) >= max(in_flight, 1):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
