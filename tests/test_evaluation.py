"""Evaluation: exact metric values on hand-made arrays, baselines, and what every plot draws."""

from __future__ import annotations

import math
import pickle

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

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
from atomgraph.evaluation.plots import dataset_plot, error_qq_plot, error_vs_true

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
    """A decodable PNG with something drawn on it (not one flat colour)."""
    assert path.exists() and path.stat().st_size > min_bytes
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image[..., :3].std() > 0.01, f"{path.name} is blank"
    return image


def keep_saved_figures(monkeypatch) -> list[Figure]:
    """Copies of the figures the plot functions save (each one saves, then clears, its Figure)."""
    figures: list[Figure] = []
    save = Figure.savefig

    def save_and_keep(fig, *args, **kwargs):
        save(fig, *args, **kwargs)
        figures.append(pickle.loads(pickle.dumps(fig)))

    monkeypatch.setattr(Figure, "savefig", save_and_keep)
    return figures


@pytest.fixture
def saved_figures(monkeypatch) -> list[Figure]:
    return keep_saved_figures(monkeypatch)


def _texts(ax) -> str:
    return "\n".join(t.get_text() for t in ax.texts)


@pytest.mark.parametrize("n", [200, 6000])
def test_parity_plot_scatter_and_hexbin(tmp_path, n, saved_figures):
    rng = np.random.default_rng(0)
    y = rng.normal(size=n)
    y_pred = y + rng.normal(scale=0.1, size=n)
    y[:5] = NAN
    out = parity_plot(y, y_pred, tmp_path / "sub" / "parity.png", title="test", unit="eV")
    assert out == tmp_path / "sub" / "parity.png"
    image = _assert_png(out)
    assert image.shape[:2] == (750, 750)  # 5 x 5 in at 150 dpi

    (fig,) = saved_figures
    ax = fig.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("test", "true [eV]", "predicted [eV]")
    t, p = y[5:], y_pred[5:]
    lo, hi = ax.get_xlim()
    assert ax.get_ylim() == (lo, hi)  # shared limits, equal axes
    assert lo < min(t.min(), p.min()) and hi > max(t.max(), p.max())
    assert hi - lo < 1.1 * (max(t.max(), p.max()) - min(t.min(), p.min()))  # tight around the data
    (diagonal,) = ax.lines
    np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())  # the y = x line
    (points,) = ax.collections
    if n <= 5000:
        np.testing.assert_allclose(points.get_offsets(), np.column_stack([t, p]))  # NaN targets dropped
    else:
        assert points.get_array().sum() == n - 5  # hexbin counts every finite pair once
        assert fig.axes[1].get_ylabel() == "count"  # its colour bar
    assert _texts(ax) == f"MAE = {mae(t, p):.4g} eV\nR² = {r2(t, p):.4f}\nn = {n - 5}"


def test_error_plots_and_comparison_bar(tmp_path, saved_figures):
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
    histogram, by_size, bars = saved_figures

    err = y_pred - y
    ax = histogram.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("error (predicted − true) [eV]", "count")
    counts = [patch.get_height() for patch in ax.patches]
    assert len(counts) == 50 and sum(counts) == 300
    assert ax.patches[0].get_x() == pytest.approx(err.min())
    assert ax.patches[-1].get_x() + ax.patches[-1].get_width() == pytest.approx(err.max())
    assert f"mean = {err.mean():.3g} eV" in _texts(ax) and "n = 300" in _texts(ax)

    top, bottom = by_size.axes
    assert (top.get_ylabel(), bottom.get_ylabel(), bottom.get_xlabel()) == (
        "MAE [eV]",
        "count",
        "number of atoms",
    )
    per_size, overall = top.lines
    uniq = np.unique(sizes)
    np.testing.assert_array_equal(per_size.get_xdata(), uniq)
    expected = [np.abs(err[sizes == s]).mean() for s in uniq]
    np.testing.assert_allclose(per_size.get_ydata(), expected)
    np.testing.assert_allclose(overall.get_ydata(), np.abs(err).mean())
    np.testing.assert_array_equal(
        [b.get_height() for b in bottom.patches], [(sizes == s).sum() for s in uniq]
    )

    ax = bars.axes[0]
    assert ax.get_xlabel() == "MAE [eV/atom]"
    assert [label.get_text() for label in ax.get_yticklabels()] == list(results)
    np.testing.assert_allclose([b.get_width() for b in ax.patches], [0.012, 0.009, 0.35, 0.0])
    assert [t.get_text() for t in ax.texts] == ["0.012", "0.009", "0.35", "n/a"]
    models, baselines = ax.patches[0].get_facecolor(), ax.patches[2].get_facecolor()
    assert ax.patches[1].get_facecolor() == models != baselines == ax.patches[3].get_facecolor()
    assert ax.get_xlim()[1] > 0.35  # room for the largest bar and its label


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


def _curve(line) -> tuple[list[float], list[float]]:
    return list(map(float, line.get_xdata())), list(map(float, line.get_ydata()))


