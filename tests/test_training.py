"""Training runs end to end on tiny data (CPU): run directory, normalisation, resume, predict, CLI, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import write_config, write_csv, write_xyz
from typer.testing import CliRunner

import atomgraph.training.run as run_module
from atomgraph.cli.main import app
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.predict import predict_file, read_predictions
from atomgraph.runs import TrainedRun
from atomgraph.structures import read_all
from atomgraph.training.config import ConfigError, load_config
from atomgraph.training.datasets import load_dataset, make_split

SCHNET = {"name": "schnet", "hidden": 16, "filters": 16, "interactions": 2, "num_rbf": 12}
MPNN = {"name": "mpnn", "hidden": 16, "steps": 2, "set2set_steps": 2, "edge_hidden": 16, "distance": "none"}
FAST = {
    "batch_size": 8,
    "eval_batch_size": 64,
    "lr": 5e-3,
    "scheduler": "none",
    "early_stopping_patience": 0,
    "accelerator": "cpu",
    "progress": False,
    "num_workers": 0,
}
RUN_FILES = [
    "config.yaml",
    "split.json",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
    "logs/metrics.csv",
    "metrics.json",
    "predictions_test.csv",
    "plots/learning_curves.png",
    "plots/parity_energy.png",
]


def structures_config(root: Path, xyz: Path, run: str = "run", **training) -> dict:
    return {
        "name": run,
        "seed": 0,
        "run_dir": str(root / run),
        "data": {
            "dataset": "structures",
            "path": str(xyz),
            "targets": ["energy"],
            "graph": {"cutoff": 4.0},
            "cache": str(root / "cache"),
        },
        "model": dict(SCHNET),
        "training": {**FAST, "epochs": 8, **training},
    }


def csv_config(root: Path, csv: Path, target: str, kind: str = "regression", run: str = "run", **training):
    return {
        "name": run,
        "run_dir": str(root / run),
        "data": {
            "dataset": "csv",
            "path": str(csv),
            "targets": [target],
            "kind": kind,
            "split": {"sizes": [0.6, 0.2, 0.2]},
            "cache": str(root / "cache"),
        },
        "model": dict(MPNN),
        "training": {**FAST, "epochs": 4, **training},
    }


def load(root: Path, config: dict, overrides=()) -> dict:
    return load_config(write_config(root / f"{config['name']}.yaml", config), overrides)


def metrics_log(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "logs" / "metrics.csv")


def checkpoint_step(run_dir: Path, which: str = "last") -> int:
    ckpt = torch.load(run_dir / "checkpoints" / f"{which}.ckpt", map_location="cpu", weights_only=True)
    return int(ckpt["global_step"])


@pytest.fixture(scope="module")
def structures_run(tmp_path_factory):
    """One SchNet run (20 epochs) on 40 random molecules with noisy energies (shared by several tests)."""
    root = tmp_path_factory.mktemp("structures_run")
    xyz = root / "mols.xyz"
    write_xyz(xyz, n=40, seed=0, noise=0.02)
    config = load(root, structures_config(root, xyz, epochs=20, lr=1e-2))
    run_dir = train_and_evaluate(config)
    return run_dir, xyz, config


# ------------------------------------------------------------------------------------------- a run


def test_training_run_writes_the_run_directory_and_lowers_the_loss(structures_run):
    run_dir, _, config = structures_run
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == config
    split = json.loads((run_dir / "split.json").read_text())
    assert [len(split[k]) for k in ("train", "val", "test")] == [32, 4, 4]
    log = metrics_log(run_dir)
    train_loss = log.dropna(subset=["train_loss"]).sort_values("epoch")["train_loss"].to_numpy()
    assert len(train_loss) == 20
    assert train_loss[-1] < 0.6 * train_loss[0], train_loss
    assert log["val_loss"].notna().sum() == 20
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n_test"] == 4 and metrics["model"] == "schnet"
    assert {"model", "mean_baseline", "composition_baseline"} <= set(metrics["test"]["energy"])
    assert np.isfinite(metrics["test"]["energy"]["model"]["mae"])
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    assert len(predictions) == 4
    assert np.isfinite(predictions["energy_pred"]).all()
    energies = [a.info["energy"] for a in read_all(structures_run[1])]
    np.testing.assert_allclose(predictions["energy_true"], [energies[i] for i in split["test"]], rtol=1e-6)
    assert checkpoint_step(run_dir) == 20 * 4  # 32 training rows in batches of 8, 20 epochs


def test_normalizer_uses_training_rows_only(structures_run):
    run_dir, xyz, _ = structures_run
    molecules = read_all(xyz)
    split = json.loads((run_dir / "split.json").read_text())
    state = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    state = state["state_dict"]

    def hand_fit(rows):
        elements = [1, 6, 8]
        energy = np.array([molecules[i].info["energy"] for i in rows])
        counts = np.array([[np.sum(molecules[i].numbers == z) for z in elements] for i in rows], float)
        coef, *_ = np.linalg.lstsq(counts, energy, rcond=None)
        residual = energy - counts @ coef
        per_atom = residual.sum() / counts.sum()
        return coef, per_atom, (residual - per_atom * counts.sum(1)).std()

    coef, per_atom, std = hand_fit(split["train"])
    np.testing.assert_allclose(state["normalizer.atomref"][[1, 6, 8], 0].numpy(), coef, rtol=1e-5, atol=1e-5)
    assert state["normalizer.mean"].item() == pytest.approx(per_atom, rel=1e-4, abs=1e-6)
    assert state["normalizer.std"].item() == pytest.approx(std, rel=1e-4)
    assert state["normalizer.extensive"].tolist() == [True]
    # fitting on every row would have given other references: the run really used the training rows
    all_coef, _, all_std = hand_fit(range(len(molecules)))
    assert np.abs(all_coef - coef).max() > 1e-3 or abs(all_std - std) > 1e-3
    module = TrainedRun.load(run_dir).module
    torch.testing.assert_close(module.normalizer.atomref, state["normalizer.atomref"])


# ------------------------------------------------------------------------------------------- resume

KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    import atomgraph.training.run as run
    from atomgraph.training.config import load_config

    class Kill(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no final checkpoint

    make = run.make_trainer

    def make_trainer(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.callbacks.append(Kill())
        return trainer

    run.make_trainer = make_trainer
    run.train(load_config(sys.argv[1]))
    """
)


