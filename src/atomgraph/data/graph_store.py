"""An on-disk store of graphs for sets larger than memory (config ``data.storage: lmdb``).

Layout of a store directory (its name carries the dataset's cache key and the GraphSpec key)::

    shard-00000.lmdb    graphs of rows [0, shard_size) that built (LMDB, one record per graph)
    shard-00000.npz     per-row summary of that shard: atoms, targets, atomic numbers, shortest edge
    shard-00000.json    written last: the shard is complete (rows, ids, skipped rows, sha256 of both files)
    ...
    manifest.json       written last of all: the store is complete (meta, shards, their checksums)

Shards are built in worker processes, each writing its own LMDB file; a killed build keeps every
shard whose ``.json`` marker exists and rebuilds the rest (a shard file without its marker is
half-written and is deleted). Records hold plain arrays in a small self-describing layout
(:func:`encode_graph`), never pickles: reading a store executes nothing from the files. Checksums are
verified when a store is opened (``verify=True``), naming the shard that does not match.

:class:`GraphStore` reads lazily, one record per sample, with one LMDB handle per process (DataLoader
workers and DDP ranks open their own); the summary arrays give atom counts, targets, elements and the
shortest edge without reading a graph. It offers the same reading interface as the in-memory
:class:`~atomgraph.data.graph_dataset.GraphDataset`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import multiprocessing
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import lmdb
import numpy as np
import torch
from torch_geometric.data import Data, Dataset
from tqdm.auto import tqdm

from atomgraph.data.chunks import chunks
from atomgraph.data.graph_dataset import DatasetMeta
from atomgraph.graphs.arrays import default_dtype_name, init_graph_worker
from atomgraph.targets import TargetSet

log = logging.getLogger(__name__)

STORE_VERSION = 1
MANIFEST = "manifest.json"
_MAGIC = b"AGG1"
_ALIGN = 8
_MAP_SIZE = 1 << 40  # address space reserved by a writer (LMDB files grow as written; sparse)
_COMMIT_EVERY = 1000  # records per write transaction


class StoreRow(NamedTuple):
    """One input row of a store build: its id, its SMILES ("" if none) and what ``build`` turns into
    its graph (picklable: it travels to a worker process)."""

    row_id: str
    smiles: str
    payload: Any


@dataclass
class StoreInput:
    """What a dataset hands to :func:`build_store`: rows in order, a picklable module-level function
    from a row's payload to its graph (with ``y`` [1, T]; raising ``ValueError``, ``RuntimeError`` or
    ``KeyError`` for a bad row, which is skipped and reported), the metadata (targets, settings) and
    the number of rows when known (progress bar)."""

    rows: Iterable[StoreRow]
    build: Callable[[Any], Data]
    meta: DatasetMeta
    total: int | None = None


# ------------------------------------------------------------------------------------------- records


def encode_graph(graph: Data) -> bytes:
    """A graph's tensors as one record: magic, header length, a JSON header of (key, dtype, shape)
    and the raw arrays, each 8-byte aligned. Non-tensor attributes are refused (they would be lost)."""
    header, blobs, offset = [], [], 0
    for key, value in graph.to_dict().items():
        if not torch.is_tensor(value):
            raise ValueError(
                f"graph attribute {key!r} is a {type(value).__name__}, not a tensor: not storable"
            )
        array = np.ascontiguousarray(value.detach().cpu().numpy())
        header.append([key, array.dtype.str, list(array.shape)])
        blob = array.tobytes()
        blobs.append(blob + b"\0" * (-len(blob) % _ALIGN))
        offset += len(blobs[-1])
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text) + 8) % _ALIGN)
    return _MAGIC + struct.pack("<I", len(text)) + text + b"".join(blobs)


def decode_graph(record: bytes) -> dict[str, torch.Tensor]:
    """Inverse of :func:`encode_graph`: the tensors of one record (own memory, writable)."""
    if record[:4] != _MAGIC:
        raise ValueError("not a graph record (bad magic bytes)")
    buffer = bytearray(record)
    (length,) = struct.unpack_from("<I", buffer, 4)
    offset = 8 + length
    tensors = {}
    for key, dtype, shape in json.loads(bytes(buffer[8:offset])):
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        array = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
        tensors[key] = torch.from_numpy(array)
        offset += count * dtype.itemsize + (-(count * dtype.itemsize) % _ALIGN)
    return tensors


def _key(row: int) -> bytes:
    return struct.pack(">Q", row)


# ------------------------------------------------------------------------------------------- build


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _shortest_edge(graph: Data) -> float:
    """The shortest edge (Å) of one graph, ``pos[j] - pos[i] + shift @ cell`` in numpy (cheaper than
    torch on one small graph); NaN without positions or edges."""
    if getattr(graph, "pos", None) is None or graph.edge_index.numel() == 0:
        return float("nan")
    pos, (j, i) = graph.pos.numpy(), graph.edge_index.numpy()
    vectors = pos[j] - pos[i]
    shift = getattr(graph, "edge_shift", None)
    if shift is not None and shift.numel() > 0 and bool(graph.pbc.any()):
        vectors = vectors + shift.numpy().astype(pos.dtype) @ graph.cell.numpy().reshape(3, 3)
    return float(np.sqrt(np.einsum("ij,ij->i", vectors, vectors).min()))


def write_shard(
    directory: str | Path, shard: int, start: int, rows: list[StoreRow], build: Callable[[Any], Data]
) -> int:
    """Build the graphs of ``rows`` (input rows ``start``, ``start + 1``, ...) and write shard ``shard``
    with its summary and, last, its completion marker; returns the number of input rows handled.
    A leftover file of a killed build is replaced."""
    directory = Path(directory)
    name = shard_name(shard)
    lmdb_path, summary_path, marker = (directory / f"{name}{ext}" for ext in (".lmdb", ".npz", ".json"))
    for path in (marker, lmdb_path, Path(f"{lmdb_path}-lock"), summary_path):
        path.unlink(missing_ok=True)
    ids, smiles, skipped = [], [], []
    natoms, targets, numbers, shortest = [], [], [], []
    env = lmdb.open(str(lmdb_path), subdir=False, map_size=_MAP_SIZE, lock=False, meminit=False)
    try:
        txn = env.begin(write=True)
        for offset, row in enumerate(rows):
            try:
                graph = build(row.payload)
            except (ValueError, RuntimeError, KeyError) as error:
                skipped.append({"index": start + offset, "id": row.row_id, "error": str(error)})
                continue
            txn.put(_key(len(ids)), encode_graph(graph))  # a graph it cannot store is a bug, not a bad row
            ids.append(row.row_id)
            smiles.append(row.smiles)
            natoms.append(int(graph.natoms) if "natoms" in graph else int(graph.num_nodes))  # no master node
            targets.append(graph.y.reshape(-1).double().numpy())
            z = graph.z.numpy()
            numbers.append(z[z > 0].astype(np.uint8))
            shortest.append(_shortest_edge(graph))
            if len(ids) % _COMMIT_EVERY == 0:
                txn.commit()
                txn = env.begin(write=True)
        txn.commit()
        env.sync(True)
    finally:
        env.close()
    with open(summary_path, "wb") as handle:
        _write_summary(handle, natoms, targets, numbers, shortest, len(ids))
        handle.flush()
        os.fsync(handle.fileno())  # on disk before the marker that vouches for it
    record = {
        "shard": shard,
        "start": start,
        "input_rows": len(rows),
        "rows": len(ids),
        "ids": ids,
        "smiles": smiles,
        "skipped": skipped,
        "sha256": {lmdb_path.name: file_sha256(lmdb_path), summary_path.name: file_sha256(summary_path)},
    }
    tmp = marker.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, marker)  # the shard is complete only once this file exists
    return len(rows)


def _write_summary(handle, natoms: list, targets: list, numbers: list, shortest: list, rows: int) -> None:
    width = len(targets[0]) if targets else 0
    np.savez(
        handle,
        natoms=np.asarray(natoms, dtype=np.int64),
        y=np.asarray(targets, dtype=np.float64).reshape(rows, width),
        z=np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.uint8),
        z_counts=np.asarray([len(n) for n in numbers], dtype=np.int64),
        shortest=np.asarray(shortest, dtype=np.float64),
    )


def _complete_shard(directory: Path, shard: int, start: int, size: int) -> dict | None:
    """The marker of a finished shard covering exactly ``size`` rows from ``start``, else None."""
    marker = directory / f"{shard_name(shard)}.json"
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if record.get("start") != start or record.get("input_rows") != size:
        return None
    for name, digest in record.get("sha256", {}).items():  # a damaged finished shard is built again
        if not (directory / name).exists() or file_sha256(directory / name) != digest:
            return None
    return record


def build_store(
    source: StoreInput,
    directory: str | Path,
    shard_size: int = 10_000,
    workers: int = 1,
    progress: bool = True,
) -> GraphStore:
    """Build (or finish building) the store of ``source`` in ``directory``; returns it opened.

    Rows are cut into shards of ``shard_size`` input rows; shard k is written by one of ``workers``
    processes (forkserver start; 1: in this process). Shards already complete from a killed build are
    kept (their rows are read from the source but not rebuilt); the manifest is written once every
    shard is complete. At most ``2 * workers`` shards of rows are in flight: memory does not grow with
    the number of rows. A script calling this with ``workers > 1`` must guard its entry point with
    ``if __name__ == "__main__":``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    _close_readers(directory)  # handles opened before this build would read replaced files
    shard_size = max(int(shard_size), 1)
    bar = tqdm(
        total=source.total,
        desc=f"storing {source.meta.name}",
        disable=not progress,
        mininterval=1.0,
        unit="row",
    )
    shards = 0
    with bar:
        if workers <= 1:
            for shard, batch in enumerate(chunks(source.rows, shard_size)):
                start, shards = shard * shard_size, shard + 1
                if _complete_shard(directory, shard, start, len(batch)) is None:
                    write_shard(directory, shard, start, batch, source.build)
                bar.update(len(batch))
        else:
            context = multiprocessing.get_context("forkserver")
            dtype = default_dtype_name()
            with ProcessPoolExecutor(workers, context, init_graph_worker, (dtype,)) as pool:
                pending: set[Future] = set()
                for shard, batch in enumerate(chunks(source.rows, shard_size)):
                    start, shards = shard * shard_size, shard + 1
                    if _complete_shard(directory, shard, start, len(batch)) is not None:
                        bar.update(len(batch))
                        continue
                    while len(pending) >= 2 * workers:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        bar.update(sum(future.result() for future in done))
                    pending.add(pool.submit(write_shard, directory, shard, start, batch, source.build))
                for future in pending:
                    bar.update(future.result())
    _remove_extra_shards(directory, shards)
    _write_manifest(directory, source.meta, shards)
    return GraphStore(directory, verify=False)


