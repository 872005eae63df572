"""What the potential datasets (rMD17, mlearn, DeePMD, Lennard-Jones) share: float64 graphs with
energies (eV), forces (eV/Å) and stress (eV/Å^3), a predefined train/test split and a cache key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from atomgraph.data.graph_dataset import GraphDataset
from atomgraph.data.structures_dataset import structures_dataset
from atomgraph.graphs.spec import GraphSpec

UNITS = {"positions": "Å", "energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3 (ASE sign: (1/V) dE/dstrain)"}


def potential_dataset(
    atoms_list: Sequence[Atoms], settings: GraphSpec, name: str, progress: bool = True
) -> GraphDataset:
    """Graphs of structures with ``info["energy"]`` (eV), ``arrays["forces"]`` and optionally
    ``info["stress"]``, all stored in float64 (total energies of ~10^4 eV need it: float32 resolves
    only ~2 meV there). Row ids are ``info["source"]``; ``meta.settings["units"]`` says the units.
    When some structures have stress and others not, the others get NaN stress (masked in the loss).

    A dataset whose sources start with ``train/``, ``test/`` (and ``val/``) gets that split in
    ``meta.settings["split"]`` (used by ``data.split.kind: predefined``).
    """
    if any("stress" in a.info for a in atoms_list):  # graphs must share fields: NaN = no label
        for atoms in atoms_list:
            atoms.info.setdefault("stress", np.full((3, 3), np.nan))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        dataset = structures_dataset(atoms_list, settings, name, ("energy",), progress)
    finally:
        torch.set_default_dtype(previous)
    dataset.meta.settings["units"] = dict(UNITS)
    split = split_from_ids(dataset.meta.ids)
    if split is not None:
        dataset.meta.settings["split"] = split
    return dataset


def split_from_ids(ids: Sequence[str]) -> dict[str, list[int]] | None:
    """Rows grouped by the ``train/``, ``val/``, ``test/`` prefix of their ids (None if any lacks one)."""
    split: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for row, row_id in enumerate(ids):
        part = str(row_id).split("/", 1)[0]
        if part not in split:
            return None
        split[part].append(row)
    return split


def files_digest(paths: Iterable[Path]) -> str:
    """A short hash of the bytes of ``paths`` (cache keys change when the data do)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def voigt_to_matrix(values: Sequence[float], order: Sequence[str]) -> np.ndarray:
    """A symmetric 3x3 matrix from 6 components named in ``order`` (e.g. ``xx yy zz xy yz xz``)."""
    axis = {"x": 0, "y": 1, "z": 2}
    matrix = np.zeros((3, 3))
    for value, name in zip(values, order, strict=True):
        i, j = axis[name[0]], axis[name[1]]
        matrix[i, j] = matrix[j, i] = float(value)
    return matrix
