"""Train, then evaluate: what ``atomgraph train`` does (training trains; evaluation runs after it)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from atomgraph.evaluation.report import evaluate_run
from atomgraph.runs import initial_weights
from atomgraph.training.datasets import load_dataset, resolve_run
from atomgraph.training.ensemble import train_ensemble
from atomgraph.training.ensemble_module import member_dirs
from atomgraph.training.run import train
from atomgraph.training.trainer import run_device


def train_and_evaluate(
    config: dict, resume: bool = False, progress: bool = True, overwrite: bool = False
) -> Path:
    """Train the configured model (an ensemble with ``ensemble.members`` > 1), then write its report
    (``metrics.json``, predictions, plots) on the test split -- an ensemble's members get theirs first;
    under data parallelism only the first process evaluates. Returns the run directory."""
    ensemble = config["ensemble"]["members"] > 1
    # init.from (fine-tuning): a resumed run has the weights in its checkpoint, but a resumed ensemble may
    # still have members to start
    initial = None if resume and not ensemble else initial_weights(config)
    fit = train_ensemble if ensemble else train
    run_dir = fit(config, resume=resume, progress=progress, overwrite=overwrite, initial=initial)
    if rank_zero_only.rank == 0:
        # an ensemble's members and the ensemble read one dataset: it is loaded once for all of them
        dataset = load_dataset(config, resolve_run(config), progress=False) if ensemble else None
        device = run_device(config["training"])  # the report is computed where the run trained
        for member in member_dirs(run_dir) if ensemble else []:
            evaluate_run(member, dataset, verbose=False, device=device)
        evaluate_run(run_dir, dataset, device=device)
    return run_dir
