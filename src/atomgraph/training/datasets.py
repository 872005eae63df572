"""From the ``data`` section of a config to the graph spec, the dataset and its split.

:func:`resolve_run` checks everything that can be checked before any data is read: the dataset and
split kinds are registered, the graph spec resolves, the model's card accepts that graph and, for
potentials, promises positions, smoothness and conservative forces.
"""

from __future__ import annotations

import numpy as np

from atomgraph.data import GraphDataset
from atomgraph.data.graph_dataset import apply_reductions
from atomgraph.data.registry import dataset_entry, split_maker
from atomgraph.data.splits import check_split
from atomgraph.graphs.spec import GraphSpec, preset, resolve_graph_spec
from atomgraph.models import model_card
from atomgraph.training.config import ConfigError

TASK_KINDS = ("property", "potential")


def is_potential(task: dict) -> bool:
    """Whether the ``task`` section asks for a potential (energy + autograd forces and stress)."""
    kind = task.get("kind", "property")
    if kind not in TASK_KINDS:
        raise ConfigError(f"unknown task.kind {kind!r}; choose one of {TASK_KINDS}")
    return kind == "potential"


def graph_spec(config: dict) -> GraphSpec:
    """The graph spec a config asks for (``data.graph``; see :func:`resolve_graph_spec`), checked
    against the model's card. Raises :class:`ConfigError` naming the key."""
    data, name = config["data"], config["model"]["name"]
    try:
        entry = dataset_entry(data["dataset"])
        card = model_card(name)
        if entry.own_graph is not None:
            if data["graph"] is not None:
                raise ValueError(
                    f"data.graph: dataset {entry.name!r} builds its graphs from its own section "
                    f"(data.{entry.section}); remove data.graph"
                )
            spec = entry.own_graph(data)
        else:
            spec = resolve_graph_spec(data["graph"], preset(entry.default_graph or card.default_graph))
        card.check_graph(spec, name)
        if is_potential(config["task"]):
            card.check_potential(spec, name)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if "cutoff" in config["model"]:
        raise ConfigError(
            "model.cutoff: the cutoff belongs to the graph spec (data.graph.cutoff); a model that wants a "
            "smaller one takes model.interaction_cutoff"
        )
    return spec


def resolve_run(config: dict) -> GraphSpec:
    """Check a config before any data is read; returns its graph spec and records it in
    ``config["data"]["graph"]`` exactly as it will be built."""
    data = config["data"]
    split_kind = "file" if data["split"]["file"] else data["split"]["kind"]
    try:
        split_maker(split_kind)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    spec = graph_spec(config)
    if dataset_entry(data["dataset"]).own_graph is None:
        data["graph"] = spec.to_dict()
    return spec


def load_dataset(config: dict, spec: GraphSpec | None = None, progress: bool = True) -> GraphDataset:
    """The dataset named in ``config["data"]`` with the configured targets (in that order) and
    reductions; ``spec`` defaults to :func:`graph_spec`."""
    data = config["data"]
    spec = spec or graph_spec(config)
    entry = dataset_entry(data["dataset"])
    try:
        dataset = entry.load(data, spec, progress)
        dataset = select_targets(dataset, data["targets"])
        apply_reductions(dataset, data["reductions"])
    except ValueError as error:
        raise ConfigError(f"data ({data['dataset']}, {data.get('path') or 'no path'}): {error}") from error
    return dataset


def select_targets(dataset: GraphDataset, names: list[str]) -> GraphDataset:
    """Keep only the named target columns of ``y`` (in that order)."""
    info, columns = dataset.targets.select(names)
    dataset._data.y = dataset._data.y[:, columns]
    dataset.meta.targets = info
    return dataset


def make_split(config: dict, dataset: GraphDataset) -> dict[str, np.ndarray]:
    """Train/val/test row indices from ``data.split`` (a ``file`` always wins)."""
    data = config["data"]
    kind = "file" if data["split"]["file"] else data["split"]["kind"]
    try:
        result = split_maker(kind)(data, dataset)
    except ValueError as error:
        raise ConfigError(f"data.split ({kind}): {error}") from error
    check_split(result, len(dataset))
    return result


def train_transform(config: dict):
    """The dataset's training-time augmentation (None for most datasets)."""
    entry = dataset_entry(config["data"]["dataset"])
    return entry.train_transform(config["data"]) if entry.train_transform is not None else None
