"""QM9 read into plain arrays: atoms, Å positions, SMILES and targets in the package's units.

QM9 (Ramakrishnan, Dral, Rupp & von Lilienfeld, *Sci. Data* 1, 140022 (2014); figshare collection
978904) holds 133,885 small organic molecules (up to 9 heavy atoms C, N, O, F) relaxed with
B3LYP/6-31G(2df,p).  3,054 of them failed the authors' geometry consistency check
(``uncharacterized.txt``); the usual benchmark set, and what this module returns by default, is the
remaining **130,831** molecules.

Two sources give the same :class:`QM9Records` (same target columns, same units, sorted by id):

* :func:`read_qm9pack` reads the CSVs of the PyPI package ``qm9pack==1.0.3`` (the ``[qm9`` extra of
  atomgraph), which already has the 3,054 uncharacterised molecules removed.  The package itself
  is never imported (its ``__init__`` needs ``pkg_resources``); only its data folder is located.
* :func:`read_qm9_archive` streams the canonical ``dsgdb9nsd.xyz.tar.bz2`` (no unpacking to disk),
  and :func:`download_qm9` fetches it and ``uncharacterized.txt`` from figshare, checksummed.

Choices (all recorded in :data:`QM9_TARGETS`):

* Energies (homo, lumo, gap, zpve, U0, U, H, G) are converted from Hartree to eV with
  ``HARTREE_TO_EV = 27.211386245988`` (CODATA 2018), the package's energy unit.  They are *total*
  energies, not atomisation energies: subtracting atom references is the dataset class's job.
* mu stays in Debye, alpha in bohr^3, r2 in bohr^2, Cv in cal/(mol K) and A, B, C in GHz: these
  are the units every QM9 benchmark reports, so no conversion is applied (factor 1).
* ``extensive`` says whether a property grows with molecule size (sum-pool readout, per-atom
  references make sense) or not (mean-pool).  mu, homo, lumo, gap and A, B, C are intensive;
  alpha (polarisability is roughly additive over bonds), r2, zpve, U0, U, H, G and Cv are
  extensive.
* Target order: the 12 standard targets in the order of PyTorch Geometric's QM9 (mu, alpha, homo,
  lumo, gap, r2, zpve, U0, U, H, G, Cv) followed by the rotational constants A, B, C.
* ``smiles`` is the GDB-17 SMILES (first column of the archive's SMILES line): qm9pack's
  ``SMILES`` column carries no stereo marks at all, which matches the GDB-17 column and not the
  Open Babel SMILES of the relaxed geometry, so both sources give the same strings.  The archive
  reader also keeps the relaxed-geometry SMILES in ``smiles_relaxed`` (None for qm9pack).
* Numbers may use Mathematica exponents (``1.2*^-6``) or end in a bare point (``0.``); every
  numeric field is parsed with ``*^`` replaced by ``e``.
* Five targets are derived: ``omega1``, the highest of the harmonic frequencies QM9 lists (cm^-1), and
  the atomisation energies ``U0_atom``, ``U_atom``, ``H_atom``, ``G_atom`` (eV): the total energy minus
  the sum of the free atoms' energies at the same level of theory (:data:`ATOM_REFERENCES_HARTREE`,
  QM9's ``atomref`` table; the convention of PyTorch Geometric's 19 targets).
* ``mulliken`` holds the per-atom Mulliken charges (e) that QM9 lists next to each position.
  The frequencies themselves and the InChIs are not kept.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers
from tqdm.auto import tqdm

from atomgraph.targets import QM9

from .download import download

__all__ = [
    "ATOM_REFERENCES_HARTREE",
    "HARTREE_TO_EV",
    "QM9_ARCHIVE_MD5",
    "QM9_ARCHIVE_SHA256",
    "QM9_ARCHIVE_SIZE",
    "QM9_ARCHIVE_URL",
    "QM9_NUM_CHARACTERIZED",
    "QM9_NUM_MOLECULES",
    "QM9_NUM_UNCHARACTERIZED",
    "QM9_TARGETS",
    "QM9_TARGET_NAMES",
    "QM9_UNCHARACTERIZED_MD5",
    "QM9_UNCHARACTERIZED_SHA256",
    "QM9_UNCHARACTERIZED_URL",
    "QM9Records",
    "SourceColumn",
    "download_qm9",
    "parse_uncharacterized",
    "qm9pack_data_dir",
    "read_qm9_archive",
    "read_qm9pack",
]

#: Hartree in eV, CODATA 2018 (same value as CODATA 2022).
HARTREE_TO_EV = 27.211386245988

QM9_NUM_MOLECULES = 133_885
QM9_NUM_UNCHARACTERIZED = 3_054
QM9_NUM_CHARACTERIZED = QM9_NUM_MOLECULES - QM9_NUM_UNCHARACTERIZED  # 130,831

# --------------------------------------------------------------------------------------------------
# Canonical files (figshare collection 978904) and their checksums.
#
# SHA-256 and sizes: tensorflow/datasets, tensorflow_datasets/datasets/qm9/checksums.tsv
#   (TFDS records them when it registers a download).
# MD5: the md5 figshare publishes for each file (api.figshare.com/v2/articles/1057646 and 1057644),
#   pinned identically by several independent projects (e.g. PaddleMaterials' QM9 dataset pins the
#   archive MD5; other QM9 loaders pin both, each alongside the same byte sizes as TFDS).
# --------------------------------------------------------------------------------------------------
QM9_ARCHIVE_URL = "https://ndownloader.figshare.com/files/3195389"  # dsgdb9nsd.xyz.tar.bz2
QM9_ARCHIVE_SIZE = 86_144_227  # bytes
QM9_ARCHIVE_SHA256 = "3a63848ac80691bdb8d41834b575afad345b9300d7a2db0c38adb7f6eaa8360c"
QM9_ARCHIVE_MD5 = "ad1ebd51ee7f5b3a6e32e974e5d54012"

QM9_UNCHARACTERIZED_URL = "https://ndownloader.figshare.com/files/3195404"  # uncharacterized.txt
QM9_UNCHARACTERIZED_SIZE = 486_752  # bytes
QM9_UNCHARACTERIZED_SHA256 = "3aa5115d540b356de94791d4a74c3bf1ed91c469ecf52a4f5d7cc0506fe02e24"
QM9_UNCHARACTERIZED_MD5 = "a361887bacb427b8a0ce7903d92a53b4"

QM9_ARCHIVE_NAME = "dsgdb9nsd.xyz.tar.bz2"
QM9_UNCHARACTERIZED_NAME = "uncharacterized.txt"

_QM9PACK_HINT = (
    'install it with `pip install "atomgraph[qm9]"` (or `pip install qm9pack==1.0.3`), '
    "or use read_qm9_archive / download_qm9 on the canonical figshare archive instead"
)


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceColumn:
    """How one QM9 property is stored in the sources: ``value[unit] = value[source_unit] * factor``.
    Name, unit and meaning of each target are :data:`atomgraph.targets.QM9`'s."""

    name: str
    unit: str
    source_unit: str
    factor: float


