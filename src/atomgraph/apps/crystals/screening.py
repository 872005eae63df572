"""Screen a folder (or archive) of crystal structures with a trained run: a ranked CSV of predictions.

The structures are streamed: read a chunk at a time from the folder or archive, parsed and turned into
graphs in parallel (as for the crystal datasets), predicted, and appended to ``<output>.unranked.csv``
with a progress record, so memory does not grow with the library and a killed job resumes where it
stopped (``resume``). Once every structure is predicted the rows are ranked in bounded memory
(:func:`atomgraph.evaluation.rank_file.rank_csv`) into the output. A file that cannot be read, holds no
sensible structure or fails graph building keeps its row, after the ranked ones, with its error.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ase import Atoms
from tqdm.auto import tqdm

from atomgraph.apps.crystals.cif_archive import iter_structure_texts
from atomgraph.apps.crystals.parallel_graphs import arrays_to_graph, graphs_from_texts
from atomgraph.apps.crystals.stability import ConvexHulls
from atomgraph.data.chunks import chunks
from atomgraph.evaluation.acquisition import acquisition_scores
from atomgraph.evaluation.calibration import run_calibration, uncertainty_values, value_columns
from atomgraph.evaluation.predict import has_sigma, predict_each
from atomgraph.evaluation.progress_record import ProgressRecord
from atomgraph.evaluation.rank_file import rank_csv


@dataclass
class ScreenSummary:
    """What :func:`screen_structures` wrote: the ranked CSV, its ranked rows and the files left out."""

    output: Path
    ranked: int
    skipped: int
    excluded: int = 0


def screen_structures(
    run_dir: str | Path,
    folder: str | Path,
    output: str | Path,
    target: str | None = None,
    descending: bool | None = None,
    workers: int | None = None,
    batch_size: int = 128,
    progress: bool = True,
    acquisition: str = "mean",
    kappa: float = 1.0,
    chunk_rows: int = 4096,
    resume: bool = False,
    window: tuple[str, float, float] | None = None,
    max_e_hull: float | None = None,
    device: str | torch.device = "cpu",
    latent_distance: bool = False,
) -> ScreenSummary:
    """Predict every CIF/POSCAR in ``folder`` and write them ranked by ``target`` to ``output``.

    Args:
        run_dir: a finished run or an exported model (its graph spec and best checkpoint are used).
        folder: a folder of structure files or a tar archive of them.
        output: the CSV to write: ``rank, id, formula, natoms``, one column per predicted target (in the
            run's units), ``warning`` (elements never seen in training) and ``error``; files that could
            not be read or evaluated follow the ranked rows with their error and no rank.
        target: the target to rank by (default: the run's first).
        descending: rank the largest values first; default: the target's ``ranks_first`` (band gaps,
            moduli: high; energies: low).
        workers: processes for parsing (None: every core).
        acquisition, kappa: rank by the prediction ("mean") or by the optimistic bound "ucb" (mean +-
            kappa sigma, :mod:`atomgraph.evaluation.acquisition`; column ``acquisition``). A run with a sigma
            (an ensemble, a mean-variance or evidential model) adds ``<target>_sigma`` columns,
            recalibrated on its validation split when its report fitted that, and then the conformal
            interval bounds ``<target>_low`` and ``<target>_high``, as ``predict`` writes them.
        chunk_rows: structures read, graphed and predicted at a time.
        resume: go on from ``<output>.progress`` after a kill (the structures already predicted are read
            past, not parsed again).
        window: ``(target, low, high)``: only predictions inside [low, high] rank (e.g. band gaps of
            1.0-1.5 eV); the others are kept, unranked, with the reason in ``excluded``.
        max_e_hull: only candidates at most this far (eV/atom) above the convex hull rank: column
            ``e_above_hull`` from the predicted formation energy against the hull of the run's own
            dataset (its DFT labels; :mod:`atomgraph.apps.crystals.stability`).
        device: where the model runs ("cpu", "cuda").
        latent_distance: a model without a sigma of its own gets its latent distance to the run's
            training structures as sigma (:mod:`atomgraph.evaluation.latent_distance`), with bounds, as
            ``predict --latent-distance``; it can then rank by ``ucb`` too.
    """
    from atomgraph.evaluation.latent_distance import check_latent_distance, with_latent_distance
    from atomgraph.runs import TrainedRun

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    run = TrainedRun.load(run_dir)
    run.module.to(device)
    names = list(run.targets.names)
    if run.targets.node_level:
        raise ValueError(
            f"{run_dir}: screen-crystals ranks one value per structure; this run predicts one per atom "
            f"({names}): use predict"
        )
    target = target or names[0]
    if target not in names:
        raise ValueError(f"the run predicts {names}, not {target!r}")
    if descending is None:
        descending = run.targets.spec(target).ranks_first == "high"
    if latent_distance:
        check_latent_distance(run_dir, run)
    sigma_wanted = latent_distance or (has_sigma(run.module) and run.targets.kind == "regression")
    acquisition_scores(np.zeros(1), np.zeros(1) if sigma_wanted else None, descending, acquisition, kappa)
    calibration = run_calibration(run) if sigma_wanted and not latent_distance else None
    if window is not None and window[0] not in names:
        raise ValueError(f"--window: the run predicts {names}, not {window[0]!r}")
    hulls = reference_hulls(run) if max_e_hull is not None else None
    output = Path(output)
    unranked = output.with_name(output.name + ".unranked.csv")
    record = ProgressRecord.beside(output, {"input": str(Path(folder).resolve())})
    done = 0
    if resume and record.exists():
        done = record.resume(unranked)["rows"]
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        unranked.unlink(missing_ok=True)
    if latent_distance:  # measured now that the cheap checks have passed
        calibration = with_latent_distance(run_dir, run)[1]
    texts = itertools.islice(iter_structure_texts(folder), done, None)
    bar = tqdm(initial=done, desc=f"screen {Path(folder).name}", unit="structure", disable=not progress,
               mininterval=1.0)  # fmt: skip
    columns: list[str] | None = None
    for chunk in chunks(texts, chunk_rows):
        items = [(k, key, fmt, text) for k, (key, fmt, text) in enumerate(chunk)]
        built = graphs_from_texts(items, run.graph, workers, len(items), progress=False)
        table = _predicted_rows(run, chunk, built, names, batch_size, sigma_wanted, calibration)
        if acquisition != "mean":
            column = f"{target}_sigma" if sigma_wanted else None
            table["acquisition"] = acquisition_scores(
                table[target].to_numpy(), None if column is None else table[column].to_numpy(),
                descending, acquisition, kappa
            )  # fmt: skip
        if hulls is not None:
            table["e_above_hull"] = hulls.above(table["formula"].tolist(), table[FORMATION].to_numpy())
        table["excluded"] = exclusions(table, window, max_e_hull)
        columns = columns or list(table.columns)
        done += len(table)
        record.append(unranked, table[columns], done)
        bar.update(len(table))
    bar.close()
    if not unranked.exists():
        raise ValueError(f"{folder}: no CIF or POSCAR files to screen")
    rank_by = "acquisition" if acquisition != "mean" else target
    ranked, others = rank_csv(unranked, output, rank_by, descending, exclude="excluded")
    skipped = 0
    for part in pd.read_csv(output, chunksize=50_000, dtype=str, keep_default_na=False):
        skipped += int((part["error"] != "").sum())
        for _, row in part[part["error"] != ""].iterrows():
            print(f"skipped {row['id']}: {row['error']}", file=sys.stderr)
    excluded = others - skipped
    unranked.unlink()
    record.remove()
    order = "largest" if descending else "smallest"
    print(
        f"ranked {ranked} structures by {target}{f' ({acquisition})' * (acquisition != 'mean')} "
        f"({order} first) -> {output}; {skipped} could not be read or evaluated, {excluded} excluded by the "
        "window or the stability cut (both listed after the ranked rows)",
        file=sys.stderr,
    )
    return ScreenSummary(output, ranked, skipped, excluded)


FORMATION = "formation_energy_per_atom"
"""The target whose predictions place a candidate against the convex hull."""


def reference_hulls(run) -> ConvexHulls:
    """The hulls of the run's own dataset (every row with a formation-energy label: the known phases)."""
    from atomgraph.training.datasets import load_dataset

    if FORMATION not in run.targets.names:
        raise ValueError(
            f"--max-e-hull needs a run that predicts {FORMATION}; this one predicts {run.targets.names}"
        )
    if not run.config:
        raise ValueError(
            "--max-e-hull needs the run's dataset (its config): give the run directory, not an export"
        )
    dataset = load_dataset(run.config, progress=False)
    column = dataset.targets.names.index(FORMATION)
    formulas = [Atoms(numbers=numbers).get_chemical_formula() for numbers in dataset.atomic_numbers()]
    return ConvexHulls(formulas, dataset.targets_array()[:, column])


def exclusions(
    table: pd.DataFrame, window: tuple[str, float, float] | None, max_e_hull: float | None
) -> list[str]:
    """Why each predicted row does not rank ("" when it does): outside the window, above the hull cut."""
    reasons = []
    for _, row in table.iterrows():
        why = []
        if (
            window is not None
            and np.isfinite(row[window[0]])
            and not window[1] <= row[window[0]] <= window[2]
        ):
            why.append(f"{window[0]} {row[window[0]]:.4g} outside [{window[1]:g}, {window[2]:g}]")
        if max_e_hull is not None and np.isfinite(row["e_above_hull"]) and row["e_above_hull"] > max_e_hull:
            why.append(f"e_above_hull {row['e_above_hull']:.3f} > {max_e_hull:g} eV/atom")
        reasons.append("; ".join(why))
    return reasons


def _predicted_rows(
    run, chunk: list, built: dict, names: list[str], batch_size: int, sigma_wanted: bool, calibration
) -> pd.DataFrame:
    """One output row per structure text of ``chunk`` (in order): id, formula, natoms, the predictions
    (with sigma, and the conformal bounds where the run has a calibration), warning and error."""
    graphs = {k: arrays_to_graph(result) for k, result in built.items() if not isinstance(result, str)}
    order = sorted(graphs)
    rows = [{"id": key, "formula": "", "error": ""} for key, _, _ in chunk]
    for k, result in built.items():
        if isinstance(result, str):
            rows[k]["error"] = result
    table = pd.DataFrame(rows)
    table["natoms"] = pd.array([pd.NA] * len(table), dtype="Int64")
    value_names = value_columns(names, sigma_wanted, calibration is not None)
    for name in value_names:
        table[name] = np.nan
    table["warning"] = ""
    if order:
        values, errors = predict_each(
            run.module, [graphs[k] for k in order], batch_size, mc_samples=0 if sigma_wanted else None
        )
        values = np.asarray(values).reshape(len(order), -1)
        if sigma_wanted:
            values = uncertainty_values(values[:, : len(names)], values[:, len(names) :], calibration)
        for slot, k in enumerate(order):
            z = graphs[k].z
            table.loc[k, "formula"] = Atoms(numbers=z.numpy()).get_chemical_formula()
            table.loc[k, "natoms"] = int(z.numel())
            if errors[slot]:
                table.loc[k, "error"] = errors[slot]
                continue
            table.loc[k, value_names] = values[slot]
            unseen = run.unseen_elements(z.tolist())
            table.loc[k, "warning"] = (
                f"elements never seen in training: {', '.join(unseen)}" if unseen else ""
            )
    return table[["id", "formula", "natoms", *value_names, "warning", "error"]]
