"""Graph attention networks: GAT (Velickovic et al. 2018) and GATv2 (Brody et al. 2022), PyG layers.

alpha_ij = softmax_j(LeakyReLU(a^T [W h_i || W h_j || W_e e_ij]))          (GAT, per head)
alpha_ij = softmax_j(a^T LeakyReLU(W [h_i || h_j || e_ij]))                 (GATv2, per head)
h_i' = ||_heads sum_{j in N(i) + i} alpha_ij W h_j   (hidden layers: heads concatenated, hidden/heads each;
                                                        last layer: heads averaged, width hidden)

Bond features enter the attention (``edge_dim``); every node attends to itself through a self-loop
whose edge features are the mean of its incoming edges' (``fill_value="mean"``). Attention dropout
drops coefficients in training. :meth:`GAT.attention_weights` returns the coefficients per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GATConv, GATv2Conv

from atomgraph.models.card import ModelCard
from atomgraph.models.conv_stack import ConvStack, Edges
from atomgraph.models.registry import register_model

ZOO_CARD = ModelCard("bond", "bond", ("x", "edge_attr"), "layers")


@register_model("gat", card=ZOO_CARD)
class GAT(ConvStack):
    """Multi-head graph attention on bonded graphs.

    Args:
        heads: attention heads per layer (``hidden`` must be a multiple of it).
        attention_dropout: dropout on the attention coefficients (training only).
        edge_features: use ``edge_attr`` in the attention (needs ``edge_dim``; True by default).
        others: see :class:`~atomgraph.models.conv_stack.ConvStack` (dropout acts on node states).
    Input: bonded graph or batch (``x``, ``edge_index``, ``edge_attr``). Output: [B, len(reductions)].
    """

    conv_class: type[nn.Module] = GATConv

    def __init__(
        self,
        atom_dim: int,
        edge_dim: int | None = None,
        reductions: Sequence[str] = ("mean",),
        hidden: int = 128,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        norm: str = "none",
        residual: bool = True,
        jumping_knowledge: str = "none",
        pool: str = "mean",
        act: str = "elu",
        edge_features: bool = True,
        set2set_steps: int = 3,
    ):
        if heads < 1 or hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a positive multiple of heads ({heads})")
        attention_edge_dim = edge_dim if edge_features else None
        convs = []
        for k in range(layers):
            last = k == layers - 1
            convs.append(
                self.conv_class(
                    hidden,
                    hidden if last else hidden // heads,
                    heads=heads,
                    concat=not last,
                    dropout=attention_dropout,
                    edge_dim=attention_edge_dim,
                    add_self_loops=True,
                    fill_value="mean",
                )
            )
        super().__init__(
            convs, atom_dim, edge_dim, reductions, hidden, dropout, norm, residual, jumping_knowledge,
            pool, act, False, set2set_steps,
        )  # fmt: skip
        self.heads = heads
        self.uses_edge_attr = attention_edge_dim is not None
        self._recorded: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def convolve(self, conv: nn.Module, h: torch.Tensor, edges: Edges) -> torch.Tensor:
        attr = edges.attr if self.uses_edge_attr else None
        if self._recorded is None:
            return conv(h, edges.index, attr)
        out, (index, alpha) = conv(h, edges.index, attr, return_attention_weights=True)
        self._recorded.append((index, alpha))
        return out

    def attention_weights(self, graph: Data) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Attention coefficients of every layer (:func:`recorded_attention`)."""
        return recorded_attention(self, graph)


@torch.no_grad()
def recorded_attention(model: nn.Module, graph: Data) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The attention coefficients of every layer of a model whose ``node_states`` appends
    ``(edge_index, alpha)`` to ``model._recorded`` while it is a list, computed in evaluation mode (no
    dropout).

    Returns L pairs (edge_index [2, E'], alpha [E', heads]): the edges with self-loops (PyG puts one per
    node after the graph's own edges) and, for each, the softmax weight the target ``edge_index[1]``
    gives the source ``edge_index[0]``; they sum to one over each node's incoming edges, per head.
    """
    was_training = model.training
    model.eval()
    model._recorded = []
    try:
        model.node_states(graph)
        return model._recorded
    finally:
        model._recorded = None
        model.train(was_training)


@register_model("gatv2", card=ZOO_CARD)
class GATv2(GAT):
    """GATv2 ("dynamic" attention: nonlinearity before the attention vector); arguments as :class:`GAT`."""

    conv_class = GATv2Conv
