"""Per-atom outputs pooled per target: sum for extensive targets, mean for intensive ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout
from atomgraph.nn.target_pooling import pool_per_target


class AtomwiseHead(nn.Module):
    """Atom states [N, F] -> per-atom contributions [N, T] -> graph predictions [B, T].

    ``extensive[t]`` picks the pooling of target t: sum (energies, extensive) or mean (HOMO, band
    gap, intensive). ``readout`` = "auto" uses that rule; "sum"/"mean" force one pooling for all;
    "max"/"attention"/"set2set" pool the atom states first and apply the MLP per graph.
    """

    def __init__(
        self,
        dim: int,
        extensive: Sequence[bool],
        hidden: int | None = None,
        act: str = "silu",
        readout: str = "auto",
    ):
        super().__init__()
        self.num_targets = len(extensive)
        hidden = hidden or max(dim // 2, 1)
        self.register_buffer("extensive", torch.tensor(list(extensive), dtype=torch.bool), persistent=False)
        self.readout = readout
        if readout in ("auto", "sum", "mean"):
            self.pool = None
            self.mlp = MLP([dim, hidden, self.num_targets], act)
        else:
            self.pool = GraphReadout(readout, dim)
            self.mlp = MLP([self.pool.out_dim, hidden, self.num_targets], act)

    def atom_contributions(self, h: torch.Tensor) -> torch.Tensor:
        """Per-atom outputs [N, T] (only for the atom-wise readouts)."""
        return self.mlp(h)

    def forward(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        if self.pool is not None:
            return self.mlp(self.pool(h, batch, num_graphs))
        return pool_per_target(self.mlp(h), batch, num_graphs, self.extensive, self.readout)
