"""Train, then evaluate: what ``atomgraph train`` does (training trains; evaluation runs after it)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from atomgraph.evaluation.report import evaluate_run
from atomgraph.runs import initial_weights
from atomgraph.training.run import train


def train_and_evaluate(
    config: dict, resume: bool = False, progress: bool = True, overwrite: bool = False
) -> Path:
    """Train the configured model, then write its report (``metrics.json``, predictions, plots) on the
    test split; under data parallelism only the first process evaluates. Returns the run directory."""
    initial = None if resume else initial_weights(config)  # init.from: fine-tuning
    run_dir = train(config, resume=resume, progress=progress, overwrite=overwrite, initial=initial)
    if rank_zero_only.rank == 0:
        evaluate_run(run_dir)
    return run_dir
