"""Crystals as graphs: folders or tar archives of CIF/POSCAR files with an id -> property CSV.

Layouts (``path`` is a folder or an archive):

* CGCNN: a folder with ``id_prop.csv`` (rows ``id,value[,value...]``, no header) and ``<id>.cif`` files;
* an archive (``.tar.gz`` ...) of such files, read as a stream (never unpacked), with the labels CSV
  beside it or given as ``labels``; a folder holding one archive and one ``id_prop*.csv`` works too;
* the Materials Project set of ``../shared/data/mp_crystals`` (36,737 crystals: ``cifs.tar.gz``,
  ``id_prop_multi_eform_gap_efermi_volume_mag.csv``, ``material_id_hash.csv``) and its ``elasticity/``
  subset (3,191 crystals with bulk/shear moduli): known label files get names, units and readouts
  from :data:`KNOWN_LABEL_FILES`; other files get ``target`` / ``target_<k>`` (or a header row's names).

Missing labels (``None``, blank, ``nan``) become NaN and are masked in losses and metrics. Parsing and
graph building run once, in parallel over chunks of file texts
(:mod:`atomgraph.apps.crystals.parallel_graphs`), with a progress bar; the result is cached by content
and settings.
What each column means (unit, reduction sum / per_atom / mean, screening direction) is its
:class:`~atomgraph.targets.TargetSpec`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from atomgraph.apps.crystals.cif_archive import (
    CIF_COLUMNS,
    cif_column,
    is_archive,
    is_cif_table,
    iter_structure_texts,
    parse_structure,
    structure_format,
)
from atomgraph.apps.crystals.parallel_graphs import arrays_to_graph, graphs_from_texts
from atomgraph.data.build import cache_dir, load_or_build
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset, apply_reductions
from atomgraph.data.graph_store import GraphStore, StoreInput, StoreRow, load_or_build_store
from atomgraph.data.splits import seeded_subset
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.targets import ELASTICITY, MATERIALS_PROJECT, TargetSet, TargetSpec, guess_target, known_target

log = logging.getLogger(__name__)

CACHE_VERSION = 1
ID_MAP_FILE = "material_id_hash.csv"
KNOWN_LABEL_FILES: dict[str, tuple[TargetSpec, ...]] = {
    "id_prop_multi_eform_gap_efermi_volume_mag.csv": MATERIALS_PROJECT,
    "id_prop_K_G_poisson.csv": ELASTICITY,
}
"""Label files whose columns are known targets (:mod:`atomgraph.targets`)."""
LOG10_LABELS: dict[str, str] = {"log10_bulk_modulus": "bulk_modulus", "log10_shear_modulus": "shear_modulus"}
"""Labels added beside a label column as its base-10 logarithm (``ELASTICITY_LOG10``); a value <= 0
(a mechanically unstable entry) has no logarithm and becomes missing."""
CLASS_LABELS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "is_metal": ("band_gap", lambda gap: (gap <= 0).astype(np.float64)),
}
"""Classification labels derived from a label column (``MATERIALS_PROJECT_CLASSES``), added only when a
run asks for them by name (``data.targets: [is_metal]``): a dataset holding them beside the regression
columns cannot train those. A missing source value stays missing."""


@dataclass(frozen=True)
class CrystalSource:
    """Where a crystal dataset's pieces are: the labels CSV, the structures (archive or folder), an
    optional ``index,material_id`` map (``material_id_hash.csv``) giving display ids, and the
    :data:`CLASS_LABELS` a run asks to derive from the labels."""

    labels: Path
    structures: Path
    id_map: Path | None = None
    classes: tuple[str, ...] = ()

    def read_labels(self) -> tuple[list[str], np.ndarray, list[TargetSpec]]:
        """:func:`read_labels` of the labels file with the asked-for classes."""
        return read_labels(self.labels, self.classes)


# ------------------------------------------------------------------------------------------ labels


def _find_labels(folder: Path) -> Path:
    if (folder / "id_prop.csv").exists():
        return folder / "id_prop.csv"
    found = sorted(folder.glob("id_prop*.csv"))
    if len(found) != 1:
        raise ValueError(
            f"{folder}: expected one id_prop*.csv labels file, found {[f.name for f in found]}; "
            "give the labels file explicitly (data.crystals.labels)"
        )
    return found[0]


def locate(path: str | Path, labels: str | Path | None = None, classes: Sequence[str] = ()) -> CrystalSource:
    """The labels CSV and structures of a crystal folder or archive (see the module docstring), with
    the :data:`CLASS_LABELS` named in ``classes`` to derive."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such folder or archive")
    if path.is_dir():
        label_file = Path(labels) if labels else _find_labels(path)
        has_files = any(structure_format(f.name) for f in path.iterdir() if f.is_file())
        archives = sorted(f for f in path.iterdir() if f.is_file() and is_archive(f))
        if has_files:
            structures = path
        elif len(archives) == 1:
            structures = archives[0]
        else:
            raise ValueError(
                f"{path}: no CIF/POSCAR files and {len(archives)} archives {[a.name for a in archives]}; "
                "point data.path at the archive"
            )
    elif is_archive(path):
        label_file, structures = (Path(labels) if labels else _find_labels(path.parent)), path
    elif is_cif_table(path):  # one CSV: ids, CIF texts and labels
        label_file, structures = (Path(labels) if labels else path), path
    else:
        raise ValueError(
            f"{path}: expected a folder, a tar archive (.tar, .tar.gz, .tgz, ...) or a CSV with a "
            f"column {CIF_COLUMNS[0]!r} of CIF texts"
        )
    if not label_file.exists():
        raise ValueError(f"labels file {label_file} does not exist")
    id_map = label_file.parent / ID_MAP_FILE
    return CrystalSource(label_file, structures, id_map if id_map.exists() else None, tuple(classes))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip().lower() in ("", "none", "nan", "na", "null")
    return True


