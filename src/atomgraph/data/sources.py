"""The generic datasets and splits, registered by name (see :mod:`atomgraph.data.registry`).

Datasets: ``qm9`` (qm9pack or the archive), ``csv`` (SMILES + label columns), ``structures`` (extended
XYZ or ASE database with per-structure labels). Splits: ``random``, ``scaffold``, ``file`` and
``predefined`` (the dataset's own train/test, validation drawn from the training rows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atomgraph.data.graph_dataset import GraphDataset
from atomgraph.data.graph_store import GraphStore
from atomgraph.data.registry import register_dataset, register_split
from atomgraph.data.splits import load_split, random_split, scaffold_split
from atomgraph.graphs.arrays import default_workers
from atomgraph.graphs.spec import GraphSpec


def existing_path(data: dict) -> Path:
    """``data.path`` as a Path; an error naming the key when it is unset or missing."""
    if data.get("path") is None:
        raise ValueError(f"data.path is required for dataset {data['dataset']!r}")
    path = Path(data["path"])
    if not path.exists():
        raise ValueError(f"data.path {str(path)!r} does not exist (dataset {data['dataset']!r})")
    return path


def _qm9(data: dict, spec: GraphSpec, progress: bool) -> GraphDataset:
    from atomgraph.data.qm9 import load_qm9

    return load_qm9(spec, data["subset"], data["split"]["seed"], data["source"], data["cache"], progress)


def _qm9_store(data: dict, spec: GraphSpec, progress: bool) -> GraphStore:
    from atomgraph.data.qm9 import qm9_store

    store = data["store"]
    return qm9_store(spec, data["subset"], data["split"]["seed"], data["source"], data["cache"], progress,
                     store["shard_size"], store_workers(data))  # fmt: skip


def store_workers(data: dict) -> int:
    """Processes that build an on-disk store (``data.store.workers``; None: every core)."""
    workers = data["store"]["workers"]
    return default_workers() if workers is None else max(int(workers), 1)


def _csv(data: dict, spec: GraphSpec, progress: bool) -> GraphDataset:
    from atomgraph.data.csv_dataset import load_csv

    path = existing_path(data)
    return load_csv(path, data["smiles_column"], data["targets"], spec, data["kind"], cache=data["cache"],
                    progress=progress)  # fmt: skip


def _csv_store(data: dict, spec: GraphSpec, progress: bool) -> GraphStore:
    from atomgraph.data.csv_dataset import csv_store

    path, shards, workers = existing_path(data), data["store"]["shard_size"], store_workers(data)
    columns = (data["smiles_column"], data["targets"])
    return csv_store(path, *columns, spec, data["kind"], data["cache"], progress, shards, workers)


def _structures(data: dict, spec: GraphSpec, progress: bool) -> GraphDataset:
    from atomgraph.data.structures_dataset import load_structures

    return load_structures(existing_path(data), spec, data["targets"], data["cache"], progress)


def _structures_store(data: dict, spec: GraphSpec, progress: bool) -> GraphStore:
    from atomgraph.data.structures_dataset import structures_store

    path, shards, workers = existing_path(data), data["store"]["shard_size"], store_workers(data)
    return structures_store(path, spec, data["targets"], data["cache"], progress, shards, workers)


register_dataset("qm9", _qm9, store=_qm9_store)
register_dataset("csv", _csv, store=_csv_store)
register_dataset("structures", _structures, store=_structures_store)


def _random(data: dict, dataset: GraphDataset) -> dict[str, np.ndarray]:
    return random_split(len(dataset), data["split"]["sizes"], data["split"]["seed"])


def _scaffold(data: dict, dataset: GraphDataset) -> dict[str, np.ndarray]:
    if not any(dataset.meta.smiles):
        raise ValueError("a scaffold split needs SMILES; this dataset has none")
    return scaffold_split(dataset.meta.smiles, data["split"]["sizes"], data["split"]["seed"])


def _file(data: dict, dataset: GraphDataset) -> dict[str, np.ndarray]:
    if not data["split"]["file"]:
        raise ValueError("data.split.kind is 'file' but data.split.file is not set")
    return load_split(data["split"]["file"], len(dataset))


def _predefined(data: dict, dataset: GraphDataset) -> dict[str, np.ndarray]:
    """The dataset's own train/test split (rMD17, mlearn files); validation rows are drawn from the
    training rows: ``sizes[1]`` of them (a fraction of the training rows if below 1, else a count)."""
    own = dataset.meta.settings.get("split")
    if not own:
        raise ValueError(f"dataset {dataset.meta.name!r} has no predefined split; use random or file")
    sizes, seed = data["split"]["sizes"], data["split"]["seed"]
    train, test = np.asarray(own["train"], dtype=np.int64), np.asarray(own["test"], dtype=np.int64)
    val = np.asarray(own.get("val", []), dtype=np.int64)
    if len(val) == 0:
        n_val = sizes[1] if sizes[1] >= 1 else round(sizes[1] * len(train))
        order = np.random.default_rng(seed).permutation(len(train))
        val, train = np.sort(train[order[: int(n_val)]]), np.sort(train[order[int(n_val) :]])
    return {"train": train, "val": val, "test": test}


register_split("random", _random)
register_split("scaffold", _scaffold)
register_split("file", _file)
register_split("predefined", _predefined)
