"""Graph convolutional network (Kipf & Welling 2017) on the shared :class:`ConvStack`.

GCN: h_i' = sum_{j in N(i) + i} W h_j / sqrt(d_i d_j) with self-loops (PyG ``GCNConv``). It has no
use for bond features in the convolution; with ``edge_features=True`` the mean of each atom's
incoming bond features is appended to its input features instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.nn import GCNConv

from atomgraph.models.card import ModelCard
from atomgraph.models.conv_stack import ConvStack, Edges
from atomgraph.models.registry import register_model

ZOO_CARD = ModelCard("bond", "bond", ("x", "edge_attr"), "layers")


@register_model("gcn", card=ZOO_CARD)
class GCN(ConvStack):
    """Kipf & Welling's GCN: symmetric normalisation D^-1/2 (A + I) D^-1/2 with self-loops.

    Args: see :class:`ConvStack`; ``edge_features`` (default False) appends the mean incoming bond
    features to the atom inputs, since the convolution itself takes no edge features.
    Input: bonded graph or batch (``x``, ``edge_index``, ``edge_attr``). Output: [B, len(reductions)].
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
        edge_features: bool = False,
        set2set_steps: int = 3,
    ):
        convs = [GCNConv(hidden, hidden, add_self_loops=True, normalize=True) for _ in range(layers)]
        super().__init__(
            convs, atom_dim, edge_dim, reductions, hidden, dropout, norm, residual, jumping_knowledge,
            pool, act, edge_features, set2set_steps,
        )  # fmt: skip

    def convolve(self, conv: nn.Module, h: torch.Tensor, edges: Edges) -> torch.Tensor:
        return conv(h, edges.index)
