"""Structure files -> :class:`ase.Atoms`.

:func:`read` and :func:`read_all` pick a parser from the file extension (or ``format=``), wrap every parser
failure in a :class:`~atomgraph.structures.StructureError` that names the file (and record/line where the
parser can tell), and pass every structure through :func:`~atomgraph.structures.validate_atoms`.

========================= ========== =================================================================
format (``format=``)      parser     notes
========================= ========== =================================================================
xyz, extxyz               ASE        energy/forces/stress -> SinglePointCalculator, also copied to
                                     ``info["energy"]``, ``arrays["forces"]``, ``info["stress"]``;
                                     per-atom charges/magmoms/energies -> ``arrays`` (ASE reads a
                                     ``charge`` column as the calculator's ``charges``)
sdf, mol                  RDKit      ``info["rdkit_mol"]``; SD properties -> ``info``
mol2                      RDKit      one record per ``@<TRIPOS>MOLECULE``; charges -> ``arrays``
cif                       ASE        one record per data block
poscar, contcar, vasp     ASE        also file names containing POSCAR / CONTCAR
pdb                       RDKit/ASE  RDKit keeps bonds (``info["rdkit_mol"]``); ASE if RDKit fails
db, aselmdb               ASE        every row; key-value pairs -> ``info``; energy/forces if stored;
                                     ``.aselmdb``: fairchem's ASE-LMDB (needs ``ase-db-backends``)
========================= ========== =================================================================

Units: positions and cells in Å, energies in eV, forces in eV/Å, stress in eV/Å^3 (3x3 in ``info``).

Writing a structure read here back to extended XYZ needs ``ase.io.write(..., write_results=False)``: ASE
refuses to save calculator results under keys that already exist in ``info``/``arrays``; the copies in
``info``/``arrays`` are written instead, and reading that file gives the calculator back.
"""

from __future__ import annotations

import importlib.util
import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import ase
import ase.db
import ase.io
import ase.io.cif
import numpy as np
from ase.geometry import cellpar_to_cell
from rdkit import Chem

from atomgraph.structures.errors import StructureError
from atomgraph.structures.rdkit_convert import capture_rdkit_errors, mol_to_atoms
from atomgraph.structures.validate import MIN_CELL_MEASURE, validate_atoms

#: ``format=`` names (and file extensions) -> internal parser name.
FORMATS: dict[str, str] = {
    "xyz": "xyz",
    "extxyz": "xyz",
    "sdf": "sdf",
    "mol": "sdf",
    "mol2": "mol2",
    "cif": "cif",
    "poscar": "vasp",
    "contcar": "vasp",
    "vasp": "vasp",
    "pdb": "pdb",
    "db": "db",
    "aselmdb": "db",
}

_SUPPORTED = ", ".join(FORMATS)

# info keys set by the readers; file properties never overwrite them
_RESERVED_INFO = ("rdkit_mol", "source", "coordinates")


def read(
    path: str | os.PathLike[str], format: str | None = None, min_distance: float = 0.5
) -> ase.Atoms | list[ase.Atoms]:
    """Read a structure file: one ``ase.Atoms`` if it holds one structure, else a list.

    Args:
        path: the file.
        format: one of ``xyz, extxyz, sdf, mol, mol2, cif, poscar, contcar, vasp, pdb, db``
            (case-insensitive); ``None`` guesses from the extension or a POSCAR/CONTCAR file name.
        min_distance: smallest allowed interatomic distance in Å (see
            :func:`~atomgraph.structures.validate_atoms`).

    Returns:
        Validated structures (positions in Å), each with ``info["source"] = "<path> record <i>"``.

    Raises:
        StructureError: unknown format, missing/unreadable/truncated file, a record a parser rejects, or a
            structure failing validation; the message names the file and, where known, the record.
    """
    images = read_all(path, format=format, min_distance=min_distance)
    return images[0] if len(images) == 1 else images


def read_all(
    path: str | os.PathLike[str], format: str | None = None, min_distance: float = 0.5
) -> list[ase.Atoms]:
    """Like :func:`read` but always returns a list (of at least one structure)."""
    records = read_records(path, format=format, min_distance=min_distance)
    for record in records:
        if isinstance(record, StructureError):
            raise record
    return records


