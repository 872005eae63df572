"""TrainedRun: the only way a trained model is loaded again.

``TrainedRun.load(path, which="auto")`` reads a run directory (``checkpoints/{best,last}.ckpt`` +
``config.yaml``), a checkpoint file, or one exported file (:meth:`TrainedRun.export`), always with
``torch.load(weights_only=True)``: no code runs from the file, whatever the environment says. It
gives the module (model + normaliser), the :class:`~atomgraph.graphs.spec.GraphSpec` the model was
trained on, the :class:`~atomgraph.targets.TargetSet` and the config. Predict, screening, explain,
the report and the ASE calculator all use it, so inference builds exactly the graph training built.

Checkpoints written before the graph spec was stored (their hyperparameters have no ``graph`` and
targets as ``{names, units, extensive, kind}``) load through :func:`legacy_hyper_parameters`, which
rebuilds the spec with the rules that run was trained under (a model ``cutoff``, the crystal default
of 12 nearest within 8 Å). Checkpoints written before readouts followed the TargetSpec (model
arguments with ``extensive`` flags) get today's readout words there (:func:`legacy_model_arguments`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from ase import Atoms
from torch_geometric.data import Data

from atomgraph.data.safe_load import safe_torch_load
from atomgraph.graphs.spec import GraphSpec
from atomgraph.nn.readout import POOLS
from atomgraph.structures.validate import unseen_elements
from atomgraph.targets import TargetSet, targets_from_columns
from atomgraph.training.config import read_run_config, read_yaml
from atomgraph.training.ensemble_module import EnsembleModule, is_ensemble, member_dirs
from atomgraph.training.finetune import InitialWeights
from atomgraph.training.prediction_module import PredictionModule
from atomgraph.training.run_files import CALIBRATION_FILE

EXPORT_FORMAT = "atomgraph-trained-run"
EXPORT_VERSION = 1
WHICH = ("auto", "best", "last")


class RunLoadError(ValueError):
    """A run directory, checkpoint or exported file cannot be loaded; the message names the file."""


def safe_load(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` with an error that names the file and says it is
    corrupt (never the advice to disable ``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise RunLoadError(f"{path} does not exist")
    try:
        return safe_torch_load(path, "atomgraph checkpoint")
    except (ValueError, OSError) as error:
        raise RunLoadError(str(error)) from error


# ------------------------------------------------------------------------------------- legacy


#: per-target readouts before they followed the TargetSpec: CGCNN/MEGNet's "mean" pooled the atom
#: states (today "pooled") and their "per_atom" averaged atomic contributions, as the atom-wise models'
#: "mean" did (today "atom_mean")
CRYSTAL_READOUTS = {"mean": "pooled", "per_atom": "atom_mean"}
ATOMWISE_READOUTS = {"mean": "atom_mean"}


def legacy_model_arguments(model: dict) -> dict:
    """Model arguments (a checkpoint's, or its run's ``config.yaml`` model section) written before
    readouts followed the TargetSpec, in today's words; they build the same module:

    * ``extensive`` flags -> ``reductions`` (True: "sum", False: "mean"; every model reads a "mean"
      target out as it read a non-extensive one, and as it reads a "per_atom" one);
    * CGCNN/MEGNet ``readout`` -> :data:`CRYSTAL_READOUTS`, the atom-wise models' ->
      :data:`ATOMWISE_READOUTS` (also inside a list);
    * a node pool named ``readout`` (GCN, GAT, GATv2, GraphSAGE, MPNN) -> ``pool``;
    * an atom-wise model's (SchNet, PaiNN, simple GNN) ``readout`` "max", "attention" or "set2set" ->
      ``readout: pooled`` with that ``pool``.
    """
    from atomgraph.models import model_card

    model = dict(model)
    if "extensive" in model:
        model["reductions"] = ["sum" if flag else "mean" for flag in model.pop("extensive")]
    readout = model.get("readout")
    if readout is None:
        return model
    intensive, params = model_card(model["name"]).intensive_readout, _parameters(model["name"])
    if intensive is None:
        if "readout" not in params and "pool" in params:
            model["pool"] = model.pop("readout")
    elif intensive != "pooled" and isinstance(readout, str) and readout in set(POOLS) - {"sum", "mean"}:
        model.update(readout="pooled", pool=readout)
    else:
        table = CRYSTAL_READOUTS if intensive == "pooled" else ATOMWISE_READOUTS
        words = [table.get(word, word) for word in ([readout] if isinstance(readout, str) else readout)]
        model["readout"] = words[0] if isinstance(readout, str) else words
    return model


def legacy_hyper_parameters(hparams: dict, raw_config: dict | None) -> dict:
    """Hyperparameters of a checkpoint written before GraphSpec/TargetSpec, in today's form."""
    from atomgraph.models import model_card

    hparams = copy.deepcopy(hparams)
    if "extensive" in hparams["model"]:
        hparams["model"] = legacy_model_arguments(hparams["model"])
    targets = hparams["targets"]
    if isinstance(targets, dict):  # TargetInfo(names, units, extensive, kind)
        hparams["targets"] = targets_from_columns(
            targets["names"], targets["units"], targets["extensive"], targets.get("kind", "regression")
        ).to_list()
    if "graph" in hparams:
        return hparams
    model = dict(hparams["model"])
    card = model_card(model["name"])
    data = (raw_config or {}).get("data", {})
    graph = dict(data.get("graph") or {})
    values = {"kind": graph.get("kind") or card.graph_kind}
    if values["kind"] in ("radius", "bond"):
        values["cutoff"] = float(graph.get("cutoff", 5.0))
        for key in ("max_neighbors", "explicit_hydrogens", "virtual_edges", "master_node"):
            if key in graph:
                values[key] = graph[key]
        crystals = data.get("crystals") or {}
        untouched = values["cutoff"] == 5.0 and values.get("max_neighbors") is None
        if data.get("dataset") == "crystals" and crystals.get("default_graph", True) and untouched:
            values.update(cutoff=8.0, max_neighbors=12)  # the rule those runs were built under
        if values["kind"] == "bond" and model["name"] == "mpnn":
            values["cutoff"] = 6.0  # the MPNN's distance Gaussians spanned 0..6 Å
    model_cutoff = model.pop("cutoff", None)
    if model_cutoff is not None and values["kind"] == "radius" and model_cutoff < values.get("cutoff", 0):
        if "interaction_cutoff" in _parameters(model["name"]):
            model["interaction_cutoff"] = float(model_cutoff)
        else:  # the model's envelope ended there: a graph with that cutoff gives the same numbers
            values["cutoff"] = float(model_cutoff)
    hparams["model"] = model
    hparams["graph"] = GraphSpec.from_dict(values).to_dict()  # a master_node: true is refused
    return hparams


