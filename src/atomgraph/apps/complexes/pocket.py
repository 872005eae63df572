"""Binding pockets: the protein residues near a ligand, and checks that protein and ligand share a frame."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from atomgraph.apps.complexes.errors import ComplexError
from atomgraph.apps.complexes.protein import Protein

DEFAULT_POCKET_RADIUS = 8.0
"""Å: a residue is in the pocket when any of its heavy atoms is this close to a ligand heavy atom."""
OVERLAP_DISTANCE = 0.7
"""Å: a ligand heavy atom closer than this to a protein heavy atom overlaps it (no bond is this short)."""


def pocket_atom_indices(
    protein: Protein, ligand_positions: np.ndarray, radius: float = DEFAULT_POCKET_RADIUS
):
    """Indices [M] (file order) of the atoms of every residue with a heavy atom within ``radius`` Å of a
    ligand position. ``ligand_positions`` [L, 3] Å: pass heavy atoms only. Hydrogens are ignored for the
    distance test (the pocket does not depend on protonation) but kept in the result."""
    if radius <= 0:
        raise ValueError(f"pocket radius must be positive, got {radius}")
    heavy = np.flatnonzero(protein.heavy)
    if len(heavy) == 0 or len(ligand_positions) == 0:
        return np.zeros(0, dtype=np.int64)
    tree = cKDTree(protein.positions[heavy])
    hits = tree.query_ball_point(np.asarray(ligand_positions, dtype=float), r=radius)
    near = np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits]))
    if len(near) == 0:
        return near
    residues = np.unique(protein.residue_index[heavy[near]])
    return np.flatnonzero(np.isin(protein.residue_index, residues))


def extract_pocket(
    protein: Protein, ligand_positions: np.ndarray, radius: float = DEFAULT_POCKET_RADIUS, name: str = ""
) -> Protein:
    """The whole residues of ``protein`` within ``radius`` Å of the ligand (see :func:`pocket_atom_indices`).

    Raises:
        ComplexError: no protein atom is that close (see :func:`check_frames` for the diagnosis).
    """
    check_frames(protein, ligand_positions, radius, name)
    return protein.subset(pocket_atom_indices(protein, ligand_positions, radius))


def nearest_protein_distances(protein: Protein, ligand_positions: np.ndarray) -> np.ndarray:
    """Distance (Å) from each ligand position [L, 3] to the nearest protein heavy atom: [L]."""
    heavy = protein.positions[protein.heavy]
    if len(heavy) == 0:
        return np.full(len(ligand_positions), np.inf)
    distances, _ = cKDTree(heavy).query(np.asarray(ligand_positions, dtype=float))
    return np.atleast_1d(distances)


def check_frames(
    protein: Protein, ligand_positions: np.ndarray, radius: float = DEFAULT_POCKET_RADIUS, name: str = ""
) -> None:
    """Raise a :class:`ComplexError` when protein and ligand cannot be one complex.

    * no protein heavy atom within ``radius`` Å of any ligand heavy atom: the ligand is outside the
      protein (the message gives the nearest distance and both centroids: files from different frames);
    * three or more ligand heavy atoms (or all, for smaller ligands) closer than
      :data:`OVERLAP_DISTANCE` to protein heavy atoms: the ligand lies on top of the protein.
    """
    label = name or protein.source
    ligand_positions = np.asarray(ligand_positions, dtype=float).reshape(-1, 3)
    if len(ligand_positions) == 0:
        raise ComplexError(f"{label}: the ligand has no heavy atoms", source=label)
    distances = nearest_protein_distances(protein, ligand_positions)
    nearest = float(distances.min())
    if nearest > radius:
        protein_centre = protein.positions[protein.heavy].mean(axis=0) if protein.heavy.any() else np.zeros(3)
        raise ComplexError(
            f"{label}: no protein atom within {radius:g} Å of the ligand (nearest {nearest:.1f} Å; ligand "
            f"centroid {np.round(ligand_positions.mean(axis=0), 1).tolist()}, protein centroid "
            f"{np.round(protein_centre, 1).tolist()}): the protein and ligand files do not seem to share a "
            "coordinate frame",
            source=label,
        )
    overlapping = int((distances < OVERLAP_DISTANCE).sum())
    if overlapping >= min(3, len(ligand_positions)):
        raise ComplexError(
            f"{label}: {overlapping} of {len(ligand_positions)} ligand heavy atoms lie within "
            f"{OVERLAP_DISTANCE} Å of protein atoms: the files do not share a frame, or the protein file "
            "holds another molecule where the ligand is",
            source=label,
        )


def ligand_copies(protein: Protein, ligand_positions: np.ndarray, tolerance: float = 0.5) -> np.ndarray:
    """Atom indices of HETATM residues that duplicate the ligand (at least half of their heavy atoms
    within ``tolerance`` Å of ligand heavy atoms): the ligand kept in the protein file."""
    candidates = protein.hetero & protein.heavy
    if not candidates.any():
        return np.zeros(0, dtype=np.int64)
    distances, _ = cKDTree(np.asarray(ligand_positions, dtype=float)).query(protein.positions[candidates])
    close = np.zeros(len(protein), dtype=bool)
    close[np.flatnonzero(candidates)] = np.atleast_1d(distances) < tolerance
    copies = []
    for residue in np.unique(protein.residue_index[candidates]):
        members = (protein.residue_index == residue) & protein.heavy
        if close[members].mean() >= 0.5:
            copies.append(residue)
    return np.flatnonzero(np.isin(protein.residue_index, copies))