class RecordSteps(L.Callback):
    def __init__(self):
        self.start = None
        self.steps = []

    def on_train_start(self, trainer, module):
        self.start = trainer.global_step

    def on_train_batch_end(self, trainer, *args):
        self.steps.append(trainer.global_step)


def test_resume_after_a_kill_continues_from_the_last_checkpoint(tmp_path, monkeypatch):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=40, seed=0)
    config = structures_config(tmp_path, xyz, max_steps=10, checkpoint_every_n_steps=2, epochs=50)
    path = write_config(tmp_path / "run.yaml", config)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(path), "5"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    run_dir = tmp_path / "run"
    assert not (run_dir / "metrics.json").exists()  # it never finished
    assert checkpoint_step(run_dir) == 4  # the last step saved before the kill

    recorder = RecordSteps()
    make = run_module.make_trainer

    def make_trainer(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.callbacks.append(recorder)
        return trainer

    monkeypatch.setattr(run_module, "make_trainer", make_trainer)
    train_and_evaluate(load_config(path), resume=True)
    assert recorder.start == 4  # not from 0
    assert recorder.steps == [5, 6, 7, 8, 9, 10]
    assert checkpoint_step(run_dir) == 10
    assert (run_dir / "metrics.json").is_file()
    assert (metrics_log(run_dir)["step"].dropna() >= 4).all()


# Lightning's caveat on resuming mid-epoch is the situation under test
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_resume_with_a_larger_max_steps(tmp_path):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=40, seed=0)
    config = structures_config(tmp_path, xyz, max_steps=6, checkpoint_every_n_steps=2, epochs=50)
    path = write_config(tmp_path / "run.yaml", config)
    run_dir = train_and_evaluate(load_config(path))
    assert checkpoint_step(run_dir) == 6
    train_and_evaluate(load_config(path, ["training.max_steps=12"]), resume=True)
    assert checkpoint_step(run_dir) == 12
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train_and_evaluate(load_config(path, ["run_dir=" + str(tmp_path / "elsewhere")]), resume=True)


