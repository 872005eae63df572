"""SchNet (Schütt et al. 2017/2018): continuous-filter convolutions on interatomic distances.

embedding(z) -> T x [continuous-filter interaction, residual] -> atom-wise MLP -> sum/mean per target.
Works on molecules and periodic cells alike: distances come from :func:`edge_vectors`, so energies
are differentiable w.r.t. positions and strain.

Speed: the first layer of every interaction's filter network reads the same radial basis, so all of
them are computed in one matmul ([E, n_rbf] @ [n_rbf, T * F]) instead of T.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import CosineCutoff, GaussianRBF
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.models.registry import register_model
from atomgraph.nn.activations import ShiftedSoftplus
from atomgraph.nn.atomwise import AtomwiseHead


class CFConvInteraction(nn.Module):
    """One SchNet interaction: x_i += Dense(ssp(Dense(sum_j Lin(x_j) * W(r_ij)))).

    The filter W(r_ij) = Dense(ssp(first(r_ij))) * cutoff(r_ij); ``first`` is applied by the caller
    (batched over interactions), so this block receives its [E, F] pre-activation.
    """

    def __init__(self, hidden: int, filters: int):
        super().__init__()
        self.act = ShiftedSoftplus()
        self.filter_out = nn.Linear(filters, filters)
        self.to_filters = nn.Linear(hidden, filters, bias=False)
        self.update = nn.Sequential(nn.Linear(filters, hidden), ShiftedSoftplus(), nn.Linear(hidden, hidden))

    def forward(
        self,
        h: torch.Tensor,
        filter_pre: torch.Tensor,
        envelope: torch.Tensor,
        source: torch.Tensor,
        target: torch.Tensor,
    ) -> torch.Tensor:
        weight = self.filter_out(self.act(filter_pre)) * envelope.unsqueeze(-1)
        messages = self.to_filters(h)[source] * weight
        aggregated = torch.zeros_like(messages[: h.shape[0]]).index_add_(0, target, messages)
        return h + self.update(aggregated)


@register_model("schnet")
class SchNet(nn.Module):
    """SchNet for graph properties and potentials.

    Args:
        extensive: one flag per target (sum vs mean pooling); its length is the number of outputs.
        hidden: atom feature width (paper: 64 for QM9 in v1, 128 in schnetpack).
        filters: filter width (paper: 64/128).
        interactions: number of interaction blocks (paper: 3 for QM9 v1, 6 in schnetpack).
        num_rbf: Gaussians between 0 and ``cutoff`` Å (paper: 0-30 Å every 0.1 Å; schnetpack: 0-5 Å, 20-50).
        cutoff: cosine cutoff radius, Å.
        max_z: largest atomic number.
        readout: "auto" (sum for extensive, mean for intensive) or a readout name.
    Input: a radius graph or batch (``z``, ``pos``, ``edge_index``, ``edge_shift``, ``cell``).
    Output: [B, T] in the normalised units of the task.
    """

    graph_kind = "radius"

    def __init__(
        self,
        extensive: Sequence[bool] = (True,),
        hidden: int = 128,
        filters: int = 128,
        interactions: int = 6,
        num_rbf: int = 50,
        cutoff: float = 5.0,
        max_z: int = 100,
        readout: str = "auto",
    ):
        super().__init__()
        self.cutoff = cutoff
        self.embedding = nn.Embedding(max_z + 1, hidden)
        self.rbf = GaussianRBF(0.0, cutoff, num_rbf)
        self.envelope = CosineCutoff(cutoff)
        self.filter_in = nn.Linear(num_rbf, interactions * filters)
        self.filters = filters
        self.interactions = nn.ModuleList(CFConvInteraction(hidden, filters) for _ in range(interactions))
        self.head = AtomwiseHead(hidden, extensive, hidden // 2, act="ssp", readout=readout)

    def atom_states(self, graph: Data) -> torch.Tensor:
        """Atom features [N, hidden] after all interactions."""
        vectors = edge_vectors(graph)
        distances = edge_lengths(vectors)
        filter_pre = self.filter_in(self.rbf(distances)).view(-1, len(self.interactions), self.filters)
        envelope = self.envelope(distances)
        source, target = graph.edge_index
        h = self.embedding(graph.z)
        for k, interaction in enumerate(self.interactions):
            h = interaction(h, filter_pre[:, k], envelope, source, target)
        return h

    def forward(self, graph: Data) -> torch.Tensor:
        batch, num_graphs = batch_vector(graph)
        return self.head(self.atom_states(graph), batch, num_graphs)
