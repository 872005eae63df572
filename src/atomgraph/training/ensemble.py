"""Deep ensembles: train several members of one config into one run directory, and run them as one module.

``ensemble.members: N`` (``atomgraph train CONFIG --ensemble N``) trains member k with seed
``seed + k`` into ``run_dir/members/<k>`` (each a complete run directory); all members share the split
(its own seed, ``data.split.seed``). With ``ensemble.bootstrap`` each member trains on a resample (with
replacement, seeded by the member's seed) of the training rows; validation and test rows never change.
The ensemble's directory gets ``config.yaml``, ``split.json`` and ``ensemble.json`` (the members' paths,
relative); :class:`atomgraph.runs.TrainedRun` loads it as one model whose prediction is the members'
mean and whose sigma is their spread (:func:`atomgraph.outputs.uncertainty.combine_members`).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_only
from torch_geometric.data import Data

from atomgraph.outputs.uncertainty import combine_members
from atomgraph.training.config import ConfigError, dump_config
from atomgraph.training.finetune import InitialWeights
from atomgraph.training.module import AtomgraphModule
from atomgraph.training.run import ENSEMBLE_RECORD, clear_run_dir, train


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


def member_config(config: dict, k: int) -> dict:
    """The config of member ``k``: seed ``seed + k``, run directory ``run_dir/members/<k>``, one member."""
    member = copy.deepcopy(config)
    member.update(seed=config["seed"] + k, name=f"{config['name']}_member{k}")
    member["run_dir"] = str(Path(config["run_dir"]) / "members" / str(k))
    member["ensemble"] = {"members": 1, "bootstrap": config["ensemble"]["bootstrap"]}
    return member


def train_ensemble(
    config: dict,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    initial: InitialWeights | None = None,
) -> Path:
    """Train every member (:func:`atomgraph.training.run.train`; a resumed ensemble continues the
    members that have a last checkpoint and starts the others), then write the ensemble's record.
    Returns the ensemble's run directory."""
    members = config["ensemble"]["members"]
    if members < 2:
        raise ConfigError(f"ensemble.members must be at least 2 for an ensemble, got {members}")
    run_dir = Path(config["run_dir"])
    first = rank_zero_only.rank == 0  # DDP: the launcher re-runs this for the other ranks
    if not resume and first:
        clear_run_dir(run_dir, overwrite)
    for k in range(members):
        member = member_config(config, k)
        started = (Path(member["run_dir"]) / "checkpoints" / "last.ckpt").exists()
        # a member killed before its first checkpoint has nothing to keep: it starts afresh
        fresh = resume and not started
        train(member, resume and started, progress, overwrite or fresh, initial=None if started else initial)
    if not first:
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.yaml")
    shutil.copyfile(run_dir / "members" / "0" / "split.json", run_dir / "split.json")
    record = {
        "members": [f"members/{k}" for k in range(members)],
        "bootstrap": config["ensemble"]["bootstrap"],
    }
    (run_dir / ENSEMBLE_RECORD).write_text(json.dumps(record, indent=2))
    return run_dir


class EnsembleModule(torch.nn.Module):
    """Several trained :class:`AtomgraphModule` s of one graph spec and target set, used as one: the
    same interface (``forward``, ``compute``, ``kind``, ``info``, ``graph_spec``, ``task``, ``hparams``)
    with the members' mean as the prediction and :meth:`distribution` for the spread. ``model`` holds
    every member's model (its parameters are the ensemble's)."""

    def __init__(self, members: list[AtomgraphModule]):
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
        self.hparams = {
            **dict(first.hparams),
            "elements": sorted(set.intersection(*elements)) if known else None,
        }

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