_HA = "Hartree"
_HARTREE_TARGETS = {"homo", "lumo", "gap", "zpve", "U0", "U", "H", "G"}

_DERIVED = ("omega1", "U0_atom", "U_atom", "H_atom", "G_atom")

#: The 15 targets read from the files, in column order of :attr:`QM9Records.targets`.
QM9_TARGETS: tuple[SourceColumn, ...] = tuple(
    SourceColumn(t.name, t.unit, _HA, HARTREE_TO_EV)
    if t.name in _HARTREE_TARGETS
    else SourceColumn(t.name, t.unit, t.unit, 1.0)
    for t in QM9
    if t.name not in _DERIVED
)
#: Every target's name: the 15 read, then the 5 derived (:data:`atomgraph.targets.QM9`'s order).
QM9_TARGET_NAMES: tuple[str, ...] = tuple(t.name for t in QM9)
_FACTORS = np.array([t.factor for t in QM9_TARGETS], dtype=np.float64)

#: Energies of the free atoms (Hartree) at QM9's level of theory, B3LYP/6-31G(2df,p): U0, U, H, G
#: (the ``atomref`` table published with the data set).
ATOM_REFERENCES_HARTREE: dict[int, tuple[float, float, float, float]] = {
    1: (-0.500273, -0.498857, -0.497912, -0.510927),
    6: (-37.846772, -37.845355, -37.844411, -37.861317),
    7: (-54.583861, -54.582445, -54.581501, -54.598897),
    8: (-75.064579, -75.063163, -75.062219, -75.079532),
    9: (-99.718730, -99.717314, -99.716370, -99.733544),
}

