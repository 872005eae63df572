"""A run, end to end: config -> dataset, split, normaliser -> Lightning fit -> evaluation in the run dir.

The run directory holds ``config.yaml`` (resolved), ``split.json``, ``checkpoints/{best,last}.ckpt``,
``logs/metrics.csv``, ``metrics.json``, ``predictions_test.csv`` and ``plots/``.
"""

from __future__ import annotations

import inspect
import logging
import math
from pathlib import Path

import lightning as L
import torch
from torch_geometric.loader import DataLoader

from atomgraph.data import GraphDataset, save_split
from atomgraph.models import model_class
from atomgraph.training.config import dump_config, load_config
from atomgraph.training.datasets import load_dataset, make_split, select_targets
from atomgraph.training.module import PropertyModule
from atomgraph.training.potential_module import PotentialModule
from atomgraph.training.trainer import make_trainer

log = logging.getLogger(__name__)


def model_arguments(config: dict, dataset: GraphDataset) -> dict:
    """The model section completed with what the data decides: target flags and input widths."""
    model = dict(config["model"])
    params = inspect.signature(model_class(model["name"])).parameters
    model["extensive"] = list(dataset.targets.extensive)
    sample = dataset[0]
    if "atom_dim" in params and "atom_dim" not in model:
        if sample.x is None:
            raise ValueError(f"model {model['name']!r} needs atom features (a bond graph), the data has none")
        model["atom_dim"] = int(sample.x.shape[1])
    if "edge_dim" in params and "edge_dim" not in model and sample.edge_attr is not None:
        model["edge_dim"] = int(sample.edge_attr.shape[1])
    return model


def loaders(
    dataset: GraphDataset, split: dict, training: dict, seed: int, train_transform=None
) -> dict[str, DataLoader]:
    """Data loaders of the three subsets; ``train_transform`` (augmentation) applies to training only."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for name in ("train", "val", "test"):
        subset = dataset[torch.as_tensor(split[name])]
        is_train = name == "train"
        if is_train and train_transform is not None:
            subset.transform = train_transform
        out[name] = DataLoader(
            subset,
            batch_size=training["batch_size"] if is_train else training["eval_batch_size"],
            shuffle=is_train,
            generator=generator if is_train else None,
            num_workers=training["num_workers"],
            persistent_workers=training["num_workers"] > 0,
        )
    return out


def train(config: dict, resume: bool = False, progress: bool = True) -> Path:
    """Train the configured model; returns the run directory (evaluated on the test split)."""
    run_dir = Path(config["run_dir"])
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        raise FileNotFoundError(f"cannot resume: {last} does not exist")
    if resume:
        keep_metrics_history(run_dir / "logs")
    L.seed_everything(config["seed"], workers=True, verbose=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.yaml")

    dataset = select_targets(load_dataset(config, progress), config["data"]["targets"])
    split = make_split(config, dataset)
    save_split(split, run_dir / "split.json")
    transform = None
    if config["data"]["dataset"] == "complexes":
        from atomgraph.complexes.config import complex_config

        transform = complex_config(config).augmentation()
    data = loaders(dataset, split, config["training"], config["seed"], transform)
    steps_per_epoch = math.ceil(len(split["train"]) / config["training"]["batch_size"])
    total_steps = config["training"]["max_steps"]
    if total_steps is None or total_steps < 0:
        total_steps = steps_per_epoch * config["training"]["epochs"]

    potential = is_potential(config["task"])
    module = (PotentialModule if potential else PropertyModule)(
        model=model_arguments(config, dataset),
        targets=dataset.targets.__dict__,
        task=config["task"],
        training=config["training"],
        total_steps=total_steps,
    )
    if module.task.normalizes:
        train_rows = dataset[torch.as_tensor(split["train"])]
        module.normalizer.fit(
            train_rows.targets_array(), train_rows.atomic_numbers(), config["task"]["atomref"]
        )
    trainer = make_trainer(config["training"], run_dir, inference_mode=not potential)
    trainer.fit(module, data["train"], data["val"], ckpt_path=str(last) if resume else None)
    if trainer.is_global_zero:
        from atomgraph.evaluation.report import evaluate_run

        evaluate_run(run_dir, dataset=dataset, split=split)
    return run_dir


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


def is_potential(task: dict) -> bool:
    """Whether the ``task`` section asks for a potential (energy + autograd forces and stress)."""
    kind = task.get("kind", "property")
    if kind not in ("property", "potential"):
        raise ValueError(f"unknown task.kind {kind!r}; choose property or potential")
    return kind == "potential"


def load_module(run_dir: str | Path, which: str = "best") -> PropertyModule | PotentialModule:
    """The trained module of a run, read with ``weights_only=True`` (no code runs from the file).
    Potential runs give a :class:`PotentialModule` in the dtype it was trained in."""
    path = Path(run_dir) / "checkpoints" / f"{which}.ckpt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; is {run_dir} a finished run?")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if is_potential(checkpoint["hyper_parameters"]["task"]):
        module = PotentialModule(**checkpoint["hyper_parameters"])
        weights = checkpoint["state_dict"]
        dtypes = [v.dtype for k, v in weights.items() if k.startswith("model.") and v.is_floating_point()]
        module.model.to(dtypes[0] if dtypes else torch.get_default_dtype())  # "64-true" runs: float64
        module.load_state_dict(checkpoint["state_dict"])
        return module.eval()
    module = PropertyModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()


def load_run_config(run_dir: str | Path) -> dict:
    return load_config(Path(run_dir) / "config.yaml")
