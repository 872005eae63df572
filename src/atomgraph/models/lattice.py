"""Lattice parameters as global features, computed from ``graph.cell`` inside a model.

``a, b, c`` (Å) and ``α, β, γ`` (degrees) describe the *chosen* cell: a supercell or another setting of
the same crystal gives other values, so only the volume per atom is invariant to that choice. Models
use :func:`scaled_lattice_features` (lengths / 10 Å, cosines of the angles, volume per atom / 20 Å^3),
which are of order one. Molecules (zero cell) give zeros.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.structure_features import read_state

LATTICE_DIM = 7
LATTICE_NAMES = ("a", "b", "c", "alpha", "beta", "gamma", "volume_per_atom")


def _lengths_cosines(graph: Data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lattice vector lengths [B, 3] (Å), cosines of α, β, γ [B, 3] and volume per atom [B] (Å^3)."""
    cell = graph.cell.view(-1, 3, 3)
    lengths = torch.linalg.vector_norm(cell, dim=-1)
    pairs = ((1, 2), (0, 2), (0, 1))  # α between b and c, β between a and c, γ between a and b
    dots = torch.stack([(cell[:, i] * cell[:, j]).sum(-1) for i, j in pairs], dim=-1)
    norms = torch.stack([lengths[:, i] * lengths[:, j] for i, j in pairs], dim=-1)
    cosines = torch.where(norms > 0, dots / norms.clamp(min=1e-12), torch.zeros_like(dots))
    batch, num_graphs = batch_vector(graph)
    atoms = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(cell.dtype)
    volume = torch.linalg.det(cell).abs() / atoms
    return lengths, cosines.clamp(-1.0, 1.0), volume


def lattice_features(graph: Data) -> torch.Tensor:
    """``[B, 7]``: a, b, c (Å), α, β, γ (degrees; 90 for a zero cell), volume per atom (Å^3)."""
    lengths, cosines, volume = _lengths_cosines(graph)
    return torch.cat([lengths, torch.rad2deg(torch.arccos(cosines)), volume.unsqueeze(-1)], dim=-1)


def global_inputs(graph: Data, lattice: bool, state_width: int, num_graphs: int) -> torch.Tensor | None:
    """A crystal's global inputs ``[B, G]``: :func:`scaled_lattice_features` when ``lattice`` and the
    spec's state features ``graph.state`` ``[B, state_width]`` when ``state_width``; None for neither."""
    parts = [read_state(graph, state_width, num_graphs)] if state_width else []
    if lattice:
        parts.append(scaled_lattice_features(graph))
    return torch.cat(parts, dim=-1) if parts else None


def scaled_lattice_features(graph: Data) -> torch.Tensor:
    """``[B, 7]`` model inputs: a/10, b/10, c/10 (Å), cos α, cos β, cos γ, volume per atom / 20 (Å^3)."""
    lengths, cosines, volume = _lengths_cosines(graph)
    return torch.cat([lengths / 10.0, cosines, (volume / 20.0).unsqueeze(-1)], dim=-1)
