"""Complex datasets: PDBbind-style folders and the OpenFF protein-ligand benchmark, as graph datasets.

Layouts read:

* **PDBbind** (``layout="pdbbind"``): ``<root>/<id>/<id>_protein.pdb``, ``<id>_pocket.pdb`` (used when
  present and ``use_pocket``), ``<id>_ligand.sdf`` or ``<id>_ligand.mol2`` (the MOL2 is tried when the SDF
  is missing or RDKit rejects it), labels from a PDBbind INDEX file (the ``-logKd/Ki`` column) or a CSV
  with an id column and a label column (optionally a ``group``/``target`` column for group splits).
* **OpenFF protein-ligand benchmark** (``layout="openff"``): ``<root>/labels_pX.csv`` (columns target,
  ligand, has_structure, ..., pX), ``<root>/data/<target>/01_protein/crd/protein.pdb`` and
  ``<root>/data/<target>/02_ligands/ligands.sdf`` (records named like the ``ligand`` column). Rows without a
  structure are skipped and reported; each target's protein is read once.

Every dataset has one target ``pK`` (-log10 of Kd/Ki/IC50 in M, intensive), ``meta.ids`` (``target/ligand``
or the PDB id), ``meta.smiles`` (ligand SMILES) and ``meta.settings["groups"]`` (the target of each row;
empty for PDBbind without a group column). Rows that fail are listed in ``meta.skipped``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem
from tqdm.auto import tqdm

from atomgraph.apps.complexes.complex import Complex, make_complex
from atomgraph.apps.complexes.conformers import (
    CLASH_DISTANCE,
    EMBED_FACTOR,
    PoseVariants,
    build_pose_variants,
)
from atomgraph.apps.complexes.errors import ComplexError
from atomgraph.apps.complexes.graph import ComplexData, ComplexGraphSettings, complex_graph
from atomgraph.apps.complexes.ligand import read_ligand, read_ligands
from atomgraph.apps.complexes.protein import Protein, read_protein
from atomgraph.data.build import cache_dir, load_or_build
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.targets import AFFINITY, TargetSet

log = logging.getLogger(__name__)

AFFINITY_TARGET = TargetSet(AFFINITY)
LAYOUTS = ("auto", "pdbbind", "openff")


class ComplexDataset(GraphDataset):
    """A :class:`GraphDataset` of :class:`ComplexData` samples that reloads them as ComplexData.

    A subset given ``conformer_poses`` (the training subset, by the ``data.complex.conformers``
    augmentation: :meth:`ComplexSource.poses`) gives each visit of a row its crystal pose or one of its
    conformer poses at random (:mod:`atomgraph.apps.complexes.conformers`).
    """

    sample_type = ComplexData
    conformer_poses: PoseVariants | None = None

    def get(self, idx: int) -> ComplexData:
        data = super().get(idx)
        if self.conformer_poses is not None:
            return self.conformer_poses.pick(idx, data)
        return data

    def groups(self) -> list[str]:
        """The group (target) of every row of this (possibly indexed) dataset."""
        groups = self.meta.settings.get("groups") or [""] * len(self.meta.ids)
        return [groups[i] for i in self.indices()]


@dataclass
class ComplexRow:
    """One complex to build: id, group, a function returning the :class:`Complex` (may raise), targets
    [T] (NaN = missing)."""

    id: str
    group: str
    make: Callable[[], Complex]
    y: np.ndarray


def build_complex_dataset(
    rows: Sequence[ComplexRow],
    settings: ComplexGraphSettings,
    meta: DatasetMeta,
    progress: bool = True,
) -> ComplexDataset:
    """Graph every row; a row that raises is recorded in ``meta.skipped`` and the rest go on."""
    graphs, ids, smiles, groups = [], [], [], []
    for index, row in enumerate(tqdm(rows, desc=f"processing {meta.name}", disable=not progress)):
        try:
            complex_ = row.make()
            graph = complex_graph(complex_, settings, row.y)
        except (ValueError, RuntimeError, KeyError) as error:
            meta.skipped.append({"index": index, "id": row.id, "error": str(error)})
            continue
        graphs.append(graph)
        ids.append(row.id)
        groups.append(row.group)
        smiles.append(Chem.MolToSmiles(Chem.RemoveHs(complex_.ligand, sanitize=False)))
    if meta.skipped:
        log.warning("%s: skipped %d complexes (first: %s)", meta.name, len(meta.skipped), meta.skipped[0])
    meta.ids, meta.smiles = ids, smiles
    meta.settings["groups"] = groups
    return ComplexDataset(graphs, meta)


def _cached(file: Path, build: Callable[[], ComplexDataset]) -> ComplexDataset:
    """The shared cache (corrupt files rebuilt, temp files cleaned), reloading ComplexData samples."""
    return load_or_build(file, build, ComplexDataset)


@dataclass
class ComplexSource:
    """Where a complex dataset comes from: its cache file, its rows to build and its metadata."""

    file: Path
    rows: Callable[[], list[ComplexRow]]
    meta: Callable[[], DatasetMeta]
    settings: ComplexGraphSettings

    def load(self, progress: bool = True) -> ComplexDataset:
        """The dataset, from the cache or built (and cached)."""
        return _cached(
            self.file, lambda: build_complex_dataset(self.rows(), self.settings, self.meta(), progress)
        )

    def poses(self, ids: list[str], conformers: int, progress: bool = True) -> PoseVariants:
        """``conformers`` aligned conformer poses of each complex of ``ids`` (the dataset's rows), cached
        beside the dataset (the key holds the dataset's, the count and the pose rules)."""
        key = _digest(self.file.name, conformers, CLASH_DISTANCE, EMBED_FACTOR)

        def build() -> ComplexDataset:
            poses = build_pose_variants(self.rows(), ids, self.settings, conformers, progress)
            if poses is None:
                raise ValueError(f"{self.file}: no conformer pose could be built for any complex")
            return poses

        return PoseVariants(_cached(self.file.with_name(f"{self.file.stem}-poses-{key}.pt"), build), ids)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:12]


# -------------------------------------------------------------------------------------------- OpenFF


def openff_rows(
    root: Path, settings: ComplexGraphSettings, targets: Sequence[str] | None = None, label_column: str = "pX"
) -> list[ComplexRow]:
    """The complexes of the OpenFF benchmark layout (see the module docstring)."""
    labels = pd.read_csv(root / "labels_pX.csv")
    missing = [c for c in ("target", "ligand", label_column) if c not in labels.columns]
    if missing:
        raise ValueError(f"{root / 'labels_pX.csv'}: missing columns {missing}")
    if targets:
        unknown = sorted(set(targets) - set(labels["target"]))
        if unknown:
            raise ValueError(f"unknown targets {unknown}; available: {sorted(set(labels['target']))}")
        labels = labels[labels["target"].isin(list(targets))]
    proteins: dict[str, Protein | ComplexError] = {}
    ligands: dict[str, dict] = {}

    def protein_of(target: str) -> Protein:
        if target not in proteins:
            try:
                proteins[target] = read_protein(
                    root / "data" / target / "01_protein" / "crd" / "protein.pdb", waters=settings.waters
                )
            except ComplexError as error:
                proteins[target] = error
        found = proteins[target]
        if isinstance(found, ComplexError):
            raise found
        return found

    def ligand_of(target: str, name: str) -> Chem.Mol:
        path = root / "data" / target / "02_ligands" / "ligands.sdf"
        if target not in ligands:
            ligands[target] = {record.name: record for record in read_ligands(path)}
        record = ligands[target].get(name)
        if record is None:
            raise ComplexError(f"{path}: no ligand named {name!r}", source=str(path))
        if record.error is not None:
            raise record.error
        return record.mol

    rows = []
    for _, entry in labels.iterrows():
        target, name = str(entry["target"]), str(entry["ligand"])
        has_structure = str(entry.get("has_structure", True)).lower() != "false"

        def make(target=target, name=name, has_structure=has_structure) -> Complex:
            if not has_structure:
                raise ComplexError(f"{target}/{name}: no structure in the benchmark (has_structure=False)")
            return make_complex(
                protein_of(target), ligand_of(target, name), settings.pocket_radius, f"{target}/{name}"
            )

        y = np.array([pd.to_numeric(entry[label_column], errors="coerce")], dtype=float)
        rows.append(ComplexRow(f"{target}/{name}", target, make, y))
    return rows


def openff_source(
    root: str | Path,
    settings: ComplexGraphSettings | None = None,
    targets: Sequence[str] | None = None,
    label_column: str = "pX",
    cache: str | Path | None = None,
) -> ComplexSource:
    """The :class:`ComplexSource` of the OpenFF benchmark layout (see :func:`load_openff`)."""
    root = Path(root)
    settings = settings or ComplexGraphSettings()
    labels_file = root / "labels_pX.csv"
    if not labels_file.is_file():
        raise ValueError(f"{root}: no labels_pX.csv; not the OpenFF benchmark layout")
    digest = hashlib.sha256(labels_file.read_bytes()).hexdigest()[:12]
    key = _digest(root.resolve(), digest, sorted(targets or []), label_column, settings.key())
    meta = {"complex": asdict(settings), "source": str(root)}
    return ComplexSource(
        cache_dir(cache) / f"openff-{key}.pt",
        lambda: openff_rows(root, settings, targets, label_column),
        lambda: DatasetMeta("openff", AFFINITY_TARGET, settings=dict(meta)),
        settings,
    )


def load_openff(
    root: str | Path,
    settings: ComplexGraphSettings | None = None,
    targets: Sequence[str] | None = None,
    label_column: str = "pX",
    cache: str | Path | None = None,
    progress: bool = True,
) -> ComplexDataset:
    """The OpenFF protein-ligand benchmark (``../shared/data/protein_ligand_openff``) as complex graphs."""
    return openff_source(root, settings, targets, label_column, cache).load(progress)


# ------------------------------------------------------------------------------------------- PDBbind


def parse_pdbbind_index(path: str | Path) -> pd.DataFrame:
    """A PDBbind INDEX file (``INDEX_general_PL_data.2020`` etc.) as a table: id, resolution, year, pK
    (the ``-logKd/Ki`` column) and affinity (the ``Kd/Ki`` text, e.g. ``Kd=49uM``). Comment lines start
    with ``#``."""
    rows = []
    with open(path, errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) < 5:
                raise ValueError(f"{path} line {number}: expected at least 5 columns, got {line.strip()!r}")
            try:
                pk = float(fields[3])
            except ValueError as error:
                raise ValueError(f"{path} line {number}: -logKd/Ki {fields[3]!r} is not a number") from error
            resolution = pd.to_numeric(fields[1], errors="coerce")
            rows.append(
                {
                    "id": fields[0].lower(),
                    "resolution": resolution,
                    "year": fields[2],
                    "pK": pk,
                    "affinity": fields[4],
                }
            )
    return pd.DataFrame(rows, columns=["id", "resolution", "year", "pK", "affinity"])


def read_labels(
    path: str | Path, id_column: str | None = None, label_column: str | None = None
) -> pd.DataFrame:
    """Labels as a table with columns id, pK and group: a CSV (id column ``id``/``pdb_id``/``pdbid``/``code``,
    label column ``pK``/``pk``/``label``/``affinity``/``-logKd/Ki`` unless named, ``group``/``target``
    optional) or a PDBbind INDEX file (anything not ending in .csv)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        table = parse_pdbbind_index(path)
        table["group"] = ""
        return table[["id", "pK", "group"]]
    table = pd.read_csv(path)

    def pick(given: str | None, options: tuple[str, ...], what: str) -> str:
        if given is not None:
            if given not in table.columns:
                raise ValueError(f"{path}: no {what} column {given!r}; it has {list(table.columns)}")
            return given
        for option in options:
            if option in table.columns:
                return option
        raise ValueError(f"{path}: no {what} column (tried {list(options)}); it has {list(table.columns)}")

    ids = pick(id_column, ("id", "pdb_id", "pdbid", "code", "pdb"), "id")
    labels = pick(label_column, ("pK", "pk", "label", "affinity", "-logKd/Ki", "pX"), "label")
    group = next((c for c in ("group", "target") if c in table.columns), None)
    return pd.DataFrame(
        {
            "id": table[ids].astype(str).str.strip(),
            "pK": pd.to_numeric(table[labels], errors="coerce"),
            "group": table[group].astype(str) if group else "",
        }
    )


def _pdbbind_ligand(folder: Path, pdb_id: str) -> Chem.Mol:
    """The ligand of one entry: SDF first, the MOL2 when the SDF is missing or rejected."""
    errors = []
    for suffix in ("sdf", "mol2"):
        path = folder / f"{pdb_id}_ligand.{suffix}"
        if not path.exists():
            continue
        try:
            return read_ligand(path)
        except ComplexError as error:
            errors.append(str(error))
    if not errors:
        raise ComplexError(f"{folder}: no {pdb_id}_ligand.sdf or {pdb_id}_ligand.mol2", source=str(folder))
    raise ComplexError("; ".join(errors), source=str(folder))


def pdbbind_rows(
    root: Path, labels: pd.DataFrame, settings: ComplexGraphSettings, use_pocket: bool = True
) -> list[ComplexRow]:
    rows = []
    for _, entry in labels.iterrows():
        pdb_id = str(entry["id"])

        def make(pdb_id=pdb_id) -> Complex:
            folder = root / pdb_id
            if not folder.is_dir():
                raise ComplexError(f"{folder}: no such entry folder", source=str(folder))
            pocket_file = folder / f"{pdb_id}_pocket.pdb"
            # residue structure is computed on the whole protein (a pocket file exposes buried faces)
            pocket_only = use_pocket and not settings.residue_structure and pocket_file.exists()
            protein_file = pocket_file if pocket_only else folder / f"{pdb_id}_protein.pdb"
            protein = read_protein(protein_file, waters=settings.waters)
            return make_complex(protein, _pdbbind_ligand(folder, pdb_id), settings.pocket_radius, pdb_id)

        rows.append(ComplexRow(pdb_id, str(entry["group"]), make, np.array([entry["pK"]], dtype=float)))
    return rows


def find_index_file(root: Path) -> Path:
    """The PDBbind INDEX file under ``root`` (``index/INDEX_*`` or ``INDEX_*``) or a ``labels.csv``."""
    for pattern in ("labels.csv", "index/INDEX_*_data.*", "INDEX_*_data.*", "index/INDEX_*", "INDEX_*"):
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    raise ValueError(f"{root}: no labels given and no INDEX_* file or labels.csv found")


def pdbbind_source(
    root: str | Path,
    labels: str | Path | None = None,
    settings: ComplexGraphSettings | None = None,
    use_pocket: bool = True,
    id_column: str | None = None,
    label_column: str | None = None,
    cache: str | Path | None = None,
) -> ComplexSource:
    """The :class:`ComplexSource` of a PDBbind-style folder (see :func:`load_pdbbind`)."""
    root = Path(root)
    settings = settings or ComplexGraphSettings()
    labels_path = Path(labels) if labels else find_index_file(root)
    table = read_labels(labels_path, id_column, label_column)
    digest = hashlib.sha256(labels_path.read_bytes()).hexdigest()[:12]
    key = _digest(root.resolve(), digest, use_pocket, id_column, label_column, settings.key())
    meta = {"complex": asdict(settings), "source": str(root)}
    return ComplexSource(
        cache_dir(cache) / f"pdbbind-{key}.pt",
        lambda: pdbbind_rows(root, table, settings, use_pocket),
        lambda: DatasetMeta(root.name or "pdbbind", AFFINITY_TARGET, settings=dict(meta)),
        settings,
    )


def load_pdbbind(
    root: str | Path,
    labels: str | Path | None = None,
    settings: ComplexGraphSettings | None = None,
    use_pocket: bool = True,
    id_column: str | None = None,
    label_column: str | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> ComplexDataset:
    """A PDBbind-style folder as complex graphs (layout in the module docstring)."""
    return pdbbind_source(root, labels, settings, use_pocket, id_column, label_column, cache).load(progress)


def complex_source(
    path: str | Path,
    settings: ComplexGraphSettings | None = None,
    layout: str = "auto",
    targets: Sequence[str] | None = None,
    labels: str | Path | None = None,
    cache: str | Path | None = None,
) -> ComplexSource:
    """The :class:`ComplexSource` of a folder: ``layout`` "openff", "pdbbind" or "auto" (OpenFF when the
    folder has ``labels_pX.csv`` and ``data/``, else PDBbind). ``targets`` selects OpenFF targets."""
    path = Path(path)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "auto":
        layout = "openff" if (path / "labels_pX.csv").is_file() and (path / "data").is_dir() else "pdbbind"
    if layout == "openff":
        return openff_source(path, settings, targets, cache=cache)
    return pdbbind_source(path, labels, settings, cache=cache)


def load_complexes(
    path: str | Path,
    settings: ComplexGraphSettings | None = None,
    layout: str = "auto",
    targets: Sequence[str] | None = None,
    labels: str | Path | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> ComplexDataset:
    """A complex dataset from a folder (layouts: :func:`complex_source`)."""
    return complex_source(path, settings, layout, targets, labels, cache).load(progress)
