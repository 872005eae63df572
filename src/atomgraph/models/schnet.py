"""SchNet (Schütt et al. 2017/2018): continuous-filter convolutions on interatomic distances.

embedding(z) -> T x [continuous-filter interaction, residual] -> atom-wise MLP -> sum/mean per target
(the per-target readouts of :mod:`atomgraph.nn.target_readout`).
Works on molecules and periodic cells alike: distances come from :func:`edge_vectors`, so energies
are differentiable w.r.t. positions and strain.

Speed: the filter W(r_ij) = W(r_ji) depends on the pair only. On symmetric graphs (``edge_forward``,
what :func:`radius_graph` builds) distances, radial basis and filter networks are computed once per
pair and used for both directions, halving the dominant cost. The dense layers are
:class:`~atomgraph.nn.dense.Dense`: on AMD CPUs with AVX-512, in float32, their products run through
oneDNN, for which :meth:`SchNet.block_states` pads pairs and atoms to whole blocks of rows (padded rows
add nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import CosineCutoff, GaussianRBF
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import edge_lengths, edge_pairs, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.activations import ShiftedSoftplus
from atomgraph.nn.dense import Dense, onednn_applies, row_padding
from atomgraph.nn.target_readout import AtomwiseHead, resolve_readouts


class CFConvInteraction(nn.Module):
    """One SchNet interaction: x_i += Dense(ssp(Dense(sum_j Lin(x_j) * W(r_ij)))).

    The filter W(r) = Dense(ssp(Dense(rbf(r)))) * cutoff(r) is evaluated once per row of ``rbf`` [P, n_rbf]
    and ``envelope`` [P]; ``directions`` lists the (source, target) atom indices [P] of the edges that use
    those rows: the forward and the reverse edges of each pair on symmetric graphs, all edges otherwise.
    """

    def __init__(self, hidden: int, filters: int, num_rbf: int):
        super().__init__()
        self.filter_network = nn.Sequential(
            Dense(num_rbf, filters), ShiftedSoftplus(), Dense(filters, filters)
        )
        self.to_filters = Dense(hidden, filters, bias=False)
        self.update = nn.Sequential(Dense(filters, hidden), ShiftedSoftplus(), Dense(hidden, hidden))

    def forward(
        self,
        h: torch.Tensor,
        rbf: torch.Tensor,
        envelope: torch.Tensor,
        directions: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        weight = self.filter_network(rbf) * envelope.unsqueeze(-1)
        x = self.to_filters(h)
        aggregated = x.new_zeros(x.shape)
        for source, target in directions:
            aggregated.index_add_(0, target, x.index_select(0, source) * weight)
        return h + self.update(aggregated)


CARD = ModelCard.interatomic("interactions")


@register_model("schnet", card=CARD)
class SchNet(nn.Module):
    """SchNet for graph properties and potentials.

    Args:
        reductions: the :attr:`~atomgraph.targets.TargetSpec.reduction` of each target; its length is
            the number of outputs.
        hidden: atom feature width (paper: 64 for QM9 in v1, 128 in schnetpack).
        filters: filter width (paper: 64/128).
        interactions: number of interaction blocks (paper: 3 for QM9 in v1, 6 in schnetpack).
        num_rbf: Gaussians between 0 and ``cutoff`` Å (schnetpack: 20-50 over 0-5 Å).
        graph: the GraphSpec of the input graphs; the radial basis and the envelope span 0..graph.cutoff Å.
        max_z: largest atomic number.
        readout: per-target readout (:mod:`atomgraph.nn.target_readout`): "auto" (sum for ``sum``
            targets, mean of the atomic contributions for the others), "sum", "mean", "pooled", or a
            list with one per target.
        pool: node pool of the "pooled" readout (a :data:`~atomgraph.nn.readout.POOLS` kind).
    Input: a radius graph or batch (``z``, ``pos``, ``edge_index``, ``edge_shift``, ``cell``).
    Output: [B, T] in the normalised units of the task.
    """

    def __init__(
        self,
        graph: GraphSpec,
        reductions: Sequence[str] = ("sum",),
        hidden: int = 128,
        filters: int = 128,
        interactions: int = 6,
        num_rbf: int = 50,
        max_z: int = 100,
        readout: str | Sequence[str] = "auto",
        pool: str = "mean",
    ):
        super().__init__()
        self.cutoff = graph.cutoff
        self.embedding = nn.Embedding(max_z + 1, hidden)
        self.rbf = GaussianRBF(0.0, self.cutoff, num_rbf)
        self.envelope = CosineCutoff(self.cutoff)
        self.interactions = nn.ModuleList(
            CFConvInteraction(hidden, filters, num_rbf) for _ in range(interactions)
        )
        readouts = resolve_readouts(readout, reductions, CARD.intensive_readout)
        self.head = AtomwiseHead(hidden, readouts, hidden // 2, act="ssp", pool=pool)

    def atom_states(self, graph: Data) -> torch.Tensor:
        """Atom features [N, hidden] after all interactions."""
        return self.node_states(graph)[-1]

    def node_states(self, graph: Data) -> list[torch.Tensor]:
        """Atom features after each interaction: ``interactions`` tensors [N, hidden]."""
        pairs = edge_pairs(graph)
        if pairs is None:  # one filter row per edge
            first, directions = None, [(graph.edge_index[0], graph.edge_index[1])]
        else:  # one filter row per pair, used by its forward and its reverse edge
            first = pairs[0]
            directions = [(graph.edge_index[0, edges], graph.edge_index[1, edges]) for edges in pairs]
        distances = edge_lengths(edge_vectors(graph, edges=first))
        return self.block_states(graph.z, distances, directions)

    def states(
        self, z: torch.Tensor, distances: torch.Tensor, directions: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """Atom features [N, hidden] after all interactions, from tensors alone (TorchScript-compilable):
        atomic numbers ``z`` [N] (int64), ``distances`` [P] Å (one row per filter) and ``directions``, the
        (source, target) atoms [P] of the edges using those rows (see :class:`CFConvInteraction`)."""
        return self.block_states(z, distances, directions)[-1]

    def block_states(
        self, z: torch.Tensor, distances: torch.Tensor, directions: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> list[torch.Tensor]:
        """Atom features [N, hidden] after each interaction (arguments as :meth:`states`).

        Where the dense layers' fast path applies (:mod:`atomgraph.nn.dense`), pairs and atoms are padded
        to its row multiple: pairs from atom 0 to itself with an envelope of 0 (no message, no gradient),
        atoms of element 0 that no pair reaches, cut off the results. (Padding the embedded states
        instead lets the compiler fuse the embedding's lookup into the padding, where it drops the bounds
        check of the atomic numbers.)"""
        atoms = z.shape[0]
        envelope = self.envelope(distances)
        if not torch.jit.is_scripting():  # (an exported model keeps plain products)
            if onednn_applies(distances):
                extra = row_padding(distances.shape[0])
                distances = F.pad(distances, (0, extra), value=self.cutoff)
                envelope = F.pad(envelope, (0, extra))
                directions = [(F.pad(s, (0, extra)), F.pad(t, (0, extra))) for s, t in directions]
                z = F.pad(z, (0, row_padding(atoms)))
        h = self.embedding(z)
        rbf = self.rbf(distances)
        states: list[torch.Tensor] = []
        for interaction in self.interactions:
            h = interaction(h, rbf, envelope, directions)
            states.append(h[:atoms])
        return states

    def pair_atom_outputs(self, z: torch.Tensor, pairs: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Per-atom outputs [N, T] (normalised units; a ``sum`` target is their sum over the atoms) from a
        half neighbour list, from tensors alone: the entry point of the TorchScript export
        (:mod:`atomgraph.md.metatomic_export`). ``z`` [N] int64; ``pairs`` [2, P]: each pair closer than
        the cutoff once (a periodic image is a pair of its own), row 0 the neighbour j, row 1 the centre
        i; ``vectors`` [P, 3] Å: ``pos[j] - pos[i] + shift @ cell``. Pairs beyond the cutoff add
        nothing (the envelope is zero there)."""
        directions = [(pairs[0], pairs[1]), (pairs[1], pairs[0])]
        return self.head.atom_contributions(self.states(z, edge_lengths(vectors), directions))

    def interaction_range(self) -> float:
        """Å: how far away an atom still changes another's energy (cutoff x interactions)."""
        return self.cutoff * len(self.interactions)

    @torch.jit.unused  # graphs are not TorchScript types: a scripted SchNet runs pair_atom_outputs
    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        return self.head(self.atom_states(graph), batch, num_graphs)
