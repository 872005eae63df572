"""The one plugin seam: the applications (:mod:`atomgraph.apps`) register their datasets, splits,
models, evaluation protocols and CLI commands into the generic registries when they are imported. The
registries call :func:`load_applications` on their first look-up, so generic code never imports an
application (the import is by name, on purpose: the import rules of pyproject.toml forbid generic
code to import ``atomgraph.apps``, and this is the only place that does it anyway).
"""

from __future__ import annotations

import importlib

_loaded = False


def load_applications() -> None:
    """Import :mod:`atomgraph.apps` once (its packages register themselves)."""
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("atomgraph.apps")
