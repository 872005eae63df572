"""Attention coefficients of graph attention models -> one weight per chemical bond.

``GAT.attention_weights(graph)`` gives, per layer, ``(edge_index [2, E'], alpha [E', heads])`` with
self-loops. :func:`stack_attention` stacks the layers into [L, E', heads], :func:`select_attention`
picks (or averages) a layer and a head into [E'], and :func:`bond_weights` turns directed edge weights
into one value per RDKit bond: the mean of its two directions, self-loops and non-bond edges (virtual
edges) ignored. :func:`attention_matrix` gives the seed's atoms x atoms matrix (row i: how atom i
spreads its attention over its neighbours and itself) and :func:`head_diversity` how differently the
heads of a layer attend (the mean total-variation distance between their distributions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rdkit import Chem

Selection = int | str  # an index or "mean"


def stack_attention(layers: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """L pairs (edge_index [2, E'], alpha [E', H]) on the same edges -> (edge_index, alpha [L, E', H])."""
    if not layers:
        raise ValueError("no attention layers given")
    edge_index = layers[0][0]
    for index, _ in layers[1:]:
        if index.shape != edge_index.shape or not torch.equal(index, edge_index):
            raise ValueError("attention layers have different edges; select one layer instead")
    return edge_index, torch.stack([alpha.reshape(alpha.shape[0], -1) for _, alpha in layers])


def _pick(values: torch.Tensor, which: Selection, name: str) -> torch.Tensor:
    """Average (``"mean"``) or index (int) the first dimension of ``values``."""
    if which == "mean":
        return values.mean(dim=0)
    if isinstance(which, bool) or not isinstance(which, int):
        raise ValueError(f"{name} must be an integer or 'mean', got {which!r}")
    if not -values.shape[0] <= which < values.shape[0]:
        raise ValueError(f"{name} {which} out of range: there are {values.shape[0]}")
    return values[which]


def select_attention(
    alpha: torch.Tensor, layer: Selection = "mean", head: Selection = "mean"
) -> torch.Tensor:
    """One weight per edge [E'] from alpha [E'], [E', H] or [L, E', H]: a layer/head index or "mean"."""
    alpha = alpha.detach().double()
    if alpha.dim() == 3:
        alpha = _pick(alpha, layer, "layer")
    if alpha.dim() == 2:
        alpha = _pick(alpha.t(), head, "head")
    if alpha.dim() != 1:
        raise ValueError(f"attention must be [E], [E, heads] or [layers, E, heads], got {tuple(alpha.shape)}")
    return alpha


def bond_weights(mol: Chem.Mol, edge_index: torch.Tensor, edge_weight: torch.Tensor) -> np.ndarray:
    """Weight of every bond of ``mol`` [n_bonds]: the mean over its directed edges (NaN if it has none).

    edge_index: [2, E'] over the graph's nodes, whose first ``mol.GetNumAtoms()`` are the molecule's
    atoms in RDKit order; edge_weight: [E']. Self-loops and edges that are not bonds are ignored.
    """
    n_atoms = mol.GetNumAtoms()
    source, target = (t.cpu().numpy().astype(np.int64) for t in edge_index)
    weight = edge_weight.detach().cpu().double().numpy()
    inside = (source != target) & (source < n_atoms) & (target < n_atoms)
    keys = np.minimum(source, target)[inside] * n_atoms + np.maximum(source, target)[inside]
    pairs, inverse = np.unique(keys, return_inverse=True)
    mean = np.bincount(inverse, weights=weight[inside], minlength=len(pairs)) / np.maximum(
        np.bincount(inverse, minlength=len(pairs)), 1
    )
    ends = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], dtype=np.int64)
    out = np.full(len(ends), np.nan)
    if len(ends) and len(pairs):
        bond_keys = ends.min(axis=1) * n_atoms + ends.max(axis=1)
        slot = np.clip(np.searchsorted(pairs, bond_keys), 0, len(pairs) - 1)
        found = pairs[slot] == bond_keys
        out[found] = mean[slot[found]]
    return out


def attention_matrix(edge_index: torch.Tensor, edge_weight: torch.Tensor, n_atoms: int) -> np.ndarray:
    """The [n_atoms, n_atoms] matrix A with ``A[i, j]`` = the weight atom i (the edge's target) gives
    atom j (its source); each row of a softmax attention sums to one. Nodes past ``n_atoms`` ignored."""
    source, target = (t.cpu().numpy().astype(np.int64) for t in edge_index)
    weight = edge_weight.detach().cpu().double().numpy()
    inside = (source < n_atoms) & (target < n_atoms)
    matrix = np.zeros((n_atoms, n_atoms))
    np.add.at(matrix, (target[inside], source[inside]), weight[inside])
    return matrix


def head_diversity(edge_index: torch.Tensor, alpha: torch.Tensor) -> float:
    """How differently the heads of one layer attend, in [0, 1]: the total-variation distance
    ``0.5 * sum_j |alpha_h(i, j) - alpha_g(i, j)|`` between two heads' attention distributions of a
    node, averaged over nodes and over all pairs of heads. 0: every head attends alike (the heads are
    redundant); 1: no two heads attend to the same neighbours. alpha: [E', heads]; NaN for one head."""
    weights = alpha.detach().double().reshape(alpha.shape[0], -1)
    heads = weights.shape[1]
    if heads < 2:
        return float("nan")
    target = edge_index[1].to(weights.device)
    nodes = int(target.max()) + 1 if target.numel() else 0
    distances = []
    for h in range(heads):
        for g in range(h + 1, heads):
            per_edge = (weights[:, h] - weights[:, g]).abs()
            per_node = weights.new_zeros(nodes).index_add_(0, target, per_edge) * 0.5
            distances.append(per_node[torch.unique(target)].mean())
    return float(torch.stack(distances).mean())
