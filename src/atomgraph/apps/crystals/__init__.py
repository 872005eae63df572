"""Crystals (seed 004): CIF/POSCAR folders and archives with an id -> property CSV, CGCNN's graph as
the default (preset ``cgcnn_crystal``: 12 nearest neighbours within 8 Å), and the crystal report
(top-k recall, descriptor random forest, shortcut diagnostic, readout warnings)."""

from __future__ import annotations

import numpy as np

from atomgraph.data.registry import register_dataset
from atomgraph.data.sources import existing_path
from atomgraph.evaluation.protocols import register_protocol
from atomgraph.graphs.spec import GraphSpec


def load_crystal_dataset(data: dict, spec: GraphSpec, progress: bool = True):
    """``data.dataset: crystals``: CIF/POSCAR folder or archive with an id -> property CSV."""
    from atomgraph.data.crystals import load_crystals

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
    )


def crystal_report(results: dict, config: dict, module, dataset, split: dict, pred: np.ndarray) -> None:
    """Seed 004's protocol on top of the generic report (regression targets only)."""
    if dataset.targets.kind != "regression":
        return
    from atomgraph.evaluation.crystal_report import add_crystal_report

    add_crystal_report(results, config, module, dataset, split, pred)


register_dataset("crystals", load_crystal_dataset, default_graph="cgcnn_crystal", app="crystals")
register_protocol("crystals", crystal_report)
