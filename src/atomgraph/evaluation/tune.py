"""Hyperparameter search on Optuna: any config key, TPE sampling, pruning on validation curves, and a
SQLite study so that a killed search resumes where it stopped.

A search file names the space and the settings (``configs/search/qm9_gat.yaml``)::

    metric: val_loss          # logged validation metric, minimised (the checkpoint monitor)
    pruner: median            # median | hyperband | none
    startup_trials: 5         # trials before pruning and TPE start
    overrides: ["training.max_time=00:00:05:00"]   # applied to every trial (a per-trial budget)
    space:
      model.hidden: {int: [64, 256]}
      training.lr: {float: [1.0e-4, 1.0e-2], log: true}
      model.norm: {choice: [batch, layer, none]}

Every trial is a full run (``STUDY/trials/NNNN``: config, checkpoints, metrics) scored by the best
validation value of its metric; the test split is never looked at for choosing. After the search:
``best_config.yaml`` (the base config with the best values), ``trials.csv``, ``tune.json`` and
``importance.png`` (fANOVA importances, once two trials are complete).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import pandas as pd
import yaml

from atomgraph.evaluation.jsonfile import write_json
from atomgraph.training.config import ConfigError, apply_overrides, dump_config, read_yaml

PRUNERS = ("median", "hyperband", "none")
SEARCH_KEYS = {"metric", "pruner", "startup_trials", "overrides", "space"}


def read_search(path: str | Path) -> dict:
    """The search file, checked: every ``space`` entry is ``{int: [lo, hi]}``, ``{float: [lo, hi]}``
    (with optional ``log: true``) or ``{choice: [...]}``."""
    path = Path(path)
    try:
        search = read_yaml(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"search file {path}: cannot read it ({error})") from error
    unknown = sorted(set(search) - SEARCH_KEYS)
    if unknown:
        raise ConfigError(f"search file {path}: unknown keys {unknown}; known: {sorted(SEARCH_KEYS)}")
    space = search.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"search file {path}: 'space' must map config keys to ranges or choices")
    for key, spec in space.items():
        _check_dimension(path, key, spec)
    search.setdefault("metric", "val_loss")
    search.setdefault("pruner", "median")
    search.setdefault("startup_trials", 5)
    search.setdefault("overrides", [])
    if search["pruner"] not in PRUNERS:
        raise ConfigError(f"search file {path}: pruner {search['pruner']!r}; choose one of {PRUNERS}")
    return search


def _check_dimension(path: Path, key: str, spec: Any) -> None:
    where = f"search file {path}: space.{key}"
    if not isinstance(spec, dict) or len(set(spec) & {"int", "float", "choice"}) != 1:
        raise ConfigError(f"{where} must be one of {{int: [lo, hi]}}, {{float: [lo, hi]}}, {{choice: [...]}}")
    kind = next(k for k in ("int", "float", "choice") if k in spec)
    values = spec[kind]
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: choice needs a non-empty list")
        return
    numbers = isinstance(values, list) and all(isinstance(v, int | float) for v in values)
    if not (numbers and len(values) == 2):
        raise ConfigError(f"{where}: {kind} needs [low, high], got {values!r}")
    if values[0] >= values[1]:
        raise ConfigError(f"{where}: low {values[0]} must be below high {values[1]}")
    if spec.get("log") and values[0] <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0")


def suggest(trial: optuna.Trial, space: dict) -> dict[str, Any]:
    """One value per config key of ``space``, drawn by the trial's sampler."""
    values = {}
    for key, spec in space.items():
        if "choice" in spec:
            values[key] = trial.suggest_categorical(key, spec["choice"])
        elif "int" in spec:
            low, high = spec["int"]
            values[key] = trial.suggest_int(key, int(low), int(high), log=bool(spec.get("log")))
        else:
            low, high = spec["float"]
            values[key] = trial.suggest_float(key, float(low), float(high), log=bool(spec.get("log")))
    return values


def with_values(config: dict, values: dict[str, Any]) -> dict:
    """``config`` with ``key.sub=value`` set for every searched key (values written as JSON, read as YAML)."""
    return apply_overrides(config, [f"{key}={json.dumps(value)}" for key, value in values.items()])


class ReportToTrial(L.Callback):
    """Reports the validation metric to the trial after each validation; stops a pruned trial."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric, self.pruned = trial, metric, False

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        self.trial.report(float(trainer.callback_metrics[self.metric]), step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


def best_validation(run_dir: Path, metric: str) -> float:
    """The lowest logged value of ``metric`` in a run's ``logs/metrics.csv``."""
    from atomgraph.training.run import metrics_history

    history = metrics_history(run_dir / "logs")
    if history is None:
        raise ValueError(f"{run_dir}: no logged metrics (the trial stopped before its first validation)")
    table = pd.read_csv(history)
    if metric not in table or table[metric].dropna().empty:
        raise ValueError(f"{run_dir}: metric {metric!r} was never logged; logged: {sorted(table.columns)}")
    return float(table[metric].min())


