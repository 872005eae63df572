"""Gilmer et al.'s message functions, over node states split into towers.

Node states are ``h [N, k, c]``: ``k`` towers of width ``c`` (one tower: ``k = 1``, ``c = d``); each
tower has its own weights. A message function maps the states of the sending and receiving atom of
every edge and the edge's data to a message ``[E, k, c]``, summed at the receiver by the caller:

* :class:`MatrixMessage` -- ``A_{t(e)} h_w``: one learned ``c x c`` matrix per discrete edge type and
  tower (GG-NN, Li et al. 2016).
* :class:`EdgeNetworkMessage` -- ``A(e) h_w``: an MLP maps the edge vector to the matrices (Gilmer's
  "edge network").
* :class:`PairMessage` -- ``f(h_w, h_v, e)``: an MLP on both states and the edge vector (Gilmer's
  "pair message").

``sender`` / ``receiver`` ``[E]`` index the atoms; ``edge_vector [E, F]`` and ``edge_type [E]`` (int64)
describe the edges (a message function reads the one it needs).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from atomgraph.nn.mlp import MLP

__all__ = ["MESSAGE_FUNCTIONS", "EdgeNetworkMessage", "MatrixMessage", "PairMessage", "TowerLinear"]


class TowerLinear(nn.Module):
    """One linear map per tower, ``[..., k, n_in] -> [..., k, n_out]`` (weight ``[k, n_in, n_out]``)."""

    def __init__(self, towers: int, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)  # nn.Linear's initialisation
        self.weight = nn.Parameter(torch.empty(towers, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(towers, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...ki,kio->...ko", x, self.weight) + self.bias


class MatrixMessage(nn.Module):
    """``A_t h_w`` with one ``c x c`` matrix per edge type ``t < num_types`` and tower."""

    def __init__(self, num_types: int, towers: int, width: int):
        super().__init__()
        bound = 1.0 / math.sqrt(width)
        self.matrices = nn.Parameter(torch.empty(num_types, towers, width, width).uniform_(-bound, bound))

    def forward(self, h, sender, receiver, edge_vector, edge_type) -> torch.Tensor:
        if edge_type.numel() and int(edge_type.max()) >= self.matrices.shape[0]:
            raise ValueError(
                f"edge type {int(edge_type.max())} has no message matrix (the model has "
                f"{self.matrices.shape[0]} edge types)"
            )
        # every node through every type's matrix ([N, T, k, c]: cheaper than one matrix per edge)
        per_type = torch.einsum("nkj,tkij->ntki", h, self.matrices)
        return per_type[sender, edge_type]


class EdgeNetworkMessage(nn.Module):
    """``A(e) h_w``: an MLP ``[F] -> [k c c]`` gives each edge its per-tower matrices."""

    def __init__(self, edge_dim: int, towers: int, width: int, edge_hidden: int):
        super().__init__()
        self.towers, self.width = towers, width
        self.matrices = MLP([edge_dim, edge_hidden, towers * width * width], act="relu")

    def forward(self, h, sender, receiver, edge_vector, edge_type) -> torch.Tensor:
        matrices = self.matrices(edge_vector).view(-1, self.towers, self.width, self.width)
        return torch.einsum("ekij,ekj->eki", matrices, h.index_select(0, sender))


class PairMessage(nn.Module):
    """``f(h_w, h_v, e)``: a per-tower MLP (one hidden layer, ReLU) on both states and the edge vector."""

    def __init__(self, edge_dim: int, towers: int, width: int, edge_hidden: int):
        super().__init__()
        self.towers = towers
        self.hidden = TowerLinear(towers, 2 * width + edge_dim, edge_hidden)
        self.out = TowerLinear(towers, edge_hidden, width)

    def forward(self, h, sender, receiver, edge_vector, edge_type) -> torch.Tensor:
        edge = edge_vector.unsqueeze(1).expand(-1, self.towers, -1)
        pair = torch.cat([h.index_select(0, sender), h.index_select(0, receiver), edge], dim=-1)
        return self.out(torch.relu(self.hidden(pair)))


MESSAGE_FUNCTIONS = ("matrix", "edge_network", "pair")
