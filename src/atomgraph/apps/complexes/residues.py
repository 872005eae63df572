"""Amino-acid tables: residue types, charges, hydrophobicity and the PDB atom names of functional groups.

Atom names follow the PDB (wwPDB chemical component dictionary) convention. Residue names of common
protonation/variant forms (``HID``, ``HIE``, ``HIP``, ``CYX``, ``ASH``, ``GLH``, ``LYN``, ...) and a few
modified residues (``MSE``, ``SEP``, ``TPO``, ``PTR``) are mapped to their parent amino acid by
:func:`canonical_residue`.
"""

from __future__ import annotations

AMINO_ACIDS: tuple[str, ...] = (
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE",
    "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL",
)  # fmt: skip
"""The 20 standard amino acids (the ``residue`` one-hot order; anything else is ``other``)."""

ONE_LETTER: dict[str, str] = dict(zip(AMINO_ACIDS, "ARNDCQEGHILKMFPSTWYV", strict=True))

ALIASES: dict[str, str] = {
    "HID": "HIS", "HIE": "HIS", "HIP": "HIS", "HSD": "HIS", "HSE": "HIS", "HSP": "HIS", "HSH": "HIS",
    "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU", "LYN": "LYS", "ARN": "ARG",
    "MSE": "MET", "SEP": "SER", "TPO": "THR", "PTR": "TYR", "CSO": "CYS", "HYP": "PRO",
}  # fmt: skip

WATER_NAMES = frozenset({"HOH", "WAT", "H2O", "DOD", "TIP", "TIP3", "SOL"})

KYTE_DOOLITTLE: dict[str, float] = {
    "ALA": 1.8, "ARG": -4.5, "ASN": -3.5, "ASP": -3.5, "CYS": 2.5, "GLN": -3.5, "GLU": -3.5,
    "GLY": -0.4, "HIS": -3.2, "ILE": 4.5, "LEU": 3.8, "LYS": -3.9, "MET": 1.9, "PHE": 2.8,
    "PRO": -1.6, "SER": -0.8, "THR": -0.7, "TRP": -0.9, "TYR": -1.3, "VAL": 4.2,
}  # fmt: skip
"""Kyte & Doolittle (1982) hydropathy index (dimensionless, -4.5 .. 4.5)."""

RESIDUE_CHARGE: dict[str, float] = {"ARG": 1.0, "LYS": 1.0, "ASP": -1.0, "GLU": -1.0}
"""Side-chain charge at pH 7 (e) by residue name; His is counted neutral unless named HIP/HSP/HSH."""

PROTONATED_HIS = frozenset({"HIP", "HSP", "HSH"})
NEUTRAL_FORMS = frozenset({"ASH", "GLH", "LYN", "ARN", "HID", "HIE", "HSD", "HSE", "CYM"})

BACKBONE_ATOMS = frozenset({"N", "CA", "C", "O", "OXT"})
"""Heavy backbone atom names (every other heavy atom of an amino acid is side chain)."""

BACKBONE_DONORS = frozenset({"N"})  # not for PRO
BACKBONE_ACCEPTORS = frozenset({"O", "OXT"})

SIDECHAIN_DONORS: dict[str, frozenset[str]] = {
    "ARG": frozenset({"NE", "NH1", "NH2"}),
    "ASN": frozenset({"ND2"}),
    "GLN": frozenset({"NE2"}),
    "HIS": frozenset({"ND1", "NE2"}),
    "LYS": frozenset({"NZ"}),
    "SER": frozenset({"OG"}),
    "THR": frozenset({"OG1"}),
    "TYR": frozenset({"OH"}),
    "TRP": frozenset({"NE1"}),
    "CYS": frozenset({"SG"}),
    "ASP": frozenset({"OD1", "OD2"}),  # only when protonated (an H is bonded); see protein typing
    "GLU": frozenset({"OE1", "OE2"}),
}
"""Side-chain donor heavy atoms. Asp/Glu oxygens and His nitrogens donate only when an H is bonded
to them (with hydrogens present) or by residue name (ASH/GLH, HID/HIE/HIP)."""

SIDECHAIN_ACCEPTORS: dict[str, frozenset[str]] = {
    "ASN": frozenset({"OD1"}),
    "ASP": frozenset({"OD1", "OD2"}),
    "GLN": frozenset({"OE1"}),
    "GLU": frozenset({"OE1", "OE2"}),
    "HIS": frozenset({"ND1", "NE2"}),
    "SER": frozenset({"OG"}),
    "THR": frozenset({"OG1"}),
    "TYR": frozenset({"OH"}),
    "MET": frozenset({"SD"}),
}
"""Side-chain acceptor heavy atoms (a His nitrogen that carries an H is not an acceptor)."""

POSITIVE_ATOMS: dict[str, frozenset[str]] = {
    "LYS": frozenset({"NZ"}),
    "ARG": frozenset({"NE", "NH1", "NH2"}),
    "HIS": frozenset({"ND1", "NE2"}),  # only protonated His (HIP, or H on both nitrogens)
}
NEGATIVE_ATOMS: dict[str, frozenset[str]] = {
    "ASP": frozenset({"OD1", "OD2"}),
    "GLU": frozenset({"OE1", "OE2"}),
}
"""Atoms of the charged groups used for salt bridges (the C-terminal O/OXT and N-terminal N are added
by the protein typing)."""

AROMATIC_RINGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "PHE": (("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),),
    "TYR": (("CG", "CD1", "CD2", "CE1", "CE2", "CZ"),),
    "TRP": (("CD2", "CE2", "CE3", "CZ2", "CZ3", "CH2"), ("CG", "CD1", "NE1", "CE2", "CD2")),
    "HIS": (("CG", "ND1", "CD2", "CE1", "NE2"),),
}
"""Aromatic rings of the standard residues as atom-name tuples."""

METALS = frozenset({"Li", "Na", "K", "Mg", "Ca", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Cd", "Hg", "Sr", "Ba"})
"""Elements counted as (positive) ions when they appear in the protein file."""


def canonical_residue(name: str) -> str:
    """Parent amino acid of a residue name (``HIE`` -> ``HIS``), the name itself otherwise."""
    name = name.strip().upper()
    return ALIASES.get(name, name)


def residue_type(name: str) -> str:
    """One of :data:`AMINO_ACIDS` or ``"other"`` (ligands, cofactors, waters, ions)."""
    canonical = canonical_residue(name)
    return canonical if canonical in ONE_LETTER else "other"


def is_water(name: str) -> bool:
    return name.strip().upper() in WATER_NAMES


def residue_charge(name: str) -> float:
    """Nominal side-chain charge (e) of a residue at pH 7 from its name (0 for unknown residues)."""
    upper = name.strip().upper()
    if upper in PROTONATED_HIS:
        return 1.0
    if upper in NEUTRAL_FORMS:
        return 0.0
    return RESIDUE_CHARGE.get(canonical_residue(upper), 0.0)


def hydrophobicity(name: str) -> float:
    """Kyte-Doolittle index of the residue's parent amino acid (0 for unknown residues)."""
    return KYTE_DOOLITTLE.get(canonical_residue(name), 0.0)


def one_letter_sequence(names: list[str]) -> str:
    """One-letter sequence of residue names (``X`` for anything non-standard)."""
    return "".join(ONE_LETTER.get(canonical_residue(n), "X") for n in names)
