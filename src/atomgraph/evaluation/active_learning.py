"""Active learning for potentials: which unlabelled frames would teach a committee the most.

A committee (an ensemble's run, :mod:`atomgraph.training.ensemble`) disagrees most where it has seen
least. :func:`force_disagreement` scores each frame of a pool by the largest per-atom force spread
``max_i sqrt(sum_k sigma_ik^2)`` (eV/Å; sigma_ik the members' population standard deviation of force
component k on atom i -- the quantity MD's ``force_sigma_limit`` watches), and :func:`select_frames`
takes the ``k`` highest (query by committee, Seung et al. 1992; the usual choice of MLIP workflows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from atomgraph.graphs.batching import graph_batches
from atomgraph.training.ensemble_module import EnsembleModule


def force_disagreement(module: torch.nn.Module, graphs: Sequence[Data], batch_size: int = 32) -> np.ndarray:
    """The largest per-atom force spread (eV/Å) of a committee on every graph: [M]."""
    if not isinstance(module, EnsembleModule):
        raise ValueError("force disagreement needs a committee: an ensemble's run (train --ensemble N)")
    module.eval()
    device = next(module.parameters()).device
    scores = []
    for batch in graph_batches(list(graphs), batch_size):
        batch = batch.to(device)
        spread = module.compute(batch, forces=True)["forces_std"].detach()
        per_atom = spread.pow(2).sum(dim=1).sqrt()
        worst = torch.zeros(batch.num_graphs, dtype=per_atom.dtype, device=device)
        worst = worst.scatter_reduce(0, batch.batch, per_atom, reduce="amax", include_self=True)
        scores.append(worst.cpu().double().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)


def select_frames(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores (ties: the earlier frame first), highest first."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    order = np.argsort(-np.asarray(scores), kind="stable")
    return order[:k]
