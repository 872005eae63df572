"""Run configuration: YAML with defaults, ``key.sub=value`` overrides and checks for unknown keys.

Sections: ``data`` (dataset, targets, graph, split), ``model`` (registry name + keyword arguments,
free-form), ``task`` (loss, atomref), ``training`` (optimiser, schedule, stopping, devices).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from atomgraph.data.registry import dataset_entry, dataset_sections
from atomgraph.outputs.potential import PotentialTask
from atomgraph.outputs.uncertainty import EVIDENCE_WEIGHT

DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "run_dir": None,  # default: runs/<name>
    "data": {
        "dataset": "qm9",  # qm9 | csv | structures | rmd17 | mlearn | deepmd | lennard_jones
        "source": "qm9pack",  # qm9: qm9pack or the path of dsgdb9nsd.xyz.tar.bz2
        "path": None,  # csv / structures file
        "subset": None,  # qm9: a seeded random sample of this many molecules
        "smiles_column": "smiles",
        "targets": ["homo"],
        "kind": "regression",  # regression | classification
        # {target: sum | per_atom | mean}: how a target reduces over atoms, where the dataset's own
        # TargetSpec (atomgraph.targets) is not what you want
        "reductions": None,
        "molecule": None,  # multi-system sources (rmd17: aspirin | ethanol | ...): the system to read
        # a dataset's own settings live in data.<section>, with defaults its application registers
        # (atomgraph.data.registry: data.crystals, data.lennard_jones, data.complex); they are filled in
        # here, and a section of another dataset is refused
        # the GraphSpec (atomgraph.graphs.spec): a preset name (molecule, bond, cgcnn_crystal, ...), or
        # a mapping of its fields with an optional "preset" they change; null: the dataset's preset, else
        # the model card's. The run's config.yaml records the spec exactly as built.
        "graph": None,
        # kind: random | scaffold | file | predefined (the dataset's own train/test; val from train)
        "split": {"kind": "random", "sizes": [0.8, 0.1, 0.1], "seed": 0, "file": None},
        "cache": None,
        # memory (every graph in RAM, cached as one file) | lmdb (an on-disk store of sharded LMDB files
        # beside the cache, read lazily: for sets larger than memory; atomgraph.data.graph_store)
        "storage": "memory",
        # the on-disk store: input rows per shard, processes that build it (null: every core)
        "store": {"shard_size": 10_000, "workers": None},
    },
    "model": {"name": "schnet"},
    # fine-tuning (atomgraph.training.finetune): start from another run's weights, freeze parts, give
    # parts their own learning rate
    "init": {
        "from": None,
        "load": "all",
        "freeze": [],
        "lr_factors": {},
        "allow_new_elements": False,
        "into": None,
    },
    "task": {
        "loss": None,
        "atomref": True,
        "kind": "property",  # property | potential (energy + autograd forces/stress)
        # potential: the weights of the (eV/atom)^2 term and of the (eV/Å)^2 and (eV/Å^3)^2 terms per
        # component (PotentialTask's defaults: 1, 100, 0)
        "energy_weight": PotentialTask.energy_weight,
        "force_weight": PotentialTask.force_weight,
        "stress_weight": PotentialTask.stress_weight,
        # null | mean_variance (a variance head trained on the Gaussian NLL) | evidential (deep evidential
        # regression: a Normal-Inverse-Gamma head); atomgraph.outputs.uncertainty
        "uncertainty": None,
        "evidence_weight": EVIDENCE_WEIGHT,  # evidential: weight of the evidence regulariser (chemprop's)
    },
    # deep ensembles (atomgraph.training.ensemble): members trained with seeds seed, seed + 1, ... on the
    # same split (bootstrap: each on a resample of the training rows), in run_dir/members/<k>
    "ensemble": {"members": 1, "bootstrap": False},
    "training": {
        "epochs": 100,
        "max_time": None,  # "DD:HH:MM:SS" wall-clock budget
        "max_steps": -1,
        "batch_size": 32,
        "eval_batch_size": 128,
        "optimizer": "adamw",  # adam | adamw
        "lr": 5e-4,
        "weight_decay": 0.0,
        "scheduler": "plateau",  # plateau | cosine | linear_decay | none
        "plateau_factor": 0.5,
        "plateau_patience": 5,
        "min_lr": 1e-6,
        "decay_start": 0.5,  # linear_decay: fraction of training before decay starts (Gilmer)
        "decay_factor": 0.05,  # linear_decay: final lr = lr * decay_factor
        "warmup_steps": 0,
        "gradient_clip": None,
        "early_stopping_patience": 20,
        "checkpoint_every_n_steps": None,
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "precision": "32-true",
        "num_workers": 0,
        "tensorboard": False,
        "progress": True,
        "deterministic": False,
        # property models: forward through torch.compile while training (atomgraph.training.compile)
        "compile": False,
    },
}

FREE_FORM = {("model",), ("data", "graph"), ("data", "reductions"), ("init", "lr_factors")}


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` (no dot, YAML 1.1) as the float YAML 1.2 and every user
    means instead of the string ``"1e-3"``."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str):
    """YAML text as Python values (safe: plain data only), with :class:`ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it."""


def _merge(base: dict, update: dict, path: tuple[str, ...] = (), replace_free_form: bool = True) -> dict:
    """``base`` updated with ``update``; unknown keys are errors except inside free-form sections.

    A free-form section given in a YAML file replaces the default one (``replace_free_form``); an
    override such as ``model.hidden=64`` only sets that key and keeps the rest of the section.
    """
    out = copy.deepcopy(base)
    for key, value in update.items():
        where = ".".join((*path, key))
        if not _free((*path, key)) and key not in base:
            raise ConfigError(f"unknown config key {where!r}; known here: {sorted(base)}")
        replace = replace_free_form and (*path, key) in FREE_FORM
        if isinstance(value, dict) and isinstance(base.get(key), dict) and not replace:
            out[key] = _merge(base[key], value, (*path, key), replace_free_form)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _free(path: tuple[str, ...]) -> bool:
    """Whether a key at ``path`` is free-form while merging: inside :data:`FREE_FORM` or inside a
    dataset's own ``data`` section (checked against its registered defaults afterwards)."""
    if any(path[: k + 1] in FREE_FORM for k in range(len(path) - 1)):
        return True
    return len(path) >= 2 and path[0] == "data" and path[1] in dataset_sections()


def complete_dataset_section(config: dict, drop_foreign: bool = False) -> dict:
    """Fill ``data.<section>`` of the configured dataset from its registered defaults (in place) and
    refuse keys they do not have; a section of another dataset is refused (``drop_foreign``: dropped,
    for run configs written when every section was in every config)."""
    data = config["data"]
    try:
        entry = dataset_entry(data["dataset"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    for section, names in dataset_sections().items():
        if section in data and section != entry.section:
            if drop_foreign:
                del data[section]
                continue
            raise ConfigError(
                f"data.{section} holds settings of data.dataset {' / '.join(names)}; this run's "
                f"data.dataset is {entry.name!r}"
            )
    if entry.settings is not None:
        given = data.get(entry.section) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"data.{entry.section} must be a mapping, got {given!r}")
        unknown = sorted(set(given) - set(entry.settings))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(f'data.{entry.section}.{k}' for k in unknown)}; "
                f"known here: {sorted(entry.settings)}"
            )
        data[entry.section] = {**copy.deepcopy(entry.settings), **given}
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``training.lr=1e-3`` -> (["training", "lr"], 0.001); values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, value = text.split("=", 1)
    return key.strip().split("."), read_yaml(value)


def apply_overrides(config: dict, overrides: Sequence[str]) -> dict:
    nested: dict = {}
    for text in overrides:
        keys, value = parse_override(text)
        node = nested
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return _merge(config, nested, replace_free_form=False)


#: the values training.precision may take (Lightning's names for float32 and float64 training)
PRECISIONS = ("32-true", "64-true", "32", "64")


def check_precision(precision) -> None:
    """Refuse a ``training.precision`` atomgraph does not train in (ConfigError naming the value)."""
    if str(precision) in PRECISIONS:
        return
    why = (
        "mixed and half precision break the scatter sums of several models (float32 sources into "
        "half-precision sums) and e3nn's linear maps"
        if any(part in str(precision) for part in ("16", "mixed"))
        else "unknown value"
    )
    raise ConfigError(f"training.precision {precision!r}: atomgraph trains in '32-true' or '64-true' ({why})")


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), settings: dict | None = None
) -> dict:
    """Defaults <- YAML file <- ``settings`` (the same nested layout, from code) <- overrides, with
    unknown keys rejected (``model`` is free-form)."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        try:
            loaded = read_yaml(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"config {path}: cannot read it ({error})") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: expected a mapping at the top level")
        config = _merge(config, _graph_as_mapping(loaded))
    if settings:
        config = _merge(config, _graph_as_mapping(settings))
    config = complete_dataset_section(apply_overrides(config, overrides))
    if "name" not in config["model"]:
        raise ConfigError("model.name is required")
    check_precision(config["training"]["precision"])
    if config["run_dir"] is None:
        config["run_dir"] = str(Path("runs") / config["name"])
    return config


def _graph_as_mapping(section: dict) -> dict:
    """``data.graph: NAME`` as ``{"preset": NAME}``, so that overrides such as ``data.graph.cutoff=6``
    change that preset rather than replace it."""
    graph = (section.get("data") or {}).get("graph")
    if isinstance(graph, str):
        section = copy.deepcopy(section)
        section["data"]["graph"] = {"preset": graph}
    return section


def wall_clock_budget(minutes: float) -> str:
    """``training.max_time`` ("DD:HH:MM:SS") for a budget in minutes (at least one second)."""
    seconds = max(1, round(minutes * 60))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    return f"{days:02d}:{hours:02d}:{mins:02d}:{secs:02d}"


def dump_config(config: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))


#: keys of configs written by older versions, dropped when such a run is read again (what they meant is
#: rebuilt by atomgraph.runs.legacy_hyper_parameters)
_REMOVED_KEYS = {
    ("data", "extensive"),
    ("data", "crystals", "per_atom"),
    ("data", "crystals", "default_graph"),
}


def read_run_config(path: str | Path) -> dict:
    """A run's ``config.yaml``, also one written by an older atomgraph (keys that were removed since
    are dropped here; :func:`legacy_hyper_parameters` reads what they meant)."""
    path = Path(path)
    try:
        loaded = read_yaml(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the run config ({error})") from error
    loaded = copy.deepcopy(loaded)
    for keys in _REMOVED_KEYS:
        node = loaded
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    graph = loaded.get("data", {}).get("graph")
    if isinstance(graph, dict) and graph.get("kind", "") is None:  # old default: kind from the model
        graph.pop("kind")
    try:
        return complete_dataset_section(_merge(copy.deepcopy(DEFAULTS), _graph_as_mapping(loaded)), True)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