def read_labels(
    path: str | Path, classes: Sequence[str] = ()
) -> tuple[list[str], np.ndarray, list[TargetSpec]]:
    """Ids, values ``[M, T]`` (NaN where missing) and target descriptions of an id -> property CSV.

    Rows are ``id,value[,value...]``; a first row whose values are not numbers is a header naming
    the targets. Known files (:data:`KNOWN_LABEL_FILES`) get their names, units and flags. The
    :data:`LOG10_LABELS` of the columns present are appended, then the :data:`CLASS_LABELS` named in
    ``classes``.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the labels CSV ({error})") from error
    if table.shape[1] < 2:
        raise ValueError(f"{path}: expected rows 'id,value[,value...]', got {table.shape[1]} column(s)")
    header = None
    if not all(_is_number(v) for v in table.iloc[0, 1:]):
        header, table = [str(v).strip() for v in table.iloc[0, 1:]], table.iloc[1:]
        structures = cif_column(header)
        if structures is not None:  # a crystals CSV: the CIF texts are not labels
            keep = [k for k, name in enumerate(header) if name != structures]
            header, table = [header[k] for k in keep], table.iloc[:, [0, *(k + 1 for k in keep)]]
    ids = [str(v).strip() for v in table.iloc[:, 0]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids in the first column")
    values = table.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    known = KNOWN_LABEL_FILES.get(path.name)
    if known is not None and len(known) == values.shape[1] and header is None:
        targets = list(known)
    else:
        count = values.shape[1]
        names = header or (["target"] if count == 1 else [f"target_{k}" for k in range(count)])
        targets = [guess_target(name) for name in names]
    values, targets = _with_log10_labels(path, values, targets)
    return ids, *_with_class_labels(path, values, targets, classes)


def _with_class_labels(
    path: Path, values: np.ndarray, targets: list[TargetSpec], classes: Sequence[str]
) -> tuple[np.ndarray, list[TargetSpec]]:
    """``values`` and ``targets`` with the named :data:`CLASS_LABELS` appended."""
    names = [t.name for t in targets]
    for name in classes:
        if name in names:
            continue
        source = CLASS_LABELS[name][0]
        if source not in names:
            raise ValueError(f"{path}: {name} is derived from a {source!r} column, which this file lacks")
        column = values[:, names.index(source)]
        derived = np.full_like(column, np.nan)
        known = ~np.isnan(column)
        derived[known] = CLASS_LABELS[name][1](column[known])
        values = np.column_stack([values, derived])
        targets = [*targets, known_target(name)]
    return values, targets


def class_labels_asked(targets: Sequence[str] | None) -> tuple[str, ...]:
    """The :data:`CLASS_LABELS` among a run's ``data.targets`` (in that order)."""
    return tuple(name for name in targets or () if name in CLASS_LABELS)


