"""Graph property prediction: regression (single or multi-task) and binary classification.

Missing labels (NaN) are masked out of the loss. Regression losses are computed in the normalised
space of :class:`~atomgraph.data.TargetNormalizer` (so every target weighs the same); metrics are
computed in real units by the trainer.
"""

from __future__ import annotations

import torch
from torch.nn import functional

LOSSES = ("l1", "mse", "bce")


class PropertyTask:
    """Loss for predictions [B, T] against targets [B, T] with NaN for missing labels.

    kind: "regression" (loss "l1" or "mse") or "classification" (loss "bce" on logits).
    """

    def __init__(self, kind: str = "regression", loss: str | None = None):
        if kind not in ("regression", "classification"):
            raise ValueError(f"task kind must be regression or classification, got {kind!r}")
        loss = loss or ("bce" if kind == "classification" else "l1")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {LOSSES}")
        if (kind == "classification") != (loss == "bce"):
            raise ValueError(f"loss {loss!r} does not fit a {kind} task")
        self.kind = kind
        self.loss_name = loss

    @property
    def normalizes(self) -> bool:
        return self.kind == "regression"

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss over the labelled entries (0 with a gradient if a batch has no labels)."""
        mask = ~torch.isnan(target)
        if not bool(mask.any()):
            return pred.sum() * 0.0
        p, t = pred[mask], target[mask]
        if self.loss_name == "l1":
            return functional.l1_loss(p, t)
        if self.loss_name == "mse":
            return functional.mse_loss(p, t)
        return functional.binary_cross_entropy_with_logits(p, t)

    def to_output(self, raw: torch.Tensor) -> torch.Tensor:
        """Model output in the units a user reads: probabilities for classification."""
        return torch.sigmoid(raw) if self.kind == "classification" else raw

    # ------------------------------------------------------------------ the module's output interface

    #: validation runs without autograd (Lightning's inference mode)
    needs_grad = False

    def predict(self, module, batch) -> torch.Tensor:
        """Predictions [B, T] in real units (probabilities for classification)."""
        raw = module.model(batch)
        if self.physical(module):
            return self.to_output(raw)
        return module.normalizer.denormalize(raw, batch)

    def physical(self, module) -> bool:
        """Whether the model's outputs are already in real units (classification logits, or a model
        such as PaiNN's dipole head that builds a physical quantity): then nothing is normalised."""
        return not self.normalizes or bool(getattr(module.model, "physical_output", False))

    def step(self, module, batch, stage: str) -> torch.Tensor:
        """Loss of a batch in normalised units; validation also logs the MAE per target in real units."""
        raw = module.model(batch)
        target = batch.y if self.physical(module) else module.normalizer.normalize(batch.y, batch)
        loss = self.loss(raw, target)
        n = batch.num_graphs
        module.log(f"{stage}_loss", loss, batch_size=n, on_step=False, on_epoch=True, prog_bar=True,
                   sync_dist=True)  # fmt: skip
        if stage != "train" and self.normalizes:
            pred = raw if self.physical(module) else module.normalizer.denormalize(raw, batch)
            names = module.info.names
            for t, name in enumerate(names):
                mask = ~torch.isnan(batch.y[:, t])
                if bool(mask.any()):
                    error = pred[mask, t] - batch.y[mask, t]
                    count = int(mask.sum())
                    module.log(f"{stage}_mae_{name}", error.abs().mean(), batch_size=count, sync_dist=True,
                               prog_bar=len(names) == 1)  # fmt: skip
                    # the epoch mean of the squared error: with the labels' variance, R² (learning curves)
                    module.log(
                        f"{stage}_mse_{name}", (error * error).mean(), batch_size=count, sync_dist=True
                    )
        return loss