# a run shorter than an epoch has no val_loss for best.ckpt yet, and resumes mid-epoch: both under test
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
@pytest.mark.filterwarnings("ignore:.*could not find the monitored key")
def test_run_shorter_than_an_epoch_finishes_and_resumes(tmp_path):
    """max_steps below one epoch: no validation ran, so no best.ckpt; the run is evaluated from last.ckpt."""
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=40, seed=0)
    config = structures_config(tmp_path, xyz, max_steps=2, early_stopping_patience=5)
    path = write_config(tmp_path / "run.yaml", config)
    run_dir = train_and_evaluate(load_config(path))
    assert checkpoint_step(run_dir) == 2
    assert not (run_dir / "checkpoints" / "best.ckpt").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["n_test"] == 4
    train_and_evaluate(load_config(path, ["training.max_steps=6"]), resume=True)
    assert checkpoint_step(run_dir) == 6
    assert checkpoint_step(run_dir, "best") == 4  # validated once, at the end of epoch 0


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=40, seed=0)
    config = structures_config(tmp_path, xyz, lr=0.0, epochs=10, early_stopping_patience=1)
    run_dir = train_and_evaluate(load(tmp_path, config))
    assert checkpoint_step(run_dir) == 2 * 4  # val_loss never improves after epoch 0: stop after epoch 1


