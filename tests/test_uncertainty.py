"""Uncertainty: deep ensembles in one run directory, the mean-variance and evidential outputs, MC
dropout, and the calibration metrics and recalibration (checked on synthetic data with known answers)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SCAFFOLD_SMILES, write_csv, write_xyz
from test_training import csv_config, load, structures_config

from atomgraph.cli.main import main
from atomgraph.evaluation.calibration import (
    Calibration,
    conformal_quantile,
    fit_calibration,
    uncertainty_metrics,
    variance_scale,
)
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.predict import predict_distribution, predict_file, read_predictions
from atomgraph.outputs.uncertainty import combine_members, gaussian_nll
from atomgraph.runs import RunLoadError, TrainedRun
from atomgraph.training.config import ConfigError
from atomgraph.training.datasets import load_dataset
from atomgraph.training.ensemble_module import EnsembleModule

GCN = {"name": "gcn", "hidden": 16, "layers": 2}

# ------------------------------------------------------------------------------- the formulas


def test_calibrated_gaussian_errors_score_as_calibrated_and_a_wrong_scale_is_found():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.5, 2.0, 20_000)
    y = rng.normal(0.0, sigma)
    good = uncertainty_metrics(y, np.zeros_like(y), sigma)
    assert good["miscalibration_area"] < 0.01
    assert good["coverage_68"] == pytest.approx(0.6827, abs=0.01)
    assert good["coverage_95"] == pytest.approx(0.95, abs=0.005)
    assert good["spearman_abs_error_sigma"] > 0.2  # sigma varies 4x: it ranks the errors
    expected_nll = np.mean(0.5 * np.log(2 * np.pi * sigma**2) + y**2 / (2 * sigma**2))
    assert good["nll"] == pytest.approx(expected_nll)
    overconfident = uncertainty_metrics(y, np.zeros_like(y), sigma / 3)
    assert overconfident["miscalibration_area"] > 0.25 and overconfident["coverage_95"] < 0.5
    assert variance_scale(y, np.zeros_like(y), sigma / 3) == pytest.approx(3.0, rel=0.02)


def test_conformal_intervals_cover_new_rows_at_the_stated_rate_even_with_a_wrong_sigma():
    rng = np.random.default_rng(1)
    coverages = []
    for _ in range(40):
        sigma = rng.uniform(0.5, 2.0, 400)
        y = rng.standard_t(3, 400) * sigma  # heavy tails: the Gaussian 1.96 would be wrong
        q = conformal_quantile(y[:200], np.zeros(200), 0.5 * sigma[:200], 0.9)
        coverages.append(np.mean(np.abs(y[200:]) <= q * 0.5 * sigma[200:]))
    assert np.mean(coverages) == pytest.approx(0.9, abs=0.015)  # finite-sample guarantee: >= 0.9 on average
    assert conformal_quantile(np.ones(5), np.zeros(5), np.ones(5), 0.95) == float("inf")  # too few rows
    with pytest.raises(ValueError, match="coverage"):
        conformal_quantile(np.ones(5), np.zeros(5), np.ones(5), 1.0)


def test_fit_calibration_is_per_target_and_ignores_missing_labels():
    rng = np.random.default_rng(2)
    y = rng.normal(0, 1, (1000, 2)) * np.array([1.0, 4.0])
    y[:100, 1] = np.nan
    calibration = fit_calibration(y, np.zeros_like(y), np.ones_like(y))
    assert calibration.scale == pytest.approx([1.0, 4.0], rel=0.06)
    assert calibration.n == [1000, 900]
    low, high = calibration.interval(np.zeros((3, 2)), np.ones((3, 2)))
    assert np.allclose(high - low, 2 * np.array(calibration.conformal))


def test_gaussian_nll_is_the_formula_and_skips_missing_labels():
    from atomgraph.outputs.uncertainty import MeanVarianceTask

    assert MeanVarianceTask().loss_name == "gaussian_nll"
    mean, variance = torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 0.5]])
    target = torch.tensor([[1.0, float("nan")]])
    assert float(gaussian_nll(mean, variance, target)) == pytest.approx(0.5 * (np.log(2.0) + 1 / 2.0))


def test_evidential_loss_is_the_student_t_nll_plus_the_evidence_term_and_skips_missing_labels():
    """The NIG marginal of y is a Student t (2 alpha degrees of freedom, location gamma, scale^2
    beta (1 + nu) / (nu alpha)): the loss is its negative log density (scipy's) plus the weighted
    evidence term; a NaN target is left out, and no label at all gives 0 with a gradient."""
    from scipy import stats

    from atomgraph.outputs.uncertainty import EvidentialTask, evidential_loss

    gamma, nu = torch.tensor([[0.2, 1.0], [-0.5, 0.0]]), torch.tensor([[0.7, 2.0], [1.5, 1.0]])
    alpha, beta = torch.tensor([[1.8, 3.0], [2.5, 2.0]]), torch.tensor([[0.9, 0.4], [1.2, 1.0]])
    target = torch.tensor([[1.0, float("nan")], [0.3, 2.0]])
    expected = []
    for i, j in ((0, 0), (1, 0), (1, 1)):
        g, n, a, b, y = (float(x[i, j]) for x in (gamma, nu, alpha, beta, target))
        t_nll = -stats.t.logpdf(y, df=2 * a, loc=g, scale=np.sqrt(b * (1 + n) / (n * a)))
        expected.append(t_nll + 0.1 * abs(y - g) * (2 * n + a))
    loss = evidential_loss(gamma, nu, alpha, beta, target, evidence_weight=0.1)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)
    task = EvidentialTask.from_config("regression", {"evidence_weight": 0.5})
    assert task.evidence_weight == 0.5 and task.loss_name == "evidential"
    for bad in (-1, None, "x", True, float("inf")):
        with pytest.raises(ValueError, match="evidence_weight"):
            EvidentialTask(evidence_weight=bad)
    none = torch.full((2, 2), float("nan"))
    raw = torch.zeros(2, 8, requires_grad=True)
    empty = EvidentialTask().nll(raw, none)
    empty.backward()
    assert float(empty.detach()) == 0.0 and raw.grad is not None
    # the variance: beta / (alpha - 1) * (1 + 1 / nu), from the softplus-transformed raw outputs
    mean, variance = EvidentialTask().mean_variance(torch.tensor([[0.5, 0.0, 1.0, 2.0]]))
    sp = torch.nn.functional.softplus
    nu_, alpha_, beta_ = (
        sp(torch.tensor(0.0)) + 1e-6,
        sp(torch.tensor(1.0)) + 1 + 1e-6,
        sp(torch.tensor(2.0)) + 1e-6,
    )
    assert float(mean) == 0.5
    assert float(variance) == pytest.approx(float(beta_ / (alpha_ - 1) * (1 + 1 / nu_)), rel=1e-6)


def test_ensemble_of_members_that_disagree_by_known_amounts():
    means = torch.tensor([[[1.0]], [[3.0]]])  # two members, one row: 1 and 3
    mean, sigma = combine_members(means, None)
    assert float(mean) == 2.0 and float(sigma) == 1.0
    mean, sigma = combine_members(means, torch.full_like(means, 2.0))  # + their own variance 4
    assert float(sigma) == pytest.approx(np.sqrt(1.0 + 4.0))


# ------------------------------------------------------------------------ runs with a sigma


@pytest.fixture(scope="module")
def regression_csv(tmp_path_factory):
    root = tmp_path_factory.mktemp("uncertainty_data")
    values = [len(s) * 0.1 + 0.01 * k for k, s in enumerate(SCAFFOLD_SMILES)]
    return write_csv(root / "mols.csv", SCAFFOLD_SMILES, value=values)


def _csv_run(root, csv, run: str, **model) -> dict:
    config = csv_config(root, csv, "value", run=run, epochs=3)
    config["model"] = {**GCN, **model}
    config["data"]["split"] = {"sizes": [0.5, 0.35, 0.15]}  # 21 validation rows: a finite 95 % interval
    return config


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, regression_csv):
    """A 3-member GCN ensemble trained through the CLI (``--ensemble 3 --bootstrap``)."""
    root = tmp_path_factory.mktemp("ensemble")
    config_file = root / "ens.yaml"
    config_file.write_text(json.dumps(_csv_run(root, regression_csv, "ens")))
    main(["train", str(config_file), "--ensemble", "3", "--bootstrap"])
    return root / "ens", root, regression_csv


def test_an_ensemble_trains_into_one_directory_and_predicts_the_members_mean_and_spread(ensemble_run):
    run_dir, _, _ = ensemble_run
    record = json.loads((run_dir / "ensemble.json").read_text())
    assert record == {"members": ["members/0", "members/1", "members/2"], "bootstrap": True}
    members = [TrainedRun.load(run_dir / "members" / str(k)) for k in range(3)]
    assert [m.config["seed"] for m in members] == [0, 1, 2]
    splits = [json.loads((run_dir / "members" / str(k) / "split.json").read_text()) for k in range(3)]
    assert all(s == splits[0] for s in splits)  # one split; bootstrap resamples only what is fitted
    assert json.loads((run_dir / "split.json").read_text()) == splits[0]
    ensemble = TrainedRun.load(run_dir)
    assert isinstance(ensemble.module, EnsembleModule)
    dataset = load_dataset(ensemble.config, ensemble.graph, progress=False)
    graphs = [dataset[i] for i in range(8)]
    mean, sigma = predict_distribution(ensemble.module, graphs)
    each = np.stack([_predict(m.module, graphs) for m in members])
    np.testing.assert_allclose(mean, each.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, each.std(0), rtol=1e-4, atol=1e-6)
    assert (sigma > 0).all()  # members trained on different seeds and resamples disagree
    metrics = json.loads((run_dir / "metrics.json").read_text())
    entry = metrics["test"]["value"]
    assert {"uncertainty", "uncertainty_recalibrated", "conformal_95"} <= set(entry)
    assert len(metrics["members"]["value"]) == 3
    assert (run_dir / "calibration.json").exists() and (run_dir / "plots" / "uncertainty_value.png").exists()
    assert "value_sigma" in (run_dir / "predictions_test.csv").read_text().splitlines()[0]


def _batches(graphs):
    from torch_geometric.loader import DataLoader

    return DataLoader(graphs, batch_size=4)


def _predict(module, graphs) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([module(b).numpy() for b in _batches(graphs)])


def test_predict_writes_recalibrated_sigma_and_conformal_intervals(ensemble_run, tmp_path):
    run_dir, _, csv = ensemble_run
    table = read_predictions(predict_file(run_dir, csv, tmp_path / "out.csv").output)
    calibration = json.loads((run_dir / "calibration.json").read_text())
    raw = predict_distribution(TrainedRun.load(run_dir).module, _graphs(run_dir, len(table)))[1][:, 0]
    np.testing.assert_allclose(table["value_sigma"], raw * calibration["scale"][0], rtol=1e-4)
    assert np.isfinite(calibration["conformal"][0])
    half = (table["value_high"] - table["value_low"]) / 2
    np.testing.assert_allclose(half, raw * calibration["conformal"][0], rtol=1e-4)
    np.testing.assert_allclose(
        (table["value_high"] + table["value_low"]) / 2, table["value"], rtol=1e-5, atol=1e-6
    )


def _graphs(run_dir, n):
    run = TrainedRun.load(run_dir)
    dataset = load_dataset(run.config, run.graph, progress=False)
    return [dataset[i] for i in range(n)]


def test_an_ensemble_run_directory_is_not_overwritten_and_not_exported(ensemble_run, tmp_path):
    run_dir, root, csv = ensemble_run
    config = load(root, _csv_run(root, csv, "ens"), ["ensemble.members=2"])
    with pytest.raises(ConfigError, match="already holds a run"):
        train_and_evaluate(config, progress=False)
    with pytest.raises(RunLoadError, match="ensemble"):
        TrainedRun.load(run_dir).export(tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="at least 2"):
        from atomgraph.training.ensemble import train_ensemble

        train_ensemble(load(root, _csv_run(root, csv, "one"), ["ensemble.members=1"]))


def test_a_killed_ensemble_resumes_its_unfinished_members(tmp_path, regression_csv):
    import shutil

    config = load(tmp_path, _csv_run(tmp_path, regression_csv, "kill"), ["ensemble.members=2"])
    run_dir = train_and_evaluate(config, progress=False)
    first = {k: v.clone() for k, v in TrainedRun.load(run_dir / "members" / "0").module.state_dict().items()}
    shutil.rmtree(run_dir / "members" / "1" / "checkpoints")  # killed before member 1's first checkpoint
    (run_dir / "ensemble.json").unlink()
    with pytest.raises(ConfigError, match="already holds a run"):
        train_and_evaluate(config, progress=False)  # not without --resume
    train_and_evaluate(config, resume=True, progress=False)
    assert (run_dir / "ensemble.json").exists() and (
        run_dir / "members" / "1" / "checkpoints" / "last.ckpt"
    ).exists()
    again = TrainedRun.load(run_dir / "members" / "0").module.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)  # a finished member is kept as it was
    assert isinstance(TrainedRun.load(run_dir).module, EnsembleModule)


def test_bootstrap_rows_are_a_seeded_resample_with_replacement():
    from atomgraph.training.run import bootstrap_rows

    rows = np.random.default_rng(0).permutation(5000)[:1000]  # row ids, not positions
    drawn = bootstrap_rows(rows, seed=3)
    assert len(drawn) == len(rows) and set(drawn.tolist()) <= set(rows.tolist())
    assert len(np.unique(drawn)) < len(rows)  # with replacement: about 63 % distinct
    assert (np.diff(drawn) >= 0).all()
    np.testing.assert_array_equal(drawn, bootstrap_rows(rows, seed=3))  # reproducible
    assert not np.array_equal(drawn, bootstrap_rows(rows, seed=4))


def test_bootstrap_members_each_fit_their_own_resample_of_the_training_rows(
    tmp_path, regression_csv, monkeypatch
):
    """``ensemble.bootstrap``: member k fits ``bootstrap_rows(train, seed + k)`` -- the training rows of
    the one split drawn with replacement, as many as there are -- and keeps its validation and test rows."""
    from atomgraph.training import run as run_module
    from atomgraph.training.run import bootstrap_rows

    fitted: list[dict] = []
    build = run_module.loaders

    def recording(dataset, split, *args, **kwargs):
        fitted.append({k: np.asarray(v).copy() for k, v in split.items()})
        return build(dataset, split, *args, **kwargs)

    monkeypatch.setattr(run_module, "loaders", recording)
    overrides = ["ensemble.members=2", "ensemble.bootstrap=true", "training.epochs=1", "seed=5"]
    run_dir = train_and_evaluate(load(tmp_path, _csv_run(tmp_path, regression_csv, "boot"), overrides),
                                 progress=False)  # fmt: skip
    split = json.loads((run_dir / "split.json").read_text())
    train = np.asarray(split["train"])
    assert len(fitted) == 2 and len(train) == 30
    for k, member in enumerate(fitted):
        np.testing.assert_array_equal(member["train"], bootstrap_rows(train, 5 + k))
        assert len(member["train"]) == len(train) and set(member["train"].tolist()) <= set(train.tolist())
        assert len(np.unique(member["train"])) < len(train)  # drawn with replacement
        np.testing.assert_array_equal(member["val"], split["val"])
        np.testing.assert_array_equal(member["test"], split["test"])
        assert json.loads((run_dir / "members" / str(k) / "split.json").read_text()) == split
    assert not np.array_equal(fitted[0]["train"], fitted[1]["train"])


def test_mean_variance_model_learns_a_sigma_and_is_recalibrated(tmp_path, regression_csv):
    config = load(tmp_path, _csv_run(tmp_path, regression_csv, "mv"), ["task.uncertainty=mean_variance"])
    run_dir = train_and_evaluate(config, progress=False)
    run = TrainedRun.load(run_dir)
    graphs = _graphs(run_dir, 6)
    assert run.module.model(next(iter(_batches(graphs)))).shape[1] == 2  # a mean and a variance
    mean, sigma = predict_distribution(run.module, graphs)
    assert mean.shape == sigma.shape == (6, 1) and (sigma > 0).all()
    np.testing.assert_allclose(mean, _predict(run.module, graphs), rtol=1e-6)
    with torch.no_grad():  # sigma in real units: sqrt(softplus(v) + 1e-6) times the normaliser's std
        raw = torch.cat([run.module.model(b) for b in _batches(graphs)])
    expected = torch.sqrt(torch.nn.functional.softplus(raw[:, 1:]) + 1e-6) * run.module.normalizer.std
    np.testing.assert_allclose(sigma, expected.numpy(), rtol=1e-5)
    assert float(run.module.normalizer.std[0]) != pytest.approx(1.0)  # the scale is really applied
    entry = json.loads((run_dir / "metrics.json").read_text())["test"]["value"]
    assert entry["uncertainty"]["n"] == entry["model"]["n"]
    # an exported file carries the calibration: predict from it writes the same recalibrated columns
    exported = TrainedRun.load(run_dir).export(tmp_path / "mv.pt")
    from_run = read_predictions(predict_file(run_dir, regression_csv, tmp_path / "a.csv").output)
    from_file = read_predictions(predict_file(exported, regression_csv, tmp_path / "b.csv").output)
    assert {"value_sigma", "value_low", "value_high"} <= set(from_file)
    np.testing.assert_allclose(from_file["value_sigma"], from_run["value_sigma"], rtol=1e-6)
    # an ensemble of mean-variance members: their spread plus the mean of their variances
    shifted = [TrainedRun.load(run_dir).module for _ in range(2)]
    shifted[0].normalizer.mean += 0.3  # members that disagree by +-0.3 (in real units: the mean shifts)
    shifted[1].normalizer.mean -= 0.3
    ensemble_mean, ensemble_sigma = predict_distribution(EnsembleModule(shifted), graphs)
    np.testing.assert_allclose(ensemble_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ensemble_sigma, np.sqrt(0.3**2 + sigma**2), rtol=1e-5)
    plain = TrainedRun.load(_plain_run(tmp_path, regression_csv)).module
    with pytest.raises(ValueError, match="uncertainty"):
        EnsembleModule([run.module, plain])
    with pytest.raises(ValueError, match="classification"):
        config = load(tmp_path, csv_config(tmp_path, regression_csv, "value", kind="classification", run="c"),
                      ["task.uncertainty=mean_variance"])  # fmt: skip
        train_and_evaluate(config, progress=False)


def test_evidential_model_learns_a_sigma_that_predict_and_ensembles_use(tmp_path, regression_csv):
    """task.uncertainty=evidential: four outputs per target; the sigma predict_distribution gives is
    the NIG's, in real units; predict writes it recalibrated; an ensemble of evidential members adds
    their spread; classification is refused."""
    config = load(tmp_path, _csv_run(tmp_path, regression_csv, "ev"), ["task.uncertainty=evidential"])
    run_dir = train_and_evaluate(config, progress=False)
    run = TrainedRun.load(run_dir)
    graphs = _graphs(run_dir, 6)
    with torch.no_grad():
        raw = torch.cat([run.module.model(b) for b in _batches(graphs)])
    assert raw.shape == (6, 4)  # gamma, nu, alpha, beta
    mean, sigma = predict_distribution(run.module, graphs)
    np.testing.assert_allclose(mean, _predict(run.module, graphs), rtol=1e-6)
    sp = torch.nn.functional.softplus
    nu, alpha, beta = sp(raw[:, 1:2]) + 1e-6, sp(raw[:, 2:3]) + 1 + 1e-6, sp(raw[:, 3:4]) + 1e-6
    expected = torch.sqrt(beta / (alpha - 1) * (1 + 1 / nu)) * run.module.normalizer.std
    np.testing.assert_allclose(sigma, expected.numpy(), rtol=1e-5)
    entry = json.loads((run_dir / "metrics.json").read_text())["test"]["value"]
    assert entry["uncertainty"]["n"] == entry["model"]["n"]
    table = read_predictions(predict_file(run_dir, regression_csv, tmp_path / "ev.csv").output)
    assert {"value_sigma", "value_low", "value_high"} <= set(table) and (table["value_sigma"] > 0).all()
    exported = TrainedRun.load(run_dir).export(tmp_path / "ev.pt")  # the file predicts the same sigmas
    from_file = read_predictions(predict_file(exported, regression_csv, tmp_path / "ev_file.csv").output)
    np.testing.assert_allclose(from_file["value_sigma"], table["value_sigma"], rtol=1e-6)
    members = [TrainedRun.load(run_dir).module for _ in range(2)]
    members[0].normalizer.mean += 0.2
    members[1].normalizer.mean -= 0.2
    ensemble_mean, ensemble_sigma = predict_distribution(EnsembleModule(members), graphs)
    np.testing.assert_allclose(ensemble_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ensemble_sigma, np.sqrt(0.2**2 + sigma**2), rtol=1e-5)
    with pytest.raises(ValueError, match="needs a regression task"):
        classify = csv_config(tmp_path, regression_csv, "value", kind="classification", run="ce")
        config = load(tmp_path, classify, ["task.uncertainty=evidential"])
        train_and_evaluate(config, progress=False)


def test_evidential_model_of_two_targets_keeps_each_targets_parameters_apart(tmp_path):
    """Two targets of different scales: the 8 outputs are 4 blocks of 2 columns (gamma, nu, alpha, beta),
    and each target's sigma is its own block's, in its own unit."""
    values = np.array([len(s) * 0.1 for s in SCAFFOLD_SMILES])
    csv = write_csv(tmp_path / "two.csv", SCAFFOLD_SMILES, small=values, large=100 * values[::-1] + 5)
    config = _csv_run(tmp_path, csv, "ev2")
    config["data"]["targets"] = ["small", "large"]
    run_dir = train_and_evaluate(load(tmp_path, config, ["task.uncertainty=evidential"]), progress=False)
    run = TrainedRun.load(run_dir)
    graphs = _graphs(run_dir, 5)
    with torch.no_grad():
        raw = torch.cat([run.module.model(b) for b in _batches(graphs)])
    assert raw.shape == (5, 8)
    mean, sigma = predict_distribution(run.module, graphs)
    np.testing.assert_allclose(mean, _predict(run.module, graphs), rtol=1e-6)
    sp = torch.nn.functional.softplus
    for t in range(2):
        nu, alpha, beta = (sp(raw[:, 2 * k + t]) + (1 if k == 2 else 0) + 1e-6 for k in (1, 2, 3))
        expected = torch.sqrt(beta / (alpha - 1) * (1 + 1 / nu)) * run.module.normalizer.std[t]
        np.testing.assert_allclose(sigma[:, t], expected.numpy(), rtol=1e-5)
    assert float(run.module.normalizer.std[1]) > 10 * float(run.module.normalizer.std[0])


def _plain_run(root, csv):
    return train_and_evaluate(load(root, _csv_run(root, csv, "plain")), progress=False)


def test_mc_dropout_gives_a_spread_with_batch_norm_frozen(tmp_path, regression_csv):
    config = load(tmp_path, _csv_run(tmp_path, regression_csv, "mc", dropout=0.3, norm="batch"))
    run_dir = train_and_evaluate(config, progress=False)
    module = TrainedRun.load(run_dir).module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    graphs = _graphs(run_dir, 6)
    deterministic = _predict(module, graphs)
    torch.manual_seed(0)
    mean, sigma = predict_distribution(module, graphs, mc_samples=30)
    assert (sigma > 0).all() and not np.allclose(mean, deterministic)
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics untouched
    assert not module.training and not any(m.training for m in module.modules())
    table = read_predictions(predict_file(run_dir, regression_csv, tmp_path / "mc.csv", mc_samples=10).output)
    assert (table["value_sigma"] > 0).all() and "value_low" not in table  # no calibration for MC sigma
    # the draws are seeded per chunk: the same with worker processes, and again
    in_workers = predict_file(run_dir, regression_csv, tmp_path / "mcw.csv", mc_samples=10, workers=2)
    pd.testing.assert_frame_equal(read_predictions(in_workers.output), table, rtol=1e-5)
    again = predict_file(run_dir, regression_csv, tmp_path / "mc2.csv", mc_samples=10)
    pd.testing.assert_frame_equal(read_predictions(again.output), table)
    plain_dir = _plain_run(tmp_path, regression_csv)
    plain = TrainedRun.load(plain_dir).module
    with pytest.raises(ValueError, match="dropout"):
        predict_distribution(plain, graphs, mc_samples=5)
    with pytest.raises(ValueError, match="needs a model with dropout"):  # refused up front, not per row
        predict_file(plain_dir, regression_csv, tmp_path / "none.csv", mc_samples=5)
    with pytest.raises(ValueError, match="no sigma"):
        predict_distribution(plain, graphs)


@pytest.fixture(scope="module")
def potential_ensemble(tmp_path_factory):
    """A 2-member SchNet potential ensemble on random H/C/O molecules, and the molecules."""
    root = tmp_path_factory.mktemp("potential_ensemble")
    xyz = root / "mols.xyz"
    molecules = write_xyz(xyz, n=30, seed=0)
    config = structures_config(root, xyz, run="pot", epochs=2)
    config["task"] = {"kind": "potential"}
    return train_and_evaluate(load(root, config, ["ensemble.members=2"]), progress=False), molecules


def test_a_potential_ensemble_gives_energy_and_force_spread(potential_ensemble):
    from torch_geometric.data import Batch

    from atomgraph.md import CommitteeCalculator

    run_dir, molecules = potential_ensemble
    run = TrainedRun.load(run_dir)
    committee = CommitteeCalculator(run_dir)
    atoms = copy.deepcopy(molecules[0])
    atoms.calc = committee
    energy = atoms.get_potential_energy()
    energies = committee.results["energies"]
    assert energy == pytest.approx(energies.mean()) and committee.results["energy_std"] > 0
    graph = run.build_graph(molecules[0])
    out = {k: v.detach() for k, v in run.module.compute(Batch.from_data_list([graph])).items()}
    assert float(out["energy"]) == pytest.approx(energy, abs=1e-4)
    assert float(out["energy_std"]) == pytest.approx(committee.results["energy_std"], abs=1e-4)
    assert "energy" in json.loads((run_dir / "metrics.json").read_text())["members"]
    with pytest.raises(ValueError, match="not an ensemble"):
        CommitteeCalculator(run_dir / "members" / "0")
    from atomgraph.md import Calculator

    with pytest.raises(ValueError, match="is an ensemble: use CommitteeCalculator"):
        Calculator(run_dir)


def test_md_and_relax_stop_or_flag_where_the_members_disagree(potential_ensemble):
    from atomgraph.md.committee import calculator_for
    from atomgraph.md.dynamics import max_force_sigma, run_md
    from atomgraph.md.relax import relax

    run_dir, molecules = potential_ensemble
    atoms = copy.deepcopy(molecules[1])
    calculator = calculator_for(run_dir)
    atoms.calc = calculator
    atoms.get_forces()
    start = max_force_sigma(calculator)
    spread = np.sqrt((calculator.results["forces_std"] ** 2).sum(1)).max()
    assert start == pytest.approx(spread) and start > 0
    flagged = run_md(
        copy.deepcopy(molecules[1]), calculator, steps=5, force_sigma_limit=0.0, on_uncertain="flag"
    )
    # the starting structure (step 0) is checked too
    assert flagged.uncertain_steps == (0, 1, 2, 3, 4, 5) and not flagged.stopped and flagged.steps == 5
    assert flagged.force_sigma is not None and (flagged.force_sigma > 0).all()
    stopped = run_md(copy.deepcopy(molecules[1]), calculator, steps=5, force_sigma_limit=0.0)
    assert stopped.stopped and stopped.steps == 0 and stopped.uncertain_steps == (0,)
    calm = run_md(copy.deepcopy(molecules[1]), calculator, steps=3, force_sigma_limit=1e6)
    assert calm.steps == 3 and not calm.uncertain_steps
    result = relax(copy.deepcopy(molecules[1]), calculator, steps=5, force_sigma_limit=0.0)
    assert result.stopped_uncertain and not result.converged and result.steps == 0
    single = calculator_for(run_dir / "members" / "0")
    with pytest.raises(ValueError, match="force spread"):
        run_md(copy.deepcopy(molecules[1]), single, steps=2, force_sigma_limit=0.1)
    with pytest.raises(ValueError, match="on_uncertain"):
        run_md(copy.deepcopy(molecules[1]), calculator, steps=2, on_uncertain="ignore")


def test_active_learning_scores_frames_by_the_committee_force_spread(potential_ensemble):
    from atomgraph.evaluation.active_learning import force_disagreement, select_frames
    from atomgraph.md.committee import calculator_for
    from atomgraph.md.dynamics import max_force_sigma

    run_dir, molecules = potential_ensemble
    run = TrainedRun.load(run_dir)
    frames = [copy.deepcopy(m) for m in molecules[:5]]
    scores = force_disagreement(run.module, [run.build_graph(m) for m in frames], batch_size=2)
    calculator = calculator_for(run_dir)
    expected = []
    for atoms in frames:
        atoms.calc = calculator
        atoms.get_forces()
        expected.append(max_force_sigma(calculator))
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-7)
    assert select_frames(np.array([0.1, 0.5, 0.3, 0.5]), 3).tolist() == [1, 3, 2]
    with pytest.raises(ValueError, match="committee"):
        force_disagreement(TrainedRun.load(run_dir / "members" / "0").module, [run.build_graph(frames[0])])


def test_acquisition_is_the_optimistic_bound_in_the_ranking_direction():
    from atomgraph.evaluation.acquisition import acquisition_scores

    mean, sigma = np.array([1.0, 2.0]), np.array([2.0, 0.0])
    assert acquisition_scores(mean, sigma, True, "ucb", 1.0).tolist() == [3.0, 2.0]
    assert acquisition_scores(mean, sigma, False, "ucb", 0.5).tolist() == [0.0, 2.0]
    assert acquisition_scores(mean, None, True).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="needs a sigma"):
        acquisition_scores(mean, None, True, "ucb")
    with pytest.raises(ValueError, match="unknown acquisition"):
        acquisition_scores(mean, sigma, True, "ei")


def test_screen_crystals_with_an_ensemble_writes_sigma_and_ranks_by_ucb(tmp_path):
    import pandas as pd
    from test_crystals import cif_bytes, crystal_config, crystals

    from atomgraph.apps.crystals.screening import screen_structures

    config = crystal_config(tmp_path)
    config["ensemble"]["members"] = 2
    config["data"]["crystals"]["descriptor_baseline"] = False
    run_dir = train_and_evaluate(config, progress=False)
    folder = tmp_path / "candidates"
    folder.mkdir()
    for k, atoms in enumerate(crystals(6, seed=7)):
        (folder / f"c{k}.cif").write_bytes(cif_bytes(atoms))
    # 3 validation rows give no finite 95 % interval: finite q's, so the bounds say something
    fitted = Calibration.load(run_dir / "calibration.json")
    Calibration(fitted.scale, [1.5, 2.5], fitted.coverage, fitted.n).save(run_dir / "calibration.json")
    screen_structures(run_dir, folder, tmp_path / "ranked.csv", "band_gap", workers=1, progress=False,
                      acquisition="ucb", kappa=2.0)  # fmt: skip
    table = pd.read_csv(tmp_path / "ranked.csv")
    calibration = json.loads((run_dir / "calibration.json").read_text())
    assert (table["band_gap_sigma"] > 0).all()
    expected = table["band_gap"] + 2.0 * table["band_gap_sigma"]  # band gaps rank high first: upper bound
    np.testing.assert_allclose(table["acquisition"], expected)
    assert table["acquisition"].is_monotonic_decreasing
    (run_dir / "calibration.json").rename(tmp_path / "away.json")  # without it: the raw sigma
    screen_structures(run_dir, folder, tmp_path / "raw.csv", "band_gap", workers=1, progress=False)
    raw = pd.read_csv(tmp_path / "raw.csv")
    (tmp_path / "away.json").rename(run_dir / "calibration.json")
    scaled = table.set_index("id")["band_gap_sigma"]
    unscaled = raw.set_index("id")["band_gap_sigma"]
    np.testing.assert_allclose(scaled, unscaled.loc[scaled.index] * calibration["scale"][1], rtol=1e-6)
    # the conformal bounds, as predict writes them: mean -+ q * raw sigma, from the run's calibration
    names = ["formation_energy_per_atom", "band_gap"]
    assert not {f"{n}_{side}" for n in names for side in ("low", "high")} & set(raw)
    indexed, raw = table.set_index("id"), raw.set_index("id").loc[table["id"]]
    mean, raw_sigma = indexed[names].to_numpy(), raw[[f"{n}_sigma" for n in names]].to_numpy()
    low, high = Calibration.from_record(calibration).interval(mean, raw_sigma)
    np.testing.assert_allclose(indexed[[f"{n}_low" for n in names]], low, rtol=1e-6)
    np.testing.assert_allclose(indexed[[f"{n}_high" for n in names]], high, rtol=1e-6)
    assert (low < mean).all() and (mean < high).all()
    written = pd.read_csv(tmp_path / "ranked.csv")
    assert {"band_gap_sigma", "formation_energy_per_atom_sigma", "acquisition"} <= set(written)
    plain = TrainedRun.load(run_dir / "members" / "0")
    with pytest.raises(ValueError, match="needs a sigma"):
        screen_structures(plain.source.parent.parent, folder, tmp_path / "x.csv", workers=1, progress=False,
                          acquisition="ucb")  # fmt: skip


def test_uncertainty_config_is_checked(tmp_path, regression_csv):
    with pytest.raises(ValueError, match=r"task\.uncertainty.*evidential"):  # the choices are named
        config = load(tmp_path, _csv_run(tmp_path, regression_csv, "bad"), ["task.uncertainty=dirichlet"])
        train_and_evaluate(config, progress=False)
    with pytest.raises(ValueError, match="evidence_weight"):
        config = load(tmp_path, _csv_run(tmp_path, regression_csv, "bad_weight"),
                      ["task.uncertainty=evidential", "task.evidence_weight=-1"])  # fmt: skip
        train_and_evaluate(config, progress=False)


def test_ensemble_misuse_is_refused_with_a_message(ensemble_run, tmp_path):
    from atomgraph.runs import initial_weights

    run_dir, _, csv = ensemble_run
    config_file = tmp_path / "c.yaml"
    config_file.write_text(json.dumps(_csv_run(tmp_path, csv, "b")))
    with pytest.raises(SystemExit) as done:
        main(["train", str(config_file), "--bootstrap"])  # bootstrap without an ensemble
    assert done.value.code == 2
    config = load(tmp_path, _csv_run(tmp_path, csv, "ft"), [f"init.from={run_dir}"])
    with pytest.raises(RunLoadError, match="is an ensemble"):
        initial_weights(config)


def test_input_columns_named_like_sigma_outputs_are_kept(ensemble_run, tmp_path):
    run_dir, _, _ = ensemble_run
    library = write_csv(
        tmp_path / "lib.csv", ["CCO", "c1ccccc1"], value_sigma=[1.0, 2.0], value_low=[3.0, 4.0]
    )
    table = read_predictions(predict_file(run_dir, library, tmp_path / "out.csv").output)
    assert table["value_sigma_input"].tolist() == [1.0, 2.0] and table["value_low_input"].tolist() == [
        3.0,
        4.0,
    ]
    assert (table["value_sigma"] > 0).all()