def test_learning_curves_sparse_lightning_layout(tmp_path, saved_figures):
    csv = tmp_path / "metrics.csv"
    csv.write_text(SPARSE_LIGHTNING_CSV)
    _assert_png(learning_curves(csv, tmp_path / "curves.png"))
    # only a step-level train loss, no validation: still plotted
    partial = tmp_path / "partial.csv"
    partial.write_text("epoch,step,train_loss\n0,0,1.0\n0,1,0.8\n1,2,0.6\n1,3,0.5\n")
    _assert_png(learning_curves(partial, tmp_path / "partial.png"))
    full, single = saved_figures

    loss, val_mae, rate = full.axes
    assert rate.get_title() == "learning rate" and _curve(rate.lines[0]) == (
        [0],
        [0.001],
    )  # epoch of the next row
    assert (loss.get_title(), loss.get_xlabel(), loss.get_ylabel()) == ("loss", "epoch", "loss")
    train, val = loss.lines
    # per epoch: the epoch-level train loss (not the step losses), the validation loss
    assert train.get_label() == "train (train_loss_epoch)" and _curve(train) == (
        [0, 1, 2],
        [0.75, 0.42, 0.26],
    )
    assert val.get_label() == "validation (val_loss)" and _curve(val) == ([0, 1, 2], [0.8, 0.45, 0.31])
    assert loss.get_yscale() == "linear"  # a 3x range stays linear
    assert (val_mae.get_title(), val_mae.get_xlabel()) == ("validation MAE", "epoch")
    curve, best = val_mae.lines
    assert _curve(curve) == ([0, 1, 2], [0.61, 0.42, 0.33])
    assert list(best.get_ydata()) == [0.33, 0.33] and best.get_label() == "best 0.33"

    (ax,) = single.axes
    (train,) = ax.lines
    assert train.get_label() == "train (train_loss)"
    x, values = _curve(train)
    assert x == [0, 1] and values == pytest.approx([0.9, 0.55])  # step losses averaged per epoch


def test_qq_error_vs_true_and_dataset_plots(tmp_path, saved_figures):
    rng = np.random.default_rng(1)
    y = rng.uniform(-8, -4, size=400)
    y_pred = y + rng.standard_t(3, size=400) * 0.1
    _assert_png(error_qq_plot(y, y_pred, tmp_path / "qq.png", unit="eV"))
    _assert_png(error_vs_true(y, y_pred, tmp_path / "vs_true.png", unit="eV", bins=8))
    sizes = {"train": rng.integers(5, 10, 300), "test": rng.integers(5, 10, 100)}
    targets = {"homo [eV]": {"train": y[:300], "test": np.r_[y[300:399], np.nan]}}
    _assert_png(dataset_plot(sizes, targets, tmp_path / "data.png"))
    qq, vs_true, data = saved_figures
    points, _ = qq.axes[0].lines
    err = np.sort(y_pred - y)
    np.testing.assert_allclose(points.get_ydata(), err)
    assert np.all(np.diff(points.get_xdata()) > 0)  # normal quantiles, increasing
    assert points.get_xdata()[len(err) // 2] == pytest.approx(err.mean(), abs=0.02 * err.std())
    (means,) = vs_true.axes[0].lines
    edges = np.linspace(y.min(), y.max(), 9)
    which = np.clip(np.digitize(y, edges) - 1, 0, 7)
    expected = [np.abs(y_pred - y)[which == b].mean() for b in range(8)]
    np.testing.assert_allclose(means.get_ydata(), expected)
    size_ax, target_ax = data.axes
    assert sum(patch.get_height() for patch in size_ax.patches) == 400  # every structure counted
    assert target_ax.get_xlabel() == "homo [eV]"


def test_learning_curves_draw_the_seed_panels_per_target(tmp_path, saved_figures):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,lr-AdamW,train_loss,val_loss,val_mae_homo,val_mse_homo,val_mae_gap,val_mse_gap\n"
        ",0,0.001,,,,,,\n0,9,,0.9,0.8,0.30,0.16,0.50,0.36\n0,9,,,,,,,\n"
        ",10,0.0005,,,,,,\n1,19,,0.5,0.4,0.20,0.04,0.40,0.25\n"
    )
    _assert_png(learning_curves(csv, tmp_path / "curves.png", val_variance={"homo": 0.2, "gap": 0.5}))
    (figure,) = saved_figures
    _, mae, r2, lr = figure.axes
    assert [ax.get_title() for ax in figure.axes] == [
        "loss",
        "validation MAE",
        "validation R²",
        "learning rate",
    ]
    assert [line.get_label() for line in mae.lines] == ["val_mae_homo", "val_mae_gap"]
    homo, gap = r2.lines
    assert homo.get_label() == "val_r2_homo" and _curve(homo)[1] == pytest.approx(
        [1 - 0.16 / 0.2, 1 - 0.04 / 0.2]
    )
    assert _curve(gap)[1] == pytest.approx([1 - 0.36 / 0.5, 1 - 0.25 / 0.5])
    assert lr.get_yscale() == "log" and _curve(lr.lines[0])[1] == pytest.approx([0.001, 0.0005])


def test_learning_curves_without_usable_columns_raises(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,step,lr-Adam,val_loss\n0,0,0.001,\n1,10,0.001,\n")
    with pytest.raises(ValueError, match="learning_curves"):
        learning_curves(csv, tmp_path / "curves.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="learning_curves"):
        learning_curves(empty, tmp_path / "empty.png")
