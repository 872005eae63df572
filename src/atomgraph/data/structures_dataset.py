"""Structures with energies, forces and stress from extended XYZ or an ASE database."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from atomgraph.data.build import build_dataset, cache_dir, load_or_build
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.graphs.spec import GraphSpec
from atomgraph.structures import read_all
from atomgraph.targets import targets_from_columns


def _energy(atoms: Atoms) -> float:
    if "energy" in atoms.info:
        return float(atoms.info["energy"])
    try:
        return float(atoms.get_potential_energy())
    except RuntimeError:
        return float("nan")


def structures_dataset(
    atoms_list: Sequence[Atoms],
    settings: GraphSpec,
    name: str = "structures",
    properties: Sequence[str] = ("energy",),
    progress: bool = True,
) -> GraphDataset:
    """Graphs of in-memory structures; ``y`` holds ``properties`` read from ``atoms.info`` (energy: eV,
    extensive). Forces [N, 3] eV/Å and stress [1, 3, 3] eV/Å^3 are kept when present."""
    units = ["eV" if p == "energy" else "" for p in properties]
    info = targets_from_columns(list(properties), units, [p == "energy" for p in properties])

    def rows():
        for k, atoms in enumerate(atoms_list):
            y = np.array(
                [_energy(atoms) if p == "energy" else float(atoms.info.get(p, np.nan)) for p in properties]
            )
            yield str(atoms.info.get("source", k)), (lambda a=atoms: a), y

    with_forces = ["forces" in atoms.arrays for atoms in atoms_list]
    if any(with_forces) and not all(with_forces):
        first = with_forces.index(not with_forces[0])
        raise ValueError(
            f"{name}: record {first} {'has' if with_forces[first] else 'lacks'} forces unlike record 0; "
            "forces must be given for every structure or none"
        )
    meta = DatasetMeta(name, info, settings={"graph": settings.to_dict()})
    return build_dataset(rows(), settings, meta, total=len(atoms_list), progress=progress)


def load_structures(
    path: str | Path,
    settings: GraphSpec,
    properties: Sequence[str] = ("energy",),
    cache: str | Path | None = None,
    progress: bool = True,
) -> GraphDataset:
    """Every structure of an extended XYZ file or ASE database as a graph (cached by file hash)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    key = hashlib.sha256("|".join(properties).encode()).hexdigest()[:8]
    file = cache_dir(cache) / f"structures-{Path(path).stem}-{digest}-{key}-{settings.key()}.pt"
    return load_or_build(
        file, lambda: structures_dataset(read_all(path), settings, Path(path).stem, properties, progress)
    )
