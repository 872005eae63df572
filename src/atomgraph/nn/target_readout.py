"""Per-target readouts: how each target's graph value is made from a model's atom states.

One vocabulary, :data:`READOUTS`, for every model:

* ``"sum"``: an MLP gives each atom a contribution, summed over the atoms of a graph -- extensive
  (total energy, cell volume): grows with the system;
* ``"atom_mean"``: the same contributions, averaged -- a per-atom or intensive quantity built from atoms
  (formation energy per atom, SchNet's HOMO): unchanged when a cell is replicated;
* ``"pooled"``: the atom states pooled into one vector per graph with the model's node pool (a
  :data:`~atomgraph.nn.readout.POOLS` kind: mean for CGCNN, set2set for MEGNet), then an MLP --
  intensive;
* ``"atom"``: the atoms' outputs themselves, not reduced: predictions [N, T] for node-level targets
  (reduction ``node``, e.g. Mulliken charges), and only for those.

``"auto"`` is resolved per target from its :class:`~atomgraph.targets.TargetSpec` reduction
(:func:`resolve_readouts`): ``sum`` -> ``"sum"``; ``per_atom`` and ``mean`` -> the model's intensive
readout (its card's ``intensive_readout``: ``"pooled"`` for CGCNN and MEGNet, ``"atom_mean"`` for the
atom-wise models); ``node`` -> ``"atom"``. Models without a per-target readout (the GNN zoo, MPNN, the
affinity models) read every target out ``"pooled"`` and take no node-level targets.

Training a per-atom target (eV/atom) with ``"sum"`` teaches the model the cell size instead of the
chemistry: :func:`readout_mismatches` names such choices (seed 004, slide 23).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import POOLS, GraphReadout
from atomgraph.nn.scatter import scatter_sum, segment_counts
from atomgraph.targets import REDUCTIONS, TargetSpec

READOUTS = ("sum", "atom_mean", "pooled", "atom")


def check_readout(readout: str | Sequence[str]) -> None:
    """A ValueError unless ``readout`` is ``"auto"``, one of :data:`READOUTS` or a list of those; words
    of the former vocabularies are named with the one that replaced them."""
    for choice in [readout] if isinstance(readout, str) else list(readout):
        if choice == "auto" or choice in READOUTS:
            continue
        if choice == "per_atom":
            hint = "; the mean of atomic contributions is now called 'atom_mean'"
        elif choice == "mean":
            hint = (
                "; 'mean' meant different things in older versions: write 'atom_mean' (the mean of "
                "atomic contributions) or 'pooled' (pool the atom states, then an MLP: CGCNN's former 'mean')"
            )
        elif choice in POOLS:
            hint = f"; {choice!r} is a node pool: use readout 'pooled' and pool {choice!r}"
        else:
            hint = ""
        raise ValueError(f"readout must be 'auto' or one of {READOUTS} per target, got {choice!r}{hint}")


def resolve_readouts(
    readout: str | Sequence[str],
    reductions: Sequence[str],
    intensive: str,
    supported: Sequence[str] = READOUTS,
) -> list[str]:
    """One of :data:`READOUTS` per target.

    readout: ``"auto"``, one readout for every target, or a list with one per target (``"auto"``
    allowed in it); reductions: the targets' :attr:`TargetSpec.reduction`; intensive: what ``"auto"``
    means for ``per_atom`` and ``mean`` targets (the model card's ``intensive_readout``); supported:
    the readouts the model offers.
    """
    check_readout(readout)
    count = len(reductions)
    choices = [readout] * count if isinstance(readout, str) else list(readout)
    if len(choices) != count:
        raise ValueError(f"{len(choices)} readouts given for {count} targets: {choices}")
    out = []
    for choice, reduction in zip(choices, reductions, strict=True):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if choice == "auto":
            choice = {"sum": "sum", "node": "atom"}.get(reduction, intensive)
        if (choice == "atom") != (reduction == "node"):  # [N, T] against [B, T]: shapes, not a mismatch
            raise ValueError(
                "readout 'atom' (one output per atom) is for node-level targets only (reduction 'node'), "
                f"and node-level targets take no other; got readout {choice!r} for a {reduction!r} target"
            )
        if choice not in supported:
            raise ValueError(f"this model reads targets out with one of {tuple(supported)}, not {choice!r}")
        out.append(choice)
    return out


def readout_mismatches(targets: Sequence[TargetSpec], readouts: Sequence[str]) -> list[str]:
    """Messages for targets whose readout (resolved: :func:`resolve_readouts`) contradicts their
    reduction; empty when all is well."""
    messages = []
    for target, readout in zip(targets, readouts, strict=True):
        name = target.name
        if target.reduction == "per_atom" and readout == "sum":
            messages.append(
                f"target {name!r} is a per-atom quantity but is read out with a sum over atoms: the model "
                "learns the cell size, not the chemistry (the mismatched-readout pitfall); use readout "
                "'atom_mean' or 'pooled' (or 'auto') and keep the target per_atom"
            )
        elif target.reduction == "sum" and readout != "sum":
            messages.append(
                f"target {name!r} is extensive but is read out with {readout!r}: predictions cannot grow "
                "with the cell; use readout 'sum' (or 'auto')"
            )
        elif target.reduction == "mean" and readout == "sum":
            messages.append(
                f"target {name!r} is intensive but is read out with a sum: predictions grow with the cell "
                "size; use readout 'atom_mean' or 'pooled' (or 'auto')"
            )
    return messages


class SumOrMean(nn.Module):
    """Per-atom contributions ``[N, T]`` -> graph values ``[B, T]``: summed over the atoms of each
    graph, and divided by their number for the ``"atom_mean"`` targets (``readouts``: one per target);
    node-level targets (every readout ``"atom"``) keep the ``[N, T]`` outputs as they are."""

    def __init__(self, readouts: Sequence[str]):
        super().__init__()
        if "atom" in readouts and set(readouts) != {"atom"}:
            raise ValueError(f"readout 'atom' is for every target or none, got {list(readouts)}")
        self.readouts = list(readouts)
        self.node_level = "atom" in readouts
        columns = [r == "atom_mean" for r in readouts]
        self.any_mean = any(columns)
        self.register_buffer("mean_columns", torch.tensor(columns, dtype=torch.bool), persistent=False)

    def forward(self, per_atom: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        if self.node_level:
            return per_atom
        summed = scatter_sum(per_atom, batch, num_graphs)
        if not self.any_mean:
            return summed
        counts = segment_counts(batch, num_graphs, summed.dtype).clamp(min=1).unsqueeze(1)
        return torch.where(self.mean_columns, summed / counts, summed)


class AtomwiseHead(nn.Module):
    """Atom states [N, F] -> graph predictions [B, T] with one MLP [F, hidden, T].

    readouts: one per target (:func:`resolve_readouts`): ``"sum"``/``"atom_mean"`` targets apply the MLP to
    each atom and sum or average the contributions; ``"pooled"`` (for every target or none) pools the
    states first with ``pool`` (a :data:`~atomgraph.nn.readout.POOLS` kind) and applies the MLP per graph.
    """

    def __init__(
        self,
        dim: int,
        readouts: Sequence[str],
        hidden: int | None = None,
        act: str = "silu",
        pool: str = "mean",
    ):
        super().__init__()
        self.readouts = list(readouts)
        self.num_targets = len(self.readouts)
        hidden = hidden or max(dim // 2, 1)
        if "pooled" in self.readouts:
            if set(self.readouts) != {"pooled"}:
                raise ValueError(f"this model reads every target out 'pooled' or none, got {self.readouts}")
            self.pool, self.reduce = GraphReadout(pool, dim), None
            self.mlp = MLP([self.pool.out_dim, hidden, self.num_targets], act)
        else:
            self.pool, self.reduce = None, SumOrMean(self.readouts)
            self.mlp = MLP([dim, hidden, self.num_targets], act)

    def atom_contributions(self, h: torch.Tensor) -> torch.Tensor:
        """Per-atom outputs [N, T] (only for the atom-wise readouts)."""
        return self.mlp(h)

    def forward(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        if self.pool is not None:
            return self.mlp(self.pool(h, batch, num_graphs))
        return self.reduce(self.mlp(h), batch, num_graphs)


class TargetHead(nn.Module):
    """Graph predictions ``[B, T]`` from pooled states ``[B, P]`` and/or per-atom inputs ``[N, A]``,
    each target read out its own way (the CGCNN and MEGNet head).

    Args:
        pooled_dim: width of the pooled vector (for ``"pooled"`` targets).
        atom_dim: width of the per-atom inputs (for ``"sum"`` / ``"atom_mean"`` targets).
        readouts: one of :data:`READOUTS` per target (see :func:`resolve_readouts`).
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
            "pooled_columns", torch.tensor([r == "pooled" for r in self.readouts]), persistent=False
        )
        self.needs_pooled = "pooled" in self.readouts
        self.needs_atoms = any(r != "pooled" for r in self.readouts)
        self.pooled_mlp = MLP([pooled_dim, *hidden, count], act) if self.needs_pooled else None
        self.atom_mlp = MLP([atom_dim, *hidden, count], act) if self.needs_atoms else None
        self.reduce = SumOrMean(self.readouts)

    def forward(
        self,
        pooled: torch.Tensor | None,
        atom_inputs: torch.Tensor | None,
        batch: torch.Tensor,
        num_graphs: int,
    ) -> torch.Tensor:
        out = None
        if self.atom_mlp is not None:
            out = self.reduce(self.atom_mlp(atom_inputs), batch, num_graphs)
        if self.pooled_mlp is not None:
            from_pool = self.pooled_mlp(pooled)
            out = from_pool if out is None else torch.where(self.pooled_columns, from_pool, out)
        return out
