"""Seed 004, exercise 3: the cutoff x depth ablation of the perovskite CGCNN, test error against depth.

The ABX3 crystals of ``benchmarks/perovskites.py`` (three elements 1 : 1 : 3, the triple one an
anion; recognised from each CIF's ``_chemical_formula_sum``) get a labels file of their own under
``--run-root``, so only their CIFs are read and their graphs built, once per cutoff. ``atomgraph
ablate``'s sweep (:func:`atomgraph.evaluation.ablation.ablate`) then trains a CGCNN (hidden 64, fc 128)
on formation energy for every cutoff r_c and depth L, on one seeded 80/10/10 split. Graphs are radius
graphs of r_c with at most ``--max-neighbors`` nearest neighbours per atom (32 by default: PyG's
``radius_graph`` default, which the seed's "pymatgen + torch_geometric" exercise inherits; an uncapped
8 Å graph holds ~5x more edges than a training budget here can afford); the mean number of
neighbours each cutoff gives is reported, so where the cap binds is visible, and so is the standard
error of each test MAE (the test split holds ~140 crystals: differences below ~2 standard errors are
noise). Every run trains the
same number of epochs (cosine learning rate to 1e-6; best validation checkpoint evaluated), with a
wall-clock cap per run that is reported if it cut a run short.

    python benchmarks/perovskite_ablation.py --epochs 40 --threads 1

``--rbf materials_lecture`` swaps CGCNN's Gaussian grid for seed 004's (0-5 Å, step 0.1, σ 0.2);
``--compare-to RUN_ROOT`` adds, per run found in both sweeps, the paired difference of the absolute
test errors (same crystals) with its standard error.
``--summarise`` collects a finished sweep under ``--run-root`` again (no training). Writes
``benchmarks/results/perovskite_ablation.json`` and ``perovskite_ablation.png`` (test MAE
against depth, one line per cutoff); the runs (parity plots etc.) stay under ``--run-root``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ase.data import atomic_numbers
from perovskites import DATA, TARGET, is_abx3

from atomgraph.apps.crystals.cif_archive import iter_structure_texts
from atomgraph.apps.crystals.dataset import ID_MAP_FILE, load_crystals, locate
from atomgraph.graphs.spec import GraphSpec

ROOT = Path(__file__).resolve().parent
FORMULA = re.compile(r"^_chemical_formula_sum\s+'?([^'\n]+)'?", re.MULTILINE)
ELEMENT_COUNT = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")


def formula_numbers(text: str) -> np.ndarray | None:
    """The atomic number of every atom of a CIF's ``_chemical_formula_sum`` (None: no such line)."""
    match = FORMULA.search(text)
    if match is None:
        return None
    numbers = []
    for symbol, count in ELEMENT_COUNT.findall(match.group(1)):
        numbers += [atomic_numbers[symbol]] * int(float(count or 1))
    return np.array(numbers)


def abx3_labels(data: Path, folder: Path) -> tuple[Path, int]:
    """Write the ABX3 rows of the dataset's labels (and id map) into ``folder``; the labels file and
    how many rows it has. The files keep their names, so the columns keep their target names."""
    source = locate(data)
    keep = {key for key, _, text in iter_structure_texts(source.structures) if _is_abx3_text(text)}
    folder.mkdir(parents=True, exist_ok=True)
    labels = folder / source.labels.name
    rows = [row for row in csv.reader(source.labels.open()) if row and row[0].strip() in keep]
    with labels.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    if source.id_map is not None:
        ids = [row for row in csv.reader(source.id_map.open()) if row and row[0].strip() in keep]
        with (folder / ID_MAP_FILE).open("w", newline="") as handle:
            csv.writer(handle).writerows(ids)
    return labels, len(rows)


def _is_abx3_text(text: str) -> bool:
    numbers = formula_numbers(text)
    return numbers is not None and is_abx3(numbers)


def mean_neighbours(archive: Path, labels: Path, cutoff: float, max_neighbors: int | None) -> float:
    """Mean edges per atom of the sweep's graphs at ``cutoff`` (from the cache the runs built)."""
    spec = GraphSpec("radius", cutoff, max_neighbors=max_neighbors)
    dataset = load_crystals(archive, spec, labels=labels, workers=1, progress=False)
    return sum(graph.num_edges for graph in dataset) / sum(graph.num_nodes for graph in dataset)


def paired_differences(runs: list[dict], other: Path) -> dict:
    """Per (cutoff, depth) run also found under ``other``: the mean over the same test crystals of
    |error here| - |error there| (eV/atom; negative: this sweep is better) and its standard error."""
    out: dict = {"sweep": str(other), "runs": []}
    for row in runs:
        there = other / Path(row["run_dir"]).name / "predictions_test.csv"
        if not there.exists():
            continue
        mine = pd.read_csv(Path(row["run_dir"]) / "predictions_test.csv").set_index("id")
        theirs = pd.read_csv(there).set_index("id").loc[mine.index]
        errors = [(t[f"{TARGET}_pred"] - t[f"{TARGET}_true"]).abs() for t in (mine, theirs)]
        difference = (errors[0] - errors[1]).dropna()
        out["runs"].append(
            {
                "cutoff": row["cutoff"],
                "depth": row["depth"],
                "mean_abs_error_difference": float(difference.mean()),
                "standard_error": float(difference.std(ddof=1) / np.sqrt(len(difference))),
                "crystals": len(difference),
            }
        )
    return out