def check_agreement(config: dict, module, path: Path) -> None:
    """A RunLoadError when the run's config and its checkpoint describe different models (e.g. a later
    ``train`` rewrote ``config.yaml`` over a finished run): predictions would silently change."""
    problems = []
    recorded = config["data"]["graph"]
    if isinstance(recorded, dict) and set(recorded) >= {"kind", "cutoff"} and "preset" in recorded:
        try:
            from atomgraph.graphs.spec import resolve_graph_spec

            if resolve_graph_spec(recorded, module.graph_spec) != module.graph_spec:
                problems.append(f"graph {recorded} vs {module.graph_spec.to_dict()}")
        except ValueError as error:
            problems.append(f"graph: {error}")
    if list(config["data"]["targets"]) != module.info.names:
        problems.append(f"targets {config['data']['targets']} vs {module.info.names}")
    trained = module.hparams["model"]
    changed = sorted(k for k in config["model"] if k in trained and trained[k] != config["model"][k])
    if changed:  # keys only one side has: filled from the data (widths) or dropped from old configs
        problems.append(
            "model " + ", ".join(f"{k}: {config['model'][k]!r} vs {trained[k]!r}" for k in changed)
        )
    if problems:
        raise RunLoadError(
            f"{path}: the run's config.yaml and its checkpoint disagree ({'; '.join(problems)}); the "
            "config was changed after training. Restore it, or retrain."
        )


