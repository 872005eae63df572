"""Ligands from SDF, MOL2 or PDBQT files as RDKit molecules with their 3D pose, hydrogens as in the file.

Every record is sanitised by RDKit; a record RDKit rejects becomes a :class:`ComplexError` naming the file,
the record and the molecule's name, so batch jobs (datasets, screening) can report it and go on.
"""

from __future__ import annotations

import os
import warnings
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


def _sdf_records(path: Path) -> list[LigandRecord]:
    supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)
    records = []
    for index in range(len(supplier)):
        text = supplier.GetItemText(index)
        name = text.splitlines()[0].strip() if text.strip() else ""
        with capture_rdkit_errors() as log:
            mol = supplier[index]
        records.append(_sanitised(mol, index, name, path, log.reason()))
    return records


def _mol2_records(path: Path) -> list[LigandRecord]:
    lines = path.read_text(errors="replace").splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("@<TRIPOS>MOLECULE")]
    records = []
    for index, (begin, end) in enumerate(zip(starts, [*starts[1:], len(lines)], strict=True)):
        block = "".join(lines[begin:end])
        name = lines[begin + 1].strip() if begin + 1 < end else ""
        with capture_rdkit_errors() as log:
            mol = Chem.MolFromMol2Block(block, sanitize=False, removeHs=False)
        records.append(_sanitised(mol, index, name, path, log.reason()))
    return records


def _pdbqt_records(path: Path, template: Chem.Mol | None) -> list[LigandRecord]:
    """PDBQT/PDB poses (one per MODEL): coordinates and elements; bond orders from ``template`` if given."""
    blocks: list[list[str]] = [[]]
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("ENDMDL"):
            blocks.append([])
        elif line.startswith(("ATOM", "HETATM")):
            element = line[77:79].strip() if len(line) > 77 else ""
            element = {"A": "C", "OA": "O", "NA": "N", "SA": "S", "HD": "H", "HS": "H"}.get(element, element)
            blocks[-1].append(f"{line[:66]:<66}          {element[:2]:>2}")
    records = []
    for index, block in enumerate(b for b in blocks if b):
        with capture_rdkit_errors() as log:
            mol = Chem.MolFromPDBBlock("\n".join(block) + "\nEND\n", removeHs=False, sanitize=False)
        if mol is not None and template is not None:
            try:
                mol = AllChem.AssignBondOrdersFromTemplate(template, Chem.RemoveHs(mol, sanitize=False))
                mol = Chem.AddHs(mol, addCoords=True)
            except (ValueError, RuntimeError) as error:
                where = f"{path} record {index}"
                err = ComplexError(f"{where}: the template does not match the pose: {error}", source=where)
                records.append(LigandRecord(index, f"pose {index}", None, err))
                continue
        records.append(_sanitised(mol, index, f"pose {index}", path, log.reason()))
    return records


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
    """Every record of a ligand file, a bad one with its error (batch jobs report it and go on).

    format: ``sdf``/``mol``, ``mol2``, ``pdbqt`` or ``pdb`` (default from the extension). PDBQT/PDB poses
    carry no bond orders: give ``template_smiles`` to assign them (RDKit ``AssignBondOrdersFromTemplate``,
    hydrogens then added with coordinates); without it bonds come from distances (single bonds only).

    Raises:
        ComplexError: missing file, unknown format or a file with no records.
    """
    path = Path(path)
    kind = (format or path.suffix.lstrip(".")).lower()
    if kind not in LIGAND_FORMATS:
        raise ComplexError(
            f"{path}: unknown ligand format {kind!r}; use one of {LIGAND_FORMATS}", source=str(path)
        )
    if not path.is_file():
        raise ComplexError(f"{path}: ligand file not found", source=str(path))
    if kind in ("sdf", "mol"):
        records = _sdf_records(path)
    elif kind == "mol2":
        records = _mol2_records(path)
    else:
        template = Chem.MolFromSmiles(template_smiles) if template_smiles else None
        if template_smiles and template is None:
            raise ComplexError(f"{path}: invalid template SMILES {template_smiles!r}", source=str(path))
        if template is None:
            warnings.warn(
                f"{path}: {kind.upper()} poses carry no bond orders; without template_smiles every bond is "
                "single (aromaticity, donors and charges will be wrong)",
                stacklevel=2,
            )
        records = _pdbqt_records(path, template)
    if not records:
        raise ComplexError(f"{path}: no ligand records found", source=str(path))
    return records


def read_ligand(path: str | os.PathLike[str], format: str | None = None, record: int = 0) -> Chem.Mol:
    """One ligand (record ``record``, default the first) with its pose; raises its :class:`ComplexError`."""
    records = read_ligands(path, format)
    if record >= len(records):
        raise ComplexError(f"{path}: no record {record} (the file has {len(records)})", source=str(path))
    chosen = records[record]
    if chosen.error is not None:
        raise chosen.error
    return chosen.mol