#: qm9pack CSV column of each target (sic "Enthalphy").
_QM9PACK_COLUMNS: dict[str, str] = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "gap": "HOMO_LUMO_gap_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "U0": "InternalEnergy_0K_au",
    "U": "InternalEnergy_298K_au",
    "H": "Enthalphy_298K_au",
    "G": "GibbsFreeEnergy_298K_au",
    "Cv": "Heatcapacity_Cv_cal_mol_K",
    "A": "RotA_GHz",
    "B": "RotB_GHz",
    "C": "RotC_GHz",
}
_QM9PACK_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_QM9PACK_FREQUENCIES = "Harmonic_Freq_cmi"


def _highest_frequency(text: str, mol_id: object) -> float:
    """The largest of a molecule's harmonic frequencies (cm^-1), listed with commas or whitespace."""
    tokens = text.replace("[", " ").replace("]", " ").replace(",", " ").split()
    try:
        values = [_to_float(token) for token in tokens]
    except ValueError:
        raise ValueError(
            f"QM9 molecule {mol_id}: cannot parse its harmonic frequencies {text[:80]!r}"
        ) from None
    if not values:
        raise ValueError(f"QM9 molecule {mol_id}: no harmonic frequencies")
    return max(values)


#: The 15 values after "gdb <id>" on line 2 of each archive file, in file order.
_ARCHIVE_FIELDS = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G",
                   "Cv")  # fmt: skip
_ARCHIVE_TO_TARGETS = np.array([_ARCHIVE_FIELDS.index(t.name) for t in QM9_TARGETS])


def _units() -> dict[str, str]:
    return {t.name: t.unit for t in QM9}


def _all_targets(raw: np.ndarray, numbers: Sequence[np.ndarray], omega1: np.ndarray) -> np.ndarray:
    """[M, 20]: the 15 read columns (source units, QM9_TARGETS order) converted, then ``omega1``
    (cm^-1) and the four atomisation energies (eV)."""
    read = np.asarray(raw, dtype=np.float64).reshape(len(numbers), len(QM9_TARGETS)) * _FACTORS
    references = np.zeros((len(numbers), 4))
    for row, z in enumerate(numbers):
        unknown = sorted(set(z.tolist()) - set(ATOM_REFERENCES_HARTREE))
        if unknown:
            raise ValueError(f"QM9: no atom reference energy for element(s) {unknown}")
        references[row] = np.sum([ATOM_REFERENCES_HARTREE[int(k)] for k in z], axis=0)
    totals = read[:, [QM9_TARGET_NAMES.index(n) for n in ("U0", "U", "H", "G")]]
    atomisation = totals - references * HARTREE_TO_EV
    return np.concatenate([read, np.asarray(omega1, dtype=np.float64).reshape(-1, 1), atomisation], axis=1)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------
