"""Pool per-atom outputs [N, T] into graph outputs [B, T], sum or mean per target."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from atomgraph.nn.scatter import scatter_mean, scatter_sum

POOLINGS = ("auto", "sum", "mean")


def check_pooling(readout: str) -> str:
    """``readout`` if it is one of :data:`POOLINGS`, else a ValueError."""
    if readout not in POOLINGS:
        raise ValueError(f"readout must be one of {POOLINGS}, got {readout!r}")
    return readout


def pool_per_target(
    per_atom: torch.Tensor,
    batch: torch.Tensor,
    num_graphs: int,
    extensive: torch.Tensor | Sequence[bool],
    readout: str = "auto",
) -> torch.Tensor:
    """Per-atom contributions ``[N, T]`` -> ``[B, T]``.

    ``readout`` "auto": sum over the atoms of a graph for targets flagged ``extensive`` (energies),
    mean for the others (intensive); "sum"/"mean": one pooling for every target.
    """
    if readout == "sum":
        return scatter_sum(per_atom, batch, num_graphs)
    if readout == "mean":
        return scatter_mean(per_atom, batch, num_graphs)
    flags = torch.as_tensor(extensive, dtype=torch.bool, device=per_atom.device)
    summed = scatter_sum(per_atom, batch, num_graphs)
    if bool(flags.all()):
        return summed
    counts = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(summed.dtype).unsqueeze(1)
    return torch.where(flags, summed, summed / counts)
