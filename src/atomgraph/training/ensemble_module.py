"""An ensemble's run directory read back (:func:`is_ensemble`, :func:`member_dirs`) and its trained
members run as one module (:class:`EnsembleModule`); training them is :mod:`atomgraph.training.ensemble`'s.
Free of Lightning, as loading a trained run is."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch_geometric.data import Data

from atomgraph.outputs.uncertainty import combine_members
from atomgraph.training.prediction_module import Arguments, PredictionModule
from atomgraph.training.run_files import ENSEMBLE_RECORD


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble's run directory."""
    return (Path(path) / ENSEMBLE_RECORD).is_file()


def member_dirs(path: str | Path) -> list[Path]:
    """The members' run directories of an ensemble, in member order."""
    path = Path(path)
    try:
        record = json.loads((path / ENSEMBLE_RECORD).read_text())
        return [path / member for member in record["members"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path / ENSEMBLE_RECORD}: not a readable ensemble record ({error})") from error


class EnsembleModule(torch.nn.Module):
    """Several trained :class:`PredictionModule` s of one graph spec and target set, used as one: the
    same interface (``forward``, ``compute``, ``kind``, ``info``, ``graph_spec``, ``task``, ``hparams``)
    with the members' mean as the prediction and :meth:`distribution` for the spread. ``model`` holds
    every member's model (its parameters are the ensemble's)."""

    def __init__(self, members: list[PredictionModule]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        first = members[0]
        for k, member in enumerate(members[1:], 1):
            if member.graph_spec != first.graph_spec or member.info.to_list() != first.info.to_list():
                raise ValueError(
                    f"ensemble member {k} reads other graphs or predicts other targets than member 0"
                )
            if member.kind != first.kind:
                raise ValueError(f"ensemble member {k} is a {member.kind}, member 0 a {first.kind}")
            if member.uncertainty != first.uncertainty:
                raise ValueError(
                    f"ensemble member {k} has task.uncertainty {member.uncertainty!r}, member 0 "
                    f"{first.uncertainty!r}; the members must predict the same kind of output"
                )
        self.members = torch.nn.ModuleList(members)
        self.model = torch.nn.ModuleList([m.model for m in members])
        self.kind, self.info, self.graph_spec, self.task = (
            first.kind,
            first.info,
            first.graph_spec,
            first.task,
        )
        self.uncertainty = "ensemble"
        if self.kind == "potential":
            self.column = first.column
        elements = [set(m.hparams.get("elements") or []) for m in members]
        known = all(m.hparams.get("elements") is not None for m in members)
        self.hparams = Arguments(
            first.hparams, elements=sorted(set.intersection(*elements)) if known else None
        )

    def forward(self, batch: Data) -> torch.Tensor:
        """The members' mean prediction [B, T] (real units)."""
        return self.distribution(batch)[0]

    def distribution(self, batch: Data) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [B, T], sigma [B, T]) in real units: the members' spread, plus their own variance when
        they predict one."""
        if self.kind == "potential":
            energies = torch.stack([m(batch) for m in self.members])
            return combine_members(energies, None)
        own = self.members[0].uncertainty is not None  # members with a sigma of their own
        parts = [m.distribution(batch) if own else (m(batch), None) for m in self.members]
        means = torch.stack([mean for mean, _ in parts])
        sigmas = torch.stack([sigma for _, sigma in parts]) if own else None
        return combine_members(means, sigmas)

    def compute(self, batch: Data, forces: bool = True, stress: bool = False, training: bool = False) -> dict:
        """Potentials: the members' mean ``energy`` [B], ``forces`` [N, 3], ``stress`` [B, 3, 3] and their
        population standard deviations ``energy_std``, ``forces_std``, ``stress_std``."""
        outs = [m.compute(batch, forces, stress, training) for m in self.members]
        result = {}
        for key in outs[0]:
            stacked = torch.stack([o[key] for o in outs])
            result[key] = stacked.mean(0)
            result[f"{key}_std"] = stacked.std(0, correction=0)
        return result
