"""Run a trained module over graphs and collect predictions in real units."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rdkit import Chem
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader


@torch.no_grad()
def predict_graphs(module: torch.nn.Module, graphs, batch_size: int = 128) -> np.ndarray:
    """Predictions [M, T] (real units; probabilities for classification) for a dataset or list of graphs."""
    module.eval()
    device = next(module.parameters()).device
    rows = []
    for batch in DataLoader(graphs, batch_size=batch_size, shuffle=False):
        rows.append(module(batch.to(device)).detach().cpu().double().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0))


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
    for batch in DataLoader(graphs, batch_size=batch_size, shuffle=False):
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


def _input_rows(path: Path, smiles_column: str, embed_3d: bool):
    """(row id, SMILES or "", Atoms or the error that row raised, the row's other CSV columns) for a
    SMILES CSV or structure file."""
    from atomgraph.structures import StructureError, from_smiles, read_records

    if path.suffix.lower() == ".csv":
        table = pd.read_csv(path)
        column = smiles_column if smiles_column in table.columns else "smiles"
        if column not in table.columns:
            raise ValueError(f"{path}: no SMILES column {smiles_column!r}; it has {list(table.columns)}")
        others = table.drop(columns=[column]).to_dict("records")
        for row, smiles in enumerate(table[column].astype(str)):
            try:
                atoms = from_smiles(smiles, embed_3d=embed_3d)
            except StructureError as error:
                atoms = error
            yield f"{path.name}:{row + 2}", smiles, atoms, others[row]
        return
    for k, record in enumerate(read_records(path)):
        smiles = ""
        if not isinstance(record, Exception) and "rdkit_mol" in record.info:
            smiles = Chem.MolToSmiles(Chem.RemoveHs(record.info["rdkit_mol"], sanitize=False))
        yield f"{path.name} record {k}", smiles, record, {}


def predict_each(module: torch.nn.Module, graphs, batch_size: int = 128) -> tuple[np.ndarray, list[str]]:
    """Predictions [M, T] and an error message per graph ("" when fine): batches first; a batch that
    fails is predicted graph by graph, so one bad structure costs only its own row."""
    rows: list[np.ndarray | None] = []  # one per graph; None where the model failed on it
    errors: list[str] = []
    for start in range(0, len(graphs), batch_size):
        chunk = graphs[start : start + batch_size]
        try:
            rows += list(predict_graphs(module, chunk, batch_size))
            errors += [""] * len(chunk)
            continue
        except (IndexError, RuntimeError, ValueError):
            pass
        for graph in chunk:
            try:
                rows.append(predict_graphs(module, [graph], 1)[0])
                errors.append("")
            except (IndexError, RuntimeError, ValueError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                rows.append(None)
                errors.append(f"the model cannot evaluate this structure ({reason})")
    width = next((len(row) for row in rows if row is not None), 0)
    values = np.array([np.full(width, np.nan) if row is None else row for row in rows]).reshape(
        len(rows), width
    )
    return values, errors


def predict_file(
    run_dir: str | Path, input_path: str | Path, output: str | Path, refuse_unseen_elements: bool = False
) -> pd.DataFrame:
    """Predict every row of a SMILES CSV or structure file (XYZ, SDF, ...) with a trained run (a run
    directory or an exported file); graphs are built with the run's graph spec.

    A row with an element the model never saw in training gets a ``warning`` (its prediction is an
    extrapolation), or an ``error`` and no prediction with ``refuse_unseen_elements``; a structure the
    model cannot evaluate at all (an element beyond its tables) gets an ``error``, the others go on.
    A CSV's other columns are kept in the output (renamed ``<name>_input`` where they would clash with
    a prediction). Rows that cannot be read or turned into a graph keep their place in the output with
    an ``error`` message and empty predictions; they are also reported on stderr. Returns the table
    written.
    """
    from atomgraph.runs import TrainedRun

    run = TrainedRun.load(run_dir)
    module, settings = run.module, run.graph
    names = run.targets.names
    smiles_column = run.config["data"]["smiles_column"] if run.config else "smiles"
    records, graphs, slots = [], [], []
    taken = {"id", "smiles", "error", "warning", *names}
    for row_id, smiles, atoms, others in _input_rows(
        Path(input_path), smiles_column, settings.kind == "radius"
    ):
        record = {"id": row_id, "smiles": smiles, "error": "", "warning": ""}
        # the input's other columns travel with the row (a column named like a target gets "_input")
        record.update({f"{k}_input" if k in taken else k: v for k, v in others.items()})
        if isinstance(atoms, Exception):
            record["error"] = str(atoms)
        else:
            try:
                graph = settings.build(atoms)
            except (ValueError, RuntimeError, KeyError) as error:
                record["error"] = f"{row_id}: {error}"
                graph = None
            # the elements the model reads: a heavy-atom graph has no hydrogens to be "unseen"
            unseen = [] if graph is None else run.unseen_elements(graph.z)
            message = f"elements never seen in training: {', '.join(unseen)}"
            if unseen and refuse_unseen_elements:
                record["error"] = f"{row_id}: {message}"
            elif graph is not None:
                record["warning"] = f"{message}; the prediction is an extrapolation" if unseen else ""
                graph.y = torch.full((1, len(names)), float("nan"))
                graphs.append(graph)
                slots.append(len(records))
        records.append(record)
    table = pd.DataFrame(records)
    for name in names:
        table[name] = np.nan
    if graphs:
        values, errors = predict_each(module, graphs)
        for t, name in enumerate(names):
            table.loc[slots, name] = values[:, t]
        for slot, error in zip(slots, errors, strict=True):
            if error:
                table.loc[slot, "error"] = f"{table.loc[slot, 'id']}: {error}"
    bad = table[table["error"] != ""]
    for _, row in bad.iterrows():
        print(f"skipped {row['id']}: {row['error']}", file=sys.stderr)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    warned = int((table["warning"] != "").sum())
    note = f"; {warned} with elements never seen in training (column warning)" if warned else ""
    print(f"predicted {len(table) - len(bad)} of {len(table)} rows -> {output}; {len(bad)} skipped{note}",
          file=sys.stderr)  # fmt: skip
    return table
