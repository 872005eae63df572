"""Crystal structure texts from a tar archive (streamed, never unpacked to disk) or a folder.

A structure file is a CIF (``.cif``) or a VASP POSCAR (``.vasp``, ``.poscar`` or a name containing
POSCAR/CONTCAR); its *id* is the file name without that suffix (``data/123.cif`` -> ``"123"``), the
key of the CGCNN ``id_prop.csv`` layout. :func:`iter_structure_texts` yields ``(id, format, text)``;
:func:`parse_structure` turns one text into a validated :class:`ase.Atoms` (positions and cell in Å).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath

import ase
import ase.io
import pandas as pd

from atomgraph.structures.errors import StructureError
from atomgraph.structures.validate import validate_atoms

STRUCTURE_SUFFIXES: dict[str, str] = {".cif": "cif", ".vasp": "vasp", ".poscar": "vasp"}
"""File suffix -> ASE format name."""

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

StructureText = tuple[str, str, str]
"""(structure id, ASE format "cif" or "vasp", file text)."""


def structure_format(name: str) -> str | None:
    """ASE format of a structure file name ("cif" or "vasp"), None for anything else."""
    path = PurePosixPath(name)
    fmt = STRUCTURE_SUFFIXES.get(path.suffix.lower())
    if fmt is None and ("POSCAR" in path.name.upper() or "CONTCAR" in path.name.upper()):
        return "vasp"
    return fmt


def structure_id(name: str) -> str:
    """The id of a structure file: its base name without a structure suffix (``a/mp-1.cif`` -> ``mp-1``)."""
    path = PurePosixPath(name)
    return path.stem if path.suffix.lower() in STRUCTURE_SUFFIXES else path.name


def is_archive(path: str | Path) -> bool:
    """True for a tar file (plain or gz/bz2/xz compressed), judged by its name."""
    return Path(path).name.lower().endswith(ARCHIVE_SUFFIXES)


def iter_archive(path: str | Path, wanted: Collection[str] | None = None) -> Iterator[StructureText]:
    """Structure texts of a tar archive, read as a stream (``r|*``): nothing is written to disk.

    Members that are not structure files are skipped; with ``wanted`` only those ids are read.
    """
    with tarfile.open(path, mode="r|*") as archive:
        for member in archive:
            fmt = structure_format(member.name)
            if not member.isfile() or fmt is None:
                continue
            key = structure_id(member.name)
            if wanted is not None and key not in wanted:
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            yield key, fmt, handle.read().decode("utf-8", errors="replace")


def iter_folder(path: str | Path, wanted: Collection[str] | None = None) -> Iterator[StructureText]:
    """Structure texts of the files directly in a folder (sorted by name)."""
    for file in sorted(Path(path).iterdir()):
        fmt = structure_format(file.name)
        if fmt is None or not file.is_file():
            continue
        key = structure_id(file.name)
        if wanted is not None and key not in wanted:
            continue
        yield key, fmt, file.read_text(errors="replace")


#: names of the CIF-text column of a crystals CSV (case-insensitive)
CIF_COLUMNS = ("cif", "structure")


def cif_column(columns) -> str | None:
    """The column of a CSV header that holds CIF texts, if any."""
    return next((c for c in columns if str(c).strip().lower() in CIF_COLUMNS), None)


def is_cif_table(path: str | Path) -> bool:
    """A CSV file of crystals: one row per structure, its CIF text in a ``cif`` (or ``structure``) column."""
    path = Path(path)
    return (
        path.is_file()
        and path.suffix.lower() == ".csv"
        and cif_column(pd.read_csv(path, nrows=0)) is not None
    )


def iter_cif_table(path: str | Path, wanted: Collection[str] | None = None) -> Iterator[StructureText]:
    """Structure texts of a crystals CSV (the first column is the id), read in chunks."""
    column = cif_column(pd.read_csv(path, nrows=0).columns)
    for chunk in pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=10_000):
        for key, text in zip(chunk.iloc[:, 0].str.strip(), chunk[column], strict=True):
            if wanted is None or key in wanted:
                yield key, "cif", text


def iter_structure_texts(path: str | Path, wanted: Collection[str] | None = None) -> Iterator[StructureText]:
    """Structure texts of an archive, a crystals CSV or a folder (see :func:`iter_archive`,
    :func:`iter_cif_table`, :func:`iter_folder`)."""
    if is_archive(path):
        return iter_archive(path, wanted)
    return iter_cif_table(path, wanted) if is_cif_table(path) else iter_folder(path, wanted)


def parse_structure(text: str, fmt: str, source: str, min_distance: float = 0.5) -> ase.Atoms:
    """One structure from the text of a CIF or POSCAR file, checked by :func:`validate_atoms`.

    Raises :class:`StructureError` naming ``source`` when the text does not parse, holds no structure
    or several (a multi-block CIF), or fails validation (atoms closer than ``min_distance`` Å, ...).
    """
    try:
        if fmt == "vasp":
            images = [ase.io.read(io.StringIO(text), format="vasp")]
        else:
            images = list(ase.io.iread(io.StringIO(text), index=":", format=fmt))
    except Exception as exc:  # parsers raise anything from ValueError to IndexError on bad input
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else f"malformed file ({type(exc).__name__})"
        raise StructureError(f"{source}: could not read as {fmt}: {reason}", source=source) from exc
    if len(images) != 1:
        raise StructureError(f"{source}: holds {len(images)} structures, expected one", source=source)
    atoms = images[0]
    atoms.info["source"] = source
    return validate_atoms(atoms, source, min_distance=min_distance)
