"""Run a trained module over graphs and collect predictions in real units."""

from __future__ import annotations

import gc
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ase.data import chemical_symbols
from torch_geometric.data import Data

from atomgraph.data.chunks import chunks
from atomgraph.data.process_pool import in_worker_processes
from atomgraph.evaluation.calibration import uncertainty_values, value_columns
from atomgraph.evaluation.input_rows import (
    CSV_CHUNK,
    count_rows,
    featurise,
    featurised_chunks,
    input_rows,
    one_line,
)
from atomgraph.evaluation.progress_record import ProgressRecord
from atomgraph.graphs.arrays import default_dtype_name, default_workers
from atomgraph.graphs.batching import graph_batches
from atomgraph.structures.validate import beyond_tables


@torch.no_grad()
def predict_graphs(module: torch.nn.Module, graphs, batch_size: int = 128) -> np.ndarray:
    """Predictions [M, T] (real units; probabilities for classification) for a dataset or list of graphs."""
    module.eval()
    device = next(module.parameters()).device
    rows = []
    for batch in graph_batches(graphs, batch_size):
        rows.append(module(batch.to(device)).detach().cpu().double().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0))


def has_sigma(module: torch.nn.Module) -> bool:
    """Whether a module predicts a sigma of its own (an ensemble, or a mean-variance or evidential output)."""
    return getattr(module, "uncertainty", None) is not None