def _with_log10_labels(
    path: Path, values: np.ndarray, targets: list[TargetSpec]
) -> tuple[np.ndarray, list[TargetSpec]]:
    """``values`` and ``targets`` with the :data:`LOG10_LABELS` of the columns they hold appended."""
    names = [t.name for t in targets]
    for derived, source in LOG10_LABELS.items():
        if source not in names or derived in names:
            continue
        column = values[:, names.index(source)]
        positive = column > 0
        dropped = int((~positive & ~np.isnan(column)).sum())
        if dropped:
            log.warning("%s: %d %s value(s) <= 0 have no %s (missing)", path.name, dropped, source, derived)
        logged = np.full_like(column, np.nan)
        logged[positive] = np.log10(column[positive])
        values = np.column_stack([values, logged])
        targets = [*targets, known_target(derived)]
    return values, targets


def read_id_map(path: Path | None) -> dict[str, str]:
    """``index -> material id`` from a two-column CSV without header (empty for None)."""
    if path is None:
        return {}
    table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    return {str(k).strip(): str(v).strip() for k, v in zip(table[0], table[1], strict=True)}


# ----------------------------------------------------------------------------------------- dataset


def _content_key(source: CrystalSource, extra: str) -> str:
    """A hash of the labels, id map and structures (archive bytes, or folder names/sizes/mtimes)."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{extra}".encode())
    for file in (source.labels, source.id_map):
        if file is not None:
            digest.update(file.read_bytes())
    if source.structures.is_dir():
        for file in sorted(source.structures.iterdir()):
            if structure_format(file.name):
                stat = file.stat()
                digest.update(f"{file.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    else:
        with open(source.structures, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:12]


def _cache_path(
    source: CrystalSource,
    settings: GraphSpec,
    subset: int | None,
    seed: int,
    min_distance: float,
    cache: str | Path | None,
    suffix: str,
) -> Path:
    """The processed form's path (``.pt`` in memory, ``.store`` on disk): content, sample, spec."""
    extra = f"{subset}|{seed}|{min_distance}|{source.structures.name}|{source.labels.name}"
    derived = [t.name for t in source.read_labels()[2] if t.name in LOG10_LABELS or t.name in CLASS_LABELS]
    if derived:  # label columns the reader adds (keys of sets without them are unchanged)
        extra += "|" + ",".join(derived)
    key = _content_key(source, extra)
    return cache_dir(cache) / f"crystals-{source.labels.stem}-{key}-{settings.key()}{suffix}"


def _crystal_meta(
    source: CrystalSource,
    settings: GraphSpec,
    targets: list[TargetSpec],
    subset: int | None,
    seed: int,
    min_distance: float,
) -> DatasetMeta:
    """The metadata of a crystal dataset (its name is the labels file's folder)."""
    settings_record = {
        "graph": settings.to_dict(),
        "source": str(source.structures),
        "labels": str(source.labels),
        "subset": subset,
        "seed": seed,
        "min_distance": min_distance,
    }
    return DatasetMeta(source.labels.parent.name or "crystals", TargetSet(targets), settings=settings_record)


def _build(
    source: CrystalSource,
    settings: GraphSpec,
    subset: int | None,
    seed: int,
    workers: int | None,
    min_distance: float,
    progress: bool,
) -> GraphDataset:
    ids, values, targets = source.read_labels()
    rows = seeded_subset(len(ids), subset, seed)
    row_of = {ids[r]: int(r) for r in rows}
    seen: set[str] = set()

    def items() -> Iterator[tuple[int, str, str, str]]:
        for key, fmt, text in iter_structure_texts(source.structures, row_of):
            if key not in seen:  # the first file of an id wins (e.g. both 1.cif and 1.vasp)
                seen.add(key)
                yield row_of[key], f"{source.structures.name}:{key}", fmt, text

    name = source.labels.parent.name or "crystals"
    built = graphs_from_texts(items(), settings, workers, len(rows), progress, min_distance, desc=name)
    display = read_id_map(source.id_map)
    meta = _crystal_meta(source, settings, targets, subset, seed, min_distance)
    graphs = []
    for row in rows:
        key = ids[row]
        result = built.get(int(row), f"no structure file for id {key!r} in {source.structures}")
        if isinstance(result, str):
            meta.skipped.append({"index": int(row), "id": key, "error": result})
            continue
        graph = arrays_to_graph(result)
        graph.y = torch.tensor(values[row].reshape(1, -1), dtype=torch.get_default_dtype())
        graphs.append(graph)
        meta.ids.append(display.get(key, key))
    meta.smiles = [""] * len(graphs)
    if meta.skipped:
        log.warning("%s: skipped %d rows (first: %s)", name, len(meta.skipped), meta.skipped[0])
    return GraphDataset(graphs, meta)


