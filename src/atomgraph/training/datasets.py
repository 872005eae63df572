"""From the ``data`` section of a config to a dataset, its graph settings and its split."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from atomgraph.data import GraphDataset, GraphSettings, load_csv, load_split, load_structures
from atomgraph.data.splits import check_split, random_split, scaffold_split
from atomgraph.models import model_class
from atomgraph.training.config import ConfigError


def graph_settings(config: dict) -> GraphSettings:
    """Graph settings: the config's, with the model's graph kind and cutoff filling what is unset."""
    graph = dict(config["data"]["graph"])
    cls = model_class(config["model"]["name"])
    if graph["kind"] is None:
        graph["kind"] = getattr(cls, "graph_kind", "radius")
    model_cutoff = config["model"].get("cutoff", inspect.signature(cls).parameters.get("cutoff"))
    if isinstance(model_cutoff, inspect.Parameter):
        model_cutoff = model_cutoff.default
    if graph["kind"] == "radius" and isinstance(model_cutoff, int | float) and model_cutoff > graph["cutoff"]:
        raise ConfigError(
            f"model cutoff {model_cutoff} Å exceeds the graph cutoff data.graph.cutoff={graph['cutoff']} Å"
        )
    return GraphSettings(**graph)


def load_dataset(config: dict, progress: bool = True) -> GraphDataset:
    """The dataset named in ``config["data"]`` with all its targets."""
    data = config["data"]
    settings = graph_settings(config)
    kind = data["dataset"]
    if kind == "qm9":
        from atomgraph.data.qm9 import load_qm9

        return load_qm9(
            settings, data["subset"], data["split"]["seed"], data["source"], data["cache"], progress
        )
    if data["path"] is None:
        raise ConfigError(f"data.path is required for dataset {kind!r}")
    if not Path(data["path"]).exists():
        raise ConfigError(f"data.path {data['path']!r} does not exist")
    if kind == "csv":
        return load_csv(
            data["path"],
            data["smiles_column"],
            data["targets"],
            settings,
            data["kind"],
            data["extensive"],
            cache=data["cache"],
            progress=progress,
        )
    if kind == "structures":
        return load_structures(data["path"], settings, data["targets"], data["cache"], progress)
    raise ConfigError(f"unknown data.dataset {kind!r}; choose qm9, csv or structures")


def select_targets(dataset: GraphDataset, names: list[str]) -> GraphDataset:
    """Keep only the named target columns of ``y`` (in that order)."""
    info, columns = dataset.targets.select(names)
    dataset._data.y = dataset._data.y[:, columns]
    dataset.meta.targets = info
    return dataset


def make_split(config: dict, dataset: GraphDataset) -> dict[str, np.ndarray]:
    split = config["data"]["split"]
    n = len(dataset)
    if split["kind"] == "file" or split["file"]:
        if not split["file"]:
            raise ConfigError("data.split.kind is 'file' but data.split.file is not set")
        return load_split(split["file"], n)
    if split["kind"] == "random":
        result = random_split(n, split["sizes"], split["seed"])
    elif split["kind"] == "scaffold":
        if not any(dataset.meta.smiles):
            raise ConfigError("a scaffold split needs SMILES; this dataset has none")
        result = scaffold_split(dataset.meta.smiles, split["sizes"], split["seed"])
    else:
        raise ConfigError(f"unknown data.split.kind {split['kind']!r}; choose random, scaffold or file")
    check_split(result, n)
    return result
