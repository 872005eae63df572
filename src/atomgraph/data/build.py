"""Turn rows of structures into a :class:`GraphDataset`: progress bar, bad rows skipped and reported."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data
from tqdm.auto import tqdm

from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.graphs.spec import GraphSpec

log = logging.getLogger(__name__)

Row = tuple[str, Callable[[], Atoms], np.ndarray]
"""(row id, a function returning the structure (may raise), targets [T] with NaN for missing)."""


def graph_with_labels(atoms: Atoms, settings: GraphSpec, y: np.ndarray) -> Data:
    """The graph of ``atoms`` with ``y`` [1, T]; per-atom forces and energy/stress are kept when present."""
    graph = settings.build(atoms)
    dtype = torch.get_default_dtype()
    graph.y = torch.tensor(np.asarray(y, dtype=np.float64).reshape(1, -1), dtype=dtype)
    if "forces" in atoms.arrays:
        graph.forces = torch.tensor(atoms.arrays["forces"], dtype=dtype)
    if "stress" in atoms.info:
        graph.stress = torch.tensor(np.asarray(atoms.info["stress"]).reshape(1, 3, 3), dtype=dtype)
    return graph


def build_dataset(
    rows: Iterable[Row],
    settings: GraphSpec,
    meta: DatasetMeta,
    total: int | None = None,
    progress: bool = True,
) -> GraphDataset:
    """Build every row's graph; a row that raises is recorded in ``meta.skipped`` and the rest go on."""
    graphs: list[Data] = []
    ids: list[str] = []
    smiles: list[str] = []
    for index, (row_id, make_atoms, y) in enumerate(
        tqdm(rows, total=total, desc=f"processing {meta.name}", disable=not progress, mininterval=1.0)
    ):
        try:
            atoms = make_atoms()
            graph = graph_with_labels(atoms, settings, y)
        except (ValueError, RuntimeError, KeyError) as error:
            meta.skipped.append({"index": index, "id": row_id, "error": str(error)})
            continue
        graphs.append(graph)
        ids.append(row_id)
        smiles.append(str(atoms.info.get("smiles", "")))
    if meta.skipped:
        log.warning("%s: skipped %d bad rows (first: %s)", meta.name, len(meta.skipped), meta.skipped[0])
    meta.ids = ids
    meta.smiles = smiles
    return GraphDataset(graphs, meta)


def cache_dir(explicit: str | Path | None = None) -> Path:
    """Processed-data cache: the argument, else $ATOMGRAPH_CACHE, else ~/.cache/atomgraph."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("ATOMGRAPH_CACHE", Path.home() / ".cache" / "atomgraph"))


def load_or_build(path: Path, build: Callable[[], GraphDataset]) -> GraphDataset:
    """Read the processed dataset at ``path`` or build and save it there (processing happens once)."""
    if path.exists():
        return GraphDataset.load_file(path)
    dataset = build()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: ranks may build at once
    dataset.save(tmp)
    tmp.replace(path)
    return dataset
