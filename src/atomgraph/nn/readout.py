"""Node pools: node states [N, F] -> one vector per graph [B, F'] (sum, mean, max, attention, Set2Set).

A node pool is a building block: it pools states, whatever they mean. How a *target* is read out
(atomic contributions summed or averaged, or pooled states then an MLP) is the per-target readout of
:mod:`atomgraph.nn.target_readout`, whose ``"pooled"`` uses one of these.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import aggr

from atomgraph.nn.scatter import segment_counts

POOLS = ("sum", "mean", "max", "attention", "set2set")


def per_graph_count(batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Number of nodes in each graph: [B] (float, for dividing)."""
    return segment_counts(batch, num_graphs, torch.get_default_dtype())


class GraphReadout(nn.Module):
    """Pool node states into one vector per graph; every kind is invariant to node order.

    kind: one of :data:`POOLS`: ``sum``, ``mean``, ``max``, ``attention`` (gated softmax weights,
    Li et al. 2016) or ``set2set`` (Vinyals et al., as in Gilmer's MPNN; output width 2F).
    ``out_dim`` tells the width of the result.
    """

    def __init__(self, kind: str, dim: int, set2set_steps: int = 3):
        super().__init__()
        if kind not in POOLS:
            raise ValueError(f"unknown node pool {kind!r}; choose from {POOLS}")
        self.kind = kind
        self.out_dim = 2 * dim if kind == "set2set" else dim
        if kind == "sum":
            self.pool = aggr.SumAggregation()
        elif kind == "mean":
            self.pool = aggr.MeanAggregation()
        elif kind == "max":
            self.pool = aggr.MaxAggregation()
        elif kind == "attention":
            gate = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1))
            self.pool = aggr.AttentionalAggregation(gate_nn=gate)
        else:
            self.pool = aggr.Set2Set(dim, processing_steps=set2set_steps)

    def forward(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        """h: [N, F], batch: [N] graph index -> [B, out_dim]."""
        return self.pool(h, batch, dim_size=num_graphs)
