"""Name registry: a config names a model and gets it built with its keyword arguments and graph spec.

Every registered model carries a :class:`~atomgraph.models.card.ModelCard`. Models that read
distances take ``graph`` (the :class:`~atomgraph.graphs.spec.GraphSpec`) and derive their cutoff and
radial grid from it; they have no cutoff argument of their own. Applications register their own
models (the protein-ligand affinity models); the first look-up loads them.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.models.card import ModelCard
from atomgraph.plugins import load_applications

_MODELS: dict[str, type[nn.Module]] = {}
#: modules of this package that are building blocks, not architectures
_NOT_ARCHITECTURES = {"card", "conv_stack", "edge_harmonics", "lattice", "registry"}
_architectures_loaded = False


def load_architectures() -> None:
    """Import every architecture module of :mod:`atomgraph.models` once (each registers itself), then
    the applications' models."""
    global _architectures_loaded
    if not _architectures_loaded:
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if module.name not in _NOT_ARCHITECTURES:
                importlib.import_module(f"atomgraph.models.{module.name}")
        # set only once all are imported: a failed import is retried, and raised again, next time
        _architectures_loaded = True
    load_applications()


def register_model(name: str, card: ModelCard) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a model under ``name`` (lower case) with its card to the registry."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        key = name.lower()
        if key in _MODELS and _MODELS[key] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[key].__name__}")
        if card.depth_arg is not None and card.depth_arg not in inspect.signature(cls).parameters:
            raise ValueError(
                f"model {name!r}: depth argument {card.depth_arg!r} is not a constructor argument"
            )
        _MODELS[key] = cls
        cls.registry_name = key
        cls.card = card
        return cls

    return add


def available_models() -> list[str]:
    """Names a config can use."""
    load_architectures()
    return sorted(_MODELS)


def model_class(name: str) -> type[nn.Module]:
    """The registered class of ``name``; an unknown name is an error listing the known ones."""
    load_architectures()
    try:
        return _MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}") from None


def model_card(name: str) -> ModelCard:
    """The card of the registered model ``name``."""
    return model_class(name).card


def takes_graph_spec(name: str) -> bool:
    """Whether the model's constructor takes the graph spec (models that read distances)."""
    return "graph" in inspect.signature(model_class(name)).parameters


def build_model(name: str, graph: GraphSpec | None = None, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments from the config.

    ``graph``: the spec of the graphs it will read (default: its card's preset); checked against the
    card and passed to models that read distances. ``cutoff`` is refused: it belongs to the spec.
    """
    cls = model_class(name)
    if "cutoff" in kwargs:
        raise ValueError(
            f"model {name!r}: the cutoff belongs to the graph spec (data.graph.cutoff), not to the model; "
            "a model that wants a smaller one takes interaction_cutoff"
        )
    spec = graph if graph is not None else preset(cls.card.default_graph)
    cls.card.check_graph(spec, name)
    if takes_graph_spec(name):
        kwargs["graph"] = spec
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ValueError(f"model {name!r}: bad arguments {sorted(kwargs)}: {error}") from error
