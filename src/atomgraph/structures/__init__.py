"""The outside world in: structure files and SMILES -> validated :class:`ase.Atoms`.

* :func:`read` / :func:`read_all` / :func:`read_records` (bad records reported in place) --
  xyz/extxyz, sdf/mol, mol2, cif, POSCAR/CONTCAR, pdb, ASE db;
* :func:`from_smiles` -- SMILES with explicit hydrogens, 2D depiction or ETKDGv3 + MMFF94 3D;
* :func:`mol_to_atoms` -- any RDKit molecule with a conformer;
* :func:`validate_atoms` -- the checks every structure passes (elements, finite coordinates, cell,
  minimum interatomic distance with periodic images);
* :class:`StructureError` -- raised for every bad input, naming the file or SMILES and the record.

Every result is an ``ase.Atoms`` (positions and cell in Å); where bonds are known (SMILES, SDF/MOL, MOL2,
PDB read by RDKit) ``atoms.info["rdkit_mol"]`` holds the RDKit molecule in the same atom order.
``atoms.info["source"]`` says where the structure came from.
"""

from atomgraph.structures.errors import StructureError
from atomgraph.structures.rdkit_convert import mol_to_atoms
from atomgraph.structures.readers import iter_records, iter_structures, read, read_all, read_records
from atomgraph.structures.smiles import from_smiles
from atomgraph.structures.validate import validate_atoms

__all__ = [
    "StructureError",
    "from_smiles",
    "iter_records",
    "iter_structures",
    "mol_to_atoms",
    "read",
    "read_all",
    "read_records",
    "validate_atoms",
]
