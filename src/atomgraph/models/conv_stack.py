"""The layer stack shared by the GNN zoo (GCN, GraphSAGE, GAT, GATv2) on bonded graphs::

    h0 = Linear([x, mean of incoming edge_attr]?)                          [N, hidden]
    h_l = h_{l-1} + Dropout(act(Norm(Conv_l(h_{l-1}, edges))))            (residual; without: no h_{l-1})
    H = JumpingKnowledge(h_1..h_L)   none: h_L | cat: [h_1..h_L] | max: elementwise max over layers
    y = MLP(pool(H))                                                       [B, T]

Every target is read out ``"pooled"`` (:mod:`atomgraph.nn.target_readout`): ``pool`` is the node pool
(a :data:`~atomgraph.nn.readout.POOLS` kind); the module keeps the attribute name ``readout`` for it,
the name its weights have in checkpoints.

Subclasses build their convolutions and say how one is applied (:meth:`ConvStack.convolve`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.graphs.fields import batch_vector
from atomgraph.nn.activations import activation
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout
from atomgraph.nn.scatter import scatter_mean

NORMS = ("none", "layer", "batch")
JUMPING_KNOWLEDGE = ("none", "cat", "max")


@dataclass
class Edges:
    """The edges a convolution sees: ``index`` [2, E] (source, target) and ``attr`` [E, F_bond] or None."""

    index: torch.Tensor
    attr: torch.Tensor | None


def make_norm(kind: str, dim: int) -> nn.Module:
    """Node-wise normalisation: "none", "layer" (LayerNorm per node) or "batch" (BatchNorm over nodes)."""
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    return nn.Identity()


class ConvStack(nn.Module):
    """Input projection, convolutions with norm/activation/dropout/residual, jumping knowledge, pool, MLP.

    Args:
        convs: the L convolutions, each mapping [N, hidden] node states to [N, hidden].
        atom_dim: width of ``x``; edge_dim: width of ``edge_attr`` (None: no bond features).
        reductions: the TargetSpec reduction of each target; only its length (the number of outputs) is
            used here: every target is read out ``"pooled"``.
        edge_features: append the mean incoming ``edge_attr`` to each atom's input (GCN, GraphSAGE).
        norm: "none", "layer" or "batch"; residual: add each layer's input to its output.
        jumping_knowledge: "none" (last layer), "cat" (concatenate all layers) or "max" (elementwise).
        pool: the node pool, any :data:`atomgraph.nn.POOLS` kind; act: activation name.
    """

    def __init__(
        self,
        convs: Sequence[nn.Module],
        atom_dim: int,
        edge_dim: int | None,
        reductions: Sequence[str],
        hidden: int,
        dropout: float,
        norm: str,
        residual: bool,
        jumping_knowledge: str,
        pool: str,
        act: str,
        edge_features: bool = False,
        set2set_steps: int = 3,
    ):
        super().__init__()
        if not convs:
            raise ValueError("a graph network needs at least one layer")
        if jumping_knowledge not in JUMPING_KNOWLEDGE:
            raise ValueError(
                f"jumping_knowledge must be one of {JUMPING_KNOWLEDGE}, got {jumping_knowledge!r}"
            )
        self.input_edge_features = bool(edge_features) and edge_dim is not None
        in_dim = atom_dim + (edge_dim if self.input_edge_features else 0)
        self.embed = nn.Linear(in_dim, hidden)
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(make_norm(norm, hidden) for _ in convs)
        self.act = activation(act)
        self.dropout = nn.Dropout(dropout)
        self.residual = residual
        self.jumping_knowledge = jumping_knowledge
        state_dim = hidden * len(convs) if jumping_knowledge == "cat" else hidden
        self.readout = GraphReadout(pool, state_dim, set2set_steps=set2set_steps)
        self.head = MLP([self.readout.out_dim, hidden, len(reductions)], act=act)

    def atom_inputs(self, graph: Data) -> torch.Tensor:
        """``x`` [N, F_atom], with the mean incoming bond features appended if ``edge_features``."""
        if not self.input_edge_features:
            return graph.x
        bonds = scatter_mean(graph.edge_attr, graph.edge_index[1], graph.num_nodes)
        return torch.cat([graph.x, bonds], dim=-1)

    def edges(self, graph: Data) -> Edges:
        """The edges the convolutions use (GraphSAGE subsamples them here)."""
        return Edges(graph.edge_index, getattr(graph, "edge_attr", None))

    def convolve(self, conv: nn.Module, h: torch.Tensor, edges: Edges) -> torch.Tensor:
        """One convolution: [N, hidden] -> [N, hidden]."""
        raise NotImplementedError

    def node_states(self, graph: Data) -> list[torch.Tensor]:
        """Node states after each layer: L tensors [N, hidden]."""
        h = self.embed(self.atom_inputs(graph))
        edges = self.edges(graph)
        states = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            out = self.dropout(self.act(norm(self.convolve(conv, h, edges))))
            h = h + out if self.residual else out
            states.append(h)
        return states

    def jump(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Jumping knowledge: [N, hidden] (none, max) or [N, L * hidden] (cat)."""
        if self.jumping_knowledge == "cat":
            return torch.cat(states, dim=-1)
        if self.jumping_knowledge == "max":
            return torch.stack(states).amax(dim=0)
        return states[-1]

    def forward(self, graph: Data) -> torch.Tensor:
        """Graph or batch -> predictions [B, T]."""
        batch, num_graphs = batch_vector(graph)
        return self.head(self.readout(self.jump(self.node_states(graph)), batch, num_graphs))
