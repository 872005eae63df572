"""Registry of evaluation protocols: extra report sections an application adds for its datasets.

A protocol is ``(results, config, module, dataset, split, predictions) -> None`` and adds to the
``results`` of :func:`atomgraph.evaluation.report.evaluate_run` in place (the crystals application
adds top-k recall, the descriptor baseline and the shortcut diagnostic for ``data.dataset: crystals``).
A protocol may come with a formatter, ``results -> str``, whose lines end the printed summary of
:func:`atomgraph.evaluation.report.format_results`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Protocol = Callable[[dict, dict, object, object, dict, np.ndarray], None]
Formatter = Callable[[dict], str]

_PROTOCOLS: dict[str, list[Protocol]] = {}
_FORMATTERS: dict[str, list[Formatter]] = {}
_SWEEP_OVERRIDES: dict[str, list[str]] = {}


def register_protocol(
    dataset: str,
    protocol: Protocol,
    formatter: Formatter | None = None,
    sweep_overrides: tuple[str, ...] = (),
) -> None:
    """Run ``protocol`` in the report of every run on ``data.dataset: dataset``; ``formatter`` writes
    the plain-text lines of what it added ("" for nothing); ``sweep_overrides`` (``key=value``) turn
    off the parts that are the same for every run of a sweep (the ablation applies them)."""
    overrides = _SWEEP_OVERRIDES.setdefault(dataset.lower(), [])
    overrides.extend(o for o in sweep_overrides if o not in overrides)
    entries = _PROTOCOLS.setdefault(dataset.lower(), [])
    if protocol not in entries:
        entries.append(protocol)
    if formatter is not None:
        formatters = _FORMATTERS.setdefault(dataset.lower(), [])
        if formatter not in formatters:
            formatters.append(formatter)


def protocols_for(dataset: str) -> list[Protocol]:
    from atomgraph.data.registry import dataset_entry

    dataset_entry(dataset)  # loads the applications, which register their protocols
    return list(_PROTOCOLS.get(dataset.lower(), []))


def formatters_for(dataset: str) -> list[Formatter]:
    from atomgraph.data.registry import dataset_entry

    dataset_entry(dataset)
    return list(_FORMATTERS.get(dataset.lower(), []))


def sweep_overrides_for(dataset: str) -> list[str]:
    """Overrides that drop the run-independent parts of ``dataset``'s protocols from a sweep's runs."""
    from atomgraph.data.registry import dataset_entry

    dataset_entry(dataset)
    return list(_SWEEP_OVERRIDES.get(dataset.lower(), []))
