"""MEGNet (Chen, Ye, Zuo, Zheng & Ong, Chem. Mater. 31, 3564 (2019)): edge, atom and global-state updates.

Per block, with e_k the bond (edge) states, v_i the atom states and u the crystal's global state:

    e_k' = φ_e(v_i ‖ v_j ‖ e_k ‖ u)                     (i = the edge's centre, j = its neighbour)
    v_i' = φ_v(mean_{k: edges into i} e_k' ‖ v_i ‖ u)
    u'   = φ_u(mean_k e_k' ‖ mean_i v_i' ‖ u)

each φ a 64-64-32 MLP with shifted softplus, a 64-32 dense "pre" layer on e, v, u before every block
but the first, and residual connections around each block (as in the reference code). Inputs: a
learned 16-dim element embedding, a Gaussian expansion of the distance (100 centres, width 0.5 Å)
and the state vector: the graph spec's state features ``graph.state`` [1, S] (e.g. the space group,
:mod:`atomgraph.apps.crystals.crystal_features`), or the paper's [0, 0] for crystals without them,
optionally with lattice parameters appended. The spec's per-site features join the element embedding.
Readout (``"pooled"``, what ``"auto"`` gives targets that are not sums): set2set over atoms and over
edges (or their means), concatenated with u, then 32-16 dense layers; ``"sum"`` and ``"atom_mean"``
targets use an atom-wise head on v_i ‖ u instead (:mod:`atomgraph.nn.target_readout`).

The paper builds crystal graphs with a 5 Å radius; here the model takes whatever graph the data has
(the crystal default is 12 nearest neighbours within 8 Å, shared with CGCNN for a fair comparison) and
ignores edges longer than ``interaction_cutoff`` (default: the graph cutoff). For the paper's graph use
``data.graph: megnet_crystal`` (5 Å, no neighbour cap).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import GaussianRBF
from atomgraph.features.radial import gaussian_preset
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.spec import GraphSpec
from atomgraph.graphs.structure_features import read_site_attr
from atomgraph.models.card import ModelCard
from atomgraph.models.cgcnn import within_cutoff
from atomgraph.models.lattice import LATTICE_DIM, global_inputs
from atomgraph.models.registry import register_model
from atomgraph.nn.activations import activation
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout
from atomgraph.nn.scatter import scatter_mean
from atomgraph.nn.target_readout import TargetHead, resolve_readouts

MEGNET_POOLS = ("set2set", "mean")


def dense(sizes: Sequence[int], act: str = "ssp") -> nn.Sequential:
    """Linear layers each followed by the activation (MEGNet's stacked Dense layers)."""
    return nn.Sequential(MLP(sizes, act), activation(act))


class MEGNetBlock(nn.Module):
    """One MEGNet block with its residual connection: ``(v [N, d], e [E, d], u [B, d]) -> same shapes``."""

    def __init__(self, dim: int, hidden: Sequence[int], pre: bool, act: str = "ssp"):
        super().__init__()
        self.pre = nn.ModuleList(dense([dim, hidden[0], dim], act) for _ in range(3)) if pre else None
        self.phi_e = dense([4 * dim, *hidden, dim], act)
        self.phi_v = dense([3 * dim, *hidden, dim], act)
        self.phi_u = dense([3 * dim, *hidden, dim], act)

    def forward(
        self,
        v: torch.Tensor,
        e: torch.Tensor,
        u: torch.Tensor,
        edge_index: torch.Tensor,
        node_graph: torch.Tensor,
        edge_graph: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v0, e0, u0 = v, e, u
        if self.pre is not None:
            v, e, u = self.pre[0](v), self.pre[1](e), self.pre[2](u)
        source, target = edge_index
        num_atoms, num_graphs = v.shape[0], u.shape[0]
        e = self.phi_e(torch.cat([v[target], v[source], e, u[edge_graph]], dim=-1))
        v = self.phi_v(torch.cat([scatter_mean(e, target, num_atoms), v, u[node_graph]], dim=-1))
        u = self.phi_u(
            torch.cat(
                [scatter_mean(e, edge_graph, num_graphs), scatter_mean(v, node_graph, num_graphs), u], -1
            )
        )
        return v0 + v, e0 + e, u0 + u


CARD = ModelCard(
    "radius",
    "cgcnn_crystal",
    ("z", "pos", "cell", "site_attr", "state"),
    "blocks",
    reads_positions=True,
    intensive_readout="pooled",
)


@register_model("megnet", card=CARD)
class MEGNet(nn.Module):
    """MEGNet for crystal (and molecular) graph properties.

    Args:
        reductions: the :attr:`~atomgraph.targets.TargetSpec.reduction` of each target; its length is
            the number of outputs.
        dim: state width of atoms, edges and the global state (paper: 32).
        hidden: hidden widths of φ_e, φ_v, φ_u (paper: 64, 64); the pre layers use ``hidden[0]``.
        blocks: number of MEGNet blocks (paper: 3).
        embedding_dim: element embedding width (paper: 16).
        graph: the GraphSpec of the input graphs.
        num_rbf, rbf_width: Gaussians on 0..interaction_cutoff Å and their width σ (paper: 100, 0.5 Å).
        rbf: a named Gaussian grid instead (:data:`~atomgraph.features.radial.GAUSSIAN_PRESETS`, e.g.
            ``"materials_lecture"``: seed 004's 0-5 Å, step 0.1, σ 0.2).
        interaction_cutoff: Å, at most ``graph.cutoff`` (default: it); longer edges are ignored.
        state_dim: width S of the state input: the graph spec's ``state_features`` fill it from the data
            (``graph.state``); without them it is this many zeros (paper: 2 for crystals).
            The spec's ``site_features`` (``graph.site_attr``) join each atom's embedding.
        pool: node pool of atoms and edges for "pooled" targets: "set2set" (paper) or "mean".
        set2set_steps: set2set processing steps (paper: 3).
        readout: per-target readout (:mod:`atomgraph.nn.target_readout`): "auto" ("sum" for ``sum``
            targets, "pooled" for the others), "sum", "mean" (of atomic contributions), "pooled", or a
            list with one per target.
        lattice: append a/b/c, cos α/β/γ and volume per atom to the state input.
        max_z: largest atomic number.
    Input: a radius graph or batch (``graph.state`` [B, S] and ``graph.site_attr`` [N, F] when the
    spec has state / site features). Output: [B, T] (normalised units).
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("mean",),
        dim: int = 32,
        hidden: Sequence[int] = (64, 64),
        blocks: int = 3,
        embedding_dim: int = 16,
        num_rbf: int = 100,
        rbf_width: float = 0.5,
        rbf: str | None = None,
        interaction_cutoff: float | None = None,
        state_dim: int | None = None,
        pool: str = "set2set",
        set2set_steps: int = 3,
        readout: str | Sequence[str] = "auto",
        lattice: bool = False,
        max_z: int = 100,
    ):
        super().__init__()
        if pool not in MEGNET_POOLS:
            raise ValueError(f"pool must be one of {MEGNET_POOLS}, got {pool!r}")
        hidden = list(hidden)
        self.cutoff = graph.interaction_cutoff(interaction_cutoff, "megnet")
        if graph.state_width and state_dim not in (None, graph.state_width):
            raise ValueError(
                f"model.state_dim={state_dim} but data.graph.state_features {list(graph.state_features)} "
                f"give {graph.state_width} columns; leave state_dim out"
            )
        self.from_data = bool(graph.state_width)
        self.state_dim = graph.state_width or (2 if state_dim is None else state_dim)
        self.lattice = lattice
        self.embedding = nn.Embedding(max_z + 1, embedding_dim)
        self.site_width = graph.site_width
        self.rbf = (
            gaussian_preset(rbf, self.cutoff)
            if rbf
            else GaussianRBF(0.0, self.cutoff, num_rbf, width=rbf_width)
        )
        self.in_atoms = dense([embedding_dim + self.site_width, hidden[0], dim])
        self.in_edges = dense([self.rbf.num, hidden[0], dim])
        self.in_state = dense([self.state_dim + (LATTICE_DIM if lattice else 0), hidden[0], dim])
        self.blocks = nn.ModuleList(MEGNetBlock(dim, hidden, pre=k > 0) for k in range(blocks))
        self.pool_atoms = GraphReadout(pool, dim, set2set_steps)
        self.pool_edges = GraphReadout(pool, dim, set2set_steps)
        pooled_dim = self.pool_atoms.out_dim + self.pool_edges.out_dim + dim
        readouts = resolve_readouts(readout, reductions, CARD.intensive_readout)
        self.head = TargetHead(pooled_dim, 2 * dim, readouts, [32, 16], act="ssp")

    def state(self, graph: Data, num_graphs: int) -> torch.Tensor:
        """The state input [B, S (+7)]: ``graph.state`` (the spec's state features, or state variables a
        dataset sets, such as a temperature), zeros when a spec without state features meets graphs
        without one; lattice features appended if enabled."""
        if self.from_data or getattr(graph, "state", None) is not None:
            return global_inputs(graph, self.lattice, self.state_dim, num_graphs)
        zeros = graph.pos.new_zeros(num_graphs, self.state_dim)
        lattice = global_inputs(graph, self.lattice, 0, num_graphs)
        return zeros if lattice is None else torch.cat([zeros, lattice], dim=-1)

    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        edge_index, lengths = within_cutoff(graph, self.cutoff)
        edge_graph = batch.index_select(0, edge_index[1])
        atoms = self.embedding(graph.z)
        if self.site_width:
            atoms = torch.cat([atoms, read_site_attr(graph, self.site_width).to(atoms.dtype)], dim=-1)
        v = self.in_atoms(atoms)
        e = self.in_edges(self.rbf(lengths))
        u = self.in_state(self.state(graph, num_graphs))
        for block in self.blocks:
            v, e, u = block(v, e, u, edge_index, batch, edge_graph)
        pooled = None
        if self.head.needs_pooled:
            atoms = self.pool_atoms(v, batch, num_graphs)
            edges = self.pool_edges(e, edge_graph, num_graphs)
            pooled = torch.cat([atoms, edges, u], dim=-1)
        atom_inputs = torch.cat([v, u.index_select(0, batch)], dim=-1) if self.head.needs_atoms else None
        return self.head(pooled, atom_inputs, batch, num_graphs)
