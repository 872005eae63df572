"""The GAT of seed 000's practical (``GATForQM9``), layer for layer: every head as wide as ``hidden``.

    h0 = Dropout(ReLU(BN(Linear(x))))                                   [N, d]
    h_l = Dropout(ReLU(BN(GAT_l(h_{l-1})))) + residual                  [N, K d] (K heads of width d
                                                                        concatenated); the last
                                                                        layer averages them: [N, d]
    y = fc2(Dropout(ReLU(BN(fc1(mean_pool(h_L))))))                     fc1: d -> d/2, fc2: d/2 -> T

Residuals as the seed: added where the widths agree; the first layer (d -> K d) has none; the last
(K d -> d) adds a bias-free linear projection of its input. (The seed creates that projection lazily,
outside the module, so it is never trained; here it is a registered, trained layer.) Attention
coefficients are dropped with the same rate as the node states, every node attends to itself, and
the attention reads no bond features (the seed's ``GATConv(x, edge_index)``). Linear layers start
from Kaiming-normal weights (fan_out, ReLU) and zero biases, as the seed. With d = 128, K = 4 and four
layers the model has 941 K parameters on atomgraph's 47 atom features: 876 K as the seed counts them
(its "800K") plus the 65.5 K of the trained residual projection.

:class:`~atomgraph.models.gat.GAT` (``gat``) is the split-width variant of the GNN zoo: its heads share
the width (d / K each), bond features enter the attention, and it has ~0.15 M parameters at d = 128.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GATConv

from atomgraph.graphs.fields import batch_vector
from atomgraph.models.card import ModelCard
from atomgraph.models.gat import recorded_attention
from atomgraph.models.registry import register_model
from atomgraph.nn.readout import GraphReadout

CARD = ModelCard("bond", "bond", ("x",), "layers")


def _block(n_in: int, n_out: int, dropout: float) -> nn.Sequential:
    """Linear -> BatchNorm -> ReLU -> Dropout."""
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU(), nn.Dropout(dropout))


@register_model("gat_practical", card=CARD)
class PracticalGAT(nn.Module):
    """Seed 000's GAT for QM9 (see the module docstring).

    Args:
        atom_dim: width of ``x`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs (every
            target is read out pooled, as the seed's mean pool).
        hidden: width d of each head and of the embedding (seed: 128 in the practical, 64 by default
            in its class).
        heads: attention heads K (seed: 4).
        layers: GAT layers (seed: 4 in the practical, 3 by default in its class).
        dropout: on node states, attention coefficients and the head (seed: 0.2).
    Input: a bonded graph or batch (``x``, ``edge_index``). Output: [B, len(reductions)].
    """

    def __init__(
        self,
        atom_dim: int,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 128,
        heads: int = 4,
        layers: int = 4,
        dropout: float = 0.2,
    ):
        super().__init__()
        if layers < 1 or heads < 1 or hidden < 2:
            raise ValueError(f"need layers >= 1, heads >= 1 and hidden >= 2, got {layers}, {heads}, {hidden}")
        self.embedding = _block(atom_dim, hidden, dropout)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        width = hidden
        for k in range(layers):
            last = k == layers - 1
            self.convs.append(
                GATConv(width, hidden, heads=heads, concat=not last, dropout=dropout, add_self_loops=True)
            )
            width_out = hidden if last else hidden * heads
            self.norms.append(nn.BatchNorm1d(width_out))
            width = width_out
        wide = hidden * heads
        # the residual of the last layer (K d -> d) goes through a projection; none when its widths agree
        self.project_residual = nn.Linear(wide, hidden, bias=False) if layers > 1 and heads > 1 else None
        self.act, self.dropout = nn.ReLU(), nn.Dropout(dropout)
        self.readout = GraphReadout("mean", hidden)
        fc1, fc2 = _block(hidden, hidden // 2, dropout), nn.Linear(hidden // 2, len(reductions))
        self.head = nn.Sequential(fc1, fc2)
        self._recorded: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def node_states(self, graph: Data) -> list[torch.Tensor]:
        """Node states after each layer: L tensors ([N, K d] for hidden layers, [N, d] for the last)."""
        h = self.embedding(graph.x)
        states = []
        for k, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            if self._recorded is None:
                out = conv(h, graph.edge_index)
            else:
                out, (index, alpha) = conv(h, graph.edge_index, return_attention_weights=True)
                self._recorded.append((index, alpha))
            out = self.dropout(self.act(norm(out)))
            if out.shape[1] == h.shape[1]:
                out = out + h
            elif k > 0:
                out = out + self.project_residual(h)
            h = out
            states.append(h)
        return states

    def attention_weights(self, graph: Data) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Attention coefficients of every layer (:func:`~atomgraph.models.gat.recorded_attention`)."""
        return recorded_attention(self, graph)

    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        return self.head(self.readout(self.node_states(graph)[-1], batch, num_graphs))
