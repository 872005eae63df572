"""The one Lightning module: a :class:`~atomgraph.training.prediction_module.PredictionModule` (a
registered model, its output and the target normaliser) with the optimiser, the schedule and the
training, validation and test steps. Everything that is not the loss -- hyperparameters, the graph spec
and targets in the checkpoint, optimisation -- is shared by properties and potentials.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.fabric.utilities.data import AttributeDict
from torch_geometric.data import Batch

from atomgraph.training.optim import OptimizationMixin
from atomgraph.training.prediction_module import PredictionModule


class AtomgraphModule(OptimizationMixin, PredictionModule, L.LightningModule):
    """A :class:`PredictionModule` that trains (its arguments are the same and are documented there):
    the ``training`` settings and ``total_steps`` drive the optimiser and schedule, and ``tuning``'s
    ``lr_factors`` its parameter groups (its ``freeze`` prefixes are the prediction module's, kept by a
    resumed run and seen in a loaded one)."""

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
        super().__init__(
            model, targets, task, training, total_steps, graph, elements, shortest_distance, tuning
        )
        self._hparams = AttributeDict()  # Lightning's own, which save_hyperparameters fills, as it would
        self.save_hyperparameters()  # the same arguments, for Lightning's checkpoints and loggers
        self.training_settings = training
        self.total_steps = total_steps
        self.lr_factors = dict((tuning or {}).get("lr_factors", {}))

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self.task.step(self, batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.task.step(self, batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.task.step(self, batch, "test")