def perovskite_overrides(
    run_root: Path,
    archive: Path,
    labels: Path,
    seed: int,
    max_neighbors: int | None,
    epochs: int,
    budget_min: float,
    rbf: str | None = None,
) -> list[str]:
    """The config of one perovskite CGCNN run (hidden 64, fc 128, formation energy, seeded 80/10/10
    split of the crystals in ``labels``, cosine schedule over ``epochs``, wall-clock cap ``budget_min``)."""
    from atomgraph.training.config import wall_clock_budget

    return [
        "name=perovskites_cgcnn",
        f"seed={seed}",
        f"run_dir={run_root}",
        "data.dataset=crystals",
        f"data.path={archive}",
        f"data.crystals.labels={labels}",
        f"data.targets=[{TARGET}]",
        "data.split.kind=random",
        "data.split.sizes=[0.8, 0.1, 0.1]",
        f"data.split.seed={seed}",
        "data.graph.kind=radius",
        f"data.graph.max_neighbors={'null' if max_neighbors is None else max_neighbors}",
        "data.crystals.workers=1",
        "data.crystals.top_k=100",
        "data.crystals.shortcut=false",
        "data.crystals.volume_response=0",
        "model.name=cgcnn",
        "model.hidden=64",
        "model.fc_hidden=128",
        *([f"model.rbf={rbf}"] if rbf else []),
        "training.epochs=" + str(epochs),
        f"training.max_time={wall_clock_budget(budget_min)}",
        "training.scheduler=cosine",
        "training.batch_size=64",
        "training.lr=1e-3",
        f"training.early_stopping_patience={epochs}",
        "training.accelerator=cpu",
        "training.progress=false",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[4.0, 6.0, 8.0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--max-neighbors", type=int, default=32, help="0: no cap")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--run-budget-min", type=float, default=10.0, help="wall-clock cap per run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-root", default="runs/perovskite_ablation")
    parser.add_argument("--out", default=str(ROOT / "results" / "perovskite_ablation.json"))
    parser.add_argument(
        "--summarise", action="store_true", help="collect a finished sweep again, no training"
    )
    parser.add_argument(
        "--compare-to", default=None, help="the --run-root of another sweep: paired test-error differences"
    )
    parser.add_argument(
        "--rbf", default=None, help="a named Gaussian grid (model.rbf), e.g. materials_lecture"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from atomgraph.evaluation.ablation import ablate, summarise, sweep_configs
    from atomgraph.training.config import load_config

    run_root = Path(args.run_root)
    labels, crystals = abx3_labels(Path(args.data), run_root / "abx3")
    archive = locate(args.data).structures
    cap = args.max_neighbors or None
    overrides = perovskite_overrides(
        run_root, archive, labels, args.seed, cap, args.epochs, args.run_budget_min, args.rbf
    )
    config = load_config(None, overrides)
    sweep = run_root / "sweep"
    if args.summarise:  # the runs are there: collect them again
        runs = [(c, d, r["run_dir"]) for c, d, r in sweep_configs(config, args.cutoffs, args.depths, sweep)]
        result = summarise(config["model"]["name"], runs, sweep)
    else:
        result = ablate(config, args.cutoffs, args.depths, sweep, progress=False)
    for row in result["runs"]:
        run = Path(row["run_dir"])  # wall time from the run's first file to its last
        row["run_s"] = (run / "metrics.json").stat().st_mtime - (run / "config.yaml").stat().st_mtime
    result.update(
        benchmark="perovskite_ablation",
        protocol=__doc__.split("\n\n")[1].replace("\n", " "),
        crystals=crystals,
        target=TARGET,
        epochs=args.epochs,
        run_budget_min=args.run_budget_min,
        threads=args.threads,
        rbf=args.rbf or "CGCNN's own (step 0.2 Å over 0..r_c, σ 0.2/√2)",
        wall_s=sum(row["run_s"] for row in result["runs"]),
        mean_neighbours={f"{c:g}": mean_neighbours(archive, labels, c, cap) for c in args.cutoffs},
    )
    if args.compare_to:
        result["paired_with"] = paired_differences(result["runs"], Path(args.compare_to) / "sweep")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    shutil.copy(run_root / "sweep" / f"ablation_{TARGET}.png", out.with_suffix(".png"))
    for row in result["runs"]:
        test = row["test"][TARGET]
        print(
            f"r_c {row['cutoff']:g} Å  L {row['depth']}:  MAE {test['mae']:.4f}  "
            f"Spearman {test['spearman']:.3f}"
        )
    print(f"{crystals} ABX3 crystals; mean neighbours {result['mean_neighbours']}; -> {out}")


if __name__ == "__main__":
    main()
