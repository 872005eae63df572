"""Depth and cutoff ablation (seed 004, exercise 3): train one run per (cutoff, depth), plot error vs depth.

``atomgraph ablate CONFIG [key=value ...] --cutoffs 4 6 8 --depths 2 3 4 5`` trains the configured
model for every pair, with ``data.graph.cutoff`` set to the cutoff (the graph spec's: the models
derive theirs from it) and the model's depth argument (its card's ``depth_arg``) to the depth; the
rest of the graph spec stays what the config says (for crystals the ``cgcnn_crystal`` preset's 12
nearest unless changed; with that cap 6 and 8 Å graphs differ little, so for a plain radius sweep pass
``data.graph.max_neighbors=null``).
Each run lives in ``<out>/cutoff<c>_depth<L>/`` with its usual files; ``<out>/ablation.json``
collects the test metrics (with the standard error of each MAE) and ``<out>/ablation_<target>.png``
plots test MAE against depth, one line per cutoff, error bars one standard error.
Over-smoothing shows as an error that rises again with depth.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from atomgraph.evaluation.jsonfile import write_json


def depth_key(model_name: str, explicit: str | None = None) -> str:
    """The depth argument of a model: ``explicit`` (checked against its signature), else its card's."""
    from atomgraph.models import model_card, model_class

    key = explicit or model_card(model_name).depth_arg
    parameters = inspect.signature(model_class(model_name)).parameters
    if key is None or key not in parameters:
        raise ValueError(
            f"cannot tell the depth argument of model {model_name!r} (tried {key!r}); pass --depth-key, "
            f"one of {sorted(parameters)}"
        )
    return key


def sweep_configs(
    config: dict, cutoffs: Sequence[float], depths: Sequence[int], out: Path, key: str | None = None
) -> list[tuple[float, int, dict]]:
    """One config per (cutoff, depth), each with its own ``name`` and ``run_dir`` under ``out``."""
    from atomgraph.evaluation.protocols import sweep_overrides_for
    from atomgraph.training.config import apply_overrides

    key = depth_key(config["model"]["name"], key)
    runs = []
    for cutoff in cutoffs:
        for depth in depths:
            tag = f"cutoff{cutoff:g}_depth{depth}"
            overrides = [
                f"name={config['name']}_{tag}",
                f"run_dir={out / tag}",
                f"data.graph.cutoff={cutoff}",
                f"model.{key}={depth}",
                *sweep_overrides_for(config["data"]["dataset"]),  # e.g. one descriptor baseline, not 12
            ]
            runs.append((float(cutoff), int(depth), apply_overrides(config, overrides)))
    return runs


def ablate(
    config: dict,
    cutoffs: Sequence[float] = (4.0, 6.0, 8.0),
    depths: Sequence[int] = (2, 3, 4, 5),
    out: str | Path | None = None,
    key: str | None = None,
    progress: bool = True,
) -> dict:
    """Train every (cutoff, depth) run, then write ``ablation.json`` and the plots; returns the JSON."""
    from atomgraph.evaluation.experiment import train_and_evaluate

    out = Path(out or Path(config["run_dir"]) / "ablation")
    out.mkdir(parents=True, exist_ok=True)
    runs = sweep_configs(config, cutoffs, depths, out, key)
    for _, _, run_config in runs:
        train_and_evaluate(run_config, progress=progress)
    return summarise(config["model"]["name"], [(c, d, r["run_dir"]) for c, d, r in runs], out, key)