def test_split_from_a_file_and_missing_file(tmp_path, xyz_file):
    split = {"train": list(range(30)), "val": [30, 31, 32], "test": [33, 34]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    base = structures_config(tmp_path, xyz_file)
    config = load(tmp_path, base, ["data.split.kind=file", f"data.split.file={tmp_path / 'split.json'}"])
    dataset = load_dataset(config, progress=False)
    chosen = make_split(config, dataset)
    assert {k: v.tolist() for k, v in chosen.items()} == split
    with pytest.raises(ConfigError, match=r"split\.file"):
        make_split(load(tmp_path, base, ["data.split.kind=file"]), dataset)
    with pytest.raises(ConfigError, match=r"split\.kind"):
        make_split(load(tmp_path, base, ["data.split.kind=stratified"]), dataset)


# ------------------------------------------------------------------------------------------ predict


def test_predict_file_reports_bad_rows_and_predicts_the_others(structures_run, tmp_path, capsys):
    run_dir, _, _ = structures_run
    smiles = ["CCO", "C1CC(", "CO", "OCC=O"]
    inputs = write_csv(tmp_path / "new.csv", smiles, name=[1, 2, 3, 4], energy=[0.5, 0.6, 0.7, 0.8])
    output = tmp_path / "out" / "predictions.csv"
    table = read_predictions(predict_file(run_dir, inputs, output).output)
    assert output.is_file()
    written = pd.read_csv(output, keep_default_na=False)
    assert list(written["id"]) == ["new.csv:2", "new.csv:3", "new.csv:4", "new.csv:5"]
    assert list(table["smiles"]) == smiles
    errors = list(table["error"])
    assert errors[1] != "" and "C1CC(" in errors[1]
    assert errors[0] == errors[2] == errors[3] == ""
    energy = table["energy"].to_numpy(dtype=float)
    assert np.isnan(energy[1])
    assert np.isfinite(energy[[0, 2, 3]]).all()
    assert "new.csv:3" in capsys.readouterr().err
    # the input's other columns travel with every row; one named like the target is renamed
    assert list(written["name"]) == [1, 2, 3, 4] and list(written["energy_input"]) == [0.5, 0.6, 0.7, 0.8]


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_train_with_overrides(tmp_path, scaffold_csv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "cli.yaml", csv_config(tmp_path, scaffold_csv, "value"))
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(path), "training.epochs=2", "model.hidden=8", "name=cli"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    run_dir = tmp_path / "run"
    assert f"run directory: {run_dir}" in result.output
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["epochs"] == 2 and saved["model"]["hidden"] == 8 and saved["name"] == "cli"
    assert checkpoint_step(run_dir) == 2 * 5  # 36 training rows in batches of 8, 2 epochs
    assert (run_dir / "metrics.json").is_file()
    # training again into a finished run is refused and leaves it as it was (config, checkpoints)
    before = read_predictions(predict_file(run_dir, scaffold_csv, tmp_path / "before.csv").output)
    refused = runner.invoke(app, ["train", str(path), "training.epochs=1", "model.hidden=4"])
    assert refused.exit_code != 0 and "already holds a run" in repr(refused.exception)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["hidden"] == 8
    after = read_predictions(predict_file(run_dir, scaffold_csv, tmp_path / "after.csv").output)
    pd.testing.assert_frame_equal(before, after)
    # --overwrite replaces the checkpoints and evaluates the new model
    again = runner.invoke(app, ["train", str(path), "training.epochs=1", "model.hidden=4", "--overwrite"])
    assert again.exit_code == 0, again.output + repr(again.exception)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert TrainedRun.load(run_dir).module.hparams["model"]["hidden"] == 4
    # and the run can be re-evaluated from the command line
    evaluated = runner.invoke(app, ["evaluate", str(run_dir)])
    assert evaluated.exit_code == 0, evaluated.output + repr(evaluated.exception)


def test_bad_override_key_is_a_config_error_naming_it(tmp_path, scaffold_csv):
    path = write_config(tmp_path / "c.yaml", csv_config(tmp_path, scaffold_csv, "value"))
    with pytest.raises(ConfigError, match=r"training\.learning_rate"):
        load_config(path, ["training.learning_rate=0.1"])
    with pytest.raises(ConfigError, match="datta"):
        load_config(path, ["datta.path=x.csv"])
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(path, ["training.lr"])
    # model is free-form: any key may be set, and an override keeps the rest of the section
    model = load_config(path, ["model.anything=3", "model.hidden=4"])["model"]
    assert model == {**MPNN, "anything": 3, "hidden": 4}
    with pytest.raises(ConfigError, match=r"model\.name is required"):
        load_config(write_config(tmp_path / "noname.yaml", {"model": {"hidden": 4}}))
    result = CliRunner().invoke(app, ["train", str(path), "training.learning_rate=0.1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "training.learning_rate" in str(result.exception)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------- classification


def test_classification_run_reports_roc_auc(tmp_path, scaffold_csv):
    config = load(tmp_path, csv_config(tmp_path, scaffold_csv, "active", kind="classification", epochs=3))
    run_dir = train_and_evaluate(config)
    module = TrainedRun.load(run_dir).module
    assert module.task.loss_name == "bce" and not module.task.normalizes
    metrics = json.loads((run_dir / "metrics.json").read_text())
    scores = metrics["test"]["active"]["model"]
    assert {"roc_auc", "accuracy"} <= set(scores)
    assert 0.0 <= scores["roc_auc"] <= 1.0
    assert "roc_auc" in metrics["test"]["active"]["mean_baseline"]
    predictions = pd.read_csv(run_dir / "predictions_test.csv")
    probabilities = predictions["active_pred"].to_numpy()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert set(predictions["active_true"]) <= {0.0, 1.0}


# --------------------------------------------------------------------------------------------- DDP


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path):
    xyz = tmp_path / "mols.xyz"
    write_xyz(xyz, n=40, seed=0)
    path = write_config(tmp_path / "ddp.yaml", structures_config(tmp_path, xyz, epochs=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("MASTER_PORT", None)
    overrides = ["training.accelerator=cpu", "training.devices=2", "training.strategy=ddp"]
    result = subprocess.run(
        [sys.executable, "-m", "atomgraph.cli.main", "train", str(path), *overrides],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Starting with 2 processes" in output or "GLOBAL_RANK: 1" in output, output[-4000:]
    run_dir = tmp_path / "run"
    assert (run_dir / "metrics.json").is_file()
    # 32 training rows, 2 ranks, batches of 8: 2 optimiser steps per epoch on each rank
    assert checkpoint_step(run_dir) == 2