TrainRun = Callable[[dict, tuple], Path]
"""(config, extra Lightning callbacks) -> run directory: how a trial trains (tests pass a small one)."""


def _train(config: dict, callbacks: tuple) -> Path:
    from atomgraph.runs import initial_weights
    from atomgraph.training.run import train

    initial = initial_weights(config)  # a search may fine-tune from a trained run
    return train(config, progress=False, overwrite=True, extra_callbacks=callbacks, initial=initial)


def tune(
    config: dict,
    search: dict,
    trials: int,
    study_dir: str | Path,
    seed: int = 0,
    train_run: TrainRun = _train,
    heartbeat_s: int = 30,
) -> optuna.Study:
    """Run the search until ``trials`` trials are complete or pruned (counting those of an earlier,
    interrupted search in ``study_dir/study.db``); writes the summary files. Returns the study.

    A trial whose process died (no heartbeat for 3 x ``heartbeat_s``) is marked failed when the search
    is resumed and run again with the same values."""
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # heartbeats and their retry are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{study_dir / 'study.db'}",
            heartbeat_interval=heartbeat_s,
            grace_period=3 * heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    pruner = {
        "median": optuna.pruners.MedianPruner(n_startup_trials=search["startup_trials"]),
        "hyperband": optuna.pruners.HyperbandPruner(),
        "none": optuna.pruners.NopPruner(),
    }[search["pruner"]]
    study = optuna.create_study(
        study_name="atomgraph",
        storage=storage,
        load_if_exists=True,
        direction="minimize",
        pruner=pruner,
    )
    # seeded, and reseeded on resume so that a resumed search does not redraw its first points
    study.sampler = optuna.samplers.TPESampler(
        seed=seed + len(study.trials), n_startup_trials=search["startup_trials"]
    )
    base = apply_overrides(config, search["overrides"])

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, search["space"])
        run_dir = study_dir / "trials" / f"{trial.number:04d}"
        trial_config = with_values(base, values)
        trial_config.update(name=f"{config['name']}_trial{trial.number:04d}", run_dir=str(run_dir))
        reporter = ReportToTrial(trial, search["metric"])
        train_run(trial_config, (reporter,))
        value = best_validation(run_dir, search["metric"])
        if reporter.pruned:
            raise optuna.TrialPruned(f"pruned at {search['metric']} = {value:.4g}")
        return value

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(states=finished))
    logging.getLogger(__name__).info("study %s: %d of %d trials done", study_dir, done, trials)
    if done < trials:
        study.optimize(
            objective,
            callbacks=[optuna.study.MaxTrialsCallback(trials, states=finished), stop_after_failures(3)],
            catch=(ValueError,),  # a trial with a bad combination fails alone; the search goes on
        )
    write_summary(study, base, search, study_dir)
    return study


def stop_after_failures(count: int) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """A study callback that stops the search after ``count`` failed trials in a row (a search whose
    every trial fails has a broken config, not bad luck)."""

    def check(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        last = study.trials[-count:]
        if len(last) == count and all(t.state == optuna.trial.TrialState.FAIL for t in last):
            logging.getLogger(__name__).error("%d trials in a row failed; stopping the search", count)
            study.stop()

    return check


def write_summary(study: optuna.Study, base: dict, search: dict, study_dir: Path) -> None:
    """``trials.csv``, ``tune.json``, ``best_config.yaml`` and ``importance.png`` (when possible)."""
    study.trials_dataframe().to_csv(study_dir / "trials.csv", index=False)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    summary: dict[str, Any] = {"metric": search["metric"], "space": search["space"], "trials": states}
    if complete:
        best = study.best_trial
        summary.update(best_value=best.value, best_params=best.params, best_trial=best.number)
        best_config = with_values(base, best.params)
        best_config.update(name=f"{base['name']}_best", run_dir=str(Path("runs") / f"{base['name']}_best"))
        dump_config(best_config, study_dir / "best_config.yaml")
    if len(complete) >= 2:
        importances = optuna.importance.get_param_importances(study)
        summary["importance"] = importances
        importance_plot(importances, study_dir / "importance.png", search["metric"])
    write_json(study_dir / "tune.json", summary)


def importance_plot(importances: dict[str, float], path: Path, metric: str) -> None:
    """Horizontal bars of the fANOVA importance of each searched key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance for {metric} (fANOVA)")
    ax.set_title("hyperparameter importance")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
