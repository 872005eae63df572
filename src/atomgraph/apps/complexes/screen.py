"""Virtual screening: score every ligand pose of a file against one protein and rank them.

:func:`screen` takes a trained run directory (or a model), a protein PDB and a multi-record ligand file
(SDF, MOL2, PDBQT) and streams the file: ``chunk_rows`` records at a time are read
(:func:`~atomgraph.apps.complexes.ligand.iter_ligands`), turned into complex graphs (or, for sequence
models, bonded graphs with the protein's sequence), predicted in batches under a progress bar and
appended, in input order, to ``<output>.unranked.csv`` with a progress record, so memory does not grow
with the library and a killed job resumes where it stopped (``resume``). Once every record is scored the
rows are ranked by predicted affinity (highest first) in bounded memory
(:func:`atomgraph.evaluation.rank_file.rank_csv`, an external merge sort) into the output. A ligand that
cannot be read, sanitised, placed in the pocket or graphed keeps its row with the reason in ``error``
and no prediction; those rows come last, in input order.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rdkit import Chem
from torch import nn
from torch_geometric.data import Batch, Data
from tqdm.auto import tqdm

from atomgraph.apps.complexes.complex import make_complex
from atomgraph.apps.complexes.graph import ComplexGraphSettings, check_features_version, complex_graph
from atomgraph.apps.complexes.ligand import LigandRecord, iter_ligands
from atomgraph.apps.complexes.protein import Protein, read_protein
from atomgraph.apps.complexes.sequence import protein_sequence, sequence_graph
from atomgraph.data.chunks import chunks
from atomgraph.evaluation.acquisition import acquisition_scores
from atomgraph.evaluation.calibration import Calibration, run_calibration, uncertainty_values, value_columns
from atomgraph.evaluation.latent_distance import with_latent_distance
from atomgraph.evaluation.predict import has_sigma
from atomgraph.evaluation.progress_record import ProgressRecord
from atomgraph.evaluation.rank_file import rank_csv

log = logging.getLogger(__name__)

#: rows read back at a time from a finished output (counting its rows on a resume)
_READ_CHUNK = 50_000


@dataclass
class ScoringModel:
    """A model ready to score: the module (``model(batch) -> [B, T]``), the graph kind it reads
    ("complex" or "sequence"), its graph settings and target names."""

    module: nn.Module
    graph_kind: str
    settings: ComplexGraphSettings
    names: list[str]
    max_length: int = 1000
    calibration: Calibration | None = None


@dataclass
class ScreenSummary:
    """What :func:`screen` wrote: the ranked CSV, its ``rows`` (one per ligand record), the ``scored``
    (ranked) ones and the ``failed`` ones (kept after the ranked rows with their error)."""

    output: Path
    rows: int
    scored: int
    failed: int

    def table(self) -> pd.DataFrame:
        """The ranked table, read into memory (:func:`read_screen`): for screens that fit in it."""
        return read_screen(self.output)


def read_screen(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A screen's CSV as written: ``rank`` an integer (missing for failures), ``record`` an integer, the
    predictions floats (NaN for failures), ``name``, ``smiles`` and ``error`` strings ("" when empty)."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table["rank"] = pd.to_numeric(table["rank"], errors="coerce").astype("Int64")
    table["record"] = table["record"].astype(int)
    for name in table.columns.difference(["rank", "record", "name", "smiles", "error"]):
        table[name] = pd.to_numeric(table[name], errors="coerce")
    return table


def scoring_model(
    model: str | os.PathLike[str] | nn.Module,
    settings: ComplexGraphSettings | None = None,
    names: list[str] | None = None,
    latent_distance: bool = False,
) -> ScoringModel:
    """A run directory (its best, else last, checkpoint and its ``data.complex`` settings) or a module;
    with ``latent_distance`` (a run directory only) its sigma is the latent distance to the run's training
    complexes (:mod:`atomgraph.evaluation.latent_distance`)."""
    if isinstance(model, nn.Module) and latent_distance:
        raise ValueError("the latent distance needs a run directory (its training split), not a module")
    if isinstance(model, nn.Module):
        inner = getattr(model, "model", model)
        kind = inner.card.graph_kind
        info = getattr(model, "info", None)
        return ScoringModel(
            model, kind, settings or ComplexGraphSettings(), names or (info.names if info else ["affinity"])
        )
    from atomgraph.apps.complexes.config import complex_config
    from atomgraph.runs import TrainedRun

    run = TrainedRun.load(model)
    calibration = run_calibration(run)
    if latent_distance:
        calibration = with_latent_distance(model, run)[1]
    options = complex_config(run.config or {})
    kind = run.graph.kind
    if kind == "complex":
        check_features_version(run.graph)
    return ScoringModel(
        run.module, kind, settings or options.settings, list(run.module.info.names), options.max_length,
        calibration,
    )  # fmt: skip


def screen(
    model: str | os.PathLike[str] | nn.Module,
    protein_pdb: str | os.PathLike[str],
    ligands: str | os.PathLike[str],
    output_csv: str | os.PathLike[str],
    settings: ComplexGraphSettings | None = None,
    batch_size: int = 16,
    progress: bool = True,
    ligand_format: str | None = None,
    acquisition: str = "mean",
    kappa: float = 1.0,
    chunk_rows: int = 1024,
    resume: bool = False,
    device: str | torch.device = "cpu",
    latent_distance: bool = False,
) -> ScreenSummary:
    """Rank the ligands of a file by predicted affinity for ``protein_pdb``, streaming the file.

    Args:
        model: a run directory or a module mapping batches to [B, T] (a loaded run's
            ``PredictionModule`` gives real units, e.g. pK).
        protein_pdb: the protein (PDB/mmCIF), in the ligands' frame.
        ligands: SDF, MOL2 or PDBQT with one record per pose.
        output_csv: the ranked CSV to write: one row per ligand record, ``rank`` (1 = highest predicted
            first target, or highest acquisition; empty for failures), ``record``, ``name``, ``smiles``,
            one column per target (and ``<target>_sigma`` for an ensemble, mean-variance or evidential model,
            recalibrated where the run's report fitted that, then the conformal interval bounds
            ``<target>_low`` and ``<target>_high`` as ``predict`` writes them; ``acquisition`` for
            "ucb"), ``error``; the ranked rows first, then the failures in input order.
        settings: graph settings (default: the run's).
        batch_size: graphs per prediction batch (the graphs held in memory at once).
        acquisition, kappa: rank by the prediction ("mean") or by its upper confidence bound "ucb"
            (mean + kappa sigma; :mod:`atomgraph.evaluation.acquisition`).
        chunk_rows: records read, scored and appended to ``<output>.unranked.csv`` at a time.
        resume: go on from ``<output>.progress`` after a kill (a half-written chunk is cut off; the
            records already scored are read past, not parsed again); on a finished output, nothing is
            redone.
        device: where the model runs ("cpu", "cuda").
        latent_distance: a run without a sigma of its own gets its latent distance to the run's training
            complexes as sigma, with bounds (as ``predict --latent-distance``); ``ucb`` can then rank by it.

    Returns:
        The output path and its row counts; :meth:`ScreenSummary.table` reads the table back.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    scorer = scoring_model(model, settings, latent_distance=latent_distance)
    scorer.module.to(device)
    sigma_wanted = has_sigma(scorer.module)
    acquisition_scores(np.zeros(1), np.zeros(1) if sigma_wanted else None, True, acquisition, kappa)
    names = value_columns(scorer.names, sigma_wanted, sigma_wanted and scorer.calibration is not None)
    names += ["acquisition"] * (acquisition != "mean")
    columns = ["record", "name", "smiles", *names, "error"]
    output = Path(output_csv)
    unranked = output.with_name(output.name + ".unranked.csv")
    job = {
        "ligands": str(Path(ligands).resolve()),
        "protein": str(Path(protein_pdb).resolve()),
        "columns": columns,
    }
    record = ProgressRecord.beside(output, job)
    done = 0
    if resume and record.exists():
        done = int(record.resume(unranked)["rows"])
    elif resume and output.exists():
        summary = _summary_of(output)
        log.info("%s is complete (no %s); nothing to resume", output, record.path.name)
        return summary
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        unranked.unlink(missing_ok=True)
        record.remove()  # a stale record would point into the rows just removed
    protein = read_protein(protein_pdb, waters=scorer.settings.waters)
    sequence = protein_sequence(protein) if scorer.graph_kind == "sequence" else ""
    records = iter_ligands(ligands, ligand_format, skip=done)
    bar = tqdm(desc="screening", unit="ligand", initial=done, disable=not progress)
    for chunk in chunks(records, chunk_rows):
        table = _scored_rows(
            scorer, protein, sequence, chunk, str(ligands), batch_size, sigma_wanted, acquisition, kappa
        )
        for error in table.loc[table["error"] != "", "error"]:
            log.warning("skipped %s", error)
        done += len(table)
        record.append(unranked, table[columns], done)
        bar.update(len(table))
    bar.close()
    rank_by = "acquisition" if acquisition != "mean" else scorer.names[0]
    scored, failed = rank_csv(unranked, output, rank_by, descending=True, exclude="error")
    unranked.unlink()
    record.remove()
    log.info("scored %d of %d ligands -> %s; %d failed", scored, scored + failed, output, failed)
    return ScreenSummary(output, scored + failed, scored, failed)


def _summary_of(output: Path) -> ScreenSummary:
    """The counts of a finished screen's CSV, from its ``rank`` column read a chunk at a time."""
    rows = scored = 0
    for part in pd.read_csv(
        output, usecols=["rank"], chunksize=_READ_CHUNK, dtype=str, keep_default_na=False
    ):
        rows += len(part)
        scored += int((part["rank"] != "").sum())
    return ScreenSummary(output, rows, scored, rows - scored)


def _scored_rows(
    scorer: ScoringModel,
    protein: Protein,
    sequence: str,
    records: list[LigandRecord],
    source: str,
    batch_size: int,
    sigma_wanted: bool,
    acquisition: str,
    kappa: float,
) -> pd.DataFrame:
    """One row per record, in order: ``record``, ``name``, ``smiles``, the predictions (with sigma, the
    conformal bounds where the run has a calibration, and acquisition), ``error``. Graphs are built and
    predicted ``batch_size`` at a time."""
    rows: list[dict] = []
    pending: list[tuple[int, Data]] = []
    slots: list[int] = []
    values: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            values.append(_predict(scorer.module, [g for _, g in pending], sigma_wanted))
            slots.extend(slot for slot, _ in pending)
            pending.clear()

    for record in records:
        row = {"record": record.index, "name": record.name, "smiles": "", "error": ""}
        if record.error is not None:
            row["error"] = str(record.error)
        else:
            row["smiles"] = Chem.MolToSmiles(Chem.RemoveHs(record.mol, sanitize=False))
            try:
                if scorer.graph_kind == "sequence":
                    graph = sequence_graph(row["smiles"], sequence, max_length=scorer.max_length)
                else:
                    complex_ = make_complex(
                        protein, record.mol, scorer.settings.pocket_radius, record.name or None
                    )
                    graph = complex_graph(complex_, scorer.settings)
                pending.append((len(rows), graph))
            except (ValueError, RuntimeError, KeyError) as error:
                row["error"] = f"{source} record {record.index} ({record.name}): {error}"
        rows.append(row)
        if len(pending) >= batch_size:
            flush()
    flush()
    table = pd.DataFrame(rows, columns=["record", "name", "smiles", "error"])
    targets = len(scorer.names)
    width = targets * (2 if sigma_wanted else 1)
    predicted = np.concatenate(values) if values else np.zeros((0, width))
    calibration = scorer.calibration if sigma_wanted else None
    if sigma_wanted:
        predicted = uncertainty_values(predicted[:, :targets], predicted[:, targets:], calibration)
    columns = value_columns(scorer.names, sigma_wanted, calibration is not None)
    for t, name in enumerate(columns):
        table[name] = np.nan
        table.loc[slots, name] = predicted[:, t]
    if acquisition != "mean":
        table["acquisition"] = np.nan
        sigma = predicted[:, targets] if sigma_wanted else None
        table.loc[slots, "acquisition"] = acquisition_scores(predicted[:, 0], sigma, True, acquisition, kappa)
    return table


@torch.no_grad()
def _predict(module: nn.Module, graphs: list[Data], sigma: bool = False) -> np.ndarray:
    """Predictions [B, T] (with ``sigma``: [B, 2T], means then sigmas)."""
    module.eval()
    device = next(module.parameters()).device
    batch = Batch.from_data_list(graphs).to(device)
    out = torch.cat(module.distribution(batch), dim=1) if sigma else module(batch)
    return out.detach().cpu().double().numpy()
