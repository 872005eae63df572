"""A trained model as it predicts: a registered model, its output (properties, or energy + autograd
forces and stress), and the target normaliser -- plain torch, so that loading a trained run
(:class:`atomgraph.runs.TrainedRun`) does not import Lightning (~1 s of every ``predict``'s start-up).
Training subclasses it with the optimisation and the steps
(:class:`atomgraph.training.module.AtomgraphModule`).

The output is chosen by ``task.kind`` (:data:`OUTPUTS`): ``property`` (:class:`PropertyTask`: masked
regression or classification losses in normalised units) or ``potential`` (:class:`PotentialTask`:
energy, forces = -dE/dx and stress by one autograd path for every model).

Precision of potentials: the model runs in the dtype of its parameters (``training.precision:
"64-true"`` makes it float64); their target normaliser is always float64, and so are the energies it
returns, so that reference energies of ~10^4 eV keep meV resolution.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from atomgraph.data.normalization import TargetNormalizer
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.models import build_model, model_card
from atomgraph.outputs import PotentialTask, PropertyTask
from atomgraph.outputs.energy_offset import EnergyOffsetFit
from atomgraph.outputs.potential import cast_graph, energy_forces_stress
from atomgraph.outputs.uncertainty import UNCERTAINTIES, UNCERTAINTY_TASKS
from atomgraph.targets import TargetSet
from atomgraph.training.finetune import freeze

OUTPUTS = ("property", "potential")


class Arguments(dict):
    """A module's arguments, read as keys or as attributes (``hparams["model"]``, ``hparams.model``), as
    Lightning's ``AttributeDict`` reads them."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value


def build_parts(
    model: dict, targets: list[dict], graph: dict | None
) -> tuple[torch.nn.Module, TargetSet, GraphSpec]:
    """The model, its targets and its graph spec from a module's hyperparameters (``graph`` None: the
    model card's preset)."""
    name = model["name"]
    spec = GraphSpec.from_dict(graph) if graph is not None else preset(model_card(name).default_graph)
    kwargs = {k: v for k, v in model.items() if k != "name"}
    return build_model(name, graph=spec, **kwargs), TargetSet(targets), spec


