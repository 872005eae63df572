"""Evaluation: exact metric values on hand-made arrays, baselines, and that every plot writes a real PNG."""

from __future__ import annotations

import math

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from atomgraph.evaluation import (
    CompositionBaseline,
    MeanBaseline,
    classification_metrics,
    comparison_bar,
    composition_matrix,
    error_histogram,
    error_vs_size,
    kendall_tau,
    learning_curves,
    mae,
    parity_plot,
    pearson,
    per_task_metrics,
    r2,
    regression_metrics,
    rmse,
    roc_auc,
    spearman,
    top_k_recall,
)

NAN = float("nan")

# ---------------------------------------------------------------------------------------------- metrics


def test_mae_and_rmse_exact():
    assert mae([1, 2, 3], [1, 2, 4]) == pytest.approx(1 / 3)
    assert rmse([1, 2, 3], [1, 2, 4]) == pytest.approx(math.sqrt(1 / 3))
    assert rmse([0, 0], [3, -4]) == pytest.approx(math.sqrt(12.5))
    assert mae([[0, 1], [2, 3]], [[1, 1], [2, 5]]) == pytest.approx(3 / 4)  # any shape, flattened


def test_r2_perfect_mean_and_constant_target():
    y = np.array([1.0, 2.0, 4.0, 8.0])
    assert r2(y, y) == 1.0
    assert r2(y, np.full_like(y, y.mean())) == pytest.approx(0.0)
    assert r2(y, -y) < 0
    assert math.isnan(r2([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))


def test_rank_and_linear_correlations():
    x = np.array([0.1, 0.5, 0.2, 3.0, 1.5])
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)  # monotone transform
    assert spearman(x, -(x**3)) == pytest.approx(-1.0)
    assert kendall_tau(x, np.exp(x)) == pytest.approx(1.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


def test_correlations_of_constant_input_are_nan_without_raising():
    with np.errstate(all="raise"):
        assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
        assert math.isnan(spearman([4, 4, 4], [1, 2, 3]))
        assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))
        assert math.isnan(kendall_tau([1, 2, 3], [5, 5, 5]))
        assert math.isnan(spearman([1.0], [2.0]))


def test_top_k_recall_smallest_and_largest():
    y_true = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    # smallest two are indices 0, 1; the prediction puts 0 and 5 lowest -> one of two recovered
    y_pred = np.array([0.0, 9.0, 8.0, 7.0, 6.0, -1.0])
    assert top_k_recall(y_true, y_pred, k=2) == 0.5
    assert top_k_recall(y_true, y_true, k=3) == 1.0
    assert top_k_recall(y_true, -y_true, k=3) == 0.0
    # largest two are indices 4, 5; y_pred's largest are 1, 2 -> none recovered
    assert top_k_recall(y_true, y_pred, k=2, largest=True) == 0.0
    assert top_k_recall(y_true, -y_true, k=3, largest=True) == 0.0
    assert top_k_recall(y_true, y_true, k=2, largest=True) == 1.0
    # largest three are 3, 4, 5; prediction's largest three are 1, 2, 3 -> only 3 in common
    assert top_k_recall(y_true, y_pred, k=3, largest=True) == pytest.approx(1 / 3)
    # k larger than the data is clipped
    assert top_k_recall(y_true, y_pred, k=100) == 1.0
    with pytest.raises(ValueError, match="top_k_recall"):
        top_k_recall(y_true, y_pred, k=0)


def test_top_k_recall_ignores_nan_targets():
    y_true = np.array([NAN, 1.0, 2.0, 3.0])
    y_pred = np.array([-100.0, 1.0, 2.0, 3.0])  # the unlabelled entry must not steal a top-k slot
    assert top_k_recall(y_true, y_pred, k=1) == 1.0


def test_roc_auc_and_classification_metrics():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="roc_auc"):
        roc_auc([0, 2, 1], [0.1, 0.2, 0.3])
    m = classification_metrics([0, 0, 1, 1, NAN], [0.1, 0.6, 0.5, 0.9, 0.0])
    assert m == {"roc_auc": 0.75, "accuracy": 0.75, "n": 4}


def test_nan_targets_are_ignored():
    y_true = np.array([1.0, NAN, 3.0, NAN])
    y_pred = np.array([1.0, 100.0, 4.0, -7.0])
    assert mae(y_true, y_pred) == pytest.approx(0.5)
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(0.5))
    assert roc_auc([0, NAN, 1], [0.2, 0.9, 0.3]) == 1.0
    m = regression_metrics(y_true, y_pred)
    assert m["n"] == 2 and m["mae"] == pytest.approx(0.5)
    assert set(m) == {"mae", "rmse", "r2", "spearman", "n"}


