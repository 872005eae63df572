"""Per-target readouts for crystal models, and the check against the mismatched-readout pitfall.

Each target is read out in one of three ways:

* ``"mean"``: pool the atom states per crystal (mean, or set2set for MEGNet), then an MLP -- the
  CGCNN/MEGNet readout; intensive (band gap, moduli): unchanged when the cell is replicated;
* ``"per_atom"``: an MLP per atom, summed and divided by the number of atoms -- a per-atom quantity
  built from atomic contributions (formation energy per atom); also intensive;
* ``"sum"``: the same per-atom MLP, summed -- extensive (total energy, cell volume): grows with the cell.

``readout="auto"`` picks ``sum`` for extensive targets and ``mean`` for intensive ones. Training a
per-atom target (eV/atom) with ``sum`` teaches the model the cell size instead of the chemistry:
:func:`readout_mismatches` names such choices (seed 004, slide 23).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from atomgraph.nn.mlp import MLP
from atomgraph.nn.scatter import scatter_sum
from atomgraph.targets import TargetSpec

HEAD_READOUTS = ("mean", "sum", "per_atom")


def resolve_readouts(readout: str | Sequence[str], extensive: Sequence[bool]) -> list[str]:
    """One of :data:`HEAD_READOUTS` per target from ``"auto"``, one name, or a list (``"auto"`` allowed)."""
    count = len(extensive)
    choices = [readout] * count if isinstance(readout, str) else list(readout)
    if len(choices) != count:
        raise ValueError(f"{len(choices)} readouts given for {count} targets: {choices}")
    out = []
    for choice, ext in zip(choices, extensive, strict=True):
        if choice == "auto":
            choice = "sum" if ext else "mean"
        if choice not in HEAD_READOUTS:
            raise ValueError(f"readout must be 'auto' or one of {HEAD_READOUTS} per target, got {choice!r}")
        out.append(choice)
    return out


def effective_readouts(readout: str | Sequence[str] | None, extensive: Sequence[bool]) -> list[str]:
    """How any model's ``readout`` argument treats each target: "sum" (grows with the cell), "mean",
    "per_atom" or "pooled" (another pooling then an MLP, e.g. set2set: does not grow with the cell)."""
    if readout is None or isinstance(readout, str):
        readout = [readout or "auto"] * len(extensive)
    out = []
    for choice, ext in zip(readout, extensive, strict=True):
        if choice == "auto":
            choice = "sum" if ext else "mean"
        out.append(choice if choice in HEAD_READOUTS else "pooled")
    return out


def readout_mismatches(targets: Sequence[TargetSpec], readout: str | Sequence[str] | None) -> list[str]:
    """Messages for targets whose readout contradicts their reduction (empty when all is well)."""
    messages = []
    readouts = effective_readouts(readout, [t.extensive for t in targets])
    for target, kind in zip(targets, readouts, strict=True):
        name, ext, atom = target.name, target.extensive, target.per_atom
        if atom and kind == "sum":
            messages.append(
                f"target {name!r} is a per-atom quantity but is read out with a sum over atoms: the model "
                "learns the cell size, not the chemistry (the mismatched-readout pitfall); use readout "
                "'per_atom' or 'mean' and keep the target intensive"
            )
        elif ext and not atom and kind != "sum":
            messages.append(
                f"target {name!r} is extensive but is read out with {kind!r}: predictions cannot grow "
                "with the cell; use readout 'sum' (or 'auto')"
            )
        elif not ext and not atom and kind == "sum":
            messages.append(
                f"target {name!r} is intensive but is read out with a sum: predictions grow with the cell "
                "size; use readout 'mean' (or 'auto')"
            )
    return messages


class CrystalHead(nn.Module):
    """Graph predictions ``[B, T]`` from pooled states ``[B, P]`` and/or per-atom inputs ``[N, A]``.

    Args:
        pooled_dim: width of the pooled crystal vector (for "mean" targets).
        atom_dim: width of the per-atom inputs (for "sum" / "per_atom" targets).
        readouts: one of :data:`HEAD_READOUTS` per target (see :func:`resolve_readouts`).
        hidden: hidden widths of the MLPs.
        act: activation name.
    ``needs_pooled`` / ``needs_atoms`` tell the model which inputs to compute.
    """

    def __init__(
        self, pooled_dim: int, atom_dim: int, readouts: Sequence[str], hidden: Sequence[int], act: str
    ):
        super().__init__()
        self.readouts = list(readouts)
        count = len(self.readouts)
        self.register_buffer(
            "pooled_columns", torch.tensor([r == "mean" for r in self.readouts]), persistent=False
        )
        self.register_buffer(
            "mean_columns", torch.tensor([r == "per_atom" for r in self.readouts]), persistent=False
        )
        self.needs_pooled = "mean" in self.readouts
        self.needs_atoms = any(r != "mean" for r in self.readouts)
        self.pooled_mlp = MLP([pooled_dim, *hidden, count], act) if self.needs_pooled else None
        self.atom_mlp = MLP([atom_dim, *hidden, count], act) if self.needs_atoms else None

    def forward(
        self,
        pooled: torch.Tensor | None,
        atom_inputs: torch.Tensor | None,
        batch: torch.Tensor,
        num_graphs: int,
    ) -> torch.Tensor:
        out = None
        if self.atom_mlp is not None:
            summed = scatter_sum(self.atom_mlp(atom_inputs), batch, num_graphs)
            counts = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(summed.dtype).unsqueeze(1)
            out = torch.where(self.mean_columns, summed / counts, summed)
        if self.pooled_mlp is not None:
            from_pool = self.pooled_mlp(pooled)
            out = from_pool if out is None else torch.where(self.pooled_columns, from_pool, out)
        return out
