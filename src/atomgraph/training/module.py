"""The Lightning module: a registered model, its task and target normaliser, optimiser and schedule."""

from __future__ import annotations

import lightning as L
import torch
from torch_geometric.data import Batch

from atomgraph.data.normalization import TargetNormalizer
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.models import build_model, model_card
from atomgraph.targets import TargetSet
from atomgraph.tasks import PropertyTask
from atomgraph.training.optim import OptimizationMixin


def build_parts(
    model: dict, targets: list[dict], graph: dict | None
) -> tuple[torch.nn.Module, TargetSet, GraphSpec]:
    """The model, its targets and its graph spec from a module's hyperparameters (``graph`` None: the
    model card's preset)."""
    spec = (
        GraphSpec.from_dict(graph) if graph is not None else preset(model_card(model["name"]).default_graph)
    )
    kwargs = {k: v for k, v in model.items() if k != "name"}
    return build_model(model["name"], graph=spec, **kwargs), TargetSet(targets), spec


class PropertyModule(OptimizationMixin, L.LightningModule):
    """Graph property model with masked losses, normalised targets and real-unit validation MAE.

    model: ``{"name": ..., **kwargs}`` for :func:`build_model` (``extensive`` and input widths filled
    in); targets: :meth:`TargetSet.to_list`; task: ``{"loss", "atomref"}``; training: the
    ``training`` config section; total_steps: for step-based schedules; graph: the
    :meth:`GraphSpec.to_dict` of the graphs the model reads (stored in the checkpoint).
    """

    def __init__(
        self,
        model: dict,
        targets: list[dict],
        task: dict,
        training: dict,
        total_steps: int = 1,
        graph: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model, self.info, self.graph_spec = build_parts(model, targets, graph)
        self.task = PropertyTask(self.info.kind, task.get("loss"))
        self.normalizer = TargetNormalizer(self.info.extensive)
        self.training_settings = training
        self.total_steps = total_steps

    def forward(self, batch: Batch) -> torch.Tensor:
        """Predictions [B, T] in real units (probabilities for classification)."""
        raw = self.model(batch)
        if self._normalized:
            return self.normalizer.denormalize(raw, batch)
        return self.task.to_output(raw)

    @property
    def _normalized(self) -> bool:
        """Regression outputs live in normalised units, except for models whose output is already
        physical (e.g. PaiNN's dipole moment built from charges and atomic dipoles)."""
        return self.task.normalizes and not getattr(self.model, "physical_output", False)

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.model(batch)
        target = self.normalizer.normalize(batch.y, batch) if self._normalized else batch.y
        return self.task.loss(raw, target), raw

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log(
            "train_loss",
            loss,
            batch_size=batch.num_graphs,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss, raw = self._loss(batch)
        n = batch.num_graphs
        self.log("val_loss", loss, batch_size=n, prog_bar=True, sync_dist=True)
        if self.task.normalizes:
            pred = self.normalizer.denormalize(raw, batch) if self._normalized else raw
            for t, name in enumerate(self.info.names):
                mask = ~torch.isnan(batch.y[:, t])
                if bool(mask.any()):
                    error = (pred[mask, t] - batch.y[mask, t]).abs().mean()
                    self.log(
                        f"val_mae_{name}",
                        error,
                        batch_size=int(mask.sum()),
                        sync_dist=True,
                        prog_bar=len(self.info.names) == 1,
                    )
