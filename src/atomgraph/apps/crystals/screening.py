"""Screen a folder (or archive) of crystal structures with a trained run: a ranked CSV of predictions.

Files are parsed and turned into graphs in parallel (as for the crystal datasets); a file that cannot
be read, holds no sensible structure or fails graph building is reported on stderr and listed in the
returned ``skipped`` table, and the rest are ranked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from atomgraph.apps.crystals.cif_archive import iter_structure_texts
from atomgraph.apps.crystals.parallel_graphs import arrays_to_graph, graphs_from_texts
from atomgraph.evaluation.acquisition import acquisition_scores
from atomgraph.evaluation.calibration import run_calibration
from atomgraph.evaluation.predict import has_sigma, predict_each


def screen_structures(
    run_dir: str | Path,
    folder: str | Path,
    output: str | Path,
    target: str | None = None,
    descending: bool | None = None,
    workers: int | None = None,
    batch_size: int = 128,
    progress: bool = True,
    acquisition: str = "mean",
    kappa: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict every CIF/POSCAR in ``folder`` and write them ranked by ``target`` to ``output``.

    Args:
        run_dir: a finished run or an exported model (its graph spec and best checkpoint are used).
        folder: a folder of structure files or a tar archive of them.
        output: the CSV to write: ``rank, id, formula, natoms``, one column per predicted target (in the
            run's units), ``warning`` (elements never seen in training) and ``error``; files that could
            not be read or evaluated follow the ranked rows with their error and no rank.
        target: the target to rank by (default: the run's first).
        descending: rank the largest values first; default: the target's ``ranks_first`` (band gaps,
            moduli: high; energies: low).
        workers: processes for parsing (None: every core).
        acquisition, kappa: rank by the prediction ("mean") or by the optimistic bound "ucb" (mean +-
            kappa sigma, :mod:`atomgraph.evaluation.acquisition`; column ``acquisition``). A run with a sigma
            (an ensemble, a mean-variance model) adds ``<target>_sigma`` columns, recalibrated on its
            validation split when its report fitted that.
    Returns ``(ranked, skipped)``; ``skipped`` has ``id`` and ``error`` for every file left out.
    """
    from atomgraph.runs import TrainedRun

    run = TrainedRun.load(run_dir)
    module = run.module
    names = list(run.targets.names)
    target = target or names[0]
    if target not in names:
        raise ValueError(f"the run predicts {names}, not {target!r}")
    if descending is None:
        descending = run.targets.spec(target).ranks_first == "high"
    sigma_wanted = has_sigma(module) and run.targets.kind == "regression"
    acquisition_scores(np.zeros(1), np.zeros(1) if sigma_wanted else None, descending, acquisition, kappa)
    settings = run.graph
    keys: list[str] = []

    def items():
        for key, fmt, text in iter_structure_texts(folder):
            keys.append(key)
            yield len(keys) - 1, key, fmt, text

    built = graphs_from_texts(items(), settings, workers, progress=progress, desc=Path(folder).name)
    good = sorted(row for row, result in built.items() if not isinstance(result, str))
    failed = [{"id": keys[row], "error": built[row]} for row in sorted(built) if isinstance(built[row], str)]
    graphs = [arrays_to_graph(built[row]) for row in good]
    table = pd.DataFrame(
        {
            "id": [keys[row] for row in good],
            "formula": [Atoms(numbers=g.z.numpy()).get_chemical_formula() for g in graphs],
            "natoms": [int(g.z.numel()) for g in graphs],
        }
    )
    values, errors = predict_each(module, graphs, batch_size, mc_samples=0 if sigma_wanted else None)
    values = values.reshape(len(graphs), len(names) * (1 + sigma_wanted))
    sigma = values[:, len(names) :] if sigma_wanted else None
    calibration = run_calibration(run) if sigma_wanted else None
    if calibration is not None:
        sigma = calibration.sigma(sigma)
    for t, name in enumerate(names):
        table[name] = values[:, t]
        if sigma is not None:
            table[f"{name}_sigma"] = sigma[:, t]
    rank_by = target
    if acquisition != "mean":
        column = names.index(target)
        table["acquisition"] = acquisition_scores(
            values[:, column], None if sigma is None else sigma[:, column], descending, acquisition, kappa
        )
        rank_by = "acquisition"
    unseen = [run.unseen_elements(g.z.tolist()) for g in graphs]
    table["warning"] = [f"elements never seen in training: {', '.join(u)}" if u else "" for u in unseen]
    failed += [{"id": table.loc[k, "id"], "error": e} for k, e in enumerate(errors) if e]
    table = table[[not e for e in errors]] if len(graphs) else table
    table = table.sort_values(rank_by, ascending=not descending, kind="stable", ignore_index=True)
    table.insert(0, "rank", pd.array(range(1, len(table) + 1), dtype="Int64"))  # empty for failed files
    table["error"] = ""
    skipped = pd.DataFrame(failed, columns=["id", "error"])
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    pd.concat([table, skipped], ignore_index=True).to_csv(output, index=False)  # every file has a row
    for _, row in skipped.iterrows():
        print(f"skipped {row['id']}: {row['error']}", file=sys.stderr)
    order = "largest" if descending else "smallest"
    print(
        f"ranked {len(table)} structures by {target}{f' ({acquisition})' * (acquisition != 'mean')} "
        f"({order} first) -> {output}; {len(skipped)} could not "
        "be read or evaluated (listed after the ranked rows)",
        file=sys.stderr,
    )
    return table, skipped
