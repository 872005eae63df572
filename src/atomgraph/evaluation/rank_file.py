"""Rank the rows of a CSV by one column in bounded memory (an external merge sort).

Screening a library writes its predictions row by row; ranking them all must not need them all in
memory. :func:`rank_csv` sorts chunks of rows into temporary run files beside the output and merges
them: memory is one chunk while sorting and one row per run while merging, whatever the file's length.
Cells are copied as text, so the ranked file shows exactly what was predicted.
"""

from __future__ import annotations

import csv
import heapq
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

#: rows sorted in memory at a time (one temporary run file each)
CHUNK = 100_000


def rank_csv(
    source: str | Path,
    output: str | Path,
    column: str,
    descending: bool,
    chunk_rows: int = CHUNK,
    exclude: str | None = None,
) -> tuple[int, int]:
    """Write the rows of ``source`` to ``output`` with a first column ``rank``: the rows with a number in
    ``column`` (and, with ``exclude``, nothing in that column), best first (largest if ``descending``; ties
    keep file order), ranked 1, 2, ...; then the others (errors, excluded rows), in file order, with an
    empty rank. Returns (ranked rows, other rows)."""
    source, output = Path(source), Path(output)
    header = list(pd.read_csv(source, nrows=0).columns)
    if column not in header:
        raise ValueError(f"{source}: no column {column!r} to rank by; it has {header}")
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        runs, ranked, others, position = [], 0, 0, 0
        for chunk in _chunks(source, chunk_rows):
            value = _rankable(chunk, column, exclude)
            keep = value.notna().to_numpy()
            key = (-value if descending else value).to_numpy()[keep]
            where = (position + np.arange(len(chunk)))[keep]
            position += len(chunk)
            ranked, others = ranked + int(keep.sum()), others + int((~keep).sum())
            if not keep.any():
                continue
            rows = chunk[keep].assign(_key=key, _position=where)
            path = scratch / f"run{len(runs):05d}.csv"
            rows.sort_values(["_key", "_position"], kind="stable").to_csv(path, index=False)
            runs.append(path)
        with open(output, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["rank", *header])
            merged = heapq.merge(*(_run_rows(path) for path in runs), key=lambda item: item[0])
            for rank, (_, row) in enumerate(merged, start=1):
                writer.writerow([rank, *row])
            for chunk in _chunks(source, chunk_rows):
                missing = _rankable(chunk, column, exclude).isna()
                for row in chunk[missing].itertuples(index=False):
                    writer.writerow(["", *row])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ranked, others


def _rankable(chunk: pd.DataFrame, column: str, exclude: str | None) -> pd.Series:
    """The values that rank: numbers in ``column``, NaN where there is none or ``exclude`` says why not."""
    value = pd.to_numeric(chunk[column], errors="coerce")
    return value.where(chunk[exclude] == "") if exclude is not None else value


def _chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The CSV in chunks of text cells (empty cells stay "")."""
    yield from pd.read_csv(path, chunksize=rows, dtype=str, keep_default_na=False)


def _run_rows(path: Path) -> Iterator[tuple[tuple[float, int], list[str]]]:
    """((sort key, file position), the row's cells) of a sorted run file."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            yield (float(row[-2]), int(row[-1])), row[:-2]