@dataclass
class QM9Records:
    """QM9 molecules as plain arrays, one entry per molecule (M molecules, T targets).

    Attributes:
        ids: [M] int64, the gdb index (1..133885; the number in ``dsgdb9nsd_NNNNNN.xyz``).
        numbers: M arrays [n] int64, atomic numbers.
        positions: M arrays [n, 3] float64, Å.
        smiles: M GDB-17 SMILES strings.
        targets: [M, T] float64 in the units of ``units`` (see :data:`QM9_TARGETS`).
        target_names: the T column names.
        units: target name -> unit.
        mulliken: M arrays [n] float64, Mulliken partial charges (e).
        smiles_relaxed: M SMILES of the relaxed B3LYP geometry (archive only), else None.
    """

    ids: np.ndarray
    numbers: list[np.ndarray]
    positions: list[np.ndarray]
    smiles: list[str]
    targets: np.ndarray
    target_names: list[str]
    units: dict[str, str]
    mulliken: list[np.ndarray]
    smiles_relaxed: list[str] | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64).reshape(-1)
        self.targets = np.asarray(self.targets, dtype=np.float64).reshape(
            len(self.ids), len(self.target_names)
        )
        m = len(self.ids)
        lists = {"numbers": self.numbers, "positions": self.positions, "smiles": self.smiles,
                 "mulliken": self.mulliken}  # fmt: skip
        if self.smiles_relaxed is not None:
            lists["smiles_relaxed"] = self.smiles_relaxed
        for name, values in lists.items():
            if len(values) != m:
                raise ValueError(f"QM9Records: {name} has {len(values)} entries, ids has {m}")
        if self.targets.shape[1] != len(self.target_names):
            raise ValueError(
                f"QM9Records: targets has {self.targets.shape[1]} columns "
                f"but {len(self.target_names)} target names"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"QM9Records({len(self)} molecules, targets={list(self.target_names)})"

    @property
    def num_atoms(self) -> np.ndarray:
        """[M] int64, atoms per molecule."""
        return np.fromiter((len(z) for z in self.numbers), dtype=np.int64, count=len(self))

    def target(self, name: str) -> np.ndarray:
        """The [M] column of one target (a view into ``targets``)."""
        return self.targets[:, list(self.target_names).index(name)]

    def subset(self, indices: Sequence[int] | np.ndarray | slice) -> QM9Records:
        """The records at ``indices`` (positions, not ids; ints, a boolean mask or a slice)."""
        if isinstance(indices, slice):
            idx = np.arange(len(self))[indices]
        else:
            idx = np.asarray(indices)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} records")
                idx = np.flatnonzero(idx)
            elif idx.size == 0:
                idx = idx.astype(np.int64)
            elif not np.issubdtype(idx.dtype, np.integer):
                raise TypeError(f"subset indices must be integers or a boolean mask, got {idx.dtype}")
        idx = idx.reshape(-1)

        def pick(values: list) -> list:
            return [values[i] for i in idx]

        return QM9Records(
            ids=self.ids[idx],
            numbers=pick(self.numbers),
            positions=pick(self.positions),
            smiles=pick(self.smiles),
            targets=self.targets[idx],
            target_names=list(self.target_names),
            units=dict(self.units),
            mulliken=pick(self.mulliken),
            smiles_relaxed=None if self.smiles_relaxed is None else pick(self.smiles_relaxed),
        )

    def sorted_by_id(self) -> QM9Records:
        """These records in increasing id order (self when already sorted)."""
        if len(self) < 2 or bool(np.all(np.diff(self.ids) > 0)):
            return self
        return self.subset(np.argsort(self.ids, kind="stable"))


# --------------------------------------------------------------------------------------------------
# Number parsing
# --------------------------------------------------------------------------------------------------
def _to_float(token: str) -> float:
    """A QM9 number: ``1.5``, ``0.``, ``-3.2E-6`` or Mathematica style ``1.2*^-6``."""
    return float(token.replace("*^", "e"))


def _symbol_to_number(symbol: str) -> int:
    try:
        return atomic_numbers[symbol]
    except KeyError:
        raise ValueError(f"unknown element symbol {symbol!r}") from None


def _parse_floats(text: str, count: int, what: str) -> np.ndarray:
    """Comma-separated floats -> array of exactly ``count`` values (vectorised, C speed)."""
    text = text.replace("*^", "e")
    values = None
    if count > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns (instead of failing) on unparsable input
            try:
                values = np.fromstring(text, dtype=np.float64, sep=",")
            except (ValueError, DeprecationWarning):
                values = None
    if values is None or values.size != count:
        tokens = [tok for tok in text.split(",") if tok.strip()] if count > 0 else []
        if len(tokens) != count:
            raise ValueError(f"qm9pack: expected {count} {what} values, found {len(tokens)}")
        out = np.empty(count, dtype=np.float64)
        for i, tok in enumerate(tokens):
            try:
                out[i] = float(tok)
            except ValueError:
                raise ValueError(f"qm9pack: cannot parse {what} value {tok.strip()!r}") from None
        values = out
    return values


