"""QM9 as graphs: 130,831 molecules, 3D coordinates (Å), SMILES and 15 targets in converted units.

Raw records come from :mod:`atomgraph.data.qm9_source` (the ``qm9pack`` package offline, or the
canonical archive downloaded with a checksum). Graph settings, subset and seed are part of the cache
key; processing happens once with a progress bar.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds
from torch_geometric.data import Data

from atomgraph.data.build import NODE_TARGETS, build_dataset, cache_dir, graph_with_labels, load_or_build
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.data.graph_store import GraphStore, StoreInput, StoreRow, load_or_build_store
from atomgraph.data.qm9_source import (
    QM9Records,
    download_qm9,
    parse_uncharacterized,
    read_qm9_archive,
    read_qm9pack,
)
from atomgraph.data.splits import seeded_subset
from atomgraph.graphs.spec import GraphSpec
from atomgraph.targets import QM9, QM9_ATOMS, TargetSet


def qm9_target_info() -> TargetSet:
    return TargetSet(QM9)


def has_every_atom(settings: GraphSpec) -> bool:
    """Whether the graphs of ``settings`` have one node per atom, hydrogens included: only then do they
    carry QM9's node-level labels (the Mulliken charges, :data:`~atomgraph.targets.QM9_ATOMS`)."""
    return settings.kind != "bond" or settings.explicit_hydrogens


def molecule_from_xyz(numbers: np.ndarray, positions: np.ndarray) -> Chem.Mol:
    """RDKit molecule in the XYZ atom order with bonds and orders perceived from the geometry (neutral)."""
    symbols = [Chem.GetPeriodicTable().GetElementSymbol(int(z)) for z in numbers]
    block = f"{len(numbers)}\n\n" + "\n".join(
        f"{s} {x:.8f} {y:.8f} {z:.8f}" for s, (x, y, z) in zip(symbols, positions, strict=True)
    )
    mol = Chem.MolFromXYZBlock(block)
    try:
        with rdBase.BlockLogs():  # the reason is not printed once per such molecule
            rdDetermineBonds.DetermineBonds(mol, charge=0)
    except ValueError:  # bond orders not assignable: keep connectivity only
        mol = Chem.MolFromXYZBlock(block)
        rdDetermineBonds.DetermineConnectivity(mol)
    return mol


def _atoms(
    numbers: np.ndarray, positions: np.ndarray, smiles: str, bonded: bool, charges: np.ndarray | None
) -> Atoms:
    """One QM9 molecule as atoms, with its SMILES, its Mulliken charges (e) as node-level labels where
    given and, for bond graphs, its perceived RDKit molecule."""
    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.info["smiles"] = smiles
    if charges is not None:
        atoms.arrays[NODE_TARGETS] = np.asarray(charges, dtype=np.float64).reshape(-1, 1)
    if bonded:
        atoms.info["rdkit_mol"] = molecule_from_xyz(numbers, positions)
    return atoms


def _charges(records: QM9Records, row: int, settings: GraphSpec) -> np.ndarray | None:
    return records.mulliken[row] if has_every_atom(settings) else None


def _rows(records: QM9Records, indices: np.ndarray, settings: GraphSpec):
    for row in indices:
        numbers, positions, smiles = records.numbers[row], records.positions[row], records.smiles[row]
        charges = _charges(records, row, settings)
        make = functools.partial(_atoms, numbers, positions, smiles, settings.kind == "bond", charges)
        yield str(records.ids[row]), make, records.targets[row]


def _store_rows(records: QM9Records, indices: np.ndarray, settings: GraphSpec) -> Iterator[StoreRow]:
    for row in indices:
        payload = (records.numbers[row], records.positions[row], records.smiles[row], records.targets[row],
                   _charges(records, row, settings))  # fmt: skip
        yield StoreRow(str(records.ids[row]), str(records.smiles[row]), payload)