def _parameters(name: str) -> set[str]:
    import inspect

    from atomgraph.models import model_class

    return set(inspect.signature(model_class(name)).parameters)


# ----------------------------------------------------------------------------------- the loader


@dataclass
class TrainedRun:
    """A trained model ready for inference (see the module docstring).

    module: the :class:`~atomgraph.training.prediction_module.PredictionModule` (plain torch:
    ``.model``, ``.normalizer``, ``.task``) in eval mode (an ensemble's run: an
    :class:`~atomgraph.training.ensemble_module.EnsembleModule` of its members); graph: the spec of the
    graphs it reads; targets: what its output columns are; config: the run's resolved config (None
    for a bare checkpoint without one); source: the file it was read from; calibration: the run's
    ``calibration.json`` record (or the one an exported file carries), None without one.
    """

    module: PredictionModule | EnsembleModule
    graph: GraphSpec
    targets: TargetSet
    config: dict | None
    source: Path
    calibration: dict | None = None

    @property
    def is_ensemble(self) -> bool:
        """Whether this is an ensemble's run (its module runs every member)."""
        return isinstance(self.module, EnsembleModule)

    @property
    def is_potential(self) -> bool:
        return self.module.kind == "potential"

    @property
    def model_name(self) -> str:
        return self.module.hparams["model"]["name"]

    # ------------------------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | Path, which: str = "auto") -> TrainedRun:
        """A run directory, a checkpoint (``.ckpt``) or an exported file (:meth:`export`).

        which: for run directories, "best", "last", or "auto" (best when it exists, else last: a run
        stopped before its first validation has only last.ckpt).
        """
        if which not in WHICH:
            raise ValueError(f"which must be one of {WHICH}, got {which!r}")
        path = Path(path)
        if is_ensemble(path):
            return cls._ensemble(path, which)
        if path.is_dir():
            checkpoints = path / "checkpoints"
            names = ("best", "last") if which == "auto" else (which,)
            found = [checkpoints / f"{n}.ckpt" for n in names if (checkpoints / f"{n}.ckpt").exists()]
            if not found:
                raise RunLoadError(
                    f"{path}: no checkpoint {' or '.join(f'checkpoints/{n}.ckpt' for n in names)}; is it a "
                    "finished run directory?"
                )
            config_file = path / "config.yaml"
            return cls._from_file(found[0], config_file if config_file.exists() else None)
        if not path.exists():
            raise RunLoadError(f"{path}: no such run directory, checkpoint or exported model")
        config_file = path.parent.parent / "config.yaml"  # a checkpoint inside a run directory
        return cls._from_file(path, config_file if config_file.exists() else None)

    @classmethod
    def _from_file(cls, path: Path, config_file: Path | None) -> TrainedRun:
        stored = safe_load(path)
        if not isinstance(stored, dict):
            raise RunLoadError(f"{path}: not an atomgraph checkpoint or export")
        if stored.get("format") == EXPORT_FORMAT:
            if stored.get("version") != EXPORT_VERSION:
                raise RunLoadError(f"{path}: export version {stored.get('version')} is not {EXPORT_VERSION}")
            hparams, weights, raw = stored["hyper_parameters"], stored["state_dict"], stored.get("config")
            calibration = stored.get("calibration")
        elif "hyper_parameters" in stored and "state_dict" in stored:
            hparams, weights = stored["hyper_parameters"], stored["state_dict"]
            raw = read_yaml(config_file.read_text()) if config_file is not None else None
            calibration = read_calibration(config_file.parent) if config_file is not None else None
        else:
            raise RunLoadError(f"{path}: not an atomgraph checkpoint or export (no hyperparameters)")
        try:
            legacy = "extensive" in hparams["model"]
            hparams = legacy_hyper_parameters(hparams, raw)
            module = _build_module(hparams, weights)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise RunLoadError(f"{path}: cannot rebuild the trained model ({error})") from error
        config = None
        if raw is not None:
            config = read_run_config(config_file) if stored.get("format") != EXPORT_FORMAT else dict(raw)
            if legacy:  # the run's config in the words its checkpoint now has
                config["model"] = legacy_model_arguments(config["model"])
            check_agreement(config, module, path)
        return cls(module, module.graph_spec, module.info, config, path, calibration)

    @classmethod
    def _ensemble(cls, path: Path, which: str) -> TrainedRun:
        """An ensemble's run directory (:mod:`atomgraph.training.ensemble`): its members, as one module."""
        try:
            members = [cls.load(member, which) for member in member_dirs(path)]
            module = EnsembleModule([member.module for member in members])
        except ValueError as error:
            raise RunLoadError(f"{path}: {error}") from error
        config = read_run_config(path / "config.yaml")
        return cls(module.eval(), module.graph_spec, module.info, config, path, read_calibration(path))

    # -------------------------------------------------------------------------------- using it

    @property
    def elements(self) -> list[int] | None:
        """Atomic numbers seen in training (None for runs saved before they were recorded)."""
        return self.module.hparams.get("elements")

    def unseen_elements(self, numbers) -> list[str]:
        """Symbols of the elements in ``numbers`` that the model never saw in training (sorted)."""
        return unseen_elements(numbers, self.elements)

    def build_graph(self, atoms: Atoms) -> Data:
        """The graph of one structure, built exactly as in training."""
        return self.graph.build(atoms)

    def export(self, path: str | Path) -> Path:
        """One file with the weights and the metadata (plain tensors and types: loadable with
        ``weights_only=True``), accepted wherever a run directory is."""
        if self.is_ensemble:
            raise RunLoadError(f"{self.source} is an ensemble; export its members (members/<k>) one by one")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "hyper_parameters": dict(self.module.hparams),
            "state_dict": self.module.state_dict(),
            "graph": self.graph.to_dict(),
            "targets": self.targets.to_list(),
            "config": self.config,
            "calibration": self.calibration,
        }
        torch.save(payload, path)
        return path


