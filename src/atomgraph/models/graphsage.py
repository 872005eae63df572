"""GraphSAGE (Hamilton et al. 2017): h_i' = W_1 h_i + W_2 AGG({h_j : j -> i}) with PyG's ``SAGEConv``.

Aggregators: "mean"; "max" (the paper's max-pool: max_j relu(W h_j + b), ``SAGEConv(project=True)``);
"lstm" (an LSTM over the neighbours, :class:`NeighborLSTM`). PyG's ``LSTMAggregation`` is not used: it
needs edges sorted by target and reads the LSTM output at the batch's largest degree, so a node's result
would run over zero padding and change with the other graphs of the batch. :class:`NeighborLSTM` sorts
the edges itself, packs each node's sequence to its own length, and orders each node's neighbours by a
fixed random projection of their messages (a buffer saved with the model), so the output does not
depend on atom numbering (up to ties between equal messages, whose order does not matter).

Neighbour sampling (``neighbor_samples=k``): in training mode every forward keeps a fresh random
subset of at most k incoming edges per node, shared by all layers; evaluation uses every edge.
Bond features are not used by the convolution; ``edge_features=True`` appends the mean incoming bond
features to the atom inputs (see :class:`~atomgraph.models.conv_stack.ConvStack`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch_geometric.data import Data
from torch_geometric.nn import SAGEConv
from torch_geometric.nn.aggr import Aggregation

from atomgraph.models.card import ModelCard
from atomgraph.models.conv_stack import ConvStack, Edges
from atomgraph.models.registry import register_model

AGGREGATORS = ("mean", "max", "lstm")


def sample_incoming(edge_index: torch.Tensor, num_nodes: int, k: int) -> torch.Tensor:
    """Indices (ascending) of a random subset of at most ``k`` incoming edges per target node.

    edge_index: [2, E]; returns [E'] with E' <= E.
    """
    target = edge_index[1]
    shuffled = torch.randperm(target.numel(), device=target.device)
    order = shuffled[torch.sort(target[shuffled], stable=True).indices]  # grouped by target, random within
    counts = torch.bincount(target, minlength=num_nodes)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel(), device=target.device) - first[target[order]]
    return torch.sort(order[rank < k]).values


class NeighborLSTM(Aggregation):
    """LSTM aggregation: each node's incoming messages as a sequence -> the LSTM's last hidden state.

    x: messages [E, F] with target ``index`` [E] (any order) -> [dim_size, F]; zeros for nodes without
    incoming edges. Neighbours are fed in the order of ``messages @ order_key``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.register_buffer("order_key", torch.randn(dim))

    def forward(
        self,
        x: torch.Tensor,
        index: torch.Tensor | None = None,
        ptr: torch.Tensor | None = None,
        dim_size: int | None = None,
        dim: int = -2,
        max_num_elements: int | None = None,
    ) -> torch.Tensor:
        if index is None:
            raise ValueError("NeighborLSTM needs the target index of every message")
        num_nodes = int(dim_size) if dim_size is not None else int(index.max()) + 1
        out = x.new_zeros(num_nodes, self.lstm.hidden_size)
        if x.shape[0] == 0:
            return out
        by_key = torch.sort(x.detach() @ self.order_key, stable=True).indices
        order = by_key[torch.sort(index[by_key], stable=True).indices]  # by target, then by key
        target = index[order]
        counts = torch.bincount(index, minlength=num_nodes)
        position = torch.arange(order.numel(), device=x.device) - (torch.cumsum(counts, 0) - counts)[target]
        dense = x.new_zeros(num_nodes, int(counts.max()), x.shape[-1])
        dense[target, position] = x[order]
        present = counts > 0
        packed = pack_padded_sequence(
            dense[present], counts[present].cpu(), batch_first=True, enforce_sorted=False
        )
        _, (last, _) = self.lstm(packed)
        out[present] = last[-1]
        return out


ZOO_CARD = ModelCard("bond", "bond", ("x", "edge_attr"), "layers")


@register_model("graphsage", card=ZOO_CARD)
class GraphSAGE(ConvStack):
    """GraphSAGE on bonded graphs (see the module docstring for aggregators and sampling).

    Args:
        aggregator: "mean", "max" (max-pool) or "lstm".
        neighbor_samples: at most this many incoming edges per node in training (None: all).
        others: see :class:`~atomgraph.models.conv_stack.ConvStack`.
    Input: bonded graph or batch (``x``, ``edge_index``). Output: [B, len(reductions)].
    """

    def __init__(
        self,
        atom_dim: int,
        edge_dim: int | None = None,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 128,
        layers: int = 4,
        dropout: float = 0.0,
        norm: str = "none",
        residual: bool = True,
        jumping_knowledge: str = "none",
        pool: str = "mean",
        act: str = "relu",
        aggregator: str = "mean",
        neighbor_samples: int | None = None,
        edge_features: bool = False,
        set2set_steps: int = 3,
    ):
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {aggregator!r}")
        if neighbor_samples is not None and neighbor_samples < 1:
            raise ValueError(f"neighbor_samples must be at least 1 or None, got {neighbor_samples}")
        convs = [
            SAGEConv(
                hidden,
                hidden,
                aggr=NeighborLSTM(hidden) if aggregator == "lstm" else aggregator,
                project=aggregator == "max",  # max-pool: max_j relu(W h_j + b)
            )
            for _ in range(layers)
        ]
        super().__init__(
            convs, atom_dim, edge_dim, reductions, hidden, dropout, norm, residual, jumping_knowledge,
            pool, act, edge_features, set2set_steps,
        )  # fmt: skip
        self.aggregator = aggregator
        self.neighbor_samples = neighbor_samples

    def edges(self, graph: Data) -> Edges:
        edges = super().edges(graph)
        if self.training and self.neighbor_samples is not None:
            keep = sample_incoming(edges.index, graph.num_nodes, self.neighbor_samples)
            edges = Edges(edges.index[:, keep], None if edges.attr is None else edges.attr[keep])
        return edges

    def convolve(self, conv: nn.Module, h: torch.Tensor, edges: Edges) -> torch.Tensor:
        return conv(h, edges.index)