def read_records(
    path: str | os.PathLike[str], format: str | None = None, min_distance: float = 0.5
) -> list[ase.Atoms | StructureError]:
    """Every record of a file, a bad one as the :class:`StructureError` that describes it.

    For batch jobs: a broken molecule in an SDF or MOL2 file, a broken frame of an XYZ file, or a
    structure failing validation, is reported in its place and the rest are read. A file that cannot be
    read at all still raises.
    """
    return list(iter_records(path, format, min_distance))


def iter_records(
    path: str | os.PathLike[str], format: str | None = None, min_distance: float = 0.5
) -> Iterator[ase.Atoms | StructureError]:
    """:func:`read_records` one record at a time: extended XYZ and ASE databases are streamed (the file
    never has to fit in memory); the other formats are parsed whole, then handed out."""
    path = Path(path)
    kind = _detect_format(path, format)
    if not path.exists():
        raise StructureError(f"{path}: file not found", source=str(path))
    if not path.is_file():
        raise StructureError(f"{path}: not a regular file", source=str(path))
    images = iter(_parse(_PARSERS[kind], path, kind))
    index = 0
    while True:
        try:
            atoms = next(images)
        except StopIteration:
            break
        except StructureError:
            raise
        except Exception as exc:
            raise _unreadable(path, kind, exc) from exc
        index += 1
        if isinstance(atoms, StructureError):
            yield atoms
            continue
        source = f"{path} record {index - 1}"
        atoms.info["source"] = source
        _copy_calc_results(atoms)
        flat = atoms.info.get("coordinates") == "2d"  # a 2D drawing: distances are meaningless
        try:
            validate_atoms(atoms, source, min_distance=min_distance, check_distances=not flat)
        except StructureError as exc:
            exc.record = index - 1
            yield exc
            continue
        yield atoms
    if index == 0:
        raise StructureError(f"{path}: no structures found (format {kind})", source=str(path))


def iter_structures(path: str | os.PathLike[str], format: str | None = None, min_distance: float = 0.5):
    """Every structure of a file, one at a time (see :func:`iter_records`); a bad record raises."""
    for record in iter_records(path, format, min_distance):
        if isinstance(record, StructureError):
            raise record
        yield record


def _parse(parser: Callable, path: Path, kind: str):
    """The parser's records; a parser that fails before its first record raises a StructureError."""
    try:
        return parser(path)
    except StructureError:
        raise
    except Exception as exc:
        raise _unreadable(path, kind, exc) from exc


def _unreadable(path: Path, kind: str, exc: Exception) -> StructureError:
    """The error for a file a parser gave up on, naming the file, the format and the parser's reason."""
    return StructureError(f"{path}: could not read as {kind}: {type(exc).__name__}: {exc}", source=str(path))


def _detect_format(path: Path, format: str | None) -> str:
    """The internal parser name for ``path``, from ``format`` or the file name."""
    if format is not None:
        key = format.lower().lstrip(".")
        if key not in FORMATS:
            raise StructureError(
                f"{path}: unknown format {format!r}; supported formats: {_SUPPORTED}", source=str(path)
            )
        return FORMATS[key]
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return FORMATS[suffix]
    upper = path.name.upper()
    if "POSCAR" in upper or "CONTCAR" in upper:
        return "vasp"
    raise StructureError(
        f"{path}: cannot tell the format from the extension {path.suffix!r}; pass format= "
        f"(supported formats: {_SUPPORTED})",
        source=str(path),
    )


# --------------------------------------------------------------------------------------------- ASE


#: Fewest bytes an atom line of an XYZ frame can take (one character and its newline; real lines are
#: longer). A header declaring more atoms than the rest of the file can hold is rejected before parsing:
#: ASE would otherwise skip that many (empty) lines one at a time, minutes for a count of 10^9.
_MIN_XYZ_LINE_BYTES = 2


