"""The rows a prediction job reads, and their graphs -- built in worker processes when asked.

:func:`input_rows` streams a SMILES CSV (pandas chunks: memory does not grow with the file) or a
structure file (XYZ, SDF, CIF, ...) as :class:`InputRow` s; :func:`featurised_chunks` turns them, a chunk
at a time, into graphs with a run's :class:`~atomgraph.graphs.spec.GraphSpec`: in this process, or (with
``workers`` > 0) in that many spawned processes, a chunk each, while the caller predicts earlier ones
(:func:`~atomgraph.data.process_pool.in_worker_processes`, which ``predict`` also uses to run whole
chunks in workers). A row that cannot be parsed or graphed carries its error instead of a graph. Graphs
travel back from the workers as numpy arrays, one set per chunk (no shared-memory file descriptors per
tensor, no dozen arrays per graph to pickle).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from torch_geometric.data import Data

from atomgraph.data.chunks import chunks
from atomgraph.data.process_pool import in_worker_processes
from atomgraph.graphs.arrays import arrays_to_graphs, default_dtype_name, graphs_to_arrays, init_graph_worker
from atomgraph.graphs.spec import GraphSpec

#: rows pandas reads from a CSV at a time
CSV_CHUNK = 10_000


@dataclass
class InputRow:
    """One input row: its id (``file:line`` or ``file record k``), SMILES ("" for structures without
    one), what was read (``None``: a CSV row, parsed from the SMILES when featurised; ``ase.Atoms``; or
    the exception reading raised), the CSV's other columns, and once featurised ``graph`` (a Data) or
    ``error`` (a message)."""

    id: str
    smiles: str
    record: object = None
    others: dict = field(default_factory=dict)
    graph: Data | None = None
    error: str = ""


def input_rows(path: Path, smiles_column: str, skip: int = 0) -> Iterator[InputRow]:
    """The rows of a SMILES CSV or a structure file, from row ``skip`` on (rows before it are not
    parsed)."""
    from rdkit import Chem

    from atomgraph.structures import read_records

    if path.suffix.lower() == ".csv":
        column = smiles_column_of(path, smiles_column)
        row = 0
        for table in pd.read_csv(path, chunksize=CSV_CHUNK, dtype={column: str}, keep_default_na=False):
            others = table.drop(columns=[column]).to_dict("records")
            for k, smiles in enumerate(table[column].astype(str)):
                row += 1
                if row > skip:
                    yield InputRow(f"{path.name}:{row + 1}", smiles, None, others[k])
        return
    for k, record in enumerate(read_records(path)):
        if k < skip:
            continue
        smiles = ""
        if not isinstance(record, Exception) and "rdkit_mol" in record.info:
            smiles = Chem.MolToSmiles(Chem.RemoveHs(record.info["rdkit_mol"], sanitize=False))
        yield InputRow(f"{path.name} record {k}", smiles, record)


def smiles_column_of(path: Path, smiles_column: str) -> str:
    """The SMILES column of a CSV: ``smiles_column`` if present, else "smiles"; an error naming both."""
    header = list(pd.read_csv(path, nrows=0).columns)
    column = smiles_column if smiles_column in header else "smiles"
    if column not in header:
        raise ValueError(f"{path}: no SMILES column {smiles_column!r}; it has {header}")
    return column


def count_rows(path: Path) -> int | None:
    """Data rows of a CSV (for the progress bar); None for other files."""
    if path.suffix.lower() != ".csv":
        return None
    with open(path, "rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - 1, 0)


def featurise(rows: list[InputRow], spec: GraphSpec) -> list[InputRow]:
    """``rows`` with their graphs built by ``spec``, or their errors; ``record`` is dropped. The SMILES
    rows go through :meth:`GraphSpec.graphs_from_smiles` together, structures one by one."""
    smiles_rows = [row for row in rows if row.record is None]
    graphs = spec.graphs_from_smiles([row.smiles for row in smiles_rows])
    built = dict(zip(map(id, smiles_rows), graphs, strict=True))
    for row in rows:
        record = row.record
        row.record = None
        if isinstance(record, Exception):
            row.error = one_line(str(record))
            continue
        graph = built[id(row)] if record is None else _built(spec, record)
        if isinstance(graph, Exception):
            row.error = _message(row, graph)
        else:
            row.graph = graph
    return rows


def _built(spec: GraphSpec, record) -> Data | Exception:
    """The graph of one structure, or the error building it raised."""
    from atomgraph.graphs.spec import GRAPH_ERRORS

    try:
        return spec.build(record)
    except GRAPH_ERRORS as error:
        return error


def _message(row: InputRow, error: Exception) -> str:
    """A row's error column: a StructureError's message names its input; others get the row's id."""
    from atomgraph.structures import StructureError

    return one_line(str(error) if isinstance(error, StructureError) else f"{row.id}: {error}")


def _featurise_in_worker(rows: list[InputRow], spec: GraphSpec) -> tuple[list[InputRow], list[int], dict]:
    """:func:`featurise` for a worker process: the rows without their graphs, which rows have one, and
    those graphs as one set of numpy arrays (:func:`graphs_to_arrays`) for the trip back."""
    rows = featurise(rows, spec)
    built = [k for k, row in enumerate(rows) if row.graph is not None]
    graphs = graphs_to_arrays([rows[k].graph for k in built])
    for k in built:
        rows[k].graph = None
    return rows, built, graphs


def _from_worker(rows: list[InputRow], built: list[int], graphs: dict) -> list[InputRow]:
    for k, graph in zip(built, arrays_to_graphs(graphs), strict=True):
        rows[k].graph = graph
    return rows


def featurised_chunks(
    rows: Iterator[InputRow], spec: GraphSpec, chunk_rows: int, workers: int = 0
) -> Iterator[list[InputRow]]:
    """Chunks of ``chunk_rows`` featurised rows (:func:`featurise`), in input order. ``workers`` > 0:
    each chunk built whole in one of that many spawned processes
    (:func:`~atomgraph.data.process_pool.in_worker_processes`)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        for chunk in chunks(rows, chunk_rows):
            yield featurise(chunk, spec)
        return
    jobs = ((_featurise_in_worker, chunk, spec) for chunk in chunks(rows, chunk_rows))
    # graphs wait in this process until it asks for them: one chunk ahead per worker, not two
    built = in_worker_processes(jobs, workers, init_graph_worker, (default_dtype_name(),), workers + 1)
    for graphs in built:
        yield _from_worker(*graphs)


def one_line(text: str) -> str:
    """A message on one CSV line (RDKit and torch errors span several)."""
    return " ".join(text.split())