def _remove_extra_shards(directory: Path, shards: int) -> None:
    """Delete shard files numbered ``shards`` or more (left by a build of a longer input)."""
    for path in directory.glob("shard-*"):
        number = path.name.split(".")[0].removeprefix("shard-")
        if number.isdigit() and int(number) >= shards:
            path.unlink()


def _write_manifest(directory: Path, meta: DatasetMeta, shards: int) -> None:
    """Gather the shard markers and summaries into ``manifest.json`` and ``index.npz``."""
    records = [json.loads((directory / f"{shard_name(k)}.json").read_text()) for k in range(shards)]
    meta = DatasetMeta.from_dict(meta.to_dict())
    meta.ids = [row_id for r in records for row_id in r["ids"]]
    meta.smiles = [smiles for r in records for smiles in r["smiles"]]
    # rows that failed (index: position in the input), then what the input itself reported
    meta.skipped = [*(bad for r in records for bad in r["skipped"]), *meta.skipped]
    if not meta.ids:
        first = f" (first: {meta.skipped[0]})" if meta.skipped else ""
        raise ValueError(
            f"dataset {meta.name!r} has no graphs: every row failed or the source is empty{first}"
        )
    if meta.skipped:
        log.warning("%s: skipped %d bad rows (first: %s)", meta.name, len(meta.skipped), meta.skipped[0])
    parts: dict[str, list[np.ndarray]] = {}
    for k in range(shards):  # one summary open at a time
        with np.load(directory / f"{shard_name(k)}.npz") as summary:
            for name in ("natoms", "y", "z", "z_counts", "shortest"):
                parts.setdefault(name, []).append(summary[name].reshape(-1, len(meta.targets)) if name == "y"
                                                  else summary[name])  # fmt: skip
    np.savez(
        directory / "index.npz",
        **{name: np.concatenate(arrays) for name, arrays in parts.items()},
        shard_rows=np.asarray([r["rows"] for r in records], dtype=np.int64),
    )
    manifest = {
        "version": STORE_VERSION,
        "rows": len(meta.ids),
        "meta": meta.to_dict(),
        "shards": [
            {"name": shard_name(r["shard"]), "rows": r["rows"], "sha256": r["sha256"]} for r in records
        ],
        "index_sha256": file_sha256(directory / "index.npz"),
    }
    _write_stamps(directory, _expected_files(manifest))  # every file was hashed during this build
    tmp = directory / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, directory / MANIFEST)


