"""The one graph type of atomgraph: a :class:`torch_geometric.data.Data` with these fields.

Every builder in :mod:`atomgraph.graphs` returns such a ``Data``; PyG's ``Batch`` concatenates them.

========== ============= ======= =================================================================
field      shape         dtype   meaning
========== ============= ======= =================================================================
z          [N]           int64   atomic numbers
pos        [N, 3]        float   Cartesian positions, Å
cell       [1, 3, 3]     float   lattice vectors as rows, Å (zeros for a molecule); a batch of B
                                 graphs holds [B, 3, 3]
pbc        [1, 3]        bool    periodicity along each lattice vector
edge_index [2, E]        int64   ``edge_index[0]`` = source atom j (the neighbour),
                                 ``edge_index[1]`` = target atom i (the centre that receives the
                                 message); every edge appears in both directions
edge_shift [E, 3]        int64   integer image offsets S of the source atom: the edge vector is
                                 ``pos[j] - pos[i] + S @ cell`` (see :func:`edge_vectors`)
edge_forward [E]         bool    symmetric graphs only: True on the first edge of each pair; the
                                 reverse edges (False) follow in the same order, in every graph and
                                 so in every batch (see :func:`edge_pairs`)
x          [N, F_atom]   float   atom features (bonded graphs; layout in ``AtomFeaturizer.slices``)
edge_attr  [E, F_bond]   float   bond features (bonded graphs; layout in ``BondFeaturizer.slices``)
edge_type  [E]           int64   integer edge type (bonded graphs: bond order class; virtual edges)
y          [1, T]        float   graph targets (NaN = missing label); per-atom targets in other
                                 fields (``forces`` [N, 3] in eV/Å, ``energy`` [1] in eV,
                                 ``stress`` [1, 3, 3] in eV/Å^3)
natoms     [1]           int64   number of real atoms (a master node, when present, is not counted)
========== ============= ======= =================================================================
"""

from __future__ import annotations

import numpy as np
import torch


def cell_tensor(cell: np.ndarray | None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Lattice vectors (rows, Å) as a ``[1, 3, 3]`` tensor; ``None`` gives zeros (a molecule)."""
    array = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=float).reshape(3, 3)
    return torch.tensor(array, dtype=dtype or torch.get_default_dtype()).unsqueeze(0)


def pbc_tensor(pbc: np.ndarray | bool | None) -> torch.Tensor:
    """Periodicity flags as a ``[1, 3]`` bool tensor."""
    flags = np.zeros(3, dtype=bool) if pbc is None else np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    return torch.tensor(flags.copy()).unsqueeze(0)


def batch_vector(graph) -> tuple[torch.Tensor, int]:
    """The node-to-graph index [N] and the number of graphs, for a single graph or a PyG batch."""
    batch = getattr(graph, "batch", None)
    if batch is None:
        return torch.zeros(graph.num_nodes, dtype=torch.long, device=graph.z.device), 1
    return batch, int(graph.num_graphs)