def summarise(
    model: str, runs: Sequence[tuple[float, int, str | Path]], out: Path, key: str | None = None
) -> dict:
    """``ablation.json`` and the error-vs-depth plots of finished runs ``(cutoff, depth, run_dir)``.

    Per run and target: the test MAE, RMSE, R², Spearman and the standard error of the MAE (from the
    run's ``predictions_test.csv``: a small test split makes depth-to-depth differences noise until
    they exceed about two of them)."""
    rows = []
    for cutoff, depth, run_dir in runs:
        run_dir = Path(run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        graph = json.loads((run_dir / "run.json").read_text())["graph"]  # as built
        row = {
            "cutoff": float(cutoff),
            "depth": int(depth),
            "run_dir": str(run_dir),
            "graph": graph,
            "test": {},
        }
        errors = _absolute_errors(run_dir / "predictions_test.csv")
        for name, entry in metrics["test"].items():
            row["test"][name] = {k: entry["model"].get(k) for k in ("mae", "rmse", "r2", "spearman")}
            row["test"][name]["unit"] = entry.get("unit", "")
            spread = _mae_standard_error(errors.get(name), row["test"][name]["mae"])
            if spread is not None:
                row["test"][name]["mae_standard_error"] = spread
            if name in metrics.get("shortcut", {}):
                row["test"][name]["retained_global"] = metrics["shortcut"][name].get("retained_global")
        row["epochs"] = metrics.get("epochs")
        row["parameters"] = metrics.get("parameters")
        rows.append(row)
    result = {
        "model": model,
        "depth_key": depth_key(model, key),
        "max_neighbors": rows[0]["graph"]["max_neighbors"] if rows else None,
        "cutoffs": list(dict.fromkeys(row["cutoff"] for row in rows)),  # in run order, each once
        "depths": list(dict.fromkeys(row["depth"] for row in rows)),
        "runs": rows,
    }
    write_json(out / "ablation.json", result)
    for name in rows[0]["test"] if rows else []:
        plot_error_vs_depth(result, name, out / f"ablation_{name}.png")
    return result


def _absolute_errors(path: Path) -> dict[str, np.ndarray]:
    """Absolute test errors per target from a run's ``predictions_test.csv`` (``<t>_true``, ``<t>_pred``),
    rows without a label dropped (a missing prediction stays NaN); empty when the run wrote none."""
    if not path.exists():
        return {}
    table = pd.read_csv(path)
    names = [c.removesuffix("_true") for c in table.columns if c.endswith("_true")]
    return {
        name: (table[f"{name}_pred"] - table[f"{name}_true"]).abs().to_numpy()[table[f"{name}_true"].notna()]
        for name in names
        if f"{name}_pred" in table
    }


def _mae_standard_error(errors: np.ndarray | None, mae: float | None) -> float | None:
    """The standard error of a test MAE from its absolute errors; None unless those errors give the
    run's own MAE (a classification target has none; a potential's energies are written in eV but
    scored in meV; a missing prediction leaves the MAE undefined)."""
    if errors is None or mae is None or len(errors) < 2 or not np.isfinite(errors).all():
        return None
    if not np.isclose(errors.mean(), mae, rtol=1e-5, atol=0.0):
        return None
    return float(errors.std(ddof=1) / np.sqrt(len(errors)))


def plot_error_vs_depth(result: dict, target: str, path: str | Path, metric: str = "mae") -> Path:
    """Test ``metric`` of ``target`` against depth, one line per cutoff."""
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for cutoff in result["cutoffs"]:
        runs = sorted((r for r in result["runs"] if r["cutoff"] == cutoff), key=lambda r: r["depth"])
        spread = [r["test"][target].get(f"{metric}_standard_error") for r in runs]
        values = [r["test"][target].get(metric) for r in runs]
        ax.errorbar(
            [r["depth"] for r in runs],
            [np.nan if v is None else v for v in values],
            yerr=None if None in spread else spread,
            fmt="o-",
            capsize=3,
            label=f"{cutoff:g} Å",
        )
    unit = result["runs"][0]["test"][target].get("unit", "") if result["runs"] else ""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"depth ({result['depth_key']})")
    ax.set_ylabel(f"test {metric.upper()}" + (f" [{unit}]" if unit else ""))
    ax.set_title(f"{result['model']}: {target}")
    ax.legend(title="cutoff", loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def parse_sweep_arguments(tokens: Sequence[str]) -> dict:
    """Split ``key=value`` overrides from ``--cutoffs 4 6 8 --depths 2 3 --depth-key K --out DIR``."""
    parsed: dict = {
        "overrides": [],
        "cutoffs": [4.0, 6.0, 8.0],
        "depths": [2, 3, 4, 5],
        "key": None,
        "out": None,
    }
    option = None
    seen: set[str] = set()
    for token in tokens:
        if "=" in token and not token.startswith("--"):
            parsed["overrides"].append(token)
            continue
        if token.startswith("--"):
            option = token[2:].replace("-", "_")
            if option not in ("cutoffs", "depths", "depth_key", "out"):
                raise ValueError(f"unknown option {token}; use --cutoffs, --depths, --depth-key, --out")
            if option in ("cutoffs", "depths"):
                parsed[option] = []
            seen.add(option)
            continue
        if option == "cutoffs":
            parsed["cutoffs"].append(float(token))
        elif option == "depths":
            parsed["depths"].append(int(token))
        elif option in ("depth_key", "out"):
            parsed["key" if option == "depth_key" else "out"] = token
            option = None
        else:
            parsed["overrides"].append(token)
    for option in ("cutoffs", "depths"):
        if option in seen and not parsed[option]:
            raise ValueError(f"--{option} needs at least one value")
    return parsed