@torch.no_grad()
def predict_distribution(
    module: torch.nn.Module, graphs, batch_size: int = 128, mc_samples: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Means and sigmas [M, T] in real units for a dataset or list of graphs.

    The sigma is the module's own (an ensemble's spread, a mean-variance or evidential output) or, with
    ``mc_samples`` > 0, MC dropout's: the mean and standard deviation of that many stochastic passes
    with the dropout layers switched on (and everything else, batch norm included, in evaluation mode);
    the variance of a model with its own (mean-variance, evidential) is added to the dropout spread.
    """
    from atomgraph.outputs.uncertainty import combine_members

    module.eval()
    dropouts = mc_dropout_layers(module, mc_samples)
    if not mc_samples and not has_sigma(module):
        raise ValueError(
            "this model predicts no sigma: train an ensemble (ensemble.members), a model with "
            "task.uncertainty=mean_variance or evidential, or use MC dropout"
        )
    device = next(module.parameters()).device
    means, sigmas = [], []
    for batch in graph_batches(graphs, batch_size):
        batch = batch.to(device)
        if not mc_samples:
            mean, sigma = module.distribution(batch)
        else:
            for layer in dropouts:
                layer.training = True  # this layer only: not its children (batch norm stays frozen)
            try:
                draws = [module.distribution(batch) if has_sigma(module) else (module(batch), None)
                         for _ in range(mc_samples)]  # fmt: skip
            finally:
                for layer in dropouts:
                    layer.training = False
            own = draws[0][1] is not None
            mean, sigma = combine_members(
                torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws]) if own else None
            )
        means.append(mean.detach().cpu().double().numpy())
        sigmas.append(sigma.detach().cpu().double().numpy())
    if not means:
        width = len(module.info.names)
        return np.zeros((0, width)), np.zeros((0, width))
    return np.concatenate(means), np.concatenate(sigmas)


def mc_dropout_layers(module: torch.nn.Module, mc_samples: int) -> list[torch.nn.Module]:
    """The dropout layers MC dropout with ``mc_samples`` passes switches on (none for 0 passes); an error
    for a negative count or a model without dropout."""
    from atomgraph.outputs.uncertainty import dropout_modules

    if mc_samples < 0:
        raise ValueError(f"mc_samples must be >= 0, got {mc_samples}")
    layers = dropout_modules(module.model) if mc_samples else []
    if mc_samples and not layers:
        raise ValueError("MC dropout needs a model with dropout (model.dropout > 0); this one has none")
    return layers


def predict_potential(
    module: torch.nn.Module, graphs: Sequence[Data], batch_size: int = 32, stress: bool | None = None
) -> dict[str, np.ndarray]:
    """Predicted and reference energies, forces (and stress) of every graph, as float64 arrays.

    Returns ``energy``/``energy_true`` [M] eV, ``natoms`` [M], ``forces``/``forces_true`` [sum N, 3]
    eV/Å (when the graphs have forces) and ``stress``/``stress_true`` [M, 3, 3] eV/Å^3 (periodic
    graphs with stress labels, unless ``stress=False``).
    """
    module.eval()
    device = next(module.parameters()).device
    rows: dict[str, list[np.ndarray]] = {}
    for batch in graph_batches(graphs, batch_size):
        batch = batch.to(device)
        has_forces, has_stress = module.task.wants(batch, evaluate=True)
        want_stress = has_stress if stress is None else stress and has_stress
        out = module.compute(batch, forces=True, stress=want_stress, training=False)
        found = {
            "energy": out["energy"],
            "energy_true": batch.y[:, module.column],
            "natoms": batch.natoms.view(-1),
            "forces": out["forces"],
        }
        if has_forces:
            found["forces_true"] = batch.forces
        if want_stress:
            found["stress"], found["stress_true"] = out["stress"], batch.stress
        for key, value in found.items():
            rows.setdefault(key, []).append(value.detach().cpu().double().numpy())
    return {key: np.concatenate(values) for key, values in rows.items()}


def predict_each(
    module: torch.nn.Module, graphs, batch_size: int = 128, mc_samples: int | None = None
) -> tuple[np.ndarray | list[np.ndarray | None], list[str]]:
    """Predictions [M, T] and an error message per graph ("" when fine): batches first; a batch that
    fails is predicted graph by graph, so one bad structure costs only its own row; a graph with an
    element beyond the module's element tables is refused before any batch. With
    ``mc_samples`` (not None: 0 for the module's own sigma, > 0 for MC dropout) the rows are [M, 2T],
    means then sigmas (:func:`predict_distribution`). Node-level targets: a list with one [n, T] array
    per graph (its atoms in order; None where the model failed)."""

    node_level = module.info.node_level

    def rows_of(chunk, size: int) -> list[np.ndarray]:
        if mc_samples is None:
            values = predict_graphs(module, chunk, size)
        else:
            values = np.concatenate(predict_distribution(module, chunk, size, mc_samples), axis=1)
        if node_level:  # [sum n, T] -> one [n, T] block per graph
            return np.split(values, np.cumsum([graph.num_nodes for graph in chunk])[:-1])
        return list(values)

    rows: list[np.ndarray | None] = []  # one per graph; None where the model failed on it
    errors: list[str] = []
    largest = largest_atomic_number(module)  # refused here, on the CPU graphs (beyond_tables)
    found = ((k, beyond_tables(getattr(g, "z", []), largest)) for k, g in enumerate(graphs))
    refused = {k: reason for k, reason in found if reason}
    if refused:
        kept = [g for k, g in enumerate(graphs) if k not in refused]
        values, kept_errors = predict_each(module, kept, batch_size, mc_samples) if kept else ([], [])
        values, kept_errors = iter(values), iter(kept_errors)
        for k in range(len(graphs)):
            rows.append(None if k in refused else next(values))
            errors.append(refused[k] if k in refused else next(kept_errors))
        graphs = []
    for start in range(0, len(graphs), batch_size):
        chunk = graphs[start : start + batch_size]
        try:
            rows += rows_of(chunk, batch_size)
            errors += [""] * len(chunk)
            continue
        except (IndexError, RuntimeError, ValueError):
            pass
        for graph in chunk:
            try:
                rows.append(rows_of([graph], 1)[0])
                errors.append("")
            except (IndexError, RuntimeError, ValueError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                rows.append(None)
                errors.append(f"the model cannot evaluate this structure ({reason})")
    if node_level:
        return rows, errors
    outputs = len(module.info.names) * (1 if mc_samples is None else 2)  # width when every graph failed
    width = next((len(row) for row in rows if row is not None), outputs)
    values = np.array([np.full(width, np.nan) if row is None else row for row in rows]).reshape(
        len(rows), width
    )
    return values, errors


def largest_atomic_number(module: torch.nn.Module) -> int | None:
    """The largest atomic number a trained module's element tables hold (its normaliser's per-element
    references: ``max_z``, 100 by default); None for a module without them."""
    normalizer = getattr(module, "normalizer", None)
    if normalizer is None and hasattr(module, "members"):  # an ensemble: its members share the graph
        normalizer = getattr(module.members[0], "normalizer", None)
    return getattr(normalizer, "max_z", None)


@dataclass
class PredictSummary:
    """What :func:`predict_file` wrote: the output file and its row counts (``rows`` = every input row,
    ``predicted`` + ``skipped``; ``warned``: predicted rows with elements never seen in training)."""

    output: Path
    rows: int
    predicted: int
    skipped: int
    warned: int


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions CSV as written (empty ``error``/``warning`` cells stay "", not NaN)."""
    table = pd.read_csv(path)
    for name in ("error", "warning"):
        if name in table:
            table[name] = table[name].fillna("").astype(str)
    return table


