"""Registry of evaluation protocols: extra report sections an application adds for its datasets.

A protocol is ``(results, config, module, dataset, split, predictions) -> None`` and adds to the
``results`` of :func:`atomgraph.evaluation.report.evaluate_run` in place (the crystals application
adds top-k recall, the descriptor baseline and the shortcut diagnostic for ``data.dataset: crystals``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Protocol = Callable[[dict, dict, object, object, dict, np.ndarray], None]

_PROTOCOLS: dict[str, list[Protocol]] = {}


def register_protocol(dataset: str, protocol: Protocol) -> None:
    """Run ``protocol`` in the report of every run on ``data.dataset: dataset``."""
    entries = _PROTOCOLS.setdefault(dataset.lower(), [])
    if protocol not in entries:
        entries.append(protocol)


def protocols_for(dataset: str) -> list[Protocol]:
    from atomgraph.data.registry import dataset_entry

    dataset_entry(dataset)  # loads the applications, which register their protocols
    return list(_PROTOCOLS.get(dataset.lower(), []))
