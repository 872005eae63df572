"""Ligands from SDF, MOL2 or PDBQT files as RDKit molecules with their 3D pose, hydrogens as in the file.

:func:`iter_ligands` reads a file one record at a time (screening a library of any size);
:func:`read_ligands` lists every record; :func:`read_ligand` returns one.

Every record is sanitised by RDKit; a record RDKit rejects becomes a :class:`ComplexError` naming the file,
the record and the molecule's name, so batch jobs (datasets, screening) can report it and go on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from atomgraph.apps.complexes.errors import ComplexError
from atomgraph.structures.rdkit_convert import capture_rdkit_errors

LIGAND_FORMATS = ("sdf", "mol", "mol2", "pdbqt", "pdb")


@dataclass
class LigandRecord:
    """One record of a ligand file: ``mol`` (sanitised, with a 3D conformer) or the ``error`` it raised."""

    index: int
    name: str
    mol: Chem.Mol | None
    error: ComplexError | None = None

    @property
    def ok(self) -> bool:
        return self.mol is not None


def _check_pose(mol: Chem.Mol, where: str) -> Chem.Mol:
    """Raise unless ``mol`` has a 3D conformer with distinct atoms."""
    if mol.GetNumAtoms() == 0:
        raise ComplexError(f"{where}: the ligand has no atoms", source=where)
    if mol.GetNumConformers() == 0:
        raise ComplexError(f"{where}: the ligand has no coordinates", source=where)
    positions = mol.GetConformer().GetPositions()
    if not np.isfinite(positions).all():
        raise ComplexError(f"{where}: non-finite ligand coordinates", source=where)
    if mol.GetNumAtoms() > 1 and np.allclose(positions[:, 2], 0.0):
        raise ComplexError(
            f"{where}: the ligand has 2D coordinates (all z = 0); a complex needs its 3D pose", source=where
        )
    return mol


def _sdf_records(path: Path, skip: int = 0) -> Iterator[LigandRecord]:
    """The records of an SDF, one at a time (records before ``skip`` are read past, not parsed)."""
    for index, text in enumerate(_sdf_texts(path)):
        if index < skip:
            continue
        name = text.splitlines()[0].strip() if text.strip() else ""
        with capture_rdkit_errors() as log:
            supplier = Chem.SDMolSupplier()
            supplier.SetData(text, sanitize=False, removeHs=False)
            # a record the supplier cannot read is not counted by it: parse it again for RDKit's reason
            mol = supplier[0] if len(supplier) else Chem.MolFromMolBlock(text, sanitize=False, removeHs=False)
        yield _sanitised(mol, index, name, path, log.reason())


def _sdf_texts(path: Path) -> Iterator[str]:
    """The text of each SDF record, as RDKit's ``SDMolSupplier`` splits them: up to and including a line
    starting ``$$$$``; text after the last one is a record unless it is blank."""
    lines: list[bytes] = []
    with open(path, "rb") as handle:
        for line in handle:
            lines.append(line)
            if line.startswith(b"$$$$"):
                yield b"".join(lines).decode("utf-8", errors="replace")
                lines = []
    text = b"".join(lines).decode("utf-8", errors="replace")
    if text.strip():
        yield text


def _mol2_records(path: Path, skip: int = 0) -> Iterator[LigandRecord]:
    """The records of a MOL2 file (one per ``@<TRIPOS>MOLECULE``), one at a time."""

    def record(index: int, block: list[str]) -> LigandRecord:
        name = block[1].strip() if len(block) > 1 else ""
        with capture_rdkit_errors() as log:
            mol = Chem.MolFromMol2Block("".join(block), sanitize=False, removeHs=False)
        return _sanitised(mol, index, name, path, log.reason())

    index, block = -1, []
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith("@<TRIPOS>MOLECULE"):
                if block and index >= skip:
                    yield record(index, block)
                index, block = index + 1, [line]
            elif block:
                block.append(line)
    if block and index >= skip:
        yield record(index, block)


def _pdbqt_records(path: Path, template: Chem.Mol | None, skip: int = 0) -> Iterator[LigandRecord]:
    """PDBQT/PDB poses (one per MODEL), one at a time: coordinates and elements; bond orders from
    ``template`` if given."""
    index, block = 0, []
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith("ENDMDL"):
                if block:
                    if index >= skip:
                        yield _pdbqt_record(path, block, index, template)
                    index += 1
                block = []
            elif line.startswith(("ATOM", "HETATM")):
                line = line.rstrip("\r\n")
                element = line[77:79].strip() if len(line) > 77 else ""
                element = {"A": "C", "OA": "O", "NA": "N", "SA": "S", "HD": "H", "HS": "H"}.get(
                    element, element
                )
                block.append(f"{line[:66]:<66}          {element[:2]:>2}")
    if block and index >= skip:
        yield _pdbqt_record(path, block, index, template)


def _pdbqt_record(path: Path, block: list[str], index: int, template: Chem.Mol | None) -> LigandRecord:
    with capture_rdkit_errors() as log:
        mol = Chem.MolFromPDBBlock("\n".join(block) + "\nEND\n", removeHs=False, sanitize=False)
    if mol is not None and template is not None:
        try:
            mol = AllChem.AssignBondOrdersFromTemplate(template, Chem.RemoveHs(mol, sanitize=False))
            mol = Chem.AddHs(mol, addCoords=True)
        except (ValueError, RuntimeError) as error:
            where = f"{path} record {index}"
            err = ComplexError(f"{where}: the template does not match the pose: {error}", source=where)
            return LigandRecord(index, f"pose {index}", None, err)
    return _sanitised(mol, index, f"pose {index}", path, log.reason())


def _sanitised(mol: Chem.Mol | None, index: int, name: str, path: Path, reason: str = "") -> LigandRecord:
    label = f" ({name})" if name else ""
    where = f"{path} record {index}{label}"
    if mol is None:
        error = ComplexError(
            f"{where}: RDKit could not parse the ligand{reason}", source=str(path), record=index
        )
        return LigandRecord(index, name, None, error)
    with capture_rdkit_errors() as log:
        try:
            Chem.SanitizeMol(mol)
            failure = None
        except (ValueError, RuntimeError) as exc:  # Chem.MolSanitizeException derives from ValueError
            failure = str(exc)
    if failure is not None:
        error = ComplexError(
            f"{where}: RDKit cannot sanitise the ligand: {failure}{log.reason()}",
            source=str(path),
            record=index,
        )
        return LigandRecord(index, name, None, error)
    try:
        _check_pose(mol, where)
    except ComplexError as error:
        error.record = index
        return LigandRecord(index, name, None, error)
    if name:
        mol.SetProp("_Name", name)
    return LigandRecord(index, name, mol)


def read_ligands(
    path: str | os.PathLike[str], format: str | None = None, template_smiles: str | None = None
) -> list[LigandRecord]:
    """Every record of a ligand file, a bad one with its error (batch jobs report it and go on): the
    records of :func:`iter_ligands` in a list (for files of any size, iterate over that instead).

    Raises:
        ComplexError: missing file, unknown format or a file with no records.
    """
    return list(_ligand_records(path, format, template_smiles, 0, stacklevel=3))


def iter_ligands(
    path: str | os.PathLike[str], format: str | None = None, template_smiles: str | None = None, skip: int = 0
) -> Iterator[LigandRecord]:
    """The records of a ligand file one at a time, in file order, a bad one with its error: memory holds
    one record, whatever the file's length. Records before ``skip`` are read past without being parsed
    (their indices still count: the first record yielded is record ``skip``).

    format: ``sdf``/``mol``, ``mol2``, ``pdbqt`` or ``pdb`` (default from the extension). PDBQT/PDB poses
    carry no bond orders: give ``template_smiles`` to assign them (RDKit ``AssignBondOrdersFromTemplate``,
    hydrogens then added with coordinates); without it bonds come from distances (single bonds only).

    Raises:
        ComplexError: missing file, unknown format or invalid template (when called); a file with no
            records (when the iteration ends without one).
    """
    return _ligand_records(path, format, template_smiles, skip, stacklevel=3)


def _ligand_records(
    path: str | os.PathLike[str], format: str | None, template_smiles: str | None, skip: int, stacklevel: int
) -> Iterator[LigandRecord]:
    """The checks of :func:`iter_ligands`, made now, and its generator."""
    path = Path(path)
    kind = (format or path.suffix.lstrip(".")).lower()
    if kind not in LIGAND_FORMATS:
        raise ComplexError(
            f"{path}: unknown ligand format {kind!r}; use one of {LIGAND_FORMATS}", source=str(path)
        )
    if not path.is_file():
        raise ComplexError(f"{path}: ligand file not found", source=str(path))
    if kind in ("sdf", "mol"):
        records = _sdf_records(path, skip)
    elif kind == "mol2":
        records = _mol2_records(path, skip)
    else:
        template = Chem.MolFromSmiles(template_smiles) if template_smiles else None
        if template_smiles and template is None:
            raise ComplexError(f"{path}: invalid template SMILES {template_smiles!r}", source=str(path))
        if template is None:
            warnings.warn(
                f"{path}: {kind.upper()} poses carry no bond orders; without template_smiles every bond is "
                "single (aromaticity, donors and charges will be wrong)",
                stacklevel=stacklevel,
            )
        records = _pdbqt_records(path, template, skip)
    return _not_empty(records, path, skip)


def _not_empty(records: Iterator[LigandRecord], path: Path, skip: int) -> Iterator[LigandRecord]:
    found = False
    for record in records:
        found = True
        yield record
    if not found and skip == 0:
        raise ComplexError(f"{path}: no ligand records found", source=str(path))


def read_ligand(path: str | os.PathLike[str], format: str | None = None, record: int = 0) -> Chem.Mol:
    """One ligand (record ``record``, default the first) with its pose; raises its :class:`ComplexError`."""
    records = read_ligands(path, format)
    if record >= len(records):
        raise ComplexError(f"{path}: no record {record} (the file has {len(records)})", source=str(path))
    chosen = records[record]
    if chosen.error is not None:
        raise chosen.error
    return chosen.mol
