"""Structure texts -> graphs in parallel: a ``multiprocessing`` pool over chunks of CIF/POSCAR texts.

Workers parse and validate each text (:func:`parse_structure`), build its graph with the given
:class:`GraphSpec` and send it back as numpy arrays (cheap to pickle, no shared-memory file
handles); the parent turns them into ``Data`` again with :func:`arrays_to_graph`. A structure that
fails comes back as its error message, so one bad file never stops the others.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from atomgraph.apps.crystals.cif_archive import parse_structure
from atomgraph.graphs.arrays import (
    arrays_to_graph,
    default_dtype_name,
    default_workers,
    graph_to_arrays,
    init_graph_worker,
)
from atomgraph.graphs.spec import GraphSpec

__all__ = ["arrays_to_graph", "graph_to_arrays", "graphs_from_texts"]

CHUNK_SIZE = 64
"""Texts per task sent to a worker."""


def _process_chunk(
    chunk: list[tuple[int, str, str, str]], settings: GraphSpec, min_distance: float
) -> list[tuple[int, dict[str, np.ndarray] | str]]:
    """Parse and build the graph of each ``(row, source, format, text)``; a failure becomes its message."""
    out: list[tuple[int, dict[str, np.ndarray] | str]] = []
    for row, source, fmt, text in chunk:
        try:
            atoms = parse_structure(text, fmt, source, min_distance)
            out.append((row, graph_to_arrays(settings.build(atoms))))
        except Exception as error:  # one bad file must not stop the others (or the pool)
            message = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            out.append((row, message))
    return out


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def graphs_from_texts(
    items: Iterable[tuple[int, str, str, str]],
    settings: GraphSpec,
    workers: int | None = None,
    total: int | None = None,
    progress: bool = True,
    min_distance: float = 0.5,
    chunk_size: int | None = None,
    desc: str = "crystals",
) -> dict[int, dict[str, np.ndarray] | str]:
    """Graphs (as arrays) of ``(row, source, format, text)`` items, keyed by row; failures as messages.

    With ``workers > 1`` (default: every core) chunks of ``chunk_size`` (default :data:`CHUNK_SIZE`)
    texts go to a ``multiprocessing`` pool (forkserver start: safe with torch's threads) while the
    parent keeps reading; one process otherwise, and always when everything fits in one chunk.
    """
    workers = default_workers() if workers is None else max(int(workers), 1)
    chunk_size = chunk_size or CHUNK_SIZE
    task = functools.partial(_process_chunk, settings=settings, min_distance=min_distance)
    chunks = _chunks(items, chunk_size)
    results: dict[int, dict[str, np.ndarray] | str] = {}
    serial = workers == 1 or (total is not None and total <= chunk_size)
    bar = tqdm(total=total, desc=f"processing {desc}", disable=not progress, mininterval=1.0, unit="cif")
    with bar:
        if serial:
            for chunk in chunks:
                results.update(task(chunk))
                bar.update(len(chunk))
            return results
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["atomgraph.apps.crystals.parallel_graphs"])
        dtype = default_dtype_name()
        with context.Pool(workers, initializer=init_graph_worker, initargs=(dtype,)) as pool:
            for done in pool.imap(task, chunks):
                results.update(done)
                bar.update(len(done))
    return results
