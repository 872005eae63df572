"""Hyperparameter search: the search file is checked, trials are real runs scored on validation, the
best config is written, and a search killed mid-trial resumes to the asked number of trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from conftest import write_config

from atomgraph.evaluation.tune import read_search, tune
from atomgraph.training.config import ConfigError, load_config

SEARCH = {
    "metric": "val_loss",
    "pruner": "median",
    "startup_trials": 2,
    "space": {
        "model.hidden": {"int": [4, 12]},
        "training.lr": {"float": [1.0e-3, 1.0e-2], "log": True},
        "model.norm": {"choice": ["batch", "none"]},
    },
}


def _config(tmp_path: Path, csv: Path) -> list[str]:
    return [
        "name=tiny",
        "model.name=gcn",
        "model.layers=2",
        "data.dataset=csv",
        f"data.path={csv}",
        "data.targets=[value]",
        "data.graph.explicit_hydrogens=false",
        "data.split.sizes=[0.6,0.2,0.2]",
        f"data.cache={tmp_path / 'cache'}",
        "training.epochs=3",
        "training.batch_size=16",
        "training.progress=false",
        "training.accelerator=cpu",
        "training.scheduler=none",
        "training.early_stopping_patience=0",
    ]


def test_the_search_file_is_checked(tmp_path):
    def bad(search: dict, message: str) -> None:
        path = tmp_path / "search.yaml"
        path.write_text(yaml.safe_dump(search))
        with pytest.raises(ConfigError, match=message):
            read_search(path)

    bad({"space": {"model.hidden": {"int": [8, 4]}}}, r"space\.model\.hidden: low 8 must be below high 4")
    bad({"space": {"training.lr": {"float": [0, 1], "log": True}}}, r"log range needs low > 0")
    bad({"space": {"model.norm": {"choice": []}}}, r"non-empty list")
    bad({"space": {"model.hidden": [4, 8]}}, r"must be one of")
    bad({"space": {}}, r"'space' must map")
    bad({"space": {"model.hidden": {"int": [4, 8]}}, "pruner": "asha"}, r"pruner 'asha'")
    bad({"space": {"model.hidden": {"int": [4, 8]}}, "trails": 3}, r"unknown keys \['trails'\]")
    shipped = read_search(Path(__file__).parents[1] / "configs" / "search" / "qm9_gat.yaml")
    assert set(shipped["space"]) == {
        "model.hidden",
        "model.heads",
        "model.layers",
        "model.dropout",
        "training.lr",
    }


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_a_search_trains_scores_on_validation_and_writes_the_best_config(tmp_path, scaffold_csv, pruner):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({**SEARCH, "pruner": pruner}))
    config = load_config(None, _config(tmp_path, scaffold_csv))
    study = tune(config, read_search(path), trials=3, study_dir=tmp_path / "study")
    state = optuna.trial.TrialState
    assert len(study.trials) == 3 and {t.state for t in study.trials} <= {state.COMPLETE, state.PRUNED}
    for trial in study.trials:  # a pruned trial stopped before its 3 epochs
        logged = pd.read_csv(tmp_path / "study" / "trials" / f"{trial.number:04d}" / "logs" / "metrics.csv")
        pruned = trial.state == state.PRUNED
        assert (logged["val_loss"].notna().sum() < 3) == pruned
    best = study.best_trial
    # the score is the run's best logged validation loss, not a test number
    logged = pd.read_csv(tmp_path / "study" / "trials" / f"{best.number:04d}" / "logs" / "metrics.csv")
    assert best.value == pytest.approx(logged["val_loss"].min())
    best_config = load_config(tmp_path / "study" / "best_config.yaml")
    assert best_config["model"]["hidden"] == best.params["model.hidden"]
    assert best_config["training"]["lr"] == pytest.approx(best.params["training.lr"])
    assert best_config["model"]["name"] == "gcn" and best_config["data"]["path"] == str(scaffold_csv)
    summary = json.loads((tmp_path / "study" / "tune.json").read_text())
    assert summary["best_trial"] == best.number and sum(summary["trials"].values()) == 3
    complete = summary["trials"].get("COMPLETE", 0)
    # the median pruner never prunes its 2 startup trials: two complete, so the importances are always
    # written; Hyperband may prune the second trial (worse than the first at its rung), leaving one
    assert complete >= (2 if pruner == "median" else 1)
    if complete >= 2:
        assert set(summary["importance"]) == set(SEARCH["space"])
        assert (tmp_path / "study" / "importance.png").stat().st_size > 0
    else:
        assert "importance" not in summary and not (tmp_path / "study" / "importance.png").exists()
    table = pd.read_csv(tmp_path / "study" / "trials.csv")
    assert len(table) == 3 and "params_model.hidden" in table


KILLED_SEARCH = """
import sys, yaml
from atomgraph.evaluation.tune import read_search, tune
from atomgraph.training.config import load_config
config = load_config(None, yaml.safe_load(open(sys.argv[1])))
tune(config, read_search(sys.argv[2]), trials=3, study_dir=sys.argv[3], heartbeat_s=1)
"""


@pytest.mark.slow
def test_a_killed_search_resumes_to_the_asked_number_of_trials(tmp_path, scaffold_csv):
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({**SEARCH, "pruner": "none"}))
    overrides = write_config(
        # long enough to be killed inside: 40 epochs finished within the 1 s below on a fast host
        tmp_path / "overrides.yaml",
        [*_config(tmp_path, scaffold_csv), "training.epochs=5000", "training.early_stopping_patience=5000"],
    )
    study_dir = tmp_path / "study"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = [sys.executable, "-c", KILLED_SEARCH, str(overrides), str(search), str(study_dir)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (study_dir / "trials" / "0000" / "logs" / "metrics.csv").exists():  # inside the first trial
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.5)
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # past the heartbeat grace period (3 s) with a margin: SQLite stores heartbeats in whole seconds, so
    # 3.5 s after the kill can read as exactly 3 s, and the killed trial would be retried one trial late
    time.sleep(5.0)
    config = load_config(None, _config(tmp_path, scaffold_csv))
    study = tune(config, read_search(search), trials=3, study_dir=study_dir, heartbeat_s=1)
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    retried = study.trials[1]  # the killed trial is rerun with its values
    assert retried.params == study.trials[0].params