# --------------------------------------------------------------------------------------------------
# qm9pack
# --------------------------------------------------------------------------------------------------
def qm9pack_data_dir() -> Path:
    """The folder holding qm9pack's CSVs (found without importing qm9pack)."""
    try:
        spec = importlib.util.find_spec("qm9pack")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The QM9 reader needs the package qm9pack, which is not installed: {_QM9PACK_HINT}."
        )
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [name for name in _QM9PACK_PARTS if not (data_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"qm9pack is installed but its data files {missing} are missing from {data_dir}: "
            f"reinstall it ({_QM9PACK_HINT})."
        )
    return data_dir


def _split_by(flat: np.ndarray, counts: np.ndarray, shape: tuple[int, ...] = ()) -> list[np.ndarray]:
    """Split a flat array into per-molecule views of shape (counts[i], *shape)."""
    block = flat.reshape((-1, *shape))
    bounds = np.concatenate(([0], np.cumsum(counts))).tolist()
    return [block[a:b] for a, b in itertools.pairwise(bounds)]


def read_qm9pack(limit: int | None = None, progress: bool = True) -> QM9Records:
    """Read QM9 from the CSVs of the ``qm9pack`` package (130,831 characterised molecules).

    Args:
        limit: read only the first ``limit`` rows (in file order, which is id order): fast.
        progress: show a tqdm bar over the CSV parts.

    Returns:
        :class:`QM9Records` sorted by id, targets as in :data:`QM9_TARGETS`.

    Raises:
        ImportError: qm9pack is not installed (the message gives the pip command).
    """
    import pandas as pd

    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    data_dir = qm9pack_data_dir()
    target_columns = [_QM9PACK_COLUMNS[t.name] for t in QM9_TARGETS]
    columns = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", "Mulliken_pop", _QM9PACK_FREQUENCIES,
               *target_columns]  # fmt: skip

    frames = []
    remaining = limit
    with tqdm(total=len(_QM9PACK_PARTS) + 1, desc="qm9pack", unit="step", disable=not progress) as bar:
        for name in _QM9PACK_PARTS:
            if remaining is not None and remaining <= 0:
                break
            bar.set_postfix_str(name)
            frame = pd.read_csv(data_dir / name, usecols=columns, nrows=remaining)
            frames.append(frame[columns])
            if remaining is not None:
                remaining -= len(frame)
            bar.update(1)
        bar.set_postfix_str("parsing")
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        records = _records_from_qm9pack_frame(df, target_columns)
        bar.update(bar.total - bar.n)
    return records.sorted_by_id()


def _records_from_qm9pack_frame(df, target_columns: list[str]) -> QM9Records:
    import pandas as pd

    m = len(df)
    ids = df["Index"].to_numpy(dtype=np.int64)
    counts = df["N_atoms"].to_numpy(dtype=np.int64)
    n_total = int(counts.sum())

    # Per-row structure checks, vectorised: n symbols / charges have n - 1 commas, n xyz rows 3n - 1.
    elements = df["Elements"].astype(str)
    xyz = df["XYZ_Ang"].astype(str)
    charges = df["Mulliken_pop"].astype(str)
    for column, col, per in (("Elements", elements, 1), ("XYZ_Ang", xyz, 3), ("Mulliken_pop", charges, 1)):
        bad = np.flatnonzero(col.str.count(",").to_numpy() != counts * per - 1)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"qm9pack: molecule {ids[i]} has {counts[i]} atoms but its {column} field "
                f"does not hold {counts[i] * per} values: {col.iloc[i][:120]!r}"
            )

    strip_brackets = str.maketrans("", "", "[]'\" ")
    # Elements: "['C','H',...]" -> one flat list of symbols -> atomic numbers via the unique symbols.
    symbols = ",".join(elements.tolist()).translate(strip_brackets).split(",") if m else []
    unique, inverse = np.unique(np.array(symbols, dtype="<U3"), return_inverse=True)
    z_flat = np.array([_symbol_to_number(s) for s in unique], dtype=np.int64)[inverse].reshape(-1)
    # Positions / charges: one C-level parse of all numbers.
    pos_flat = _parse_floats(",".join(xyz.tolist()).translate(strip_brackets), 3 * n_total, "XYZ_Ang")
    q_flat = _parse_floats(",".join(charges.tolist()).translate(strip_brackets), n_total, "Mulliken_pop")

    raw = df[target_columns]
    if not all(pd.api.types.is_numeric_dtype(dtype) for dtype in raw.dtypes):
        raw = raw.apply(lambda s: s.astype(str).str.replace("*^", "e", regex=False).astype(np.float64))
    numbers = _split_by(z_flat, counts) if m else []
    omega1 = np.array(
        [_highest_frequency(text, ids[i]) for i, text in enumerate(df[_QM9PACK_FREQUENCIES].astype(str))]
    )
    targets = _all_targets(raw.to_numpy(dtype=np.float64), numbers, omega1)

    return QM9Records(
        ids=ids,
        numbers=numbers,
        positions=_split_by(pos_flat, counts, (3,)) if m else [],
        smiles=df["SMILES"].astype(str).tolist(),
        targets=targets.reshape(m, len(QM9_TARGET_NAMES)),
        target_names=list(QM9_TARGET_NAMES),
        units=_units(),
        mulliken=_split_by(q_flat, counts) if m else [],
    )


