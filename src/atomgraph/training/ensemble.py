"""Deep ensembles: train several members of one config into one run directory, and run them as one module.

``ensemble.members: N`` (``atomgraph train CONFIG --ensemble N``) trains member k with seed
``seed + k`` into ``run_dir/members/<k>`` (each a complete run directory); all members share the split
(its own seed, ``data.split.seed``). With ``ensemble.bootstrap`` each member trains on a resample (with
replacement, seeded by the member's seed) of the training rows; validation and test rows never change.
The ensemble's directory gets ``config.yaml``, ``split.json`` and ``ensemble.json`` (the members' paths,
relative); :class:`atomgraph.runs.TrainedRun` loads it as one model
(:class:`~atomgraph.training.ensemble_module.EnsembleModule`) whose prediction is the members'
mean and whose sigma is their spread (:func:`atomgraph.outputs.uncertainty.combine_members`).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from atomgraph.training.config import ConfigError, dump_config
from atomgraph.training.finetune import InitialWeights
from atomgraph.training.run import clear_run_dir, train
from atomgraph.training.run_files import ENSEMBLE_RECORD


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
