"""Per-bond feature vectors and integer bond types for RDKit molecules.

:class:`BondFeaturizer` turns an ``rdkit.Chem.Mol`` into a float tensor ``[n_bonds, dim]`` with rows in
``mol.GetBonds()`` order (``dim = 11``):

===========  =====  ===================================================================
block        width  content
===========  =====  ===================================================================
bond_type    5      one-hot: single, double, triple, aromatic, other
conjugated   1      0/1
in_ring      1      0/1
stereo       4      one-hot: none, Z, E, other (STEREOANY and the atropisomer tags)
===========  =====  ===================================================================

A graph stores every bond in both directions; the two directed edges of bond ``b`` share row ``b``.
:func:`bond_type_index` gives the bond class as an integer for an ``edge_type`` field.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rdkit import Chem

from atomgraph.features.layout import FeatureLayout, LayoutIntrospection, one_hot_block, scalar_block
from atomgraph.features.prepared import prepared_copy

__all__ = [
    "BOND_RECORD_COLUMNS",
    "BOND_TYPES",
    "DEFAULT_BOND_FEATURIZER",
    "NUM_BOND_TYPES",
    "BondFeaturizer",
    "bond_array",
    "bond_records",
    "bond_rows",
    "bond_type_codes",
    "bond_type_index",
    "bond_type_indices",
]

BOND_TYPES: tuple[Chem.BondType, ...] = (
    Chem.BondType.SINGLE,
    Chem.BondType.DOUBLE,
    Chem.BondType.TRIPLE,
    Chem.BondType.AROMATIC,
)
BOND_TYPE_LABELS: tuple[str, ...] = ("single", "double", "triple", "aromatic")
NUM_BOND_TYPES = len(BOND_TYPES) + 1
"""Number of integer bond classes returned by :func:`bond_type_index` (4 named + other)."""

STEREO_LABELS: tuple[str, ...] = ("none", "Z", "E")
_STEREO_INDEX: dict[Chem.BondStereo, int] = {
    Chem.BondStereo.STEREONONE: 0,
    Chem.BondStereo.STEREOZ: 1,
    Chem.BondStereo.STEREOCIS: 1,
    Chem.BondStereo.STEREOE: 2,
    Chem.BondStereo.STEREOTRANS: 2,
}
_OTHER_STEREO = len(STEREO_LABELS)
_BOND_TYPE_INDEX: dict[Chem.BondType, int] = {t: i for i, t in enumerate(BOND_TYPES)}


def _code_table(enum: type, index: dict, other: int) -> np.ndarray:
    """``table[int(v)]`` = ``index.get(v, other)`` for every value ``v`` of the RDKit enum ``enum``."""
    table = np.full(max(int(v) for v in enum.values.values()) + 1, other, dtype=np.int64)
    for value, k in index.items():
        table[int(value)] = k
    return table


_BOND_TYPE_TABLE = _code_table(Chem.BondType, _BOND_TYPE_INDEX, len(BOND_TYPES))
_STEREO_TABLE = _code_table(Chem.BondStereo, _STEREO_INDEX, _OTHER_STEREO)


def bond_type_index(bond: Chem.Bond) -> int:
    """Integer bond class: 0 single, 1 double, 2 triple, 3 aromatic, 4 other (dative, zero, ...)."""
    return _BOND_TYPE_INDEX.get(bond.GetBondType(), len(BOND_TYPES))


def bond_type_indices(mol: Chem.Mol) -> torch.Tensor:
    """:func:`bond_type_index` of every bond, ``[n_bonds]`` int64 in ``mol.GetBonds()`` order."""
    return torch.from_numpy(bond_type_codes(bond_records([prepared_copy(mol)])[0]))


#: the columns of :func:`bond_records`, one row per bond
BOND_RECORD_COLUMNS: tuple[str, ...] = ("begin", "end", "bond_type", "stereo", "conjugated", "in_ring")


def bond_rows(work: Chem.Mol) -> list[tuple]:
    """The :data:`BOND_RECORD_COLUMNS` of every bond of a Mol with ring information
    (:func:`~atomgraph.features.prepared.prepared_copy`), in ``GetBonds()`` order, by index
    (RDKit's bond sequence is slow)."""
    return [
        (
            bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), int(bond.GetBondType()), int(bond.GetStereo()),
            bond.GetIsConjugated(), bond.IsInRing(),
        )
        for bond in map(work.GetBondWithIdx, range(work.GetNumBonds()))
    ]  # fmt: skip


