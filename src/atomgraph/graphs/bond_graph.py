"""Bonded molecular graphs from RDKit molecules: atoms are nodes, bonds are edges in both directions."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from rdkit import Chem
from torch_geometric.data import Data

from atomgraph.features import AtomFeaturizer, BondFeaturizer, bond_type_indices
from atomgraph.features.atom_features import DEFAULT_ATOM_FEATURIZER
from atomgraph.features.bond_features import DEFAULT_BOND_FEATURIZER
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
    gives two directed edges (2 * n_bonds). ``edge_type`` is the bond class (0 single, 1 double,
    2 triple, 3 aromatic, 4 other). ``pos`` comes from the molecule's 3D conformer when it has one,
    else zeros (``has_3d`` False).
    """
    mol = _as_mol(molecule, explicit_hydrogens)
    atom_featurizer = atom_featurizer or DEFAULT_ATOM_FEATURIZER
    bond_featurizer = bond_featurizer or DEFAULT_BOND_FEATURIZER
    n_atoms = mol.GetNumAtoms()
    if n_atoms == 0:
        raise StructureError(f"{Chem.MolToSmiles(mol)!r}: empty molecule")
    ends = np.array(  # by index: faster than GetBonds()
        [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in map(mol.GetBondWithIdx, range(mol.GetNumBonds()))],
        dtype=np.int64,
    ).reshape(-1, 2)
    n_bonds = len(ends)
    edge_index = torch.from_numpy(np.concatenate([ends, ends[:, ::-1]]).T.copy())
    bond_attr = bond_featurizer(mol)
    edge_type = bond_type_indices(mol)

    has_3d = mol.GetNumConformers() > 0 and mol.GetConformer().Is3D()
    dtype = torch.get_default_dtype()
    pos = torch.tensor(mol.GetConformer().GetPositions()) if has_3d else torch.zeros((n_atoms, 3))
    return Data(
        x=atom_featurizer(mol),
        z=torch.tensor([mol.GetAtomWithIdx(i).GetAtomicNum() for i in range(n_atoms)], dtype=torch.long),
        pos=pos.to(dtype),
        cell=torch.zeros((1, 3, 3), dtype=dtype),
        pbc=torch.zeros((1, 3), dtype=torch.bool),
        edge_index=edge_index,
        edge_attr=torch.cat([bond_attr, bond_attr]),
        edge_type=torch.cat([edge_type, edge_type]),
        edge_shift=torch.zeros((2 * n_bonds, 3), dtype=torch.long),
        edge_forward=torch.arange(2 * n_bonds) < n_bonds,
        natoms=torch.tensor([n_atoms]),
        has_3d=torch.tensor([has_3d]),
    )
