"""RDKit molecules made ready for the featurisers: ring information and implicit valences available,
for unsanitised molecules too."""

from __future__ import annotations

from rdkit import Chem

__all__ = ["ensure_ring_info", "prepared", "prepared_copy"]


def ensure_ring_info(mol: Chem.Mol) -> None:
    """Perceive rings in place with ``FastFindRings`` so ``IsInRing`` works on unsanitised Mols too.

    Call it on a copy: it may replace an existing SSSR ring set (ring membership is the same).
    """
    Chem.FastFindRings(mol)


def prepared_copy(mol: Chem.Mol) -> Chem.Mol:
    """A copy with ring info and implicit valences available: what
    :func:`~atomgraph.features.atom_features.atom_rows` and
    :func:`~atomgraph.features.bond_features.bond_rows` read."""
    return prepared(Chem.Mol(mol))


def prepared(mol: Chem.Mol) -> Chem.Mol:
    """``mol`` itself, given what :func:`prepared_copy` gives a copy: for a Mol the caller owns (its
    ring set is replaced by ``FastFindRings``'; ring membership stays the same)."""
    mol.UpdatePropertyCache(strict=False)
    ensure_ring_info(mol)
    return mol
