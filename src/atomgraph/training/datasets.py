"""From the ``data`` section of a config to a dataset, its graph settings and its split."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from atomgraph.data import GraphDataset, GraphSettings, load_csv, load_split, load_structures
from atomgraph.data.splits import check_split, random_split, scaffold_split
from atomgraph.models import model_class
from atomgraph.training.config import ConfigError


def graph_settings(config: dict) -> GraphSettings:
    """Graph settings: the config's, with the model's graph kind and cutoff filling what is unset."""
    graph = dict(config["data"]["graph"])
    if config["data"]["dataset"] == "crystals":
        graph = crystal_graph(config["data"], graph)
    cls = model_class(config["model"]["name"])
    if graph["kind"] is None:
        graph["kind"] = getattr(cls, "graph_kind", "radius")
    model_cutoff = config["model"].get("cutoff", inspect.signature(cls).parameters.get("cutoff"))
    if isinstance(model_cutoff, inspect.Parameter):
        model_cutoff = model_cutoff.default
    if graph["kind"] == "radius" and isinstance(model_cutoff, int | float) and model_cutoff > graph["cutoff"]:
        raise ConfigError(
            f"model cutoff {model_cutoff} Å exceeds the graph cutoff data.graph.cutoff={graph['cutoff']} Å"
        )
    return GraphSettings(**graph)


def load_dataset(config: dict, progress: bool = True) -> GraphDataset:
    """The dataset named in ``config["data"]`` with all its targets."""
    data = config["data"]
    kind = data["dataset"]
    if kind in COMPLEX_DATASETS:
        if data["path"] is None or not Path(data["path"]).exists():
            raise ConfigError(f"data.path {data['path']!r} does not exist (dataset {kind!r})")
        from atomgraph.complexes.config import load_complex_dataset

        try:
            return load_complex_dataset(config, progress)
        except ValueError as error:
            raise ConfigError(str(error)) from error
    settings = graph_settings(config)
    if kind == "qm9":
        from atomgraph.data.qm9 import load_qm9

        return load_qm9(
            settings, data["subset"], data["split"]["seed"], data["source"], data["cache"], progress
        )
    if kind in POTENTIAL_DATASETS:
        return load_potential_dataset(data, settings, progress)
    if data["path"] is None:
        raise ConfigError(f"data.path is required for dataset {kind!r}")
    if not Path(data["path"]).exists():
        raise ConfigError(f"data.path {data['path']!r} does not exist")
    if kind == "csv":
        return load_csv(
            data["path"],
            data["smiles_column"],
            data["targets"],
            settings,
            data["kind"],
            data["extensive"],
            cache=data["cache"],
            progress=progress,
        )
    if kind == "crystals":
        return load_crystal_dataset(config, settings, progress)
    if kind == "structures":
        return load_structures(data["path"], settings, data["targets"], data["cache"], progress)
    known = ", ".join(("qm9", "csv", "structures", "crystals", *POTENTIAL_DATASETS, *COMPLEX_DATASETS))
    raise ConfigError(f"unknown data.dataset {kind!r}; choose one of {known}")


def select_targets(dataset: GraphDataset, names: list[str]) -> GraphDataset:
    """Keep only the named target columns of ``y`` (in that order)."""
    info, columns = dataset.targets.select(names)
    dataset._data.y = dataset._data.y[:, columns]
    dataset.meta.targets = info
    return dataset


def make_split(config: dict, dataset: GraphDataset) -> dict[str, np.ndarray]:
    split = config["data"]["split"]
    n = len(dataset)
    if split["kind"] == "file" or split["file"]:
        if not split["file"]:
            raise ConfigError("data.split.kind is 'file' but data.split.file is not set")
        return load_split(split["file"], n)
    if split["kind"] == "random":
        result = random_split(n, split["sizes"], split["seed"])
    elif split["kind"] == "predefined":
        result = predefined_split(dataset, split["sizes"], split["seed"])
    elif split["kind"] == "group":  # complexes: hold out data.complex.test_groups (protein targets)
        from atomgraph.complexes.config import group_split_from_config

        try:
            result = group_split_from_config(config, dataset)
        except ValueError as error:
            raise ConfigError(str(error)) from error
    elif split["kind"] == "scaffold":
        if not any(dataset.meta.smiles):
            raise ConfigError("a scaffold split needs SMILES; this dataset has none")
        result = scaffold_split(dataset.meta.smiles, split["sizes"], split["seed"])
    else:
        raise ConfigError(
            f"unknown data.split.kind {split['kind']!r}; choose random, scaffold, file, predefined or group"
        )
    check_split(result, n)
    return result


POTENTIAL_DATASETS = ("rmd17", "mlearn", "deepmd", "lennard_jones")
COMPLEX_DATASETS = ("complexes", "protein_sequence")


def load_potential_dataset(data: dict, settings: GraphSettings, progress: bool = True) -> GraphDataset:
    """rMD17 (``path`` folder + ``molecule``), mlearn (``path``: element folder or JSON), DeePMD
    (``path``: system folder or a folder of systems) or generated Lennard-Jones clusters: energies in
    eV, forces eV/Å, stress eV/Å^3, stored in float64."""
    kind = data["dataset"]
    if kind == "lennard_jones":
        from atomgraph.data.lennard_jones import load_lennard_jones

        return load_lennard_jones(settings, **data["lennard_jones"], progress=progress)
    if data["path"] is None or not Path(data["path"]).exists():
        raise ConfigError(f"data.path {data['path']!r} (dataset {kind!r}) is not set or does not exist")
    if kind == "rmd17":
        from atomgraph.data.rmd17 import load_rmd17

        return load_rmd17(data["path"], data["molecule"], settings, cache=data["cache"], progress=progress)
    if kind == "mlearn":
        from atomgraph.data.mlearn import load_mlearn

        return load_mlearn(data["path"], settings, data["cache"], progress)
    from atomgraph.data.deepmd import load_deepmd

    return load_deepmd(data["path"], settings, data["cache"], progress)


def predefined_split(dataset: GraphDataset, sizes, seed: int = 0) -> dict[str, np.ndarray]:
    """The dataset's own train/test split (rMD17, mlearn files); validation rows are drawn from the
    training rows: ``sizes[1]`` of them (a fraction of the training rows if below 1, else a count)."""
    own = dataset.meta.settings.get("split")
    if not own:
        raise ConfigError(f"dataset {dataset.meta.name!r} has no predefined split; use random or file")
    train, test = np.asarray(own["train"], dtype=np.int64), np.asarray(own["test"], dtype=np.int64)
    val = np.asarray(own.get("val", []), dtype=np.int64)
    if len(val) == 0:
        n_val = sizes[1] if sizes[1] >= 1 else round(sizes[1] * len(train))
        order = np.random.default_rng(seed).permutation(len(train))
        val, train = np.sort(train[order[: int(n_val)]]), np.sort(train[order[int(n_val) :]])
    return {"train": train, "val": val, "test": test}


def crystal_graph(data: dict, graph: dict) -> dict:
    """Crystals: a ``data.graph`` left at the defaults (5 Å, no cap) becomes CGCNN's 12 nearest
    neighbours within 8 Å, unless ``data.crystals.default_graph`` is false."""
    from atomgraph.training.config import DEFAULTS

    defaults = DEFAULTS["data"]["graph"]
    untouched = graph["cutoff"] == defaults["cutoff"] and graph["max_neighbors"] == defaults["max_neighbors"]
    if data["crystals"]["default_graph"] and untouched:
        return {**graph, "cutoff": 8.0, "max_neighbors": 12}
    return graph


def load_crystal_dataset(config: dict, settings: GraphSettings, progress: bool = True) -> GraphDataset:
    """``data.dataset: crystals``: CIF/POSCAR folder or archive with an id -> property CSV; warns
    (and logs) when a target's readout contradicts its flags (the mismatched-readout pitfall)."""
    import logging
    import warnings

    from atomgraph.data.crystals import flags_by_name, load_crystals, readout_warnings

    data, crystals = config["data"], config["data"]["crystals"]
    try:
        dataset = load_crystals(
            data["path"],
            settings,
            labels=crystals["labels"],
            subset=data["subset"],
            seed=data["split"]["seed"],
            workers=crystals["workers"],
            extensive=flags_by_name(data["targets"], data["extensive"]),
            per_atom=flags_by_name(data["targets"], crystals["per_atom"]),
            min_distance=crystals["min_distance"],
            cache=data["cache"],
            progress=progress,
        )
        messages = readout_warnings(dataset, data["targets"], config["model"].get("readout"))
    except ValueError as error:
        raise ConfigError(f"data ({data['path']}): {error}") from error
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=2)
        logging.getLogger(__name__).warning(message)
    return dataset