def _read_xyz(path: Path) -> Iterator[ase.Atoms | StructureError]:
    """(Extended) XYZ with ASE's extxyz reader, frame by frame (streamed: one frame in memory at a
    time) so a failure names its record.

    The frames are located first from their atom-count headers (checked against the file size), then
    parsed one at a time: a frame ASE rejects becomes a :class:`StructureError` in its place and the next
    frames are still read. A header that cannot be followed (not a count, a count larger than the rest of
    the file, a truncated frame) ends the file there; in the first frame it makes the whole read fail.
    """
    for record, (line, text, problem) in enumerate(_xyz_frames(path)):
        where = f"{path} record {record} (starting at line {line}): could not parse xyz"
        if problem is not None:
            error = StructureError(f"{where}: {problem}", source=str(path), record=record, line=line)
            if record == 0:
                raise error
            yield error
            break
        try:
            atoms = ase.io.read(io.StringIO(text), index=0, format="extxyz")
        except Exception as exc:
            if isinstance(exc, KeyError):
                reason = f"unknown element symbol {exc.args[0]!r}" if exc.args else "unknown element symbol"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            yield StructureError(f"{where}: {reason}", source=str(path), record=record, line=line)
            continue
        yield atoms


def _xyz_frames(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """Each XYZ frame as (1-based first line, its text, ``None``), found from the atom-count headers
    the way ASE's extxyz reader finds them (a blank line ends the file; ``VEC`` lines follow the atoms).

    A frame that cannot be located is yielded as (first line, ``""``, what is wrong) and ends the file:
    a header that is not a count, a count the rest of the file cannot hold, or too few lines after it.
    """
    size = path.stat().st_size
    line = 1
    with open(path, "rb") as handle:
        while True:
            header = handle.readline()
            if not header.strip():
                return
            try:
                natoms = int(header)
            except ValueError:
                shown = header.strip()[:40].decode(errors="replace")
                yield line, "", f"expected the atom count of a frame, got {shown!r}"
                return
            left = size - handle.tell()
            if natoms < 0 or natoms * _MIN_XYZ_LINE_BYTES > left:
                problem = (
                    f"the header declares {natoms} atoms but only {left} bytes follow it (a frame of N "
                    f"atoms needs a comment line and N atom lines): wrong atom count or truncated file"
                )
                yield line, "", problem
                return
            lines = [header]
            for _ in range(natoms + 1):  # the comment line, then one line per atom
                text = handle.readline()
                if not text:
                    problem = (
                        f"the header declares {natoms} atoms but the file ends after "
                        f"{max(len(lines) - 2, 0)} atom lines: wrong atom count or truncated file"
                    )
                    yield line, "", problem
                    return
                lines.append(text)
            while True:  # lattice vectors of the plain XYZ flavour
                position = handle.tell()
                text = handle.readline()
                if not text.lstrip().startswith(b"VEC"):
                    handle.seek(position)
                    break
                lines.append(text)
            yield line, b"".join(lines).decode(errors="replace"), None
            line += len(lines)


def _read_cif(path: Path) -> list[ase.Atoms | StructureError]:
    """CIF with ASE, one record per data block holding a structure; a degenerate cell is reported in place."""
    images: list[ase.Atoms | StructureError] = []
    blocks = (block for block in ase.io.cif.parse_cif(str(path)) if block.has_structure())
    for record, block in enumerate(blocks):
        problem = _degenerate_cell(block.get_cellpar())
        if problem is not None:
            message = f"{path} record {record} (data block {block.name!r}): {problem}"
            images.append(StructureError(message, source=f"{path} record {record}", record=record))
            continue
        images.append(block.get_atoms())  # as ase.io.read(format="cif") does
    return images


def _degenerate_cell(cellpar: list | None) -> str | None:
    """What is wrong with CIF cell parameters (Å, degrees) that span no volume, or ``None``.

    ASE stops such cells with a bare ``AssertionError`` (or builds a flat cell); a zero or negative
    length, or angles that cannot close a cell, are reported here with the numbers instead.
    """
    try:
        a, b, c, alpha, beta, gamma = (float(value) for value in cellpar)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None  # no cell (a molecule) or unreadable values: left to ASE
    cos = np.cos(np.radians([alpha, beta, gamma]))
    factor = 1 - (cos**2).sum() + 2 * cos.prod()  # (volume / abc)^2
    volume = a * b * c * np.sqrt(factor) if factor > 0 else 0.0
    if min(a, b, c) > 0 and volume > MIN_CELL_MEASURE and np.isfinite(volume):
        return None
    return (
        f"degenerate cell a={a:g}, b={b:g}, c={c:g} Å, alpha={alpha:g}, beta={beta:g}, gamma={gamma:g} deg: "
        f"cell lengths must be positive and the cell volume non-zero (volume {volume:.3g} Å^3)"
    )


def _read_vasp(path: Path) -> list[ase.Atoms]:
    """VASP POSCAR/CONTCAR with ASE (always one structure)."""
    return [ase.io.read(path, format="vasp")]


def _read_db(path: Path) -> Iterator[ase.Atoms]:
    """ASE database: every row (streamed), with its key-value pairs in ``info`` (``data`` in
    ``info["data"]``)."""
    kind = "aselmdb" if path.suffix.lower() == ".aselmdb" else "db"
    if kind == "aselmdb" and importlib.util.find_spec("ase_db_backends") is None:
        raise StructureError(f"{path}: reading .aselmdb needs ase-db-backends (pip install ase-db-backends)")
    options = {"readonly": True} if kind == "aselmdb" else {"create_indices": False}
    with ase.db.connect(str(path), type=kind, use_lock_file=False, **options) as db:
        for row in db.select():
            atoms = row.toatoms()
            atoms.info.update({k: v for k, v in row.key_value_pairs.items() if k not in _RESERVED_INFO})
            if row.get("data"):
                atoms.info["data"] = dict(row.data)
            atoms.info["db_id"] = int(row.id)
            yield atoms


#: per-atom calculator results copied into ``atoms.arrays`` under their own names (node-level targets)
PER_ATOM_RESULTS = ("charges", "magmoms", "energies")


def _copy_calc_results(atoms: ase.Atoms) -> None:
    """Copy a calculator's energy (eV), forces (eV/Å), stress (eV/Å^3, 3x3) into ``info``/``arrays``, and
    its per-atom :data:`PER_ATOM_RESULTS` into ``arrays``."""
    results = getattr(atoms.calc, "results", None) or {}
    for key in PER_ATOM_RESULTS:
        if results.get(key) is not None and key not in atoms.arrays:
            values = np.asarray(results[key], dtype=float)
            atoms.arrays[key] = values.reshape(len(atoms), *values.shape[1:])
    if results.get("energy") is not None:
        atoms.info["energy"] = float(results["energy"])
    if results.get("forces") is not None:
        forces = np.array(results["forces"], dtype=float).reshape(len(atoms), 3)
        atoms.arrays["forces"] = forces
    if results.get("stress") is not None:
        stress = np.asarray(results["stress"], dtype=float)
        if stress.shape == (6,):
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        atoms.info["stress"] = stress.reshape(3, 3).copy()


# ------------------------------------------------------------------------------------------- RDKit


def _record_start_lines(path: Path) -> list[int]:
    """1-based first line of every SD record (records end with a ``$$$$`` line)."""
    starts = [1]
    with open(path, errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip() == "$$$$":
                starts.append(number + 1)
    return starts


def _read_sdf(path: Path) -> list[ase.Atoms | StructureError]:
    """SDF/MOL with RDKit (``removeHs=False``, sanitised); SD properties go to ``info``."""
    supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
    images: list[ase.Atoms] = []
    records = iter(supplier)
    while True:
        record = len(images)
        with capture_rdkit_errors() as log:
            try:
                mol = next(records)
            except StopIteration:
                return images
        if mol is None:
            starts = _record_start_lines(path)
            line = starts[record] if record < len(starts) else None
            where = f"record {record}" + (f" (starting at line {line})" if line else "")
            images.append(
                StructureError(
                    f"{path} {where}: RDKit could not parse the molecule{log.reason()}",
                    source=str(path),
                    record=record,
                    line=line,
                )
            )
            continue
        atoms = mol_to_atoms(mol, f"{path} record {record}")
        props = mol.GetPropsAsDict(includePrivate=False, includeComputed=False)
        atoms.info.update({k: v for k, v in props.items() if k not in _RESERVED_INFO})
        images.append(atoms)


def _read_mol2(path: Path) -> list[ase.Atoms | StructureError]:
    """Tripos MOL2 with RDKit, one record per ``@<TRIPOS>MOLECULE`` block; partial charges kept."""
    lines = path.read_text().splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("@<TRIPOS>MOLECULE")]
    images = []
    for record, (begin, end) in enumerate(zip(starts, [*starts[1:], len(lines)], strict=True)):
        block = "".join(lines[begin:end])
        with capture_rdkit_errors() as log:
            mol = Chem.MolFromMol2Block(block, sanitize=True, removeHs=False)
        if mol is None:
            images.append(
                StructureError(
                    f"{path} record {record} (starting at line {begin + 1}): RDKit could not parse the "
                    f"molecule{log.reason()}",
                    source=str(path),
                    record=record,
                    line=begin + 1,
                )
            )
            continue
        atoms = mol_to_atoms(mol, f"{path} record {record}")
        if all(atom.HasProp("_TriposPartialCharge") for atom in mol.GetAtoms()):
            charges = [atom.GetDoubleProp("_TriposPartialCharge") for atom in mol.GetAtoms()]
            atoms.arrays["partial_charges"] = np.array(charges, dtype=float)
        images.append(atoms)
    return images


def _read_pdb(path: Path) -> list[ase.Atoms]:
    """PDB with RDKit (bonds kept, one record per MODEL), falling back to ASE's reader.

    A ``CRYST1`` record makes the structure periodic only when its space group is ``P 1`` and the cell
    is not the 1x1x1 Å placeholder: only then does the file hold the whole periodic content (simulation
    boxes). Any other CRYST1 (a crystal's asymmetric unit, e.g. a protein from the PDB) is kept as
    ``info["pdb_cryst1"]`` (a, b, c in Å; alpha, beta, gamma in degrees) on a non-periodic structure.
    """
    cellpar, space_group = _read_cryst1(path)
    with capture_rdkit_errors():
        mol = Chem.MolFromPDBFile(str(path), removeHs=False, sanitize=True)
    if mol is not None and mol.GetNumAtoms() > 0 and mol.GetNumConformers() > 0:
        images = []
        for record, conf in enumerate(mol.GetConformers()):
            atoms = mol_to_atoms(mol, f"{path} record {record}", conf_id=conf.GetId())
            atoms.info["coordinates"] = "3d"
            _set_residue_arrays(atoms, mol)
            images.append(atoms)
    else:
        images = list(ase.io.iread(path, index=":", format="proteindatabank"))
    periodic = (
        cellpar is not None
        and space_group.replace(" ", "").upper() == "P1"
        and not np.allclose(cellpar[:3], 1.0)
    )
    for atoms in images:
        if periodic:
            atoms.cell = cellpar_to_cell(cellpar)
            atoms.pbc = True
        else:
            atoms.cell = np.zeros((3, 3))
            atoms.pbc = False
            if cellpar is not None:
                atoms.info["pdb_cryst1"] = list(cellpar)
    return images


def _read_cryst1(path: Path) -> tuple[list[float] | None, str]:
    """Cell parameters (Å, degrees) and space group of the first CRYST1 record, if any."""
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith("CRYST1"):
                try:
                    cellpar = [
                        float(line[a:b])
                        for a, b in ((6, 15), (15, 24), (24, 33), (33, 40), (40, 47), (47, 54))
                    ]
                except ValueError:
                    return None, ""
                return cellpar, line[55:66].strip()
    return None, ""


def _set_residue_arrays(atoms: ase.Atoms, mol: Chem.Mol) -> None:
    """Per-atom PDB fields in ASE's names (plus ``chainids`` and ``hetatm``) from RDKit residue info."""
    infos = [atom.GetPDBResidueInfo() for atom in mol.GetAtoms()]
    if any(info is None for info in infos):
        return
    atoms.arrays["atomtypes"] = np.array([info.GetName().strip() for info in infos])
    atoms.arrays["residuenames"] = np.array([info.GetResidueName().strip() for info in infos])
    atoms.arrays["residuenumbers"] = np.array([info.GetResidueNumber() for info in infos], dtype=int)
    atoms.arrays["chainids"] = np.array([info.GetChainId().strip() for info in infos])
    atoms.arrays["occupancy"] = np.array([info.GetOccupancy() for info in infos], dtype=float)
    atoms.arrays["bfactor"] = np.array([info.GetTempFactor() for info in infos], dtype=float)
    atoms.arrays["hetatm"] = np.array([info.GetIsHeteroAtom() for info in infos], dtype=bool)


_PARSERS: dict[str, Callable[[Path], Iterable[ase.Atoms | StructureError]]] = {
    "xyz": _read_xyz,
    "sdf": _read_sdf,
    "mol2": _read_mol2,
    "cif": _read_cif,
    "vasp": _read_vasp,
    "pdb": _read_pdb,
    "db": _read_db,
}