def predict_file(
    run_dir: str | Path,
    input_path: str | Path,
    output: str | Path,
    refuse_unseen_elements: bool = False,
    chunk_rows: int = 1024,
    resume: bool = False,
    progress: bool = False,
    mc_samples: int = 0,
    latent_distance: bool = False,
    workers: int | None = 0,
    top_k: int | None = None,
    rank_by: str | None = None,
    descending: bool | None = None,
    device: str | torch.device = "cpu",
) -> PredictSummary:
    """Predict every row of a SMILES CSV or structure file (XYZ, SDF, ...) with a trained run (a run
    directory or an exported file), ``chunk_rows`` at a time: each chunk is read, turned into graphs with
    the run's graph spec, predicted and appended to ``output``, so memory does not grow with the input.

    Every input row gets one output row, in input order. A row with an element the model never saw in
    training gets a ``warning`` (its prediction is an extrapolation), or an ``error`` and no prediction
    with ``refuse_unseen_elements``; a row that cannot be read, turned into a graph or evaluated gets an
    ``error`` (also reported on stderr) and the others go on. A CSV's other columns are kept (renamed
    ``<name>_input`` where they would clash with a prediction).

    A model with a sigma (an ensemble, a mean-variance or evidential output, or MC dropout with
    ``mc_samples`` > 0) also gets ``<target>_sigma`` per row -- recalibrated by the factor the run's
    report fitted on the validation split (``calibration.json``) when there is one, with the conformal
    95 % interval ``<target>_low``, ``<target>_high`` -- else raw.

    ``latent_distance``: the sigma of a model without one of its own is its latent distance to the run's
    training graphs (:mod:`atomgraph.evaluation.latent_distance`; a run directory only: the first such
    job measures the training split and fits the recalibration on the validation split, and keeps both
    in the run directory), with conformal bounds, as above.

    ``workers`` > 0 runs the job in that many worker processes, a chunk each
    (:func:`~atomgraph.data.process_pool.in_worker_processes`):
    on the CPU each worker parses, graphs and predicts its chunks with its own copy of the model and one
    torch thread, and this process only reads the input and writes the results, in input order; on
    another ``device`` the workers parse and graph the rows while this process predicts. The output is the
    same either way: MC dropout seeds its draws for each chunk from the chunk's first row, wherever the
    chunk runs. ``workers=None``: :func:`automatic_workers` (the ``predict`` command's default).

    ``top_k``: also write the best ``top_k`` rows, ranked by ``rank_by`` (a target, or any output column
    such as ``<target>_high``; default the first target) in the target's own direction unless
    ``descending`` says, to ``<output>.top<k>.csv`` (:mod:`atomgraph.evaluation.top_k`: bounded memory).

    ``output + ".progress"`` records the rows written after each chunk; with ``resume`` a killed job
    goes on from there (a half-written chunk is cut off first), and the record is removed when the job
    is complete.

    ``device``: where the model runs (``"cuda"``: batches are moved there, results come back).
    """
    from tqdm.auto import tqdm

    from atomgraph.evaluation.calibration import run_calibration
    from atomgraph.runs import TrainedRun

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    input_path, output = Path(input_path), Path(output)
    run = TrainedRun.load(run_dir)
    run.module.to(device)
    names = run.targets.names
    if latent_distance and mc_samples:
        raise ValueError(f"{run_dir}: choose one sigma: MC dropout or the latent distance")
    try:  # checked here: predict_each would report it on every row instead
        mc_dropout_layers(run.module, mc_samples)
    except ValueError as error:
        raise ValueError(f"{run_dir}: {error}") from None
    if run.targets.node_level and (mc_samples or top_k is not None):
        raise ValueError(
            f"{run_dir}: a node-level model ({names}) writes one value per atom: no MC dropout sigma or top-k"
        )
    if latent_distance:  # the cheap checks now; the reference is measured once nothing else can fail
        from atomgraph.evaluation.latent_distance import check_latent_distance

        check_latent_distance(run_dir, run)
    # a sigma per value of graph-level regression targets (node-level ones write the values alone)
    sigma = latent_distance or (
        not run.targets.node_level
        and (mc_samples > 0 or (has_sigma(run.module) and run.targets.kind == "regression"))
    )
    # the report's calibration is for the run's own sigma; MC dropout's is another sigma
    calibration = run_calibration(run) if sigma and not mc_samples and not latent_distance else None
    rank_by = rank_by or names[0]
    rankable = value_columns(names, sigma, calibration is not None or latent_distance)
    if top_k is not None and rank_by not in rankable:
        raise ValueError(f"--rank-by {rank_by!r} is not an output column; choose one of {rankable}")
    if descending is None:
        base = (
            rank_by if rank_by in names else next((n for n in names if rank_by.startswith(f"{n}_")), names[0])
        )
        descending = run.targets.spec(base).ranks_first == "high"
    smiles_column = run.config["data"]["smiles_column"] if run.config else "smiles"
    record = ProgressRecord.beside(output, {"input": str(input_path.resolve())})
    done, counts = 0, {"predicted": 0, "skipped": 0, "warned": 0}
    if resume and record.exists():
        recorded = record.resume(output, extra=("counts",))
        done, counts = recorded["rows"], recorded["counts"]
    elif resume and output.exists():
        print(f"{output} is complete (no {record.path.name}); nothing to resume", file=sys.stderr)
        rows = failed = warned = 0
        for part in pd.read_csv(output, usecols=["error", "warning"], chunksize=CSV_CHUNK, dtype=str):
            rows += len(part)
            failed += int(part["error"].notna().sum())
            warned += int(part["warning"].notna().sum())
        summary = PredictSummary(output, rows, rows - failed, failed, warned)
        _write_top_k(summary, top_k, rank_by, descending)
        return summary
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
    rows = input_rows(input_path, smiles_column, skip=done)
    total = count_rows(input_path)
    if workers is None:
        left = None if total is None else -(-(total - done) // chunk_rows)  # chunks (None: not counted)
        workers = automatic_workers(device, chunks=left)
    bar = tqdm(total=total, initial=done, desc="predict", unit="row", disable=not progress, mininterval=1.0)
    columns: list[str] | None = None
    latent_file = None
    if latent_distance:
        from atomgraph.evaluation.latent_distance import with_latent_distance

        latent_file, calibration = with_latent_distance(run_dir, run)
    uncertainty = (mc_samples, calibration) if sigma else None
    job = {"names": names, "refuse_unseen_elements": refuse_unseen_elements, "uncertainty": uncertainty}
    if workers and torch.device(device).type == "cpu":
        inherited = run if FORK_WORKERS else None  # a forked worker is given the run, a spawned one loads it
        setup = (default_dtype_name(), str(run.source.resolve()), job, latent_file, inherited)
        jobs = ((_predicted_in_worker, chunk) for chunk in chunks(rows, chunk_rows))
        start = "fork" if FORK_WORKERS else "spawn"
        pool = partial(in_worker_processes, workers=workers, initializer=_init_predict_worker, initargs=setup,
                       start=start)  # fmt: skip
        tables = pool(jobs, died=partial(_rows_one_by_one, run, job, pool))
    else:
        featurised = featurised_chunks(rows, run.graph, chunk_rows, workers)
        tables = (_predict_chunk(run, chunk, **job) for chunk in featurised)
    with frozen_heap():
        for table in tables:
            if columns is None:
                columns = list(table.columns)
            bad = table[table["error"] != ""]
            for _, row in bad.iterrows():
                print(f"skipped {row['id']}: {row['error']}", file=sys.stderr)
            done += len(table)
            counts["skipped"] += len(bad)
            counts["predicted"] += len(table) - len(bad)
            counts["warned"] += int((table["warning"] != "").sum())
            record.append(output, table[columns], done, counts=counts)
            bar.update(len(table))
    bar.close()
    if not output.exists():  # an empty input: a header-only file
        atoms = ["atoms"] if run.targets.node_level else []
        pd.DataFrame(columns=["id", "smiles", "error", "warning", *atoms, *names]).to_csv(output, index=False)
    record.remove()
    summary = PredictSummary(output, done, counts["predicted"], counts["skipped"], counts["warned"])
    _write_top_k(summary, top_k, rank_by, descending)
    note = f"; {summary.warned} with elements never seen in training (column warning)" * bool(summary.warned)
    done_text = f"predicted {summary.predicted} of {summary.rows} rows -> {output}; {summary.skipped} skipped"
    print(done_text + note, file=sys.stderr)
    return summary


def _write_top_k(summary: PredictSummary, top_k: int | None, rank_by: str, descending: bool) -> None:
    """``predict --top-k``: the best rows of the finished output beside it."""
    from atomgraph.evaluation.top_k import top_k_path, top_k_rows

    if top_k is None:
        return
    path = top_k_path(summary.output, top_k)
    top_k_rows(summary.output, top_k, rank_by, descending).to_csv(path, index=False)
    order = "largest" if descending else "smallest"
    print(f"top {top_k} rows by {rank_by} ({order} first) -> {path}", file=sys.stderr)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the objects that exist now (the model, the imported libraries: ~10^6 of them) out of
    Python's cycle collector while the block runs (``gc.freeze``). A streaming job makes and drops many
    objects per row; each full collection would otherwise walk all of these, which cost predict ~10 %
    of its time. Objects made inside the block are collected as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def seeded_by(text: str, device: torch.device) -> Iterator[None]:
    """torch's random numbers (the CPU's, and ``device``'s when it is a GPU) seeded by ``text`` (its
    CRC-32) inside the block, and as they were after it: MC dropout's draws for a chunk, the same in
    whichever process the chunk runs."""
    gpus = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(zlib.crc32(text.encode()))
        yield


#: predict's worker processes are forked (start in milliseconds with this process's run) where that is
#: safe, on Linux, and spawned elsewhere (each imports the libraries and loads the run again)
FORK_WORKERS = sys.platform.startswith("linux")


def automatic_workers(device: str | torch.device = "cpu", chunks: int | None = None) -> int:
    """How many worker processes ``predict`` runs when not told: one per core this process may use
    (:func:`~atomgraph.graphs.arrays.default_workers`: its affinity and its container's CPU quota), at
    most one per chunk left to do, on the CPU where they are forked (they start in milliseconds, sharing
    the loaded run's pages); none where that leaves fewer than two, on another device, or where they
    would be spawned (each would import the libraries and load the run again: seconds)."""
    count = min(default_workers(), chunks) if chunks is not None else default_workers()
    return count if FORK_WORKERS and count > 1 and torch.device(device).type == "cpu" else 0


#: a predict worker process's trained run and job (:func:`_init_predict_worker`)
_WORKER: dict = {}


def _init_predict_worker(dtype: str, source: str, job: dict, latent_file: Path | None, run=None) -> None:
    """Set up a worker process of :func:`predict_file`: one torch thread, the parent's default dtype,
    the trained run and the job's options (:func:`_predict_chunk`'s). A forked worker is given the
    parent's ``run`` (its memory, not a pickle); a spawned one loads it from the file the parent loaded,
    ``source``, with the latent reference the parent made when its sigma is the latent distance."""
    from atomgraph.evaluation.latent_distance import LatentDistanceModule, LatentReference
    from atomgraph.graphs.arrays import init_graph_worker
    from atomgraph.runs import TrainedRun

    init_graph_worker(dtype)
    if run is None:
        run = TrainedRun.load(source)
        if latent_file is not None:
            run.module = LatentDistanceModule(run.module, LatentReference.load(latent_file)[0])
    _WORKER.update(run=run, job=job)
    gc.freeze()  # this process lives for the job: see frozen_heap


#: the error of a row whose worker process died on it, alone (see in_worker_processes)
WORKER_DIED = (
    "its worker process died on this row alone (killed by the system, e.g. for memory, or a crash in "
    "native code); the other rows are predicted"
)


def _rows_one_by_one(run, job: dict, pool: Callable, died: tuple) -> pd.DataFrame:
    """The output rows of a chunk whose worker process died on it twice (``died``: the job): each row
    run again in a process of its own, so that only a row that kills its process is lost -- that row
    gets :data:`WORKER_DIED` as its error. (With MC dropout, the rows of such a chunk get the draws of
    a chunk of one: their sigmas differ from an uninterrupted run's, as another ``chunk_rows`` would
    make them.)"""
    function, chunk = died
    if len(chunk) == 1:
        (row,) = chunk
        return _predict_chunk(run, [replace(row, record=None, error=f"{row.id}: {WORKER_DIED}")], **job)
    rows = ((function, [row]) for row in chunk)
    return pd.concat(list(pool(rows, died=partial(_rows_one_by_one, run, job, pool))), ignore_index=True)


def _predicted_in_worker(chunk: list) -> pd.DataFrame:
    """The output rows of one chunk of input rows, graphed and predicted in a worker process."""
    run = _WORKER["run"]
    return _predict_chunk(run, featurise(chunk, run.graph), **_WORKER["job"])


def _predict_chunk(
    run, chunk: list, names: list[str], refuse_unseen_elements: bool, uncertainty: tuple | None = None
) -> pd.DataFrame:
    """The output rows of one chunk of input rows (see :func:`predict_file`); ``uncertainty``:
    (MC dropout samples, the run's Calibration or None) when sigma columns are written."""
    columns = value_columns(
        names, uncertainty is not None, uncertainty is not None and uncertainty[1] is not None
    )
    records, graphs, slots = [], [], []
    taken = {"id", "smiles", "error", "warning", *columns}
    for row in chunk:
        record = {"id": row.id, "smiles": row.smiles, "error": row.error, "warning": ""}
        # the input's other columns travel with the row (a column named like a target gets "_input")
        record.update({f"{k}_input" if k in taken else k: v for k, v in row.others.items()})
        graph = row.graph
        if graph is not None:
            # the elements the model reads: a heavy-atom graph has no hydrogens to be "unseen"
            unseen = run.unseen_elements(graph.z)
            message = f"elements never seen in training: {', '.join(unseen)}"
            if unseen and refuse_unseen_elements:
                record["error"] = f"{row.id}: {message}"
            else:
                record["warning"] = f"{message}; the prediction is an extrapolation" if unseen else ""
                graph.y = torch.full((1, len(names)), float("nan"))
                graphs.append(graph)
                slots.append(len(records))
        records.append(record)
    table = pd.DataFrame(records)
    errors: list[str] = []
    if run.targets.node_level:
        table["atoms"] = ""  # the element of each value, in the same order
    for name in columns:
        table[name] = "" if run.targets.node_level else np.nan
    if graphs and run.targets.node_level:
        values, errors = predict_each(run.module, graphs)
        table.loc[slots, "atoms"] = [" ".join(chemical_symbols[int(z)] for z in g.z) for g in graphs]
        for t, name in enumerate(names):
            table.loc[slots, name] = [_atom_values(row, t) for row in values]
    elif graphs:
        mc_samples = None if uncertainty is None else uncertainty[0]
        device = next(run.module.parameters()).device
        with seeded_by(chunk[0].id, device) if mc_samples else nullcontext():  # draws of this chunk alone
            values, errors = predict_each(run.module, graphs, mc_samples=mc_samples)
        if uncertainty is not None and len(values):
            values = uncertainty_values(values[:, : len(names)], values[:, len(names) :], uncertainty[1])
        for t, name in enumerate(columns):
            table.loc[slots, name] = values[:, t]
    for slot, error in zip(slots, errors, strict=True):
        if error:
            table.loc[slot, "error"] = one_line(f"{table.loc[slot, 'id']}: {error}")
    return table


def _atom_values(row: np.ndarray | None, column: int) -> str:
    """A node-level prediction of one structure as written: its atoms' values, space-separated, in
    the order of the structure's atoms ("" where the model failed)."""
    return "" if row is None else " ".join(f"{value:.9g}" for value in row[:, column])
