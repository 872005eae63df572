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
graph building run once, in parallel over chunks of file texts (:mod:`atomgraph.data.parallel_graphs`),
with a progress bar; the result is cached by content and settings.
Per-target flags that are not part of ``TargetInfo`` live in ``meta.settings`` keyed by target name:
``per_atom`` (a per-atom quantity such as eV/atom: read out as a mean, never a sum) and
``screen_largest`` (the screening direction used by top-k recall).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from atomgraph.data.build import cache_dir, load_or_build
from atomgraph.data.cif_archive import is_archive, iter_structure_texts, structure_format
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset, TargetInfo
from atomgraph.data.graph_settings import GraphSettings
from atomgraph.data.parallel_graphs import arrays_to_graph, graphs_from_texts

log = logging.getLogger(__name__)

CACHE_VERSION = 1
ID_MAP_FILE = "material_id_hash.csv"
CRYSTAL_GRAPH = GraphSettings(kind="radius", cutoff=8.0, max_neighbors=12)
"""The default crystal graph: CGCNN's 12 nearest neighbours within 8 Å."""


@dataclass(frozen=True)
class CrystalTarget:
    """One label column: name, unit, extensive (sums over atoms), per-atom (eV/atom: mean readout) and
    the screening direction (``screen_largest``: the top-k are the largest values)."""

    name: str
    unit: str = ""
    extensive: bool = False
    per_atom: bool = False
    screen_largest: bool = False


MP_TARGETS = (
    CrystalTarget("formation_energy_per_atom", "eV/atom", per_atom=True),
    CrystalTarget("band_gap", "eV", screen_largest=True),
    CrystalTarget("fermi_energy", "eV"),
    CrystalTarget("volume", "Å^3", extensive=True),  # the cell volume: grows with the cell
    CrystalTarget("magnetization", "μB", extensive=True, screen_largest=True),  # MP total, per cell
)
ELASTICITY_TARGETS = (
    CrystalTarget("bulk_modulus", "GPa", screen_largest=True),
    CrystalTarget("shear_modulus", "GPa", screen_largest=True),
    CrystalTarget("poisson_ratio", ""),
)
KNOWN_LABEL_FILES: dict[str, tuple[CrystalTarget, ...]] = {
    "id_prop_multi_eform_gap_efermi_volume_mag.csv": MP_TARGETS,
    "id_prop_K_G_poisson.csv": ELASTICITY_TARGETS,
}


@dataclass(frozen=True)
class CrystalSource:
    """Where a crystal dataset's pieces are: the labels CSV, the structures (archive or folder) and an
    optional ``index,material_id`` map (``material_id_hash.csv``) giving display ids."""

    labels: Path
    structures: Path
    id_map: Path | None = None


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


def locate(path: str | Path, labels: str | Path | None = None) -> CrystalSource:
    """The labels CSV and structures of a crystal folder or archive (see the module docstring)."""
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
    else:
        raise ValueError(f"{path}: expected a folder or a tar archive (.tar, .tar.gz, .tgz, ...)")
    if not label_file.exists():
        raise ValueError(f"labels file {label_file} does not exist")
    id_map = label_file.parent / ID_MAP_FILE
    return CrystalSource(label_file, structures, id_map if id_map.exists() else None)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip().lower() in ("", "none", "nan", "na", "null")
    return True


