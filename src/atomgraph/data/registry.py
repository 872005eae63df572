"""Registries of datasets and splits: how a config's ``data`` section becomes graphs and subsets.

Generic datasets (QM9, SMILES CSV, structure files) register in :mod:`atomgraph.data.sources`;
applications (crystals, potentials, protein-ligand complexes) register theirs when the package
:mod:`atomgraph.apps` is imported, which happens on the first look-up here
(:func:`atomgraph.plugins.load_applications`). Generic code asks the
registry, never ``if dataset == ...``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from atomgraph.data.graph_dataset import GraphDataset
from atomgraph.data.graph_store import GraphStore
from atomgraph.graphs.spec import GraphSpec
from atomgraph.plugins import load_applications

DatasetLoader = Callable[[dict, GraphSpec, bool], GraphDataset]
"""(the config's ``data`` section, the resolved graph spec, progress bar) -> dataset."""

StoreLoader = Callable[[dict, GraphSpec, bool], GraphStore]
"""(the config's ``data`` section, the resolved graph spec, progress bar) -> an on-disk graph store
(``data.storage: lmdb``; shard size and build workers in ``data.store``)."""

SplitMaker = Callable[[dict, GraphDataset], dict[str, np.ndarray]]
"""(the config's ``data`` section, the dataset) -> {"train", "val", "test"} row indices."""

Augment = Callable[[dict, GraphDataset, bool], None]
"""(the config's ``data`` section, the training subset, progress bars) -> None: prepares the training
subset in place (its ``transform``, other sources of augmented samples); validation and test subsets are
left alone."""

OwnGraph = Callable[[dict], GraphSpec]
"""(the config's ``data`` section) -> the spec, for datasets whose builder settings live in their own
section (complexes: ``data.complex``); the spec then records those settings in ``options``."""


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its loader, the graph preset used when ``data.graph`` is unset (None: the
    model card's), an optional training-time augmentation of its training subset, the application that
    registered it, for datasets that own their graph settings the function that turns them into a spec,
    the ``data`` sub-section that holds the dataset's own settings (None: the dataset's name) and the
    defaults of that section (None: it has none), and the loader of its on-disk store (None: memory
    only). The config loader fills the section from these defaults and refuses keys they do not have, so
    an application's settings live with the application."""

    name: str
    load: DatasetLoader
    default_graph: str | None = None
    augment: Augment | None = None
    app: str = "atomgraph"
    own_graph: OwnGraph | None = None
    own_section: str | None = None
    settings: dict | None = None
    store: StoreLoader | None = None

    @property
    def section(self) -> str:
        """The ``data`` sub-section of this dataset's own settings (``data.<section>``)."""
        return self.own_section or self.name


_DATASETS: dict[str, DatasetEntry] = {}
_SPLITS: dict[str, SplitMaker] = {}
_plugins_loaded = False


def _load_plugins() -> None:
    """Import the generic sources and the applications once (they register themselves)."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        importlib.import_module("atomgraph.data.sources")
        load_applications()


def register_dataset(
    name: str,
    load: DatasetLoader,
    default_graph: str | None = None,
    augment: Augment | None = None,
    app: str = "atomgraph",
    own_graph: OwnGraph | None = None,
    own_section: str | None = None,
    settings: dict | None = None,
    store: StoreLoader | None = None,
) -> None:
    """Make ``data.dataset: name`` available (the fields are those of :class:`DatasetEntry`)."""
    key = name.lower()
    entry = DatasetEntry(key, load, default_graph, augment, app, own_graph, own_section, settings, store)
    if key in _DATASETS and _DATASETS[key].load is not load:
        raise ValueError(f"dataset {name!r} is already registered by {_DATASETS[key].app}")
    _DATASETS[key] = entry


def dataset_entry(name: str) -> DatasetEntry:
    """The entry of ``data.dataset: name``; an unknown name is an error listing the known ones."""
    _load_plugins()
    try:
        return _DATASETS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown data.dataset {name!r}; choose one of {sorted(_DATASETS)}") from None


def register_split(name: str, make: SplitMaker) -> None:
    """Make ``data.split.kind: name`` available."""
    if name in _SPLITS and _SPLITS[name] is not make:
        raise ValueError(f"split kind {name!r} is already registered")
    _SPLITS[name] = make


def split_maker(name: str) -> SplitMaker:
    _load_plugins()
    try:
        return _SPLITS[name]
    except KeyError:
        raise ValueError(f"unknown data.split.kind {name!r}; choose one of {sorted(_SPLITS)}") from None


def available_datasets() -> list[str]:
    _load_plugins()
    return sorted(_DATASETS)


def dataset_sections() -> dict[str, list[str]]:
    """``data`` sub-sections owned by registered datasets: section -> the datasets that read it."""
    _load_plugins()
    sections: dict[str, list[str]] = {}
    for entry in _DATASETS.values():
        if entry.settings is not None:
            sections.setdefault(entry.section, []).append(entry.name)
    return sections
