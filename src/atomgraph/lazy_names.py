"""Public names of a package imported on first use (PEP 562), so that importing the package costs only
what the caller uses: ``from atomgraph.md import Calculator`` loads the calculator alone, and
``predict`` does not import plots (matplotlib) or baselines (scikit-learn) through
``atomgraph.evaluation``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_names(
    package: str, homes: dict[str, str], modules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``homes`` maps each lazy public name to the submodule
    that defines it; ``modules`` are submodules served as attributes too. A name is imported once, then
    bound in the package."""
    namespace = importlib.import_module(package).__dict__
    served = set(modules)

    def __getattr__(name: str) -> Any:
        if name in served:
            return importlib.import_module(f"{package}.{name}")
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes, *served})

    return __getattr__, __dir__