# --------------------------------------------------------------------------------------------------
# Canonical archive
# --------------------------------------------------------------------------------------------------
_MEMBER_ID = re.compile(r"(\d+)\.xyz$")


def _parse_xyz_record(text: str, source: str):
    """One ``dsgdb9nsd_NNNNNN.xyz`` file -> (id, Z, R, q, raw 15 properties, highest harmonic frequency,
    smiles_gdb, smiles_relaxed)."""
    lines = text.splitlines()
    try:
        n = int(lines[0].split()[0])
    except (IndexError, ValueError):
        raise ValueError(f"{source}: first line must be the number of atoms") from None
    if len(lines) < n + 4:
        raise ValueError(f"{source}: {len(lines)} lines, expected at least {n + 4} for {n} atoms")

    props = lines[1].split()
    if len(props) != 2 + len(_ARCHIVE_FIELDS) or props[0] != "gdb":
        raise ValueError(f"{source}: bad property line {lines[1][:80]!r}")
    try:
        mol_id = int(props[1])
        values = [_to_float(tok) for tok in props[2:]]
    except ValueError as err:
        raise ValueError(f"{source}: bad property line ({err})") from None

    z = np.empty(n, dtype=np.int64)
    pos = np.empty((n, 3), dtype=np.float64)
    q = np.empty(n, dtype=np.float64)
    for i, line in enumerate(lines[2 : 2 + n]):
        tok = line.split()
        if len(tok) < 5:
            raise ValueError(f"{source}: atom line {i + 1} needs 'El x y z charge': {line!r}")
        try:
            z[i] = _symbol_to_number(tok[0])
            pos[i] = (_to_float(tok[1]), _to_float(tok[2]), _to_float(tok[3]))
            q[i] = _to_float(tok[4])
        except ValueError as err:
            raise ValueError(f"{source}: atom line {i + 1}: {err}") from None

    omega1 = _highest_frequency(lines[n + 2], f"{source} ({mol_id})")
    smiles = lines[n + 3].split()
    if not smiles:
        raise ValueError(f"{source}: empty SMILES line")
    smiles_gdb = smiles[0]
    smiles_relaxed = smiles[1] if len(smiles) > 1 else smiles[0]
    return mol_id, z, pos, q, values, omega1, smiles_gdb, smiles_relaxed