class PredictionModule(torch.nn.Module):
    """A model with its output and normaliser (see the module docstring).

    model: ``{"name": ..., **kwargs}`` for :func:`build_model` (``reductions`` and input widths filled
    in); targets: :meth:`TargetSet.to_list`; task: the ``task`` config section (``kind``, ``loss``,
    ``atomref``, potential weights); training: the ``training`` config section; total_steps: for
    step-based schedules; graph: the :meth:`GraphSpec.to_dict` of the graphs the model reads;
    elements: the atomic numbers of the training rows (what inference may trust); shortest_distance:
    potentials, the closest pair of atoms in the training rows (Å; MD warns below it); tuning: the
    ``freeze`` prefixes and ``lr_factors`` of the ``init`` config section
    (:mod:`atomgraph.training.finetune`; the frozen parameters do not require grad). All of them are
    stored in the checkpoint (:attr:`hparams`); training, total_steps and the ``lr_factors`` are read by
    the training subclass alone.
    """

    def __init__(
        self,
        model: dict,
        targets: list[dict],
        task: dict,
        training: dict,
        total_steps: int = 1,
        graph: dict | None = None,
        elements: list[int] | None = None,
        shortest_distance: float | None = None,
        tuning: dict | None = None,
    ):
        super().__init__()
        # the arguments, as checkpoints and exports store them (the training subclass has Lightning's
        # save_hyperparameters put the same ones under the same name)
        self._hparams = Arguments(
            model=model, targets=targets, task=task, training=training, total_steps=total_steps, graph=graph,
            elements=elements, shortest_distance=shortest_distance, tuning=tuning,
        )  # fmt: skip
        self.uncertainty = task.get("uncertainty")
        if self.uncertainty not in UNCERTAINTIES:
            raise ValueError(f"unknown task.uncertainty {self.uncertainty!r}; choose one of {UNCERTAINTIES}")
        blocks = UNCERTAINTY_TASKS[self.uncertainty].outputs_per_target if self.uncertainty else 1
        if blocks > 1 and "reductions" in model:  # a variance (or the NIG's parameters) per target,
            model = {**model, "reductions": list(model["reductions"]) * blocks}  # read out as its mean is
            if isinstance(model.get("readout"), list | tuple):
                model["readout"] = list(model["readout"]) * blocks
        self.model, self.info, self.graph_spec = build_parts(model, targets, graph)
        # the normaliser's per-element table spans the model's (model.max_z; else the default, 100)
        table = {"max_z": int(model["max_z"])} if "max_z" in model else {}
        self.kind = task.get("kind", "property")
        if self.kind not in OUTPUTS:
            raise ValueError(f"unknown task.kind {self.kind!r}; choose one of {OUTPUTS}")
        if getattr(self.model, "direct_forces", False) and self.kind != "potential":
            raise ValueError("model.direct_forces predicts forces: it needs task.kind: potential")
        if self.kind == "potential":
            if "energy" not in self.info.names:
                raise ValueError(
                    f"a potential needs the target 'energy' (eV); the targets are {self.info.names}"
                )
            self.column = self.info.names.index("energy")
            if not self.info.extensive[self.column]:
                raise ValueError(
                    "the energy target of a potential must be extensive (sum of atomic energies)"
                )
            self.task = PotentialTask.from_config(task)
            self.normalizer = TargetNormalizer(self.info.extensive, **table).double()
            if self.uncertainty is not None:
                raise ValueError("task.uncertainty is for properties; a potential's uncertainty is an "
                                 "ensemble's spread (ensemble.members)")  # fmt: skip
        elif self.uncertainty is not None:
            if self.info.node_level:
                raise ValueError(f"task.uncertainty: {self.uncertainty} is for graph-level targets, not "
                                 f"node-level {self.info.names}")  # fmt: skip
            self.task = UNCERTAINTY_TASKS[self.uncertainty].from_config(self.info.kind, task)
            self.task.check_model(self)
            self.normalizer = TargetNormalizer(self.info.extensive, **table)
        else:
            self.task = PropertyTask(self.info.kind, task.get("loss"))
            self.normalizer = TargetNormalizer(self.info.extensive, node_level=self.info.node_level, **table)
        freeze(self.model, (tuning or {}).get("freeze", []))

    @property
    def hparams(self) -> dict:
        """The arguments the module was built from (what checkpoints and exports store), as keys or
        attributes."""
        return self._hparams

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the model computes in (that of its parameters)."""
        return next(self.model.parameters()).dtype

    def forward(self, batch: Data) -> torch.Tensor:
        """Predictions [B, T] in real units (probabilities for classification; potentials: energies
        without forces)."""
        return self.task.predict(self, batch)

    def distribution(self, batch: Data) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [B, T], sigma [B, T]) in real units, for a model with an uncertainty output
        (mean-variance or evidential)."""
        if self.uncertainty is None:
            raise ValueError("this model predicts no variance (task.uncertainty is null)")
        return self.task.distribution(self, batch)

    def compute(
        self, batch: Data, forces: bool = True, stress: bool = False, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """Potentials: ``{"energy": [B] eV, "forces": [N, 3] eV/Å, "stress": [B, 3, 3] eV/Å^3}``."""
        if self.kind != "potential":
            raise ValueError("forces and stress come from potentials (task.kind: potential)")
        graph = cast_graph(batch, self.compute_dtype)
        return energy_forces_stress(self.model, self.normalizer, graph, forces, stress, training, self.column)

    def fit_energy_offset(self, loader) -> torch.Tensor:
        """Potentials: add the model's constant energy error on the rows of ``loader`` (least squares on
        element counts, :mod:`atomgraph.outputs.energy_offset`) to the per-element references; forces
        and stress do not change. Returns the offsets [max_z + 1] eV."""
        fit = EnergyOffsetFit(self.normalizer.atomref.shape[0] - 1)
        training = self.training
        self.eval()
        with torch.no_grad():
            device = next(self.parameters()).device
            for batch in loader:
                batch = batch.to(device)
                fit.add(batch, batch.y[:, self.column] - self.task.predict(self, batch)[:, self.column])
        self.train(training)
        return fit.apply(self.normalizer, self.column)