def read_labels(path: str | Path) -> tuple[list[str], np.ndarray, list[CrystalTarget]]:
    """Ids, values ``[M, T]`` (NaN where missing) and target descriptions of an id -> property CSV.

    Rows are ``id,value[,value...]``; a first row whose values are not numbers is a header naming
    the targets. Known files (:data:`KNOWN_LABEL_FILES`) get their names, units and flags.
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
        targets = [CrystalTarget(name, per_atom=name.endswith("_per_atom")) for name in names]
    return ids, values, targets


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


def _build(
    source: CrystalSource,
    settings: GraphSettings,
    subset: int | None,
    seed: int,
    workers: int | None,
    min_distance: float,
    progress: bool,
) -> GraphDataset:
    ids, values, targets = read_labels(source.labels)
    rows = np.arange(len(ids))
    if subset is not None and subset < len(ids):
        rows = np.sort(np.random.default_rng(seed).choice(len(ids), subset, replace=False))
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
    info = TargetInfo([t.name for t in targets], [t.unit for t in targets], [t.extensive for t in targets])
    meta = DatasetMeta(
        name,
        info,
        settings={
            "graph": settings.__dict__,
            "source": str(source.structures),
            "labels": str(source.labels),
            "subset": subset,
            "seed": seed,
            "min_distance": min_distance,
            "per_atom": {t.name: t.per_atom for t in targets},
            "screen_largest": {t.name: t.screen_largest for t in targets},
        },
    )
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


def load_crystals(
    path: str | Path,
    settings: GraphSettings | None = None,
    labels: str | Path | None = None,
    subset: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    extensive: Mapping[str, bool] | None = None,
    per_atom: Mapping[str, bool] | None = None,
    min_distance: float = 0.5,
    cache: str | Path | None = None,
    progress: bool = True,
) -> GraphDataset:
    """Crystal graphs with every label column in ``y`` ``[1, T]`` (NaN = missing), cached.

    Args:
        path: a folder (CGCNN layout, or one archive + one ``id_prop*.csv``) or a tar archive.
        settings: graph construction; default :data:`CRYSTAL_GRAPH` (12 nearest within 8 Å).
        labels: the id -> property CSV (default: ``id_prop.csv`` / the one ``id_prop*.csv`` beside).
        subset: a seeded random sample of this many label rows (only those files are parsed).
        seed: the sample's seed.
        workers: processes for parsing (None: every core; 1: in this process).
        extensive, per_atom: per-target overrides by name (not part of the cache key: applied on load).
        min_distance: structures with atoms closer than this (Å) are skipped as broken.
        cache: cache folder (default :func:`cache_dir`).

    Bad or missing structures are skipped and listed in ``meta.skipped``; display ids come from
    ``material_id_hash.csv`` when present (``mp-1234``), else the file ids. With several workers a
    script must call this under ``if __name__ == "__main__":`` (worker processes import the main module).
    """
    settings = settings or CRYSTAL_GRAPH
    source = locate(path, labels)
    extra = f"{subset}|{seed}|{min_distance}|{source.structures.name}|{source.labels.name}"
    key = _content_key(source, extra)
    file = cache_dir(cache) / f"crystals-{source.labels.stem}-{key}-{settings.key()}.pt"
    dataset = load_or_build(
        file, lambda: _build(source, settings, subset, seed, workers, min_distance, progress)
    )
    return apply_target_flags(dataset, extensive, per_atom)


# ------------------------------------------------------------------------------ per-target flags


def flags_by_name(names: Sequence[str], value: bool | Sequence[bool] | Mapping[str, bool] | None):
    """A config value for per-target flags as ``{name: flag}``: None stays None, one bool applies to
    every name, a list is aligned with ``names`` and a mapping is checked against them."""
    if value is None:
        return None
    if isinstance(value, bool):
        return dict.fromkeys(names, value)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"flags for unknown targets {unknown}; the targets are {list(names)}")
        return {str(k): bool(v) for k, v in value.items()}
    value = list(value)
    if len(value) != len(names):
        raise ValueError(f"{len(value)} flags for {len(names)} targets {list(names)}")
    return {name: bool(v) for name, v in zip(names, value, strict=True)}


def apply_target_flags(
    dataset: GraphDataset, extensive: Mapping[str, bool] | None, per_atom: Mapping[str, bool] | None
) -> GraphDataset:
    """Set the extensive / per-atom flags of the named targets (the others keep theirs)."""
    info = dataset.meta.targets
    for flags in (extensive, per_atom):
        unknown = sorted(set(flags or {}) - set(info.names))
        if unknown:
            raise ValueError(f"flags for unknown targets {unknown}; the dataset has {info.names}")
    for name, flag in (extensive or {}).items():
        info.extensive[info.names.index(name)] = bool(flag)
    settings = dataset.meta.settings
    settings["per_atom"] = {**settings.get("per_atom", {}), **(per_atom or {})}
    return dataset


def is_per_atom(name: str, unit: str = "") -> bool:
    """The guess for targets without a recorded flag: a name ending in ``_per_atom`` or a unit "/atom"."""
    return name.endswith("_per_atom") or unit.replace(" ", "").endswith("/atom")


def per_atom_flags(dataset: GraphDataset) -> list[bool]:
    """Per-atom flag of each target of ``dataset`` (recorded, else :func:`is_per_atom`)."""
    recorded = dataset.meta.settings.get("per_atom", {})
    info = dataset.targets
    return [bool(recorded.get(n, is_per_atom(n, u))) for n, u in zip(info.names, info.units, strict=True)]


def screen_largest_flags(dataset: GraphDataset) -> list[bool]:
    """Screening direction of each target (True: the largest values are the hits; default False)."""
    recorded = dataset.meta.settings.get("screen_largest", {})
    return [bool(recorded.get(name, False)) for name in dataset.targets.names]


def readout_warnings(dataset: GraphDataset, names: Sequence[str], readout) -> list[str]:
    """Messages for the targets ``names`` whose model ``readout`` contradicts their flags (per atom,
    extensive); see :func:`atomgraph.models.crystal_head.readout_mismatches`."""
    from atomgraph.models.crystal_head import readout_mismatches

    info = dataset.targets
    flags = dict(zip(info.names, per_atom_flags(dataset), strict=True))
    _, columns = info.select(list(names))
    extensive = [info.extensive[c] for c in columns]
    return readout_mismatches(list(names), extensive, [flags[n] for n in names], readout)
