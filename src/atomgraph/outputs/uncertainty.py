"""Uncertainty outputs: a mean-variance head (Gaussian negative log-likelihood), MC dropout, and the
rule that combines the members of an ensemble.

Mean-variance (``task.uncertainty: mean_variance``): the model has two outputs per target, read out
the same way (the TargetSpec's reduction); the first is the mean in the normaliser's units, the second
``v`` gives the variance ``softplus(v) + 1e-6`` in those units. The loss is the Gaussian NLL
``0.5 * (log var + (y - mean)^2 / var)`` (constant dropped) averaged over labelled entries. In real units
the mean is denormalised as usual and ``sigma = sqrt(var) * std`` (the normaliser's per-target scale;
its per-element offsets shift but do not scale).

Ensembles (deep ensembles, Lakshminarayanan et al. 2017): members' means ``mu_m`` and, for
mean-variance members, variances ``s_m^2`` combine to ``mu = mean_m mu_m`` and
``sigma^2 = mean_m s_m^2 + mean_m (mu_m - mu)^2`` (aleatoric + epistemic; the population variance of
the means, so identical members give 0 spread).
"""

from __future__ import annotations

import torch
from torch.nn import functional

from atomgraph.outputs.property import PropertyTask

UNCERTAINTIES = (None, "mean_variance")

#: variance floor in normalised units (keeps the NLL finite for a model that is sure)
MIN_VARIANCE = 1e-6


def gaussian_nll(mean: torch.Tensor, variance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian NLL (without the constant 0.5 log 2 pi) over the entries of ``target`` that are
    not NaN; 0 with a gradient when there are none. Shapes [B, T]."""
    mask = ~torch.isnan(target)
    if not bool(mask.any()):
        return (mean.sum() + variance.sum()) * 0.0
    m, v, t = mean[mask], variance[mask], target[mask]
    return 0.5 * (torch.log(v) + (t - m) ** 2 / v).mean()


class MeanVarianceTask(PropertyTask):
    """Regression with a predicted variance (see the module docstring). The model's output is
    [B, 2T]: T means, then T raw variances."""

    def __init__(self, kind: str = "regression", loss: str | None = None):
        if kind != "regression":
            raise ValueError("task.uncertainty mean_variance needs a regression task, not classification")
        if loss not in (None, "gaussian_nll"):
            raise ValueError(
                f"task.uncertainty mean_variance trains on the Gaussian NLL, not task.loss {loss!r}: set "
                "task.loss to null (or gaussian_nll)"
            )
        super().__init__("regression", "l1")
        self.loss_name = "gaussian_nll"

    @staticmethod
    def split(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model output [B, 2T] -> (mean [B, T], variance [B, T]) in normalised units."""
        t = raw.shape[1] // 2
        return raw[:, :t], functional.softplus(raw[:, t:]) + MIN_VARIANCE

    def check_model(self, module) -> None:
        if getattr(module.model, "physical_output", False):
            raise ValueError("task.uncertainty mean_variance needs normalised outputs; this model's output "
                             "is a physical quantity (e.g. PaiNN's dipole head)")  # fmt: skip

    def predict(self, module, batch) -> torch.Tensor:
        return self.distribution(module, batch)[0]

    def distribution(self, module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [B, T], sigma [B, T]) in real units."""
        mean, variance = self.split(module.model(batch))
        return module.normalizer.denormalize(mean, batch), variance.sqrt() * module.normalizer.std

    def step(self, module, batch, stage: str) -> torch.Tensor:
        mean, variance = self.split(module.model(batch))
        loss = gaussian_nll(mean, variance, module.normalizer.normalize(batch.y, batch))
        module.log(f"{stage}_loss", loss, batch_size=batch.num_graphs, on_step=False, on_epoch=True,
                   prog_bar=True, sync_dist=True)  # fmt: skip
        if stage != "train":
            pred = module.normalizer.denormalize(mean, batch)
            for t, name in enumerate(module.info.names):
                mask = ~torch.isnan(batch.y[:, t])
                if bool(mask.any()):
                    error = (pred[mask, t] - batch.y[mask, t]).abs().mean()
                    module.log(f"{stage}_mae_{name}", error, batch_size=int(mask.sum()), sync_dist=True,
                               prog_bar=len(module.info.names) == 1)  # fmt: skip
        return loss


def combine_members(means: torch.Tensor, sigmas: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ensemble mean and sigma from members' means [M, B, T] and sigmas [M, B, T] (None: members
    without their own variance), by the rule of the module docstring."""
    mean = means.mean(0)
    variance = ((means - mean) ** 2).mean(0)
    if sigmas is not None:
        variance = variance + (sigmas**2).mean(0)
    return mean, variance.sqrt()


def dropout_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The dropout layers of a model (MC dropout switches these on at inference); empty when the model
    has none or all have p = 0."""
    kinds = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.AlphaDropout)
    found = [m for m in model.modules() if isinstance(m, kinds) and m.p > 0]
    # layers that take a dropout probability as an argument (PyG's GATConv) drop in training mode too
    found += [m for m in model.modules() if isinstance(getattr(m, "dropout", None), float) and m.dropout > 0]
    return found
