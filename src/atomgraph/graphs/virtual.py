"""Gilmer et al.'s graph options: virtual edges between all atom pairs, and a master (global) node."""

from __future__ import annotations

import torch
from torch_geometric.data import Data

VIRTUAL_EDGE_TYPE = 5
MASTER_EDGE_TYPE = 6


def _append_flag_column(tensor: torch.Tensor, flag: bool) -> torch.Tensor:
    column = torch.full((tensor.shape[0], 1), float(flag), dtype=tensor.dtype)
    return torch.cat([tensor, column], dim=1)


def _without_pair_layout(graph: Data) -> Data:
    """Appended edges break the pairs-then-reverses layout: drop its marker."""
    if "edge_forward" in graph:
        del graph.edge_forward
    return graph


def add_virtual_edges(graph: Data) -> Data:
    """Add a directed edge between every pair of atoms not already joined (a molecule only).

    The new edges get ``edge_type`` = ``VIRTUAL_EDGE_TYPE``, zero bond features and a final
    ``edge_attr`` column that is 1 for virtual edges and 0 for chemical bonds, so models can tell them
    apart; distances come from ``pos`` as for any edge. Returns a new graph.
    """
    if bool(graph.pbc.any()):
        raise ValueError("virtual edges between all pairs are defined for molecules, not periodic cells")
    n = int(graph.num_nodes)
    joined = torch.eye(n, dtype=torch.bool)
    joined[graph.edge_index[0], graph.edge_index[1]] = True
    new = (~joined).nonzero().t()
    out = graph.clone()
    out.edge_index = torch.cat([graph.edge_index, new], dim=1)
    out.edge_attr = torch.cat(
        [
            _append_flag_column(graph.edge_attr, False),
            _append_flag_column(graph.edge_attr.new_zeros(new.shape[1], graph.edge_attr.shape[1]), True),
        ]
    )
    out.edge_type = torch.cat([graph.edge_type, torch.full((new.shape[1],), VIRTUAL_EDGE_TYPE)])
    out.edge_shift = torch.zeros((out.edge_index.shape[1], 3), dtype=torch.long)
    return _without_pair_layout(out)


def add_master_node(graph: Data) -> Data:
    """Append a master node joined to every atom in both directions (Gilmer's global state).

    The master node has ``z`` = 0, zero atom features plus a final ``x`` column that flags it, and sits
    at the centroid; ``is_master`` [N + 1] marks it and ``natoms`` still counts real atoms only. Its
    edges have ``edge_type`` = ``MASTER_EDGE_TYPE`` and zero bond features.
    """
    n = int(graph.num_nodes)
    master = torch.tensor(n)
    atoms = torch.arange(n)
    new = torch.cat([torch.stack([atoms, master.expand(n)]), torch.stack([master.expand(n), atoms])], dim=1)
    out = graph.clone()
    out.x = torch.cat(
        [
            _append_flag_column(graph.x, False),
            _append_flag_column(graph.x.new_zeros(1, graph.x.shape[1]), True),
        ]
    )
    out.z = torch.cat([graph.z, torch.zeros(1, dtype=graph.z.dtype)])
    out.pos = torch.cat([graph.pos, graph.pos.mean(0, keepdim=True)])
    out.is_master = torch.cat([torch.zeros(n, dtype=torch.bool), torch.ones(1, dtype=torch.bool)])
    out.edge_index = torch.cat([graph.edge_index, new], dim=1)
    if graph.edge_attr is not None:
        out.edge_attr = torch.cat(
            [graph.edge_attr, graph.edge_attr.new_zeros(new.shape[1], graph.edge_attr.shape[1])]
        )
    if getattr(graph, "edge_type", None) is not None:
        out.edge_type = torch.cat([graph.edge_type, torch.full((new.shape[1],), MASTER_EDGE_TYPE)])
    out.edge_shift = torch.zeros((out.edge_index.shape[1], 3), dtype=torch.long)
    return _without_pair_layout(out)
