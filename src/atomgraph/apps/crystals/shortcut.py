"""The shortcut diagnostic of seed 004 (slide 27): scramble the elements, keep the geometry, predict again.

A model that reads chemistry loses most of its R² when the atomic numbers are scrambled; one that
learned a shortcut (cell size, density, number of atoms) keeps it. Two scramblings:

* ``"global"``: all atomic numbers of the evaluated set are pooled and dealt back to its sites at
  random -- compositions are destroyed, the overall element distribution and every geometry are kept;
* ``"within"``: the atomic numbers of each structure are permuted among its own sites -- composition
  kept, decoration destroyed (what a composition-only model cannot see anyway).

The graphs (edges, distances) are unchanged: only ``z`` is replaced -- with the per-site feature
columns that describe the element (``element_columns`` of ``site_attr``, e.g. the guessed oxidation
state), which move with it, while columns that describe the site (coordination) stay -- so it applies
to models that read atoms through ``z`` (crystal and radius-graph models), not to graphs with
precomputed atom features ``x``. ``retained`` = max(R²(scrambled), 0) / R²(original): near 0 is
healthy, near 1 a shortcut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from atomgraph.evaluation.metrics import mae, r2
from atomgraph.evaluation.predict import predict_graphs

SCRAMBLINGS = ("global", "within")


def scramble_elements(
    graphs, mode: str = "global", seed: int = 0, element_columns: Sequence[int] = ()
) -> list[Data]:
    """Copies of the graphs with their atomic numbers scrambled, and the ``element_columns`` of
    ``site_attr`` with them (see the module docstring)."""
    if mode not in SCRAMBLINGS:
        raise ValueError(f"mode must be one of {SCRAMBLINGS}, got {mode!r}")
    rng = np.random.default_rng(seed)
    copies = [graphs[i].clone() for i in range(len(graphs))]
    if any(getattr(g, "x", None) is not None for g in copies):
        raise ValueError("graphs carry atom features x: scrambling z alone would not change the input")
    columns = torch.as_tensor(list(element_columns), dtype=torch.long)
    if mode == "global":
        order = torch.as_tensor(rng.permutation(sum(g.z.numel() for g in copies)))
        sizes = [g.z.numel() for g in copies]
        pooled = torch.cat([g.z for g in copies])[order]
        for graph, part in zip(copies, torch.split(pooled, sizes), strict=True):
            graph.z = part.clone()
        if columns.numel():
            rows = torch.cat([g.site_attr[:, columns] for g in copies])[order]
            for graph, part in zip(copies, torch.split(rows, sizes), strict=True):
                graph.site_attr = graph.site_attr.clone()
                graph.site_attr[:, columns] = part
    else:
        for graph in copies:
            order = torch.as_tensor(rng.permutation(graph.z.numel()))
            graph.z = graph.z[order]
            if columns.numel():
                graph.site_attr = graph.site_attr.clone()
                graph.site_attr[:, columns] = graph.site_attr[order][:, columns]
    return copies


def shortcut_diagnostic(
    module: torch.nn.Module,
    graphs,
    names: Sequence[str],
    y: np.ndarray | None = None,
    predictions: np.ndarray | None = None,
    modes: Sequence[str] = SCRAMBLINGS,
    seed: int = 0,
    batch_size: int = 128,
    element_columns: Sequence[int] = (),
) -> dict[str, dict[str, float]]:
    """R² and MAE of ``module`` on ``graphs`` before and after scrambling, per target.

    Args:
        module: maps a batch to predictions [B, T] in real units (a loaded run's ``PredictionModule``).
        graphs: a dataset view or list of graphs with labels ``y`` [1, T].
        names: the T target names.
        y: labels [M, T] (default: read from the graphs); predictions: unscrambled ones, if known.
        element_columns: the ``site_attr`` columns that move with the elements
            (:attr:`~atomgraph.graphs.spec.GraphSpec.element_site_columns`).
    Returns ``{target: {"r2", "mae", "r2_<mode>", "mae_<mode>", "retained_<mode>"}}``.
    """
    y = np.concatenate([g.y.numpy() for g in graphs]) if y is None else np.asarray(y)
    base = predict_graphs(module, graphs, batch_size) if predictions is None else np.asarray(predictions)
    scrambled = {
        m: predict_graphs(module, scramble_elements(graphs, m, seed, element_columns), batch_size)
        for m in modes
    }
    out: dict[str, dict[str, float]] = {}
    for t, name in enumerate(names):
        if np.isnan(y[:, t]).all():
            continue
        entry = {"r2": r2(y[:, t], base[:, t]), "mae": mae(y[:, t], base[:, t])}
        for mode, pred in scrambled.items():
            entry[f"r2_{mode}"] = r2(y[:, t], pred[:, t])
            entry[f"mae_{mode}"] = mae(y[:, t], pred[:, t])
            kept = max(entry[f"r2_{mode}"], 0.0)
            entry[f"retained_{mode}"] = kept / entry["r2"] if entry["r2"] > 0 else float("nan")
        out[name] = entry
    return out