def _store_graph(payload: tuple, settings: GraphSpec) -> Data:
    """The graph of one stored row's payload (numbers, positions, SMILES, targets, charges or None);
    runs in a worker."""
    numbers, positions, smiles, targets, charges = payload
    atoms = _atoms(numbers, positions, smiles, settings.kind == "bond", charges)
    return graph_with_labels(atoms, settings, targets)


def _read_source(source: str | Path, cache: str | Path | None, progress: bool) -> QM9Records:
    if str(source) == "qm9pack":
        return read_qm9pack(progress=progress)
    if str(source) == "download":
        return download_qm9(cache_dir(cache) / "qm9_raw", progress=progress)
    uncharacterized = Path(source).with_name("uncharacterized.txt")
    exclude = parse_uncharacterized(uncharacterized) if uncharacterized.exists() else None
    return read_qm9_archive(source, exclude_ids=exclude, progress=progress)


def load_qm9(
    settings: GraphSpec,
    subset: int | None = None,
    seed: int = 0,
    source: str | Path = "qm9pack",
    cache: str | Path | None = None,
    progress: bool = True,
) -> GraphDataset:
    """QM9 graphs with all targets in ``y`` (see :data:`atomgraph.targets.QM9` for names, units, reductions).

    subset: a seeded random sample of this many molecules (None = all 130,831).
    source: "qm9pack" (the offline PyPI package), "download" (the canonical archive, fetched once into
    the cache with checksums) or the path of a ``dsgdb9nsd.xyz.tar.bz2``; an ``uncharacterized.txt``
    beside it removes the 3,054 uncharacterised molecules.
    """
    path = _cache_path(settings, subset, seed, source, cache, ".pt")

    def build() -> GraphDataset:
        records, indices, meta = _selection(settings, subset, seed, source, cache, progress)
        rows = _rows(records, indices, settings)
        return build_dataset(rows, settings, meta, total=len(indices), progress=progress)

    return load_or_build(path, build)


def _cache_path(
    settings: GraphSpec, subset: int | None, seed: int, source: str | Path, cache, suffix: str
) -> Path:
    """The processed form's path: ``.pt`` (in memory) or ``.store`` (on disk), keyed by the GraphSpec."""
    tag = "qm9pack" if str(source) == "qm9pack" else Path(source).name
    targets = f"{len(QM9)}t"  # a cache of another target set is another file
    if has_every_atom(settings):
        targets += f"{len(QM9_ATOMS)}n"
    return cache_dir(cache) / f"qm9-{tag}-{targets}-{subset or 'all'}-seed{seed}-{settings.key()}{suffix}"


def _selection(
    settings: GraphSpec, subset: int | None, seed: int, source: str | Path, cache, progress: bool
) -> tuple[QM9Records, np.ndarray, DatasetMeta]:
    """The records, the rows taken (all, or a seeded sample) and the dataset's metadata."""
    records = _read_source(source, cache, progress)
    indices = seeded_subset(len(records), subset, seed)
    meta = DatasetMeta(
        "qm9",
        qm9_target_info(),
        settings={"graph": settings.to_dict(), "subset": subset, "seed": seed, "source": str(source)},
        node_targets=TargetSet(QM9_ATOMS if has_every_atom(settings) else ()),
    )
    return records, indices, meta


def qm9_store(
    settings: GraphSpec,
    subset: int | None = None,
    seed: int = 0,
    source: str | Path = "qm9pack",
    cache: str | Path | None = None,
    progress: bool = True,
    shard_size: int = 10_000,
    workers: int = 1,
) -> GraphStore:
    """QM9 as an on-disk graph store (the same rows, order and graphs as :func:`load_qm9`), built once
    beside the in-memory cache (``.store`` instead of ``.pt``)."""
    directory = _cache_path(settings, subset, seed, source, cache, ".store")

    def make_input() -> StoreInput:
        records, indices, meta = _selection(settings, subset, seed, source, cache, progress)
        build = functools.partial(_store_graph, settings=settings)
        return StoreInput(_store_rows(records, indices, settings), build, meta, total=len(indices))

    return load_or_build_store(directory, make_input, shard_size, workers, progress)
