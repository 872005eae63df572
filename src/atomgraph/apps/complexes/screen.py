"""Virtual screening: score every ligand pose of a file against one protein and rank them.

:func:`screen` takes a trained run directory (or a model), a protein PDB and a multi-record ligand file
(SDF, MOL2, PDBQT), builds each ligand's complex graph (or, for sequence models, its bonded graph with the
protein's sequence), predicts in batches under a progress bar and writes a CSV ranked by predicted
affinity (highest first). A ligand that cannot be read, sanitised, placed in the pocket or graphed keeps
its row with the reason in ``error`` and no prediction; those rows come last.
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
from atomgraph.apps.complexes.graph import ComplexGraphSettings, complex_graph
from atomgraph.apps.complexes.ligand import read_ligands
from atomgraph.apps.complexes.protein import read_protein
from atomgraph.apps.complexes.sequence import protein_sequence, sequence_graph
from atomgraph.evaluation.acquisition import acquisition_scores
from atomgraph.evaluation.calibration import Calibration, run_calibration
from atomgraph.evaluation.predict import has_sigma

log = logging.getLogger(__name__)


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


def scoring_model(
    model: str | os.PathLike[str] | nn.Module,
    settings: ComplexGraphSettings | None = None,
    names: list[str] | None = None,
) -> ScoringModel:
    """A run directory (its best, else last, checkpoint and its ``data.complex`` settings) or a module."""
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
    module = run.module
    options = complex_config(run.config or {})
    kind = run.graph.kind
    return ScoringModel(
        module, kind, settings or options.settings, list(module.info.names), options.max_length,
        run_calibration(run),
    )  # fmt: skip


def screen(
    model: str | os.PathLike[str] | nn.Module,
    protein_pdb: str | os.PathLike[str],
    ligands: str | os.PathLike[str],
    output_csv: str | os.PathLike[str] | None = None,
    settings: ComplexGraphSettings | None = None,
    batch_size: int = 16,
    progress: bool = True,
    ligand_format: str | None = None,
    acquisition: str = "mean",
    kappa: float = 1.0,
) -> pd.DataFrame:
    """Rank the ligands of a file by predicted affinity for ``protein_pdb``.

    Args:
        model: a run directory or a module mapping batches to [B, T] (a trained ``AtomgraphModule`` gives
            real units, e.g. pK).
        protein_pdb: the protein (PDB/mmCIF), in the ligands' frame.
        ligands: SDF, MOL2 or PDBQT with one record per pose.
        output_csv: where to write the table (None: not written).
        settings: graph settings (default: the run's).
        acquisition, kappa: rank by the prediction ("mean") or by its upper confidence bound "ucb"
            (mean + kappa sigma; :mod:`atomgraph.evaluation.acquisition`).

    Returns:
        One row per ligand record: ``rank`` (1 = highest predicted first target, or highest acquisition;
        empty for failures), ``record``, ``name``, ``smiles``, one column per target (and
        ``<target>_sigma`` for an ensemble or mean-variance model, recalibrated where the run's report
        fitted that; ``acquisition`` for "ucb"), ``error``.
    """
    scorer = scoring_model(model, settings)
    sigma_wanted = has_sigma(scorer.module)
    acquisition_scores(np.zeros(1), np.zeros(1) if sigma_wanted else None, True, acquisition, kappa)
    protein = read_protein(protein_pdb, waters=scorer.settings.waters)
    sequence = protein_sequence(protein) if scorer.graph_kind == "sequence" else ""
    records = read_ligands(ligands, ligand_format)
    rows: list[dict] = []
    pending: list[tuple[int, Data]] = []
    predictions: dict[int, np.ndarray] = {}

    def flush() -> None:
        if pending:
            values = _predict(scorer.module, [g for _, g in pending], sigma_wanted)
            predictions.update({slot: values[k] for k, (slot, _) in enumerate(pending)})
            pending.clear()

    for record in tqdm(records, desc="screening", disable=not progress, unit="ligand"):
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
                row["error"] = f"{ligands} record {record.index} ({record.name}): {error}"
        rows.append(row)
        if len(pending) >= batch_size:
            flush()
    flush()
    names = scorer.names + [f"{n}_sigma" for n in scorer.names] * sigma_wanted
    if sigma_wanted and scorer.calibration is not None:
        scale = np.concatenate([np.ones(len(scorer.names)), scorer.calibration.scale])
        predictions = {k: v * scale for k, v in predictions.items()}
    if acquisition != "mean":
        predictions = {
            k: np.append(v, acquisition_scores(v[:1], v[len(scorer.names) : len(scorer.names) + 1], True,
                                               acquisition, kappa))
            for k, v in predictions.items()
        }  # fmt: skip
        names.append("acquisition")
    table = _ranked(rows, predictions, names, names[-1] if acquisition != "mean" else names[0])
    failed = table[table["error"] != ""]
    for _, row in failed.iterrows():
        log.warning("skipped %s", row["error"])
    if output_csv is not None:
        Path(output_csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(output_csv, index=False)
    log.info("scored %d of %d ligands; %d failed", len(table) - len(failed), len(table), len(failed))
    return table


@torch.no_grad()
def _predict(module: nn.Module, graphs: list[Data], sigma: bool = False) -> np.ndarray:
    """Predictions [B, T] (with ``sigma``: [B, 2T], means then sigmas)."""
    module.eval()
    device = next(module.parameters()).device
    batch = Batch.from_data_list(graphs).to(device)
    out = torch.cat(module.distribution(batch), dim=1) if sigma else module(batch)
    return out.detach().cpu().double().numpy()


def _ranked(
    rows: list[dict], predictions: dict[int, np.ndarray], names: list[str], rank_by: str
) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["record", "name", "smiles", "error"])
    for t, name in enumerate(names):
        table[name] = [predictions[k][t] if k in predictions else np.nan for k in range(len(rows))]
    ok = table["error"] == ""
    order = table[ok].sort_values(rank_by, ascending=False, kind="stable").index.tolist()
    order += table[~ok].index.tolist()
    table = table.loc[order].reset_index(drop=True)
    table.insert(
        0, "rank", pd.array([k + 1 if k < int(ok.sum()) else pd.NA for k in range(len(table))], dtype="Int64")
    )
    return table[["rank", "record", "name", "smiles", *names, "error"]]
