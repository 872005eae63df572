"""Bonded molecular graphs from RDKit molecules: atoms are nodes, bonds are edges in both directions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms
from rdkit import Chem
from torch_geometric.data import Data

from atomgraph.features import AtomFeaturizer, BondFeaturizer
from atomgraph.features.atom_features import (
    DEFAULT_ATOM_FEATURIZER,
    RECORD_COLUMNS,
    AtomRecords,
    atom_rows,
    hbond_roles,
    record_charges,
)
from atomgraph.features.bond_features import DEFAULT_BOND_FEATURIZER, bond_array, bond_rows, bond_type_codes
from atomgraph.features.gasteiger import rdkit_gasteiger_charges
from atomgraph.features.prepared import prepared_copy
from atomgraph.graphs.batching import graph_of
from atomgraph.structures import StructureError


def _as_mol(molecule: Chem.Mol | str | Atoms, explicit_hydrogens: bool) -> Chem.Mol:
    if isinstance(molecule, Chem.Mol):
        return molecule
    if isinstance(molecule, Atoms):
        mol = molecule.info.get("rdkit_mol")
        if mol is None:
            raise StructureError(
                f"{molecule.info.get('source', 'structure')}: no bonds known (no RDKit molecule); "
                "read it from SMILES/SDF/MOL2/PDB or use radius_graph"
            )
        return mol
    if not isinstance(molecule, str) or not molecule.strip():
        raise StructureError(f"expected an RDKit Mol, ase.Atoms or SMILES string, got {molecule!r}")
    mol = Chem.MolFromSmiles(molecule)
    if mol is None:
        raise StructureError(f"invalid SMILES {molecule!r}: RDKit could not parse it")
    return Chem.AddHs(mol) if explicit_hydrogens else mol


def bond_graph(
    molecule: Chem.Mol | str | Atoms,
    atom_featurizer: AtomFeaturizer | None = None,
    bond_featurizer: BondFeaturizer | None = None,
    explicit_hydrogens: bool = False,
) -> Data:
    """The bonded graph of a molecule with atom features ``x`` and bond features ``edge_attr``.

    molecule: an RDKit ``Mol`` (used as it is), an ``ase.Atoms`` carrying ``info["rdkit_mol"]`` or a
    SMILES string (hydrogens implicit, as in chemprop, unless ``explicit_hydrogens``). Every bond
    gives two directed edges (2 * n_bonds): first each bond from its begin to its end atom, then each
    back. ``edge_type`` is the bond class (0 single, 1 double, 2 triple, 3 aromatic, 4 other). ``pos``
    comes from the molecule's 3D conformer when it has one, else zeros (``has_3d`` False).
    """
    return bond_graphs([_as_mol(molecule, explicit_hydrogens)], atom_featurizer, bond_featurizer)[0]


def bond_graphs(
    molecules: Sequence[Chem.Mol],
    atom_featurizer: AtomFeaturizer | None = None,
    bond_featurizer: BondFeaturizer | None = None,
) -> list[Data]:
    """:func:`bond_graph` of several RDKit molecules, equal to it graph by graph, featurised together
    (:class:`BondGraphBuilder`; the molecules are read from copies and not changed). The graphs' tensors
    are views into tensors shared by the call's graphs (``torch.split``): clone one before storing it
    alone."""
    builder = BondGraphBuilder(atom_featurizer, bond_featurizer)
    for mol in molecules:
        builder.add(prepared_copy(mol))
    return builder.graphs()


class BondGraphBuilder:
    """The bond graphs of many molecules, read one at a time and featurised together.

    :meth:`add` reads all a molecule's featurisers need (its atoms and bonds) in one go, while it is in
    the CPU cache, so the caller can let it go at once; :meth:`graphs` then computes every feature block
    of all of them at once (a chunk of a screening library costs little more than its RDKit calls).
    Reading a molecule whole, then the next, is ~1/3 faster than a pass over a chunk of molecules per
    property: RDKit molecules are large, and freeing one while it is cached is cheap.

    The Gasteiger charges of the first :data:`PER_MOLECULE_CHARGES` molecules are RDKit's, read as they
    are added; from one more on, the charges of all are computed together
    (:func:`~atomgraph.features.gasteiger.gasteiger_charges_of`, ~4 µs a molecule against RDKit's ~40 µs,
    but ~0.2 ms a call). Both are the same to the last bit.
    """

    #: builders of up to this many molecules read RDKit's charges one by one
    PER_MOLECULE_CHARGES = 8

    def __init__(
        self, atom_featurizer: AtomFeaturizer | None = None, bond_featurizer: BondFeaturizer | None = None
    ) -> None:
        self.atom_featurizer = atom_featurizer or DEFAULT_ATOM_FEATURIZER
        self.bond_featurizer = bond_featurizer or DEFAULT_BOND_FEATURIZER
        self._atoms: list[tuple] = []
        self._bonds: list[tuple] = []
        self._roles: list[np.ndarray] = []
        self._charges: list[np.ndarray] = []  # RDKit's, of the first PER_MOLECULE_CHARGES molecules
        self._n_atoms: list[int] = []
        self._n_bonds: list[int] = []
        self._positions: dict[int, np.ndarray] = {}  # molecule -> [n, 3] (Å), for 3D molecules

    def __len__(self) -> int:
        return len(self._n_atoms)

    def add(self, work: Chem.Mol) -> None:
        """Read one prepared molecule (:func:`~atomgraph.features.prepared.prepared`: ring info and
        valences available; RDKit may set its Gasteiger properties). A molecule it cannot read raises
        and leaves the builder as it was; one without atoms is a StructureError."""
        n = work.GetNumAtoms()
        if n == 0:
            raise StructureError(f"{Chem.MolToSmiles(work)!r}: empty molecule")
        atoms, bonds = atom_rows(work), bond_rows(work)
        charges = rdkit_gasteiger_charges(work) if len(self) < self.PER_MOLECULE_CHARGES else None
        roles = np.stack(hbond_roles(work), axis=1) if self.atom_featurizer.hbond else None
        if work.GetNumConformers() > 0 and work.GetConformer().Is3D():
            self._positions[len(self)] = work.GetConformer().GetPositions()
        self._atoms += atoms
        self._bonds += bonds
        if roles is not None:
            self._roles.append(roles)
        if charges is not None:
            self._charges.append(charges)
        self._n_atoms.append(n)
        self._n_bonds.append(len(bonds))

    def graphs(self) -> list[Data]:
        """The graphs of the molecules added, in order (see :func:`bond_graphs`)."""
        if not self._n_atoms:
            return []
        atom_featurizer, bond_featurizer = self.atom_featurizer, self.bond_featurizer
        n_atoms = np.array(self._n_atoms, dtype=np.int64)
        n_bonds = np.array(self._n_bonds, dtype=np.int64)
        bonds = bond_array(self._bonds)
        values = np.array(self._atoms, dtype=np.float64).reshape(len(self._atoms), len(RECORD_COLUMNS))
        if len(self._charges) == len(self):
            charges = np.concatenate(self._charges)
        else:
            charges = record_charges(values, n_atoms, bonds, n_bonds)
        atoms = AtomRecords.of(values, charges, self._n_atoms, self._roles if atom_featurizer.hbond else None)
        count = len(n_atoms)
        # directed edges, molecule by molecule: its bonds begin -> end, then the same bonds end -> begin
        molecule_of_edge = np.repeat(np.arange(count), 2 * n_bonds)
        first_bond = np.cumsum(n_bonds) - n_bonds
        local = np.arange(2 * len(bonds)) - 2 * first_bond[molecule_of_edge]
        per_molecule = n_bonds[molecule_of_edge]
        bond = first_bond[molecule_of_edge] + local % np.maximum(per_molecule, 1)
        forward = local < per_molecule
        ends = np.where(forward[:, None], bonds[bond, :2], bonds[bond, 1::-1])
        bond_x = torch.from_numpy(bond_featurizer.encode(bonds)[bond])
        dtype = torch.get_default_dtype()
        pos = np.zeros((len(atoms.values), 3))
        has_3d = np.zeros(count, dtype=bool)
        first_atom = np.cumsum(n_atoms) - n_atoms
        for k, positions in self._positions.items():
            has_3d[k] = True
            pos[first_atom[k] : first_atom[k] + n_atoms[k]] = positions
        atom_split, edge_split = n_atoms.tolist(), (2 * n_bonds).tolist()
        columns = {
            "x": (torch.from_numpy(atom_featurizer.encode(atoms)).to(dtype), atom_split),
            "z": (torch.from_numpy(atoms.values[:, 0].astype(np.int64)), atom_split),
            "pos": (torch.from_numpy(pos).to(dtype), atom_split),
            "cell": (torch.zeros((count, 3, 3), dtype=dtype), 1),
            "pbc": (torch.zeros((count, 3), dtype=torch.bool), 1),
            "edge_index": (torch.from_numpy(np.ascontiguousarray(ends.T)), edge_split),
            "edge_attr": (bond_x.to(dtype), edge_split),
            "edge_type": (torch.from_numpy(bond_type_codes(bonds)[bond]), edge_split),
            "edge_shift": (torch.zeros((len(bond), 3), dtype=torch.long), edge_split),
            "edge_forward": (torch.from_numpy(forward), edge_split),
            "natoms": (torch.from_numpy(n_atoms), 1),
            "has_3d": (torch.from_numpy(has_3d), 1),
        }
        parts = {
            name: torch.split(tensor, sizes, dim=-1 if name == "edge_index" else 0)
            for name, (tensor, sizes) in columns.items()
        }
        return [graph_of({name: pieces[k] for name, pieces in parts.items()}) for k in range(count)]
