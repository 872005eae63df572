"""The best k rows of a predictions file, kept in bounded memory.

A library of millions of rows is too large to sort in memory; :func:`top_k_rows` streams the written
predictions in chunks and keeps only the current best ``k`` (memory O(k + chunk), whatever the file's
length). Run on the finished output, it is also right after a killed and resumed ``predict``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: rows read from the predictions file at a time
CHUNK = 50_000


def top_k_rows(predictions: str | Path, k: int, column: str, descending: bool) -> pd.DataFrame:
    """The ``k`` rows of a predictions CSV with the largest (``descending``) or smallest ``column``,
    best first, with a ``rank`` column (ties keep file order). Rows without a value (errors) never rank."""
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    best: pd.DataFrame | None = None
    for chunk in pd.read_csv(predictions, chunksize=CHUNK, keep_default_na=False, na_values=[""]):
        if column not in chunk:
            raise ValueError(f"{predictions}: no column {column!r} to rank by; it has {list(chunk.columns)}")
        chunk = chunk[pd.to_numeric(chunk[column], errors="coerce").notna()]
        merged = chunk if best is None else pd.concat([best, chunk])
        best = merged.sort_values(column, ascending=not descending, kind="stable").head(k)
    best = best if best is not None else pd.DataFrame()
    best = best.reset_index(drop=True)
    best.insert(0, "rank", range(1, len(best) + 1))
    return best


def top_k_path(output: str | Path, k: int) -> Path:
    """Where ``predict --top-k`` writes the best rows: ``predictions.csv`` -> ``predictions.top100.csv``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.top{k}{output.suffix or '.csv'}")
