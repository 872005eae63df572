"""PyTorch Geometric's SchNet (``torch_geometric.nn.models.SchNet``) for the peer harness.

PyG's own ``radius_graph`` needs torch_cluster, which has no wheel here, so the model gets its graph
through SchNet's ``interaction_graph`` hook: the pairs within the cutoff over periodic images (ASE's
neighbour list, built once in ``setup``), with lengths computed from the positions in every call so
that forces come out of autograd. PyG has no ASE calculator: no MD section.
"""

from __future__ import annotations

import numpy as np
import torch
from ase.neighborlist import neighbor_list
from common import Bench, ModelBench
from torch import nn


def versions() -> dict[str, str]:
    import torch_geometric

    return {"torch_geometric": torch_geometric.__version__, "torch": torch.__version__}


class GivenGraph(nn.Module):
    """SchNet's ``interaction_graph``: fixed pairs (and periodic shifts in Å), lengths from ``pos``."""

    def __init__(self, edge_index: torch.Tensor, shifts: torch.Tensor):
        super().__init__()
        self.register_buffer("edge_index", edge_index)
        self.register_buffer("shifts", shifts)

    def forward(self, pos: torch.Tensor, batch: torch.Tensor):
        source, target = self.edge_index
        vectors = pos.index_select(0, source) - pos.index_select(0, target) + self.shifts
        return self.edge_index, torch.linalg.vector_norm(vectors, dim=-1)


def graph(frames, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    edges, shifts, offset = [], [], 0
    for atoms in frames:
        i, j, shift = neighbor_list("ijS", atoms, cutoff)
        edges.append(np.stack([j, i]) + offset)  # message from j (source) to i
        shifts.append(shift @ atoms.cell.array)
        offset += len(atoms)
    return (
        torch.from_numpy(np.concatenate(edges, axis=1)).long(),
        torch.from_numpy(np.concatenate(shifts)).float(),
    )


def setup(family: str, hparams: dict, frames, mode: str, device: str = "cpu", steps: int = 10) -> Bench:
    from torch_geometric.nn.models import SchNet

    if family != "schnet":
        raise ValueError(f"PyG has no {family} potential")
    if mode == "md":
        raise ValueError("PyG has no ASE calculator")
    edge_index, shifts = graph(frames, hparams["cutoff"])
    model = SchNet(
        hidden_channels=hparams["hidden"],
        num_filters=hparams["filters"],
        num_interactions=hparams["interactions"],
        num_gaussians=hparams["num_rbf"],
        cutoff=hparams["cutoff"],
        interaction_graph=GivenGraph(edge_index, shifts),
        readout="add",
    ).to(device)
    z = torch.from_numpy(np.concatenate([a.numbers for a in frames])).long().to(device)
    pos0 = torch.from_numpy(np.concatenate([a.positions for a in frames])).float().to(device)
    batch = torch.repeat_interleave(torch.arange(len(frames)), torch.tensor([len(a) for a in frames])).to(
        device
    )

    def forward(training: bool):
        pos = pos0.clone().requires_grad_(True)
        energy = model(z, pos, batch).view(-1)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=training)
        return energy, -grad

    return ModelBench(model, forward, frames, mode, torch.float32)
