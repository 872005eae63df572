"""Name registry: a config names a model and gets it built with its keyword arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a model under ``name`` (lower case) to the registry."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        key = name.lower()
        if key in _MODELS and _MODELS[key] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_MODELS[key].__name__}")
        _MODELS[key] = cls
        cls.registry_name = key
        return cls

    return add


def available_models() -> list[str]:
    """Names a config can use."""
    return sorted(_MODELS)


def model_class(name: str) -> type[nn.Module]:
    try:
        return _MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}") from None


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments from the config."""
    cls = model_class(name)
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise ValueError(f"model {name!r}: bad arguments {sorted(kwargs)}: {error}") from error
