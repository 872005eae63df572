"""Radius graphs over periodic images: every pair within a cutoff, or the k nearest within it."""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data

from atomgraph.graphs.fields import cell_tensor, pbc_tensor
from atomgraph.graphs.neighbors import neighbor_list


def radius_graph(
    atoms: Atoms,
    cutoff: float,
    max_neighbors: int | None = None,
    dtype: torch.dtype | None = None,
) -> Data:
    """Graph of all directed pairs closer than ``cutoff`` Å, over every periodic image.

    Correct for cells smaller than the cutoff (an atom then sees several images of the same
    neighbour, and its own images), for mixed periodicity (slabs, wires) and for molecules (no
    cell). ``max_neighbors`` keeps only the k nearest of each atom (ties broken by neighbour index);
    nothing is capped unless asked. Returns ``Data(z, pos, cell, pbc, edge_index, edge_shift,
    natoms)`` with the fields of :mod:`atomgraph.graphs.fields`; without ``max_neighbors`` the graph
    is symmetric and laid out as pairs then their reverses (``edge_forward`` marks the first half).
    """
    dtype = dtype or torch.get_default_dtype()
    if max_neighbors is None:
        # each pair once, then reversed in the same order: models may compute pair terms once
        pairs = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff, half=True)
        source, target = np.concatenate([pairs.j, pairs.i]), np.concatenate([pairs.i, pairs.j])
        shift = np.concatenate([pairs.shift, -pairs.shift])
        forward = torch.arange(len(source)) < len(pairs)
    else:
        pairs = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff, max_neighbors)
        source, target, shift, forward = pairs.j, pairs.i, pairs.shift, None
    # message flows from neighbour j (row 0) to centre i (row 1)
    edge_index = torch.from_numpy(np.stack([source, target]))
    graph = Data(
        z=torch.from_numpy(atoms.numbers.astype(np.int64)),
        pos=torch.tensor(atoms.positions, dtype=dtype),
        cell=cell_tensor(atoms.cell.array, dtype),
        pbc=pbc_tensor(atoms.pbc),
        edge_index=edge_index,
        edge_shift=torch.from_numpy(shift),
        natoms=torch.tensor([len(atoms)]),
    )
    if forward is not None:
        graph.edge_forward = forward
    return graph