def test_nan_prediction_makes_metric_nan_not_good():
    assert math.isnan(mae([1.0, 2.0], [1.0, NAN]))


@pytest.mark.parametrize(
    "fn", [mae, rmse, r2, spearman, pearson, kendall_tau, top_k_recall, roc_auc, regression_metrics]
)
def test_shape_mismatch_and_no_labels_raise_naming_the_metric(fn):
    with pytest.raises(ValueError, match=fn.__name__):
        fn([0.0, 1.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=fn.__name__):
        fn([NAN, NAN], [0.0, 1.0])


def test_torch_tensors_are_accepted():
    t = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    p = torch.tensor([1.0, 2.0, 4.0])
    assert mae(t, p) == pytest.approx(1 / 3)
    assert regression_metrics(t, p)["n"] == 3


def test_per_task_metrics():
    y_true = np.array([[1.0, 0], [2.0, 1], [3.0, NAN], [NAN, 1]])
    y_pred = np.array([[1.0, 0.2], [2.0, 0.7], [5.0, 0.1], [0.0, 0.4]])
    reg = per_task_metrics(y_true[:, :1], y_pred[:, :1], ["energy"])
    assert reg["energy"]["mae"] == pytest.approx(2 / 3)
    assert reg["energy"]["n"] == 3
    cls = per_task_metrics(y_true[:, 1], y_pred[:, 1], ["b"], kind="classification")  # 1D: one task
    assert cls["b"] == {"roc_auc": 1.0, "accuracy": pytest.approx(2 / 3), "n": 3}
    with pytest.raises(ValueError, match="names"):
        per_task_metrics(y_true, y_pred, ["only_one"])
    with pytest.raises(ValueError, match="'empty'"):
        per_task_metrics(np.array([[1.0, NAN]]), np.array([[1.0, 2.0]]), ["full", "empty"])


# -------------------------------------------------------------------------------------------- baselines


def test_mean_baseline_uses_training_mean_only():
    train = np.array([1.0, 2.0, NAN, 6.0])
    base = MeanBaseline().fit(train)
    pred = base.predict(5)
    assert pred.shape == (5,)
    np.testing.assert_allclose(pred, 3.0)
    # the test targets play no part: same prediction whatever they are
    test = np.array([100.0, 200.0, 300.0])
    assert mae(test, base.predict(len(test))) == pytest.approx(np.mean(test) - 3.0)


def test_mean_baseline_multitask_columns():
    train = np.array([[1.0, NAN], [3.0, 10.0], [NAN, 20.0]])
    pred = MeanBaseline().fit(train).predict(2)
    np.testing.assert_allclose(pred, [[2.0, 15.0], [2.0, 15.0]])
    with pytest.raises(ValueError):
        MeanBaseline().fit(np.array([[1.0, NAN], [2.0, NAN]]))
    with pytest.raises(RuntimeError):
        MeanBaseline().predict(3)


def test_composition_matrix_counts_and_fractions():
    numbers = [np.array([1, 1, 8]), torch.tensor([6, 1, 1, 1, 1]), np.array([], dtype=int)]
    counts = composition_matrix(numbers, max_z=10)
    assert counts.shape == (3, 10)
    assert counts[0, 0] == 2 and counts[0, 7] == 1 and counts[0].sum() == 3
    assert counts[1, 0] == 4 and counts[1, 5] == 1
    assert not counts[2].any()
    frac = composition_matrix(numbers, max_z=10, fractions=True)
    np.testing.assert_allclose(frac[0, [0, 7]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(frac[:2].sum(axis=1), 1.0)
    assert not frac[2].any()
    with pytest.raises(ValueError, match="outside"):
        composition_matrix([np.array([1, 11])], max_z=10)


def _synthetic_compositions(rng, n, elements=(1, 6, 7, 8, 9)):
    return [rng.choice(elements, size=rng.integers(2, 20)) for _ in range(n)]


def test_composition_ridge_recovers_per_element_contributions():
    rng = np.random.default_rng(0)
    contributions = np.zeros(100)
    contributions[[0, 5, 6, 7, 8]] = [-13.6, -1029.0, -1484.0, -2041.0, -2713.0]  # eV per H, C, N, O, F
    structures = _synthetic_compositions(rng, 300)
    y = composition_matrix(structures) @ contributions + rng.normal(0, 0.01, size=300)
    y[::17] = NAN  # missing labels are dropped in fit
    train, test = slice(0, 240), slice(240, 300)
    base = CompositionBaseline("ridge", alpha=1e-8, fit_intercept=False).fit(structures[train], y[train])
    np.testing.assert_allclose(base.coef_[[0, 5, 6, 7, 8]], contributions[[0, 5, 6, 7, 8]], atol=0.05)
    assert mae(y[test], base.predict(structures[test])) < 0.05
    # with an intercept and CV-picked alpha the held-out error stays tiny
    cv = CompositionBaseline("ridge", alpha=None).fit(structures[train], y[train])
    assert mae(y[test], cv.predict(structures[test])) < 0.1


def test_composition_mlp_beats_mean_on_intensive_target():
    rng = np.random.default_rng(1)
    structures = _synthetic_compositions(rng, 400)
    frac = composition_matrix(structures, fractions=True)
    y = frac[:, [0, 5, 6, 7, 8]] @ np.array([0.5, -1.0, 2.0, 1.0, -0.5])
    train, test = slice(0, 320), slice(320, 400)
    mlp = CompositionBaseline("mlp", fractions=True, seed=0).fit(structures[train], y[train])
    mean_mae = mae(y[test], MeanBaseline().fit(y[train]).predict(80))
    assert mae(y[test], mlp.predict(structures[test])) < 0.5 * mean_mae
    with pytest.raises(AttributeError):
        _ = mlp.coef_


def test_composition_baseline_input_checks():
    with pytest.raises(ValueError):
        CompositionBaseline("forest")
    with pytest.raises(ValueError, match="structures"):
        CompositionBaseline().fit([np.array([1])], [1.0, 2.0])
    with pytest.raises(RuntimeError):
        CompositionBaseline().predict([np.array([1])])


# ------------------------------------------------------------------------------------------------ plots


def _assert_png(path, min_bytes=1024):
    assert path.exists() and path.stat().st_size > min_bytes
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)


@pytest.mark.parametrize("n", [200, 6000])
def test_parity_plot_scatter_and_hexbin(tmp_path, n):
    rng = np.random.default_rng(0)
    y = rng.normal(size=n)
    y_pred = y + rng.normal(scale=0.1, size=n)
    y[:5] = NAN
    out = parity_plot(y, y_pred, tmp_path / "sub" / "parity.png", title="test", unit="eV")
    assert out == tmp_path / "sub" / "parity.png"
    _assert_png(out)


def test_error_plots_and_comparison_bar(tmp_path):
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 30, size=300)
    y = rng.normal(size=300) * sizes
    y_pred = y + rng.normal(scale=0.05, size=300) * sizes
    _assert_png(error_histogram(y, y_pred, tmp_path / "hist.png", unit="eV"))
    _assert_png(error_vs_size(sizes, y, y_pred, tmp_path / "size.png", unit="eV"))
    results = {"SchNet": 0.012, "PaiNN": 0.009, "composition baseline": 0.35, "mean baseline": NAN}
    _assert_png(comparison_bar(results, tmp_path / "bar.png", metric="MAE", unit="eV/atom"))
    with pytest.raises(ValueError):
        comparison_bar({}, tmp_path / "empty.png")


SPARSE_LIGHTNING_CSV = """epoch,lr-Adam,step,train_loss_epoch,train_loss_step,val_loss,val_mae
,0.001,0,,,,
0,,9,,0.9,,
0,,19,,0.7,,
0,,19,,,0.8,0.61
0,,19,0.75,,,
1,,29,,0.5,,
1,,39,,0.4,,
1,,39,,,0.45,0.42
1,,39,0.42,,,
2,,49,,0.3,,
2,,59,,0.2,,
2,,59,,,0.31,0.33
2,,59,0.26,,,
"""


def test_learning_curves_sparse_lightning_layout(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(SPARSE_LIGHTNING_CSV)
    _assert_png(learning_curves(csv, tmp_path / "curves.png"))
    # only a step-level train loss, no validation: still plotted
    partial = tmp_path / "partial.csv"
    partial.write_text("epoch,step,train_loss\n0,0,1.0\n0,1,0.8\n1,2,0.6\n1,3,0.5\n")
    _assert_png(learning_curves(partial, tmp_path / "partial.png"))


def test_learning_curves_without_usable_columns_raises(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,lr-Adam,val_loss\n0,0,0.001,\n1,10,0.001,\n")
    with pytest.raises(ValueError, match="learning_curves"):
        learning_curves(csv, tmp_path / "curves.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="learning_curves"):
        learning_curves(empty, tmp_path / "empty.png")
