"""Structures with energies, forces and stress from extended XYZ or an ASE database.

A target named like a per-atom array of the structures (``atoms.arrays``: an extended XYZ column such
as ``charges``) is node-level: one label per atom (:data:`~atomgraph.targets.REDUCTIONS` ``node``);
the others are read from ``atoms.info`` (energy also from an attached calculator).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from torch_geometric.data import Data

from atomgraph.data.build import NODE_TARGETS, build_dataset, cache_dir, graph_with_labels, load_or_build
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.data.graph_store import GraphStore, StoreInput, StoreRow, load_or_build_store
from atomgraph.graphs.spec import GraphSpec
from atomgraph.structures import iter_structures, read_all
from atomgraph.targets import TargetSet, TargetSpec, known_target, targets_from_columns

#: per-atom arrays that are inputs or potential labels, never node-level targets
_NOT_TARGETS = ("numbers", "positions", "forces", "momenta", "masses", "tags", NODE_TARGETS)


def _energy(atoms: Atoms) -> float:
    if "energy" in atoms.info:
        return float(atoms.info["energy"])
    try:
        return float(atoms.get_potential_energy())
    except RuntimeError:
        return float("nan")


def _targets(atoms: Atoms, properties: Sequence[str]) -> np.ndarray:
    """The ``properties`` of one structure (energy: eV, from ``info`` or the attached calculator)."""
    values = [_energy(atoms) if p == "energy" else float(atoms.info.get(p, np.nan)) for p in properties]
    return np.array(values)


def _target_info(properties: Sequence[str]):
    units = ["eV" if p == "energy" else "" for p in properties]
    return targets_from_columns(list(properties), units, [p == "energy" for p in properties])


def node_properties(atoms_list: Sequence[Atoms], properties: Sequence[str]) -> list[str]:
    """The ``properties`` that are per-atom arrays of the structures (node-level targets: one value per
    atom; a structure without the array is skipped and reported when the dataset is built)."""
    return [p for p in properties if p not in _NOT_TARGETS and any(p in atoms.arrays for atoms in atoms_list)]


def _node_info(node: Sequence[str]) -> TargetSet:
    """Node-level specs of per-atom arrays (a name of the tables, such as QM9's ``mulliken``, keeps its
    unit and description)."""
    specs = []
    for p in node:
        known = known_target(p)
        specs.append(known if known is not None and known.node_level else TargetSpec(p, "", "node"))
    return TargetSet(specs)


def _check_found(atoms_list: Sequence[Atoms], properties: Sequence[str], name: str) -> None:
    """A ValueError naming a property no structure has (a typo, or a per-atom array of another name),
    with what the first structure offers."""
    for p in properties:
        if p == "energy" or any(p in atoms.info for atoms in atoms_list):
            continue
        if not atoms_list:
            raise ValueError(f"{name}: no structures, so no target {p!r}")
        first = atoms_list[0]
        values = sorted(k for k in first.info if np.ndim(first.info[k]) == 0 and k != "source")
        arrays = sorted(k for k in first.arrays if k not in _NOT_TARGETS)
        raise ValueError(
            f"{name}: no structure has the target {p!r}; values per structure: {values}, "
            f"per-atom arrays (node-level targets): {arrays}"
        )


def _labelled(atoms: Atoms, node: Sequence[str]) -> Atoms:
    """A copy of ``atoms`` with its ``node`` arrays as node-level labels [n, K] (a KeyError naming the
    array when one is missing: the row is skipped and reported)."""
    if not node:
        return atoms
    missing = [p for p in node if p not in atoms.arrays]
    if missing:
        raise KeyError(f"per-atom target arrays {missing} missing")
    columns = []
    for p in node:
        values = np.asarray(atoms.arrays[p], dtype=float)
        if values.shape not in ((len(atoms),), (len(atoms), 1)):
            raise ValueError(
                f"per-atom target {p!r} has shape {values.shape}: a node-level target is one value per atom "
                f"({len(atoms)} here); write each component as its own array"
            )
        columns.append(values.reshape(-1))
    out = atoms.copy()
    out.arrays[NODE_TARGETS] = np.stack(columns, axis=1)
    return out


def structures_dataset(
    atoms_list: Sequence[Atoms],
    settings: GraphSpec,
    name: str = "structures",
    properties: Sequence[str] = ("energy",),
    progress: bool = True,
) -> GraphDataset:
    """Graphs of in-memory structures; ``y`` holds ``properties`` read from ``atoms.info`` (energy: eV,
    extensive) and ``y_node`` those that are per-atom arrays of the first structure (node-level targets,
    :func:`node_properties`). Forces [N, 3] eV/Å and stress [1, 3, 3] eV/Å^3 are kept when present."""
    node = node_properties(atoms_list, properties)
    sample = next((atoms for atoms in atoms_list if all(p in atoms.arrays for p in node)), None)
    if node and sample is not None:  # one value per atom: a wrong shape refused once, not on every row
        _labelled(sample, node)
    graph_level = [p for p in properties if p not in node]
    _check_found(atoms_list, graph_level, name)
    info = _target_info(graph_level)

    def rows():
        for k, atoms in enumerate(atoms_list):
            make = functools.partial(_labelled, atoms, node)
            yield str(atoms.info.get("source", k)), make, _targets(atoms, graph_level)

    with_forces = ["forces" in atoms.arrays for atoms in atoms_list]
    if any(with_forces) and not all(with_forces):
        _forces_mismatch(name, with_forces.index(not with_forces[0]), not with_forces[0])
    meta = DatasetMeta(name, info, settings={"graph": settings.to_dict()}, node_targets=_node_info(node))
    return build_dataset(rows(), settings, meta, total=len(atoms_list), progress=progress)


def _forces_mismatch(name: str, record: int, has_forces: bool) -> None:
    raise ValueError(
        f"{name}: record {record} {'has' if has_forces else 'lacks'} forces unlike record 0; "
        "forces must be given for every structure or none"
    )


def _cache_path(path: str | Path, settings: GraphSpec, properties: Sequence[str], cache, suffix: str) -> Path:
    """The processed form's path (``.pt`` in memory, ``.store`` on disk): file hash, properties, spec."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    key = hashlib.sha256("|".join(properties).encode()).hexdigest()[:8]
    return cache_dir(cache) / f"structures-{Path(path).stem}-{digest}-{key}-{settings.key()}{suffix}"