def bond_records(prepared: Sequence[Chem.Mol]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bond_rows` of one or more molecules as ``[B, 6]`` int64 (atom indices within the
    molecule, RDKit's bond type and stereo codes, flags), molecule after molecule, and the bonds per
    molecule ``[M]``."""
    rows: list[tuple] = []
    counts = []
    for work in prepared:
        counts.append(work.GetNumBonds())
        rows += bond_rows(work)
    return bond_array(rows), np.array(counts, dtype=np.int64)


def bond_array(rows: list[tuple]) -> np.ndarray:
    """:func:`bond_rows` (of one or more molecules) as one ``[B, 6]`` int64 array."""
    return np.array(rows, dtype=np.int64).reshape(-1, len(BOND_RECORD_COLUMNS))


def bond_type_codes(records: np.ndarray) -> np.ndarray:
    """:func:`bond_type_index` of every row of :func:`bond_records` ``[B]`` int64."""
    return _BOND_TYPE_TABLE[records[:, 2]]


class BondFeaturizer(LayoutIntrospection):
    """Callable ``rdkit.Chem.Mol -> torch.Tensor [n_bonds, dim]`` (float, default dtype), ``dim = 11``.

    Blocks (see the module docstring): ``bond_type`` (one-hot, :func:`bond_type_index` order),
    ``conjugated``, ``in_ring``, ``stereo``. RDKit's ``STEREOZ`` and ``STEREOCIS`` both go to ``Z``,
    ``STEREOE`` and ``STEREOTRANS`` to ``E``. ``STEREOCIS``/``STEREOTRANS`` are defined relative to the
    bond's stereo atoms rather than by CIP priority, so for them Z/E is an approximation; Mols parsed from
    SMILES carry ``STEREOZ``/``STEREOE``.
    """

    def __init__(self) -> None:
        self._layout = FeatureLayout(
            [
                one_hot_block("bond_type", BOND_TYPE_LABELS),
                scalar_block("conjugated"),
                scalar_block("in_ring"),
                one_hot_block("stereo", STEREO_LABELS),
            ]
        )
        self._start = {name: s.start for name, s in self._layout.slices.items()}

    def __call__(self, mol: Chem.Mol) -> torch.Tensor:
        """Features of every bond of ``mol``: ``[n_bonds, dim]`` in ``mol.GetBonds()`` order."""
        records = bond_records([prepared_copy(mol)])[0]
        return torch.from_numpy(self.encode(records)).to(torch.get_default_dtype())

    def encode(self, records: np.ndarray) -> np.ndarray:
        """The feature rows ``[B, dim]`` (float64) of :func:`bond_records`' bonds, all at once."""
        count = len(records)
        x = np.zeros((count, self.dim), dtype=np.float64)
        rows = np.arange(count)
        start = self._start
        x[rows, start["bond_type"] + bond_type_codes(records)] = 1.0
        x[rows, start["stereo"] + _STEREO_TABLE[records[:, 3]]] = 1.0
        x[:, start["conjugated"]] = records[:, 4]
        x[:, start["in_ring"]] = records[:, 5]
        return x

    def __repr__(self) -> str:
        return f"BondFeaturizer(dim={self.dim})"


DEFAULT_BOND_FEATURIZER = BondFeaturizer()
"""A shared :class:`BondFeaturizer` (it has no options)."""
