"""Explanations of affinity predictions: interaction decomposition and per-atom importance.

* :func:`interaction_decomposition`: predict again with the edges of one interaction type removed and
  report the change (``delta = full - without``; positive: those contacts raise the predicted affinity).
  Edges are removed by their ``edge_type`` (each ligand-pocket pair has one type, chosen by
  :data:`~atomgraph.apps.complexes.interactions.PRIORITY`), and the removed pairs are also masked from
  cross-attention (``masked_pairs``). Models that ignore inter-molecular edges (late fusion; cross
  attention at residue level) give zero deltas.
* :func:`atom_importance`: input x gradient, summed over each node's features, for ligand atoms and
  pocket atoms (residue-level models: every atom gets its residue's value). Hydrogens that are not
  graph nodes get 0.
* :func:`attention_table`: the ligand-to-protein weights of a cross-attention model's last block (mean
  over heads), one row per ligand atom and protein node (pocket atom or residue), and
  :func:`plot_attention` draws them for the residues that receive the most attention.
* :func:`explain_complex`: all of them, written as a protein PDB and ligand SDF/PDB with the importance in the
  B-factor column, scaled to [-99, 99] by the largest absolute value (the six-character PDB column
  cannot hold -100.00) (SDF: each atom's raw value as the
  atom property ``importance`` (SD field ``atom.dprop.importance``) and the scaled values in a ``<bfactor>``
  SD field), plus CSV tables of the interactions and the decomposition, and for attention models the
  attention table and its heat map.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rdkit import Chem
from torch_geometric.data import Batch, Data

from atomgraph.apps.complexes.complex import Complex
from atomgraph.apps.complexes.features import EDGE_TYPE_INDEX, INTER_EDGE_TYPES
from atomgraph.apps.complexes.graph import ComplexGraphSettings, complex_graph
from atomgraph.apps.complexes.interactions import detect_interactions, interaction_table
from atomgraph.apps.complexes.protein import write_protein_bfactors


def as_batch(graph: Data) -> Batch:
    """A one-graph batch (a batch is returned as it is)."""
    return graph if isinstance(graph, Batch) else Batch.from_data_list([graph])


@torch.no_grad()
def predict_batch(model: torch.nn.Module, batch: Data) -> torch.Tensor:
    """``model(batch)`` in eval mode: [B, T] (a loaded run's ``PredictionModule`` gives real units)."""
    model.eval()
    return model(batch)


def remove_edges(batch: Data, drop: torch.Tensor) -> Data:
    """A shallow copy of ``batch`` without the edges where ``drop`` [E] is True; the removed
    ligand-protein pairs go to ``masked_pairs`` [2, M] (ligand node, protein node)."""
    out = copy.copy(batch)
    keep = ~drop
    out.edge_index = batch.edge_index[:, keep]
    out.edge_attr = batch.edge_attr[keep]
    out.edge_type = batch.edge_type[keep]
    removed = batch.edge_index[:, drop]
    roles = batch.node_role[removed]
    inter = roles[0] != roles[1]
    removed, roles = removed[:, inter], roles[:, inter]
    out.masked_pairs = torch.where(roles[0] == 0, removed, removed.flip(0))
    return out


def interaction_decomposition(model: torch.nn.Module, graph: Data, target: int = 0) -> pd.DataFrame:
    """Per inter-molecular edge type present (plus ``all_inter``, every ligand-pocket edge): the number of
    pairs removed, the prediction with and without them and ``delta = full - without`` (target
    ``target``, the model's units)."""
    batch = as_batch(graph)
    full = float(predict_batch(model, batch)[0, target])
    rows = []
    inter_ids = torch.tensor([EDGE_TYPE_INDEX[k] for k in INTER_EDGE_TYPES])
    groups = [(k, batch.edge_type == EDGE_TYPE_INDEX[k]) for k in INTER_EDGE_TYPES]
    groups.append(("all_inter", torch.isin(batch.edge_type, inter_ids)))
    for kind, drop in groups:
        if not bool(drop.any()):
            continue
        without = float(predict_batch(model, remove_edges(batch, drop))[0, target])
        rows.append(
            {
                "type": kind,
                "pairs": int(drop.sum()) // 2,
                "prediction": full,
                "without": without,
                "delta": full - without,
            }
        )
    return pd.DataFrame(rows, columns=["type", "pairs", "prediction", "without", "delta"])


def node_importance(
    model: torch.nn.Module, graph: Data, target: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input x gradient of output ``target`` summed over features: atom nodes [N] and residue nodes [R]."""
    batch = copy.copy(as_batch(graph))
    model.eval()
    x = batch.x.detach().clone().requires_grad_(True)
    batch.x = x
    res_x = None
    if getattr(batch, "res_x", None) is not None:
        res_x = batch.res_x.detach().clone().requires_grad_(True)
        batch.res_x = res_x
    with torch.enable_grad():
        output = model(batch)[0, target]
        inputs = [x] if res_x is None else [x, res_x]
        grads = torch.autograd.grad(output, inputs, allow_unused=True)
    atoms = (grads[0] * x).sum(-1).detach() if grads[0] is not None else torch.zeros(x.shape[0])
    residues = torch.zeros(0)
    if res_x is not None:
        residues = (
            (grads[1] * res_x).sum(-1).detach() if grads[1] is not None else torch.zeros(res_x.shape[0])
        )
    return atoms, residues


def atom_importance(
    model: torch.nn.Module, complex_: Complex, graph: Data, target: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Importance of every ligand atom [L] (Mol order) and every pocket atom [P] (pocket order); atoms
    that are not graph nodes (hydrogens by default) get 0; pocket atoms add their residue's value."""
    atoms, residues = node_importance(model, graph, target)
    role = graph.node_role.numpy()
    source = graph.source_atom.numpy()
    values = atoms.double().numpy()
    ligand = np.zeros(complex_.ligand.GetNumAtoms())
    pocket = np.zeros(len(complex_.pocket))
    ligand[source[role == 0]] = values[role == 0]
    pocket[source[role == 1]] = values[role == 1]
    if residues.numel():
        residue_values = residues.double().numpy()
        order = complex_.pocket.residues()
        position = {int(r): k for k, r in enumerate(order)}
        pocket += np.array([residue_values[position[int(r)]] for r in complex_.pocket.residue_index])
    return ligand, pocket


def bfactor_scale(values: np.ndarray, scale: float | None = None) -> np.ndarray:
    """``99 * values / scale`` (default scale: the largest absolute value), so that every value fits the
    PDB B-factor column (``%6.2f``)."""
    values = np.asarray(values, dtype=float)
    scale = scale or (float(np.abs(values).max()) if values.size else 0.0)
    return 99.0 * values / scale if scale > 0 else np.zeros_like(values)


def write_ligand_importance(
    mol: Chem.Mol,
    values: np.ndarray,
    sdf_path: str | os.PathLike[str],
    pdb_path: str | os.PathLike[str] | None = None,
    scale: float | None = None,
) -> None:
    """Write the ligand with per-atom ``values``: SDF (atom property ``importance``, raw, and a
    ``<bfactor>`` field, scaled) and optionally a PDB with the scaled values as B-factors."""
    values = np.asarray(values, dtype=float)
    if len(values) != mol.GetNumAtoms():
        raise ValueError(f"{len(values)} values for {mol.GetNumAtoms()} ligand atoms")
    scaled = bfactor_scale(values, scale)
    out = Chem.Mol(mol)
    for atom, value in zip(out.GetAtoms(), values, strict=True):
        atom.SetDoubleProp("importance", float(value))
    Chem.CreateAtomDoublePropertyList(out, "importance")
    out.SetProp("bfactor", " ".join(f"{v:.2f}" for v in scaled))
    Path(sdf_path).parent.mkdir(parents=True, exist_ok=True)
    with Chem.SDWriter(str(sdf_path)) as writer:
        writer.write(out)
    if pdb_path is not None:
        for atom, value in zip(out.GetAtoms(), scaled, strict=True):
            info = Chem.AtomPDBResidueInfo()
            info.SetName(f"{atom.GetSymbol()}{atom.GetIdx() + 1}"[:4].ljust(4))
            info.SetResidueName("LIG")
            info.SetResidueNumber(1)
            info.SetChainId("L")
            info.SetIsHeteroAtom(True)
            info.SetOccupancy(1.0)
            info.SetTempFactor(float(value))
            atom.SetMonomerInfo(info)
        Chem.MolToPDBFile(out, str(pdb_path))


def _protein_labels(complex_: Complex, graph: Data, level: str) -> list[str]:
    """``chain:RES123`` (residue level) or ``chain:RES123:ATOM`` (atom level) of each protein node."""
    pocket = complex_.pocket

    def residue(atom: int) -> str:
        return f"{pocket.chain_ids[atom]}:{pocket.residue_names[atom]}{pocket.residue_numbers[atom]}"

    if level == "residue":
        first = {int(r): k for k, r in reversed(list(enumerate(pocket.residue_index)))}
        return [residue(first[int(r)]) for r in pocket.residues()]
    atoms = graph.source_atom.numpy()[graph.node_role.numpy() == 1]
    return [f"{residue(a)}:{pocket.atom_names[a]}" for a in atoms]


def attention_table(model: torch.nn.Module, complex_: Complex, graph: Data) -> pd.DataFrame | None:
    """The ligand-to-protein attention of the model's last cross-attention block for one complex, mean
    over heads: columns ``ligand_atom`` (index in the ligand Mol), ``ligand_element``, ``protein``
    (``chain:RES123[:ATOM]``), ``residue`` (``chain:RES123``), ``distance`` (Å) and ``weight`` (each
    ligand atom's weights sum to 1 over the protein nodes it may attend to); pairs with weight 0 (masked)
    are left out. None for a model without cross attention (no ``last_attention``)."""
    inner = getattr(model, "model", model)  # a trained run's module holds the network as .model
    if not hasattr(inner, "last_attention"):
        return None
    model.eval()
    with torch.no_grad():
        predict_batch(model, as_batch(graph))
    weights = inner.last_attention[0].mean(0).double().numpy()  # [L_max, P_max] of the one graph
    role = graph.node_role.numpy()
    ligand_atoms = graph.source_atom.numpy()[role == 0]
    level = getattr(inner, "protein_level", "atom")
    proteins = _protein_labels(complex_, graph, level)
    weights = weights[: len(ligand_atoms), : len(proteins)]
    ligand_pos = graph.pos.numpy()[role == 0]
    protein_pos = graph.res_pos.numpy() if level == "residue" else graph.pos.numpy()[role == 1]
    distance = np.linalg.norm(ligand_pos[:, None, :] - protein_pos[None, :, :], axis=-1)
    lig, pro = np.nonzero(weights > 0)
    symbols = [complex_.ligand.GetAtomWithIdx(int(a)).GetSymbol() for a in ligand_atoms]
    return pd.DataFrame(
        {
            "ligand_atom": ligand_atoms[lig],
            "ligand_element": [symbols[k] for k in lig],
            "protein": [proteins[j] for j in pro],
            "residue": [":".join(proteins[j].split(":")[:2]) for j in pro],
            "distance": distance[lig, pro],
            "weight": weights[lig, pro],
        }
    )


def plot_attention(
    table: pd.DataFrame, path: str | os.PathLike[str], residues: int = 15, title: str = ""
) -> Path:
    """Heat map of ligand atoms (rows) x the ``residues`` residues with the largest total attention
    (columns; a residue's weight is the sum over its atoms), written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_residue = table.groupby(["ligand_atom", "ligand_element", "residue"], sort=False)["weight"].sum()
    matrix = per_residue.unstack("residue", fill_value=0.0)
    top = matrix.sum(axis=0).sort_values(ascending=False).index[:residues]
    matrix = matrix[top]
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(top), 1.0 + 0.25 * len(matrix)))
    image = ax.imshow(matrix.to_numpy(), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(top)), top, rotation=90, fontsize=7)
    ax.set_yticks(range(len(matrix)), [f"{e}{a}" for a, e in matrix.index], fontsize=7)
    ax.set_xlabel("pocket residue (most attended first)")
    ax.set_ylabel("ligand atom")
    ax.set_title(title or "cross attention, last block, mean over heads", fontsize=9)
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def explain_complex(
    model: torch.nn.Module,
    complex_: Complex,
    output_dir: str | os.PathLike[str],
    settings: ComplexGraphSettings | None = None,
    target: int = 0,
) -> dict[str, Path]:
    """Write ``<name>_protein.pdb``, ``<name>_ligand.sdf``/``.pdb`` (importance as B-factors),
    ``<name>_interactions.csv`` and ``<name>_decomposition.csv`` to ``output_dir``, and for a
    cross-attention model ``<name>_attention.csv`` (:func:`attention_table`) and ``<name>_attention.png``
    (:func:`plot_attention`); returns the paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = settings or ComplexGraphSettings()
    interactions = detect_interactions(complex_, settings.thresholds)
    graph = complex_graph(complex_, settings, interactions=interactions)
    ligand_values, pocket_values = atom_importance(model, complex_, graph, target)
    scale = float(max(np.abs(ligand_values).max(initial=0.0), np.abs(pocket_values).max(initial=0.0))) or None
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in complex_.name) or "complex"
    paths = {
        "protein": output_dir / f"{stem}_protein.pdb",
        "ligand_sdf": output_dir / f"{stem}_ligand.sdf",
        "ligand_pdb": output_dir / f"{stem}_ligand.pdb",
        "interactions": output_dir / f"{stem}_interactions.csv",
        "decomposition": output_dir / f"{stem}_decomposition.csv",
    }
    write_protein_bfactors(complex_.pocket, bfactor_scale(pocket_values, scale), paths["protein"])
    write_ligand_importance(complex_.ligand, ligand_values, paths["ligand_sdf"], paths["ligand_pdb"], scale)
    interaction_table(complex_, interactions).to_csv(paths["interactions"], index=False)
    interaction_decomposition(model, graph, target).to_csv(paths["decomposition"], index=False)
    attention = attention_table(model, complex_, graph)
    if attention is not None:
        paths["attention"] = output_dir / f"{stem}_attention.csv"
        attention.to_csv(paths["attention"], index=False)
        paths["attention_plot"] = plot_attention(attention, output_dir / f"{stem}_attention.png", title=stem)
    return paths