def _store_graph(payload: tuple[Atoms, np.ndarray], settings: GraphSpec) -> Data:
    atoms, targets = payload
    return graph_with_labels(atoms, settings, targets)


def _refuse_node_targets(path: str | Path, properties: Sequence[str]) -> None:
    """A ValueError when some ``properties`` are per-atom arrays: node-level targets are read from
    memory only."""
    first = next(iter_structures(path), None)
    node = node_properties([first], properties) if first is not None else []
    if node:
        raise ValueError(
            f"{path}: {node} are per-atom arrays (node-level targets), which are read from memory only: "
            "use data.storage: memory"
        )


def structures_store(
    path: str | Path,
    settings: GraphSpec,
    properties: Sequence[str] = ("energy",),
    cache: str | Path | None = None,
    progress: bool = True,
    shard_size: int = 10_000,
    workers: int = 1,
) -> GraphStore:
    """The structures of a file as an on-disk graph store (the rows, order and graphs of
    :func:`load_structures`); extended XYZ is read frame by frame, an ASE database row by row, so the
    input never has to fit in memory."""
    name = Path(path).stem

    def make_input() -> StoreInput:
        _refuse_node_targets(path, properties)

        def rows() -> Iterator[StoreRow]:
            first_has_forces = None
            for k, atoms in enumerate(iter_structures(path)):
                has_forces = "forces" in atoms.arrays
                first_has_forces = has_forces if first_has_forces is None else first_has_forces
                if has_forces != first_has_forces:
                    _forces_mismatch(name, k, has_forces)
                yield StoreRow(str(atoms.info.get("source", k)), "", (atoms, _targets(atoms, properties)))

        meta = DatasetMeta(name, _target_info(properties), settings={"graph": settings.to_dict()})
        return StoreInput(rows(), functools.partial(_store_graph, settings=settings), meta)

    directory = _cache_path(path, settings, properties, cache, ".store")
    return load_or_build_store(directory, make_input, shard_size, workers, progress)


def load_structures(
    path: str | Path,
    settings: GraphSpec,
    properties: Sequence[str] = ("energy",),
    cache: str | Path | None = None,
    progress: bool = True,
) -> GraphDataset:
    """Every structure of an extended XYZ file or ASE database as a graph (cached by file hash)."""
    file = _cache_path(path, settings, properties, cache, ".pt")
    return load_or_build(
        file, lambda: structures_dataset(read_all(path), settings, Path(path).stem, properties, progress)
    )
