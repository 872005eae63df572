"""Edges of bond graphs beyond the bonds' own features: Gilmer et al.'s virtual edges (a separate edge
type for non-bonded atom pairs within a cutoff) and Gaussian features of every edge's length."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from atomgraph.features.radial import GaussianRBF
from atomgraph.structures.errors import StructureError

VIRTUAL_EDGE_TYPE = 5
"""``edge_type`` of a virtual edge (bond classes are 0-4: :func:`~atomgraph.features.bond_type_index`)."""


def add_virtual_edges(graph: Data, cutoff: float | None = None) -> Data:
    """Add a directed edge between every pair of atoms not already joined (closer than ``cutoff`` Å
    when given; a molecule without 3D coordinates, ``has_3d`` False, gets every pair).

    The new edges get ``edge_type`` = :data:`VIRTUAL_EDGE_TYPE`, zero bond features and a final
    ``edge_attr`` column that is 1 for virtual edges and 0 for chemical bonds, so models can tell them
    apart; distances come from ``pos`` as for any edge. Returns a new graph (molecules only: a periodic
    cell is an error).
    """
    if bool(graph.pbc.any()):
        raise ValueError("virtual edges are defined for molecules, not periodic cells")
    n = int(graph.num_nodes)
    joined = torch.eye(n, dtype=torch.bool)
    joined[graph.edge_index[0], graph.edge_index[1]] = True
    candidates = ~joined
    if cutoff is not None and ("has_3d" not in graph or bool(graph.has_3d.all())):
        candidates &= torch.cdist(graph.pos, graph.pos) < cutoff
    new = candidates.nonzero().t()
    out = graph.clone()
    out.edge_index = torch.cat([graph.edge_index, new], dim=1)
    flags = torch.cat([torch.zeros(graph.edge_index.shape[1], 1), torch.ones(new.shape[1], 1)])
    bond_attr = torch.cat(
        [graph.edge_attr, graph.edge_attr.new_zeros(new.shape[1], graph.edge_attr.shape[1])]
    )
    out.edge_attr = torch.cat([bond_attr, flags.to(bond_attr.dtype)], dim=1)
    out.edge_type = torch.cat([graph.edge_type, torch.full((new.shape[1],), VIRTUAL_EDGE_TYPE)])
    out.edge_shift = torch.zeros((out.edge_index.shape[1], 3), dtype=torch.long)
    if "edge_forward" in out:  # the appended edges break the pairs-then-reverses layout
        del out.edge_forward
    return out


def with_distance_features(graph: Data, count: int, cutoff: float) -> Data:
    """``edge_attr`` with ``count`` Gaussians of each edge's length appended (centres evenly spaced over
    0..``cutoff`` Å, width their spacing). A molecule without 3D coordinates is a StructureError."""
    if "has_3d" in graph and not bool(graph.has_3d.all()):
        raise StructureError("data.graph.edge_rbf needs 3D coordinates, and this molecule has none")
    source, target = graph.edge_index
    lengths = (graph.pos[source] - graph.pos[target]).norm(dim=-1)
    out = graph.clone()
    out.edge_attr = torch.cat(
        [graph.edge_attr, GaussianRBF(0.0, cutoff, count)(lengths).to(graph.edge_attr.dtype)], dim=1
    )
    return out