def _store_graph(payload: tuple[str, str, str, np.ndarray], settings: GraphSpec, min_distance: float) -> Data:
    """The graph of one structure text (source name, format, text, labels); runs in a store worker.
    Whatever the parser raises becomes a ``ValueError`` naming the file: the row is skipped."""
    source, fmt, text, labels = payload
    try:
        graph = settings.build(parse_structure(text, fmt, source, min_distance))
    except Exception as error:  # parsers raise anything on bad input; one file must not stop a shard
        message = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        raise ValueError(message) from error
    graph.y = torch.tensor(labels.reshape(1, -1), dtype=torch.get_default_dtype())
    return graph


def crystals_store(
    path: str | Path,
    settings: GraphSpec | None = None,
    labels: str | Path | None = None,
    subset: int | None = None,
    seed: int = 0,
    min_distance: float = 0.5,
    cache: str | Path | None = None,
    progress: bool = True,
    shard_size: int = 10_000,
    workers: int = 1,
    classes: Sequence[str] = (),
) -> GraphStore:
    """Crystal graphs as an on-disk store (arguments as :func:`load_crystals`). Rows follow the order
    of the structure files in the archive or folder (an archive is read as a stream, once), not the
    labels file; label rows without a structure file are listed in ``meta.skipped``."""
    settings = settings or preset("cgcnn_crystal")
    source = locate(path, labels, classes)
    directory = _cache_path(source, settings, subset, seed, min_distance, cache, ".store")

    def make_input() -> StoreInput:
        ids, values, targets = source.read_labels()
        rows = seeded_subset(len(ids), subset, seed)
        row_of = {ids[r]: int(r) for r in rows}
        display = read_id_map(source.id_map)
        meta = _crystal_meta(source, settings, targets, subset, seed, min_distance)
        meta.settings["order"] = "structure files"

        def store_rows() -> Iterator[StoreRow]:
            seen: set[str] = set()
            for key, fmt, text in iter_structure_texts(source.structures, row_of):
                if key not in seen:  # the first file of an id wins (e.g. both 1.cif and 1.vasp)
                    seen.add(key)
                    payload = (f"{source.structures.name}:{key}", fmt, text, values[row_of[key]])
                    yield StoreRow(display.get(key, key), "", payload)
            for key in sorted(set(row_of) - seen, key=row_of.get):  # read once the stream has ended
                error = f"no structure file for id {key!r} (labels row {row_of[key]}) in {source.structures}"
                meta.skipped.append({"index": None, "id": key, "error": error})

        build = functools.partial(_store_graph, settings=settings, min_distance=min_distance)
        return StoreInput(store_rows(), build, meta, total=len(rows))

    return load_or_build_store(directory, make_input, shard_size, workers, progress)


def load_crystals(
    path: str | Path,
    settings: GraphSpec | None = None,
    labels: str | Path | None = None,
    subset: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    reductions: Mapping[str, str] | None = None,
    min_distance: float = 0.5,
    cache: str | Path | None = None,
    progress: bool = True,
    classes: Sequence[str] = (),
) -> GraphDataset:
    """Crystal graphs with every label column in ``y`` ``[1, T]`` (NaN = missing), cached.

    Args:
        path: a folder (CGCNN layout, or one archive + one ``id_prop*.csv``) or a tar archive.
        settings: graph construction; default the preset ``cgcnn_crystal`` (12 nearest within 8 Å).
        labels: the id -> property CSV (default: ``id_prop.csv`` / the one ``id_prop*.csv`` beside).
        subset: a seeded random sample of this many label rows (only those files are parsed).
        seed: the sample's seed.
        workers: processes for parsing (None: every core; 1: in this process).
        reductions: per-target reduction overrides by name ("sum", "per_atom", "mean"; not part of the
            cache key: applied on load).
        min_distance: structures with atoms closer than this (Å) are skipped as broken.
        cache: cache folder (default :func:`cache_dir`).
        classes: :data:`CLASS_LABELS` to derive and append (e.g. ``["is_metal"]``).

    Bad or missing structures are skipped and listed in ``meta.skipped``; display ids come from
    ``material_id_hash.csv`` when present (``mp-1234``), else the file ids. With several workers a
    script must call this under ``if __name__ == "__main__":`` (worker processes import the main module).
    """
    settings = settings or preset("cgcnn_crystal")
    source = locate(path, labels, classes)
    file = _cache_path(source, settings, subset, seed, min_distance, cache, ".pt")
    dataset = load_or_build(
        file, lambda: _build(source, settings, subset, seed, workers, min_distance, progress)
    )
    return apply_reductions(dataset, reductions)