# -------------------------------------------------------------------------------------------- read

_ENVIRONMENTS: OrderedDict[tuple[int, str], lmdb.Environment] = OrderedDict()
"""Open read handles by (process id, shard path), least recently used first: LMDB handles must not cross
a fork, and a store of many shards must not use up the process's file descriptors."""

#: read handles a process keeps open (one file descriptor each)
MAX_OPEN_SHARDS = 64


def _close_readers(directory: Path | None = None) -> None:
    """Close this process's read handles (those of shards in ``directory``, or all); run before every
    fork (DataLoader workers), so that a child opens its own and the parent reopens on its next read."""
    for key in [key for key in _ENVIRONMENTS if key[0] == os.getpid()]:
        if directory is None or Path(key[1]).parent == Path(directory):
            _ENVIRONMENTS.pop(key).close()


os.register_at_fork(before=_close_readers)


def _reader(path: Path) -> lmdb.Environment:
    key = (os.getpid(), str(path))
    env = _ENVIRONMENTS.get(key)
    if env is None:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False, meminit=False)
        _ENVIRONMENTS[key] = env
        while len(_ENVIRONMENTS) > MAX_OPEN_SHARDS:
            _, oldest = _ENVIRONMENTS.popitem(last=False)
            oldest.close()
    else:
        _ENVIRONMENTS.move_to_end(key)
    return env