def read_qm9_archive(
    path: str | os.PathLike,
    exclude_ids: Iterable[int] | None = None,
    progress: bool = True,
) -> QM9Records:
    """Read the canonical ``dsgdb9nsd.xyz.tar.bz2`` (streamed, never unpacked to disk).

    Args:
        path: the archive (any compression ``tarfile`` detects; the canonical one is bz2).
        exclude_ids: gdb ids to drop, usually :func:`parse_uncharacterized` of
            ``uncharacterized.txt`` (``None`` keeps all 133,885 molecules).
        progress: show a tqdm bar over the compressed bytes.

    Returns:
        :class:`QM9Records` sorted by id, with the same target columns and units as
        :func:`read_qm9pack`, plus ``smiles_relaxed``.
    """
    import tarfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"QM9 archive not found: {path}")
    exclude = {int(i) for i in exclude_ids} if exclude_ids is not None else set()

    ids, numbers, positions, charges, raw, omega1, smiles, smiles_relaxed = [], [], [], [], [], [], [], []
    size = path.stat().st_size
    with (
        open(path, "rb") as fileobj,
        tqdm(total=size, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar,
        tarfile.open(fileobj=fileobj, mode="r|*") as tar,
    ):
        for member in tar:
            bar.update(max(0, fileobj.tell() - bar.n))
            if not member.isfile() or not member.name.endswith(".xyz"):
                continue
            match = _MEMBER_ID.search(member.name)
            file_id = int(match.group(1)) if match else None
            if file_id is not None and file_id in exclude:
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            text = handle.read().decode("utf-8")
            mol_id, z, pos, q, values, highest, smi_gdb, smi_relaxed = _parse_xyz_record(text, member.name)
            if file_id is not None and mol_id != file_id:
                raise ValueError(f"{member.name}: property line says gdb {mol_id}, file name says {file_id}")
            if mol_id in exclude:
                continue
            ids.append(mol_id)
            numbers.append(z)
            positions.append(pos)
            charges.append(q)
            raw.append(values)
            omega1.append(highest)
            smiles.append(smi_gdb)
            smiles_relaxed.append(smi_relaxed)
        bar.update(max(0, size - bar.n))

    raw_arr = np.asarray(raw, dtype=np.float64).reshape(len(ids), len(_ARCHIVE_FIELDS))
    records = QM9Records(
        ids=np.asarray(ids, dtype=np.int64),
        numbers=numbers,
        positions=positions,
        smiles=smiles,
        targets=_all_targets(raw_arr[:, _ARCHIVE_TO_TARGETS], numbers, np.asarray(omega1)),
        target_names=list(QM9_TARGET_NAMES),
        units=_units(),
        mulliken=charges,
        smiles_relaxed=smiles_relaxed,
    )
    if len(np.unique(records.ids)) != len(records):
        raise ValueError(f"{path}: duplicate molecule ids in the archive")
    return records.sorted_by_id()


def parse_uncharacterized(path: str | os.PathLike) -> set[int]:
    """The gdb ids listed in ``uncharacterized.txt`` (3,054 in the published file).

    The file is a free-text header, then a table bounded by dashed lines whose first column is
    the index.  The parser is tolerant of the layout: every line whose first whitespace-separated
    token is a plain integer is taken as one index; every other line (header, column titles,
    dashes, blanks) is ignored.
    """
    ids: set[int] = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            tokens = line.split()
            if tokens and tokens[0].isdigit():
                ids.add(int(tokens[0]))
    return ids


def download_qm9(
    root: str | os.PathLike, progress: bool = True, exclude_uncharacterized: bool = True
) -> QM9Records:
    """Download (checksummed, skipped when present and valid) and read QM9 from figshare.

    ``root`` receives ``dsgdb9nsd.xyz.tar.bz2`` (86 MB) and ``uncharacterized.txt``; the 3,054
    uncharacterised molecules are dropped unless ``exclude_uncharacterized=False``.
    """
    root = Path(root)
    archive = download(
        QM9_ARCHIVE_URL, root / QM9_ARCHIVE_NAME, sha256=QM9_ARCHIVE_SHA256, md5=QM9_ARCHIVE_MD5,
        progress=progress,
    )  # fmt: skip
    exclude: set[int] | None = None
    if exclude_uncharacterized:
        listing = download(
            QM9_UNCHARACTERIZED_URL, root / QM9_UNCHARACTERIZED_NAME, sha256=QM9_UNCHARACTERIZED_SHA256,
            md5=QM9_UNCHARACTERIZED_MD5, progress=progress,
        )  # fmt: skip
        exclude = parse_uncharacterized(listing)
        if len(exclude) != QM9_NUM_UNCHARACTERIZED:
            raise ValueError(
                f"{listing}: expected {QM9_NUM_UNCHARACTERIZED} uncharacterised ids, parsed {len(exclude)}"
            )
    return read_qm9_archive(archive, exclude_ids=exclude, progress=progress)
