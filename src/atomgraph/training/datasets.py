"""From the ``data`` section of a config to the graph spec, the dataset and its split.

:func:`resolve_run` checks everything that can be checked before any data is read: the dataset and
split kinds are registered, the graph spec resolves, the model's card accepts that graph and, for
potentials, promises positions, smoothness and conservative forces; the model's readout settings
use today's words (:func:`check_readout_settings`).
"""

from __future__ import annotations

import inspect

import numpy as np

from atomgraph.data import GraphDataset
from atomgraph.data.graph_dataset import apply_reductions
from atomgraph.data.registry import (
    DatasetEntry,
    DatasetLoader,
    StoreLoader,
    available_datasets,
    dataset_entry,
    split_maker,
)
from atomgraph.data.splits import check_split
from atomgraph.graphs.spec import GraphSpec, preset, resolve_graph_spec
from atomgraph.models import model_card, model_class
from atomgraph.nn.target_readout import check_readout
from atomgraph.targets import TargetSet, known_target
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


def check_readout_settings(model: dict) -> None:
    """A :class:`ConfigError` for readout settings the model does not take, naming the words that
    replaced those of older versions: per-target readouts are "auto", "sum", "atom_mean" or "pooled"
    (:mod:`atomgraph.nn.target_readout`; the former "per_atom" is "atom_mean", the former "mean" is
    "atom_mean" for atom-wise models and "pooled" for CGCNN/MEGNet, so it is refused as ambiguous), a
    node pool is ``model.pool``, and the targets' reductions come from the data."""
    name = model["name"]
    if "extensive" in model or "reductions" in model:
        key = "extensive" if "extensive" in model else "reductions"
        raise ConfigError(
            f"model.{key}: the readout of each target follows its reduction, which comes from the data "
            "(the dataset's TargetSpecs, changed with data.reductions: {target: sum | per_atom | mean})"
        )
    if "readout" not in model:
        return
    params = inspect.signature(model_class(name)).parameters
    if model_card(name).intensive_readout is None:
        if "readout" not in params and "pool" in params:
            raise ConfigError(
                f"model.readout: {name!r} pools its node states into one vector per graph and reads every "
                f"target out from it; that node pool is now model.pool (e.g. pool: {model['readout']})"
            )
        return
    try:
        check_readout(model["readout"])
    except ValueError as error:
        raise ConfigError(f"model.readout: {error}") from error


def check_target_kinds(names: list[str] | None) -> None:
    """A ConfigError when ``data.targets`` names known targets of both kinds (regression and
    classification): one run trains one kind, and this is found before any data is read."""
    known = [spec for spec in (known_target(name) for name in names or ()) if spec is not None]
    try:
        TargetSet(known).kind  # noqa: B018  (raises for a mix)
    except ValueError as error:
        raise ConfigError(f"data.targets: {error}") from error


def resolve_run(config: dict) -> GraphSpec:
    """Check a config before any data is read; returns its graph spec and records it in
    ``config["data"]["graph"]`` exactly as it will be built."""
    data = config["data"]
    split_kind = "file" if data["split"]["file"] else data["split"]["kind"]
    try:
        split_maker(split_kind)
        open_storage(dataset_entry(data["dataset"]), data)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    check_readout_settings(config["model"])
    check_target_kinds(data["targets"])
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
        dataset = open_storage(entry, data)(data, spec, progress)
        dataset = select_targets(dataset, data["targets"])
        apply_reductions(dataset, data["reductions"])
    except ValueError as error:
        raise ConfigError(f"data ({data['dataset']}, {data.get('path') or 'no path'}): {error}") from error
    return dataset


STORAGES = ("memory", "lmdb")


def open_storage(entry: DatasetEntry, data: dict) -> DatasetLoader | StoreLoader:
    """The loader of ``data.storage``: in memory, or the dataset's on-disk store."""
    storage = data["storage"]
    if storage not in STORAGES:
        raise ConfigError(f"unknown data.storage {storage!r}; choose one of {STORAGES}")
    if storage == "memory":
        return entry.load
    if entry.store is None:
        stored = sorted(name for name in available_datasets() if dataset_entry(name).store is not None)
        raise ConfigError(
            f"data.storage: dataset {entry.name!r} has no on-disk store (datasets with one: {stored}); "
            "use data.storage: memory"
        )
    return entry.store


def select_targets(dataset: GraphDataset, names: list[str]) -> GraphDataset:
    """Keep only the named target columns of ``y`` (in that order), or make the named node-level
    targets (``meta.node_targets``: one label per atom) the labels."""
    node_names = dataset.meta.node_targets.names
    nodes = [n for n in names if n in node_names]
    if nodes:
        if len(nodes) != len(names):
            graph_level = [n for n in names if n not in node_names]
            raise ValueError(
                f"data.targets: node-level {nodes} and graph-level {graph_level} targets cannot be trained "
                "together (one label row per atom or one per graph): use separate runs"
            )
        if not hasattr(dataset, "select_node_targets"):
            raise ValueError(f"node-level targets {nodes} are read from memory: use data.storage: memory")
        dataset.select_node_targets(nodes)
        return dataset
    if dataset.meta.node_targets.names:
        unknown = [n for n in names if n not in dataset.targets.names]
        if unknown:
            raise ValueError(
                f"unknown targets {unknown}; graph-level: {dataset.targets.names}, node-level: {node_names}"
            )
    info, columns = dataset.targets.select(names)
    dataset.select_target_columns(columns)
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
    empty = [name for name in ("train", "test") if len(result[name]) == 0]
    if empty:  # every run fits its training rows and is evaluated on its test rows
        raise ConfigError(f"data.split ({kind}): no {' and no '.join(empty)} rows of {len(dataset)}")
    return result


def augment_training(config: dict, train_subset: GraphDataset, progress: bool = True) -> None:
    """Apply the dataset's training-time augmentation to its training subset (most datasets have none)."""
    entry = dataset_entry(config["data"]["dataset"])
    if entry.augment is not None:
        entry.augment(config["data"], train_subset, progress)
