"""Training a run: config -> checks -> dataset, split, normaliser -> Lightning fit, in the run directory.

Training writes ``config.yaml`` (resolved, with the graph spec as built), ``run.json`` (the run record),
``split.json``, ``checkpoints/{best,last}.ckpt`` and ``logs/metrics.csv``; the report (``metrics.json``,
``predictions_test.csv``, ``plots/``) is :mod:`atomgraph.evaluation`'s, run after training by
:func:`atomgraph.evaluation.experiment.train_and_evaluate` (what ``atomgraph train`` calls).
"""

from __future__ import annotations

import inspect
import logging
import math
import shutil
import warnings
from functools import partial
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only

from atomgraph.data import GraphDataset, save_split
from atomgraph.data.graph_dataset import present_elements
from atomgraph.data.row_batches import row_loader
from atomgraph.data.safe_load import safe_torch_load
from atomgraph.data.splits import seeded_subset
from atomgraph.models import model_card, model_class
from atomgraph.nn.target_readout import readout_mismatches
from atomgraph.training.compile import compile_for_training, eager_forward
from atomgraph.training.config import ConfigError, dump_config, read_run_config
from atomgraph.training.datasets import augment_training, is_potential, load_dataset, make_split, resolve_run
from atomgraph.training.energy_offset import EnergyOffsetRefit, refit_checkpoints
from atomgraph.training.finetune import (
    InitialWeights,
    check_elements,
    check_source,
    init_part,
    load_initial_weights,
)
from atomgraph.training.module import AtomgraphModule
from atomgraph.training.record import write_run_record
from atomgraph.training.run_files import RUN_FILES, RUN_FOLDERS
from atomgraph.training.trainer import make_trainer, run_device

log = logging.getLogger(__name__)


def model_arguments(
    config: dict, dataset: GraphDataset, train_rows: GraphDataset | None = None, inherited: dict | None = None
) -> dict:
    """The model section completed with what the data decides: the targets' reductions (their
    :class:`~atomgraph.targets.TargetSpec`, which drive the readouts), input widths and, for models
    that normalise neighbour sums by a constant (``avg_num_neighbors``) the config does not set (or
    sets to null): the value of ``inherited`` (the model arguments of the checkpoint a run resumes,
    or of the run it fine-tunes: the weights were trained with that constant), else the mean number of
    neighbours per atom of ``train_rows``; likewise for models with element-dependent weights
    (``elements``): the inherited ones, else those of every row of ``dataset`` (weights of elements
    only in validation or test rows stay as initialised, like any embedding row never trained)."""
    model = dict(config["model"])
    params = inspect.signature(model_class(model["name"])).parameters
    model["reductions"] = list(dataset.targets.reductions)
    if "avg_num_neighbors" in params and model.get("avg_num_neighbors") is None:
        given = (inherited or {}).get("avg_num_neighbors")
        rows = train_rows if train_rows is not None else dataset
        model["avg_num_neighbors"] = given if given is not None else mean_neighbors(rows)
    if "elements" in params and model.get("elements") is None:
        # every row's elements, so that no validation or test row is refused
        found = present_elements(dataset.atomic_numbers())
        given = (inherited or {}).get("elements")
        missing = sorted(set(found) - set(given or found))
        if missing:  # per-element weight tables of a resumed or fine-tuned model cannot grow
            raise ConfigError(
                f"model {model['name']!r} has element-dependent weights for Z={given} only (the run it "
                f"resumes or fine-tunes); the data also holds Z={missing}"
            )
        model["elements"] = given if given is not None else found
    sample = dataset[0]
    if "atom_dim" in params and "atom_dim" not in model:
        if sample.x is None:
            raise ValueError(f"model {model['name']!r} needs atom features (a bond graph), the data has none")
        model["atom_dim"] = int(sample.x.shape[1])
    if "edge_dim" in params and "edge_dim" not in model and sample.edge_attr is not None:
        model["edge_dim"] = int(sample.edge_attr.shape[1])
    residues = getattr(sample, "res_x", None)
    if "residue_dim" in params and "residue_dim" not in model and residues is not None:
        model["residue_dim"] = int(residues.shape[1])
    return model


def inherited_arguments(checkpoint: Path | None, initial: InitialWeights | None) -> dict | None:
    """The model arguments a run must keep: those of the checkpoint it resumes, else of the run it
    fine-tunes from (None for a fresh run)."""
    if checkpoint is not None:
        return dict(safe_torch_load(checkpoint, "checkpoint").get("hyper_parameters", {}).get("model", {}))
    return initial.arguments if initial is not None else None


def mean_neighbors(rows: GraphDataset, sample: int = 2000, seed: int = 0) -> float:
    """Mean number of neighbours per atom (directed edges / atoms) over ``rows``, from a seeded sample
    of at most ``sample`` rows (the exact mean for smaller sets; a store is read only that far). At
    least 1, so that a set of isolated atoms still gives a usable normalisation."""
    edges = atoms = 0
    for row in seeded_subset(len(rows), sample, seed):
        graph = rows[int(row)]
        edges += int(graph.edge_index.shape[1])
        atoms += int(graph.num_nodes)
    return max(edges / max(atoms, 1), 1.0)