def is_complete_store(directory: str | Path) -> bool:
    """Whether ``directory`` holds a finished store (its manifest exists)."""
    return (Path(directory) / MANIFEST).exists()


def _expected_files(manifest: dict) -> dict[str, str]:
    """File name -> sha256 of every file a finished store holds."""
    expected = {"index.npz": manifest["index_sha256"]}
    for shard in manifest["shards"]:
        expected.update(shard["sha256"])
    return expected


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _write_stamps(directory: Path, names) -> None:
    """Record size and modification time of files whose sha256 was just checked (``verified.json``)."""
    try:
        (directory / "verified.json").write_text(
            json.dumps({name: _stamp(directory / name) for name in names})
        )
    except OSError:  # a read-only store: every open hashes again
        pass


def damaged_files(directory: str | Path, manifest: dict | None = None, full: bool = False) -> list[Path]:
    """The files of a finished store that are missing or whose sha256 differs from the manifest.

    Files whose size and modification time are those recorded when they were last hashed
    (``verified.json``) are not hashed again unless ``full``: opening a large store stays cheap, and a
    file written since (a damaged or replaced shard) is always hashed."""
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    try:
        stamps = {} if full else json.loads((directory / "verified.json").read_text())
    except (OSError, ValueError):
        stamps = {}
    bad, checked = [], []
    for name, digest in _expected_files(manifest).items():
        path = directory / name
        if not path.exists():
            bad.append(path)
        elif stamps.get(name) != _stamp(path):
            (bad if file_sha256(path) != digest else checked).append(path)
    if checked:
        _write_stamps(directory, [n for n in _expected_files(manifest) if directory / n not in bad])
    return bad


