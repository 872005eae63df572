"""The Lightning module: a registered model, its task and target normaliser, optimiser and schedule."""

from __future__ import annotations

import lightning as L
import torch
from torch_geometric.data import Batch

from atomgraph.data.graph_dataset import TargetInfo
from atomgraph.data.normalization import TargetNormalizer
from atomgraph.models import build_model
from atomgraph.tasks import PropertyTask
from atomgraph.training.optim import OptimizationMixin


class PropertyModule(OptimizationMixin, L.LightningModule):
    """Graph property model with masked losses, normalised targets and real-unit validation MAE.

    model: ``{"name": ..., **kwargs}`` for :func:`build_model` (``extensive`` and input widths filled
    in); targets: :class:`TargetInfo` as a dict; task: ``{"loss", "atomref"}``; training: the
    ``training`` config section; total_steps: for step-based schedules.
    """

    def __init__(self, model: dict, targets: dict, task: dict, training: dict, total_steps: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self.info = TargetInfo(**targets)
        kwargs = {k: v for k, v in model.items() if k != "name"}
        self.model = build_model(model["name"], **kwargs)
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
