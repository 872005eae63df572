"""The crystals application (seed 004): CIF/POSCAR folders and archives with an id -> property CSV
(``data.dataset: crystals``), CGCNN's graph as the default (preset ``cgcnn_crystal``: 12 nearest
neighbours within 8 Å), the crystal report (top-k recall, descriptor random forest, shortcut
diagnostic, readout warnings) and the ``screen-crystals`` command.

* :mod:`~atomgraph.apps.crystals.dataset` — the dataset (parallel parsing, cache, screening flags);
  :mod:`~atomgraph.apps.crystals.cif_archive` (folders and tar archives of structure files) and
  :mod:`~atomgraph.apps.crystals.parallel_graphs` (graphs built in worker processes) beneath it.
* :mod:`~atomgraph.apps.crystals.report` — the protocol added to the generic report, with
  :mod:`~atomgraph.apps.crystals.descriptor_baseline` and :mod:`~atomgraph.apps.crystals.shortcut`.
* :mod:`~atomgraph.apps.crystals.crystal_features` — guessed oxidation states (per site) and the space
  group (state) as graph features (``data.graph.site_features`` / ``state_features``).
* :mod:`~atomgraph.apps.crystals.screening` — rank a folder of structures with a trained run
  (:mod:`~atomgraph.apps.crystals.commands`: ``atomgraph screen-crystals``).
"""

from __future__ import annotations

import numpy as np

from atomgraph.apps.crystals import (
    commands,  # noqa: F401  (registers screen-crystals)
    crystal_features,  # noqa: F401  (registers oxidation_state, space_group)
)
from atomgraph.data.registry import register_dataset
from atomgraph.data.sources import existing_path, store_workers
from atomgraph.evaluation.protocols import register_protocol
from atomgraph.graphs.spec import GraphSpec


def load_crystal_dataset(data: dict, spec: GraphSpec, progress: bool = True):
    """``data.dataset: crystals``: CIF/POSCAR folder or archive with an id -> property CSV."""
    from atomgraph.apps.crystals.dataset import class_labels_asked, load_crystals

    crystals = data["crystals"]
    return load_crystals(
        existing_path(data),
        spec,
        labels=crystals["labels"],
        subset=data["subset"],
        seed=data["split"]["seed"],
        workers=crystals["workers"],
        min_distance=crystals["min_distance"],
        cache=data["cache"],
        progress=progress,
        classes=class_labels_asked(data["targets"]),
    )


def crystal_store(data: dict, spec: GraphSpec, progress: bool = True):
    """``data.dataset: crystals`` with ``data.storage: lmdb``: the same crystals as an on-disk store."""
    from atomgraph.apps.crystals.dataset import class_labels_asked, crystals_store

    crystals = data["crystals"]
    return crystals_store(
        existing_path(data),
        spec,
        labels=crystals["labels"],
        subset=data["subset"],
        seed=data["split"]["seed"],
        min_distance=crystals["min_distance"],
        cache=data["cache"],
        progress=progress,
        shard_size=data["store"]["shard_size"],
        workers=store_workers(data),
        classes=class_labels_asked(data["targets"]),
    )


def crystal_report(results: dict, config: dict, module, dataset, split: dict, pred: np.ndarray) -> None:
    """Seed 004's protocol on top of the generic report (regression targets only)."""
    if dataset.targets.kind != "regression":
        return
    from atomgraph.apps.crystals.report import add_crystal_report

    add_crystal_report(results, config, module, dataset, split, pred)


def crystal_report_lines(results: dict) -> str:
    """The printed lines of what :func:`crystal_report` added (the shortcut diagnostic)."""
    from atomgraph.apps.crystals.report import format_crystal_report

    return format_crystal_report(results)


#: ``data.crystals``: how the structure files are read and what the report adds
CRYSTAL_SETTINGS = {
    "labels": None,  # id -> property CSV (default: id_prop*.csv beside data.path)
    "workers": None,  # processes that parse the files (None: every core)
    "min_distance": 0.5,  # Å; a structure with closer atoms is broken and skipped
    "top_k": 100,  # report: top-k recall (direction from the target: low energies, high gaps)
    "descriptor_baseline": True,  # report: Magpie-style + structure descriptors + random forest
    "shortcut": True,  # report: R² kept after scrambling the elements over the sites
    "volume_response": 100,  # report: the E(V) check on this many test crystals (0: none)
}

register_dataset(
    "crystals",
    load_crystal_dataset,
    default_graph="cgcnn_crystal",
    app="crystals",
    settings=CRYSTAL_SETTINGS,
    store=crystal_store,
)
register_protocol(
    "crystals",
    crystal_report,
    crystal_report_lines,
    sweep_overrides=("data.crystals.descriptor_baseline=false",),
)
