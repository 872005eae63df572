"""Turn rows of structures into a :class:`GraphDataset`: progress bar, bad rows skipped and reported."""

from __future__ import annotations

import glob
import logging
import os
import time
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


#: ``atoms.arrays`` key of node-level labels [n, K] (one row per atom, the columns of the dataset's
#: ``DatasetMeta.node_targets``): kept as ``graph.y_node``
NODE_TARGETS = "node_targets"


def graph_with_labels(atoms: Atoms, settings: GraphSpec, y: np.ndarray) -> Data:
    """The graph of ``atoms`` with ``y`` [1, T]; per-atom forces, node-level labels (``y_node`` [n, K]
    from ``atoms.arrays["node_targets"]``) and energy/stress are kept when present."""
    graph = settings.build(atoms)
    dtype = torch.get_default_dtype()
    graph.y = torch.tensor(np.asarray(y, dtype=np.float64).reshape(1, -1), dtype=dtype)
    if NODE_TARGETS in atoms.arrays:
        labels = np.asarray(atoms.arrays[NODE_TARGETS], dtype=np.float64).reshape(len(atoms), -1)
        if graph.num_nodes != len(atoms):
            raise ValueError(
                f"the graph has {graph.num_nodes} nodes for {len(atoms)} atoms: node-level labels need one "
                "node per atom, in order"
            )
        graph.y_node = torch.tensor(labels, dtype=dtype)
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


def load_or_build(
    path: Path, build: Callable[[], GraphDataset], dataset_type: type[GraphDataset] = GraphDataset
) -> GraphDataset:
    """Read the processed dataset at ``path`` (as ``dataset_type``) or build and save it there (processing
    happens once).

    The cache is derived data: a file that cannot be read (corrupt, truncated, empty, an older layout)
    is logged, deleted and rebuilt. The save writes a per-process temporary file, removed if the save
    fails; ones left by killed processes are removed at the next save.
    """
    if path.exists():
        try:
            return dataset_type.load_file(path)
        except ValueError as error:
            log.warning("%s; the cache is derived data: deleting it and rebuilding", error)
            path.unlink(missing_ok=True)
    dataset = build()
    _remove_stale_temp_files(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: ranks may build at once
    try:
        dataset.save(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return dataset


#: Seconds a dead process's temporary cache file must have been untouched before it is removed (a save
#: by a process on another host sharing the disk is alive though its pid is not, and keeps writing).
STALE_TEMP_SECONDS = 60.0


def _remove_stale_temp_files(path: Path) -> None:
    """Delete ``<name>.<pid>.tmp`` files beside ``path`` left by saves that were killed."""
    for tmp in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 1 : -len(".tmp")]
        if not pid.isdigit() or int(pid) == os.getpid() or _process_alive(int(pid)):
            continue
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                tmp.unlink()
                log.info("%s: removed a temporary cache file left by a killed process", tmp)
        except OSError:  # another process removed it first
            continue


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
