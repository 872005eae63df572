"""Secondary structure and solvent accessibility of protein residues, from Biotite.

For the residue nodes of a complex graph (``data.complex.residue_structure: true``), computed on the
whole protein the pocket was cut from (a pocket alone would expose faces that the rest of the protein
buries):

* secondary structure: Biotite's ``annotate_sse`` (the P-SEA assignment from Cα geometry; Labesse et
  al., CABIOS 13, 291 (1997)) as a one-hot of helix / strand / coil; residues without a Cα are coil;
* relative solvent accessibility: Biotite's Shrake-Rupley ``sasa`` of the polymer's heavy atoms (ProtOr
  radii, probe 1.4 Å; cofactors, ligands and waters in the file left out) summed per residue and
  divided by the residue type's maximum in an extended tripeptide (Tien et al., PLoS ONE 8, e80635
  (2013), theoretical values; protonation variants and modified amino acids use their parent's,
  :func:`~atomgraph.apps.complexes.residues.canonical_residue`), clipped to [0, 1];
  waters and other residues without a maximum get 1 (exposed). PDBbind entries read their whole
  protein file for it, not the pocket file.

Biotite (``pip install biotite``; https://www.biotite-python.org) is the maintained library used for
both; the ``complexes`` extra installs it.
"""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np

from atomgraph.apps.complexes.protein import Protein
from atomgraph.apps.complexes.residues import canonical_residue

SSE_CLASSES = ("helix", "strand", "coil")
_SSE_CODE = {"a": 0, "b": 1, "c": 2}
MAX_ASA = {
    "ALA": 129.0, "ARG": 274.0, "ASN": 195.0, "ASP": 193.0, "CYS": 167.0, "GLN": 225.0, "GLU": 223.0,
    "GLY": 104.0, "HIS": 224.0, "ILE": 197.0, "LEU": 201.0, "LYS": 236.0, "MET": 224.0, "PHE": 240.0,
    "PRO": 159.0, "SER": 155.0, "THR": 172.0, "TRP": 285.0, "TYR": 263.0, "VAL": 174.0,
}  # fmt: skip
"""Å²: the largest accessible surface of each residue type (Tien et al. 2013, theoretical)."""
COLUMNS = (*(f"sse={name}" for name in SSE_CLASSES), "relative_sasa")


def check_biotite() -> None:
    """A ValueError with the install command when Biotite is missing."""
    if importlib.util.find_spec("biotite") is None:
        raise ValueError(
            "data.complex.residue_structure needs Biotite (secondary structure and SASA): "
            "pip install biotite (or atomgraph[complexes])"
        )


def _atom_array(protein: Protein):
    import biotite.structure as struc

    atoms = struc.AtomArray(len(protein))
    atoms.coord = np.asarray(protein.positions, dtype=np.float32)
    atoms.chain_id = np.asarray(protein.chain_ids, dtype=str)
    atoms.res_id = np.asarray(protein.residue_numbers, dtype=int)
    atoms.ins_code = np.asarray(protein.insertion_codes, dtype=str)
    atoms.res_name = np.asarray(protein.residue_names, dtype=str)
    atoms.atom_name = np.asarray(protein.atom_names, dtype=str)
    atoms.element = np.char.upper(np.asarray(protein.elements, dtype=str))
    atoms.hetero = np.asarray(protein.hetero, dtype=bool)
    return atoms


_CACHE: dict[str, dict[int, np.ndarray]] = {}
CACHE_SIZE = 16
"""Proteins whose residue features are kept (a benchmark's ligands share a few proteins)."""


def residue_structure(protein: Protein) -> dict[int, np.ndarray]:
    """``residue_index -> [4]`` (helix, strand, coil one-hot; relative SASA) for every residue of
    ``protein`` (see the module docstring); the last :data:`CACHE_SIZE` proteins are remembered by
    content."""
    check_biotite()
    digest = hashlib.sha1(np.ascontiguousarray(protein.positions, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(protein.residue_index).tobytes())
    digest.update("|".join(map(str, protein.atom_names)).encode())
    key = digest.hexdigest()
    if key not in _CACHE:
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _compute(protein)
    return _CACHE[key]


def _compute(protein: Protein) -> dict[int, np.ndarray]:
    import warnings

    import biotite.structure as struc

    atoms = _atom_array(protein)
    amino = struc.filter_amino_acids(atoms)  # modified amino acids (HETATM) included
    # the polymer's surface: cofactors, ligands and waters kept in the file must not bury residues
    polymer = (np.asarray(protein.numbers) > 1) & amino
    sasa = np.zeros(len(protein))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown residue names get default radii
        sasa[polymer] = np.nan_to_num(struc.sasa(atoms[polymer], vdw_radii="ProtOr", probe_radius=1.4))
    residue_index = np.asarray(protein.residue_index)
    sse_of: dict[int, int] = {}
    for chain in np.unique(atoms.chain_id[amino]):
        in_chain = np.flatnonzero(amino & (atoms.chain_id == chain))
        starts = struc.get_residue_starts(atoms[in_chain])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = struc.annotate_sse(atoms[in_chain])
        for start, label in zip(starts, labels, strict=True):
            sse_of[int(residue_index[in_chain[start]])] = _SSE_CODE.get(str(label), 2)
    out = {}
    for residue in np.unique(residue_index):
        members = residue_index == residue
        row = np.zeros(len(COLUMNS))
        row[sse_of.get(int(residue), 2)] = 1.0
        name = str(np.asarray(protein.residue_names)[members][0])
        maximum = MAX_ASA.get(canonical_residue(name))
        row[-1] = 1.0 if maximum is None else min(float(sasa[members].sum()) / maximum, 1.0)
        out[int(residue)] = row
    return out