def read_manifest(directory: str | Path) -> dict:
    """A finished store's manifest, checked for this version and layout (``ValueError`` otherwise)."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("version") != STORE_VERSION:
            raise ValueError(f"store version {manifest.get('version')}, this atomgraph reads {STORE_VERSION}")
        _expected_files(manifest)
        if not all(isinstance(shard["rows"], int) for shard in manifest["shards"]):
            raise ValueError("a shard's row count is not an integer")
        DatasetMeta.from_dict(manifest["meta"])
    except FileNotFoundError:
        raise ValueError(
            f"{directory}: not a finished graph store (no {MANIFEST}); build it again (finished shards "
            "are kept)"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: unreadable graph-store manifest ({error})") from error
    return manifest


def load_or_build_store(
    directory: str | Path,
    make_input: Callable[[], StoreInput],
    shard_size: int = 10_000,
    workers: int = 1,
    progress: bool = True,
) -> GraphStore:
    """Open the store in ``directory`` (checksums verified), or build it from ``make_input()`` (called
    only when something must be built). A store with damaged files is derived data: the shards holding
    them are logged and rebuilt, the others kept; an unfinished build is finished."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with _build_lock(directory):  # ranks started together (torchrun, srun): one builds, the others wait
        if is_complete_store(directory):
            try:
                bad = damaged_files(directory)
            except ValueError as error:  # another version or layout: derived data, built again
                log.warning("%s; finishing the build again (finished shards are kept)", error)
                (directory / MANIFEST).unlink()
                bad = []
            for path in bad:
                log.warning("%s: corrupt or missing graph-store file; rebuilding what holds it", path)
                (directory / f"{path.name.split('.')[0]}.json").unlink(missing_ok=True)
            if is_complete_store(directory) and not bad:
                return GraphStore(directory, verify=False)
        return build_store(make_input(), directory, shard_size, workers, progress)


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory/.build.lock`` (``flock``: released when the process dies)."""
    try:
        handle = open(directory / ".build.lock", "a")
    except OSError:  # a read-only store (shared, prebuilt): nothing will be built, nothing to lock
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class GraphStore(Dataset):
    """Graphs read lazily from a finished store directory (see the module docstring).

    Indexing with an int gives a ``Data`` (``y`` [1, T] restricted to the selected target columns);
    with a sequence/tensor of indices a view on those rows, as in PyG. ``verify`` recomputes every
    file's sha256 against the manifest (about a second per GB) and raises ``ValueError`` naming the
    file that does not match.
    """

    sample_type: type[Data] = Data

    def __init__(self, directory: str | Path, verify: bool = True):
        super().__init__(None)
        self.directory = Path(directory)
        manifest = read_manifest(self.directory)
        self.meta = DatasetMeta.from_dict(manifest["meta"])
        self._shards = [self.directory / f"{shard['name']}.lmdb" for shard in manifest["shards"]]
        if verify:
            bad = damaged_files(self.directory, manifest)
            if bad:
                raise ValueError(
                    f"{bad[0]}: corrupt or missing graph-store file (sha256 differs from the manifest)"
                )
        index = np.load(self.directory / "index.npz")
        self._natoms = index["natoms"]
        self._y = index["y"]
        self._z = index["z"]
        self._z_offsets = np.concatenate([[0], np.cumsum(index["z_counts"])])
        self._shortest = index["shortest"]
        self._starts = np.concatenate([[0], np.cumsum(index["shard_rows"])])
        self._columns: np.ndarray | None = None  # selected target columns; None = all

    def verify(self) -> None:
        """Hash every file of the store again and compare with the manifest; a ``ValueError`` names the
        first file that is missing or differs."""
        bad = damaged_files(self.directory, full=True)
        if bad:
            raise ValueError(
                f"{bad[0]}: corrupt or missing graph-store file (sha256 differs from the manifest)"
            )

    @property
    def targets(self) -> TargetSet:
        return self.meta.targets

    def select_target_columns(self, columns: list[int]) -> None:
        """Keep only these columns of ``y`` (in this order) in every sample and summary."""
        current = np.arange(self._y.shape[1]) if self._columns is None else self._columns
        self._columns = current[np.asarray(columns, dtype=np.int64)]

    def len(self) -> int:
        return len(self._natoms)

    def get(self, idx: int) -> Data:
        shard = int(np.searchsorted(self._starts, idx, side="right")) - 1
        path = self._shards[shard]
        with _reader(path).begin(buffers=False) as txn:
            record = txn.get(_key(idx - int(self._starts[shard])))
        if record is None:
            raise ValueError(f"{path}: row {idx} missing from the graph store; rebuild the store")
        try:
            graph = self.sample_type(**decode_graph(record))
        except ValueError as error:
            raise ValueError(f"{path}: corrupt record for row {idx} ({error})") from error
        if self._columns is not None:
            graph.y = graph.y[:, torch.from_numpy(self._columns)]
        return graph

    def _rows(self) -> np.ndarray:
        return np.asarray(self.indices(), dtype=np.int64)

    def num_atoms(self) -> np.ndarray:
        """Atoms per graph [M] for the rows of this (possibly indexed) store."""
        return self._natoms[self._rows()]

    def atomic_numbers(self) -> list[np.ndarray]:
        """Atomic numbers of each graph's real atoms (z = 0 left out)."""
        offsets = self._z_offsets
        return [self._z[offsets[i] : offsets[i + 1]].astype(np.int64) for i in self._rows()]

    def targets_array(self) -> np.ndarray:
        """Targets [M, T] (NaN where missing) of the rows of this store."""
        y = self._y[self._rows()]
        dtype = torch.empty(0).numpy().dtype  # as stored in memory: torch's default dtype
        return (y if self._columns is None else y[:, self._columns]).astype(dtype)

    def shortest_distance(self) -> float | None:
        """The shortest edge (Å) over the graphs of these rows (None without positions or edges)."""
        values = self._shortest[self._rows()]
        values = values[np.isfinite(values)]
        return float(values.min()) if len(values) else None