def loaders(
    dataset: GraphDataset, split: dict, training: dict, seed: int, augment=None
) -> dict[str, torch.utils.data.DataLoader]:
    """Data loaders of the three subsets; ``augment(train_subset)`` prepares the training subset only.
    In-memory sets of plain graphs are batched straight from their collated storage
    (:func:`~atomgraph.data.row_batches.row_loader`: the same batches in the same order as PyG's loader)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("train", "val", "test"):
        subset = dataset[torch.as_tensor(split[name])]
        is_train = name == "train"
        if is_train and augment is not None:
            augment(subset)
        out[name] = row_loader(
            subset,
            batch_size=training["batch_size"] if is_train else training["eval_batch_size"],
            shuffle=is_train,
            generator=generator if is_train else None,
            num_workers=training["num_workers"],
        )
    return out


def train(
    config: dict,
    resume: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    extra_callbacks: tuple = (),
    initial: InitialWeights | None = None,
) -> Path:
    """Train the configured model; returns the run directory.

    Everything that can be checked before data is read is checked first (:func:`resolve_run`: the
    graph spec, the model card, the split kind); ``config.yaml`` and the run record are written only
    after that, and ``config.yaml`` records the graph spec exactly as built. A resumed run must have
    the same config as the one it continues; a run directory that already holds a run is refused
    unless ``resume`` or ``overwrite`` (which deletes that run's files first). Evaluation is the
    caller's (the CLI runs :func:`atomgraph.evaluation.report.evaluate_run` after training).
    ``extra_callbacks``: Lightning callbacks added to the trainer (a search's pruning reporter).
    ``initial``: the weights of ``init.from`` (:func:`atomgraph.runs.initial_weights` reads them), loaded
    into a fresh run (a resumed run has them in its checkpoint).
    """
    run_dir = Path(config["run_dir"])
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        raise FileNotFoundError(f"cannot resume: {last} does not exist")
    spec = resolve_run(config)
    init = config["init"]
    if init["into"] and not init["from"]:
        raise ConfigError(f"init.into {init['into']!r} needs init.from: the run whose weights go there")
    if init["from"] and not resume:
        if initial is None:
            raise ConfigError(
                "init.from is set but no weights were given: "
                "pass initial=atomgraph.runs.initial_weights(config)"
            )
        check_source(initial, config["model"]["name"], spec, init["into"])
    first = rank_zero_only.rank == 0  # DDP: the launcher re-runs this for the other ranks
    if not resume and first:
        clear_run_dir(run_dir, overwrite)
    if resume and first:
        check_resumable(run_dir, config)
        keep_metrics_history(run_dir / "logs")
    L.seed_everything(config["seed"], workers=True, verbose=False)

    dataset = load_dataset(config, spec, progress)
    warn_readout_mismatches(config, dataset)
    split = make_split(config, dataset)
    run_dir.mkdir(parents=True, exist_ok=True)
    # the training rows as split (what inference may trust: their elements, their closest contact)
    split_rows = dataset[torch.as_tensor(split["train"])]
    train_rows, saved_split = split_rows, split  # what is fitted; what split.json keeps
    if config["ensemble"]["bootstrap"]:  # split.json keeps the split; the member fits a resample of it
        split = {**split, "train": bootstrap_rows(split["train"], config["seed"])}
        train_rows = dataset[torch.as_tensor(split["train"])]
    steps_per_epoch = math.ceil(len(split["train"]) / config["training"]["batch_size"])
    total_steps = config["training"]["max_steps"]
    if total_steps is None or total_steps < 0:
        total_steps = steps_per_epoch * config["training"]["epochs"]

    elements = present_elements(split_rows.atomic_numbers())
    shortest = split_rows.shortest_distance() if is_potential(config["task"]) else None
    eval_batch = config["training"]["eval_batch_size"]
    train_numbers = train_rows.atomic_numbers()
    tuning = {"freeze": init["freeze"], "lr_factors": init["lr_factors"]}
    module = AtomgraphModule(
        model=model_arguments(
            config,
            dataset,
            split_rows,
            inherited_arguments(last if resume else None, None if init["into"] else initial),
        ),
        targets=dataset.targets.to_list(),
        task=config["task"],
        training=config["training"],
        total_steps=total_steps,
        graph=spec.to_dict(),
        elements=elements,
        shortest_distance=shortest,
        tuning=tuning if any(tuning.values()) else None,
    )
    if init["from"] and not resume:
        target, head, seen = module.model, model_card(config["model"]["name"]).head, elements
        if init["into"]:  # a part of the model: the source's model, its head, the elements of its nodes
            part, target = init_part(module.model, initial, init["into"])
            head, seen = (
                model_card(initial.model).head,
                present_elements(split_rows.atomic_numbers(part.node_role)),
            )
        check_elements(initial, seen, init["allow_new_elements"])
        load_initial_weights(target, initial, init["load"], head)
    augment = partial(augment_training, config, progress=progress)
    data = loaders(dataset, split, config["training"], config["seed"], augment)
    if first:  # the run's record, once the model, its initial weights and the loaders are known to work
        dump_config(config, run_dir / "config.yaml")
        save_split(saved_split, run_dir / "split.json")
        write_run_record(run_dir, config, spec, module.model, dataset.targets.to_list(), split)
    if module.task.normalizes:
        module.normalizer.fit(train_rows.targets_array(), train_numbers, config["task"]["atomref"])
    offset = (EnergyOffsetRefit(train_rows, eval_batch),) if module.kind == "potential" else ()
    callbacks = (*offset, *extra_callbacks)
    trainer = make_trainer(config["training"], run_dir, not module.task.needs_grad, callbacks)
    if config["training"]["compile"]:
        compile_for_training(module.model, module.kind, partial(notify, progress and first))
    try:
        trainer.fit(
            module, data["train"], data["val"], ckpt_path=str(last) if resume else None, weights_only=True
        )
    finally:
        eager_forward(module.model)
    if offset and first:  # the offset the run is evaluated and deployed with
        checkpoints = [run_dir / "checkpoints" / n for n in ("best.ckpt", "last.ckpt")]
        refit_checkpoints(module, checkpoints, train_rows, eval_batch, run_device(config["training"]))
    return run_dir


def bootstrap_rows(train_rows, seed: int) -> np.ndarray:
    """A resample with replacement of the training row indices (same size, sorted), seeded: an
    ensemble member's training rows under ``ensemble.bootstrap``."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.asarray(train_rows), size=len(train_rows), replace=True))


def clear_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse to train into a directory that holds a run (unless ``overwrite``: then delete its files)."""
    found = [name for name in (*RUN_FILES, *RUN_FOLDERS) if (run_dir / name).exists()]
    if not found:
        return
    if not overwrite:
        raise ConfigError(
            f"run_dir {str(run_dir)!r} already holds a run ({', '.join(found)}); continue it with --resume, "
            "replace it with --overwrite, or choose another run_dir"
        )
    for name in found:
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def notify(show: bool, message: str) -> None:
    """Log a line about the run, and print it when ``show`` (progress on, rank zero)."""
    log.info(message)
    if show:
        print(message, flush=True)


def warn_readout_mismatches(config: dict, dataset: GraphDataset) -> None:
    """Warn (and log) when the configured readout contradicts a target's reduction (the
    mismatched-readout pitfall: a per-atom target read out with a sum learns the cell size)."""
    model = config["model"]
    card, reductions = model_card(model["name"]), dataset.targets.reductions
    try:
        readouts = card.target_readouts(model.get("readout", "auto"), reductions)
    except ValueError as error:
        raise ConfigError(f"model {model['name']!r}, targets {dataset.targets.names}: {error}") from None
    for message in readout_mismatches(dataset.targets, readouts):
        warnings.warn(message, UserWarning, stacklevel=2)
        log.warning(message)


def check_resumable(run_dir: Path, config: dict) -> None:
    """A resumed run must continue the same experiment: its recorded config (less the training
    budget, which a resume may extend, and settings that change speed, not what is trained) must equal
    this one."""
    recorded_file = run_dir / "config.yaml"
    if not recorded_file.exists():
        return
    budget = {"epochs", "max_time", "max_steps", "early_stopping_patience", "progress", "compile"}
    storage = {("data", "storage"), ("data", "store")}  # where the same graphs are kept, not what they are
    recorded = read_run_config(recorded_file)
    changed = [
        key
        for section in ("data", "model", "task")
        for key in sorted(set(recorded[section]) | set(config[section]))
        if (section, key) not in storage and recorded[section].get(key) != config[section].get(key)
    ]
    changed += [
        f"training.{k}" for k in sorted(config["training"])
        if k not in budget and recorded["training"].get(k) != config["training"].get(k)
    ]  # fmt: skip
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir}: the config differs from the recorded one in {changed}; "
            "start a new run directory (run_dir=...) instead"
        )


def keep_metrics_history(logs: Path) -> None:
    """Lightning's CSV logger starts ``metrics.csv`` afresh on resume: keep the earlier part beside it."""
    current = logs / "metrics.csv"
    if current.exists():
        part = len(list(logs.glob("metrics.part*.csv")))
        current.rename(logs / f"metrics.part{part}.csv")


def metrics_history(logs: Path) -> Path | None:
    """All logged metrics of a run (earlier parts of resumed runs first) in one CSV; None if none."""
    import pandas as pd

    parts = sorted(logs.glob("metrics.part*.csv"), key=lambda p: int(p.stem.split("part")[1]))
    parts += [logs / "metrics.csv"] if (logs / "metrics.csv").exists() else []
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    merged = logs / "metrics_all.csv"
    pd.concat([pd.read_csv(p) for p in parts], ignore_index=True).to_csv(merged, index=False)
    return merged