def read_calibration(run_dir: Path) -> dict | None:
    """A run directory's ``calibration.json`` record (None when it has none)."""
    import json

    file = Path(run_dir) / CALIBRATION_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except ValueError as error:
        raise RunLoadError(f"{file}: not a readable calibration record ({error})") from error


def initial_weights(config: dict) -> InitialWeights | None:
    """The weights a run config's ``init.from`` names (None when it names none), read by
    :meth:`TrainedRun.load` for :func:`atomgraph.training.run.train`."""
    source = config["init"]["from"]
    if not source:
        return None
    run = TrainedRun.load(source)
    if run.is_ensemble:
        raise RunLoadError(
            f"init.from: {source} is an ensemble; start from one of its members ({source}/members/<k>)"
        )
    return InitialWeights(
        str(source),
        run.module.hparams["model"]["name"],
        run.module.model.state_dict(),  # a module loaded for this alone: no copy needed
        run.graph,
        run.elements,
        dict(run.module.hparams["model"]),
    )


def _build_module(hparams: dict, weights: dict) -> PredictionModule:
    names = ("model", "targets", "task", "training", "total_steps", "graph", "elements", "shortest_distance",
             "tuning")  # fmt: skip
    kwargs = {k: hparams[k] for k in names if k in hparams}
    module = PredictionModule(**kwargs)
    if module.kind == "potential":
        dtypes = [v.dtype for k, v in weights.items() if k.startswith("model.") and v.is_floating_point()]
        module.model.to(dtypes[0] if dtypes else torch.get_default_dtype())  # "64-true" runs: float64
    try:
        module.load_state_dict(weights)
    except RuntimeError as error:  # the model's layout changed since the checkpoint was written
        name = hparams["model"]["name"]
        raise RunLoadError(
            f"the weights do not fit today's {name!r} model (its layout changed since this checkpoint was "
            f"written; retrain it, or load it with the atomgraph version that wrote it): {error}"
        ) from None
    return module.eval()
