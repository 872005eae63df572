"""Molecules from a CSV of SMILES and target columns (MoleculeNet, chemprop-style files)."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch_geometric.data import Data

from atomgraph.data.build import build_dataset, cache_dir, graph_with_labels, load_or_build
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.data.graph_store import GraphStore, StoreInput, StoreRow, load_or_build_store
from atomgraph.graphs.spec import GraphSpec
from atomgraph.targets import targets_from_columns

log = logging.getLogger(__name__)


def read_table(path: str | Path, smiles_column: str, target_columns: Sequence[str]) -> pd.DataFrame:
    """The CSV with the SMILES column and the targets (numeric; blanks become NaN), checked.

    A label that is present but not a finite number ("abc", "n/a?", "inf") becomes NaN too, but is not
    silent: it is logged (count and first cells) and listed in ``table.attrs["bad_labels"]`` as
    ``{"id": "<file>:<line>", "index": row, "column", "value"}``.
    """
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read CSV ({error})") from error
    missing = [c for c in [smiles_column, *target_columns] if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; it has {list(table.columns)}")
    bad_labels = []
    for column in target_columns:
        raw = table[column]
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        present = raw.notna() & (raw.astype(str).str.strip() != "")
        for row in np.flatnonzero(present & ~np.isfinite(values)):
            bad_labels.append(
                {
                    "id": f"{Path(path).name}:{row + 2}",
                    "index": int(row),
                    "column": column,
                    "value": str(raw.iloc[row]),
                }
            )
        table[column] = values.where(np.isfinite(values))
    bad_labels.sort(key=lambda bad: bad["index"])
    if bad_labels:
        shown = ", ".join(f"{bad['id']} {bad['column']}={bad['value']!r}" for bad in bad_labels[:5])
        log.warning(
            "%s: %d target value(s) are not numbers and are treated as missing: %s%s",
            path,
            len(bad_labels),
            shown,
            ", ..." if len(bad_labels) > 5 else "",
        )
    table.attrs["bad_labels"] = bad_labels
    return table


def load_csv(
    path: str | Path,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] = (),
    settings: GraphSpec | None = None,
    kind: str = "regression",
    extensive: Sequence[bool] | None = None,
    units: Sequence[str] | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> GraphDataset:
    """Graphs for every parsable SMILES; bad SMILES rows are skipped and listed in ``meta.skipped``.

    Bond graphs by default; radius graphs embed a 3D conformer (ETKDG + MMFF, seed 0) per molecule.
    Targets are intensive unless ``extensive`` says otherwise; ``kind`` is "regression" or
    "classification" (labels 0/1, blanks missing).
    """
    settings = settings or GraphSpec(kind="bond", explicit_hydrogens=False)
    if not target_columns:
        raise ValueError(f"{path}: name at least one target column")
    table = read_table(path, smiles_column, target_columns)
    info = targets_from_columns(
        list(target_columns), list(units) if units else None, list(extensive) if extensive else None, kind
    )
    file = _cache_path(path, smiles_column, target_columns, settings, cache, ".pt")

    def rows():
        values = table[list(target_columns)].to_numpy(dtype=np.float64)
        for row, smiles in enumerate(table[smiles_column].astype(str)):
            yield (
                f"{Path(path).name}:{row + 2}",
                functools.partial(settings.structure_from_smiles, smiles),
                values[row],
            )

    def build() -> GraphDataset:
        meta = _meta(path, info, settings, table)
        return build_dataset(rows(), settings, meta, total=len(table), progress=progress)

    dataset = load_or_build(file, build)
    dataset.meta.targets = info  # kind/units/extensive are not in the cache key: never trust cached ones
    return dataset


def _cache_path(
    path: str | Path,
    smiles_column: str,
    target_columns: Sequence[str],
    settings: GraphSpec,
    cache: str | Path | None,
    suffix: str,
) -> Path:
    """The processed form's path (``.pt`` in memory, ``.store`` on disk): file content, columns, spec."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    columns_key = hashlib.sha256("|".join([smiles_column, *target_columns]).encode()).hexdigest()[:8]
    return cache_dir(cache) / f"csv-{Path(path).stem}-{digest}-{columns_key}-{settings.key()}{suffix}"


def _store_graph(payload: tuple[str, np.ndarray], settings: GraphSpec) -> Data:
    """The graph of one SMILES row (SMILES, targets); runs in a store-building worker."""
    smiles, targets = payload
    return graph_with_labels(settings.structure_from_smiles(smiles), settings, targets)


def csv_store(
    path: str | Path,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] = (),
    settings: GraphSpec | None = None,
    kind: str = "regression",
    cache: str | Path | None = None,
    progress: bool = True,
    shard_size: int = 10_000,
    workers: int = 1,
) -> GraphStore:
    """The molecules of a SMILES CSV as an on-disk graph store (the rows, order and graphs of
    :func:`load_csv`), built once beside its in-memory cache."""
    settings = settings or GraphSpec(kind="bond", explicit_hydrogens=False)
    if not target_columns:
        raise ValueError(f"{path}: name at least one target column")
    info = targets_from_columns(list(target_columns), None, None, kind)
    directory = _cache_path(path, smiles_column, target_columns, settings, cache, ".store")

    def make_input() -> StoreInput:
        table = read_table(path, smiles_column, target_columns)
        values = table[list(target_columns)].to_numpy(dtype=np.float64)
        rows = (
            StoreRow(f"{Path(path).name}:{row + 2}", smiles, (smiles, values[row]))
            for row, smiles in enumerate(table[smiles_column].astype(str))
        )
        build = functools.partial(_store_graph, settings=settings)
        return StoreInput(rows, build, _meta(path, info, settings, table), total=len(table))

    store = load_or_build_store(directory, make_input, shard_size, workers, progress)
    store.meta.targets = info  # as load_csv: kind/units are not part of the key
    return store


def _meta(path: str | Path, info, settings: GraphSpec, table: pd.DataFrame) -> DatasetMeta:
    meta = DatasetMeta(Path(path).stem, info, settings={"graph": settings.to_dict(), "source": str(path)})
    meta.settings["bad_labels"] = table.attrs["bad_labels"]  # cells with non-numeric labels, now NaN
    return meta
