"""Uncertainty outputs: a mean-variance head (Gaussian negative log-likelihood), deep evidential
regression, MC dropout, and the rule that combines the members of an ensemble.

A model with an uncertainty output (``task.uncertainty``, :data:`UNCERTAINTY_TASKS`) has several outputs
per target, each read out the same way (the TargetSpec's reduction), in the normaliser's units. In real
units the mean is denormalised as usual and ``sigma = sqrt(var) * std`` (the normaliser's per-target
scale; its per-element offsets shift but do not scale).

* Mean-variance (``mean_variance``; Nix & Weigend 1994): two outputs per target, the mean and ``v``,
  the variance being ``softplus(v) + 1e-6``. The loss is the Gaussian NLL
  ``0.5 * (log var + (y - mean)^2 / var)`` (constant dropped) averaged over labelled entries.
* Deep evidential regression (``evidential``; Amini et al. 2020, as chemprop trains it): four outputs
  per target, the parameters of a Normal-Inverse-Gamma distribution over the mean and variance:
  ``gamma`` (the mean), ``nu = softplus + 1e-6``, ``alpha = softplus + 1 + 1e-6``,
  ``beta = softplus + 1e-6``. The loss is the NIG's negative log marginal likelihood (a Student t)
  plus ``task.evidence_weight`` (default 0.2, chemprop's) times the evidence regulariser
  ``|y - gamma| (2 nu + alpha)``, averaged over labelled entries. The variance is
  ``beta / (alpha - 1) * (1 + 1 / nu)``: the expected aleatoric variance plus the epistemic variance of
  the mean.

Ensembles (deep ensembles, Lakshminarayanan et al. 2017): members' means ``mu_m`` and, for
mean-variance members, variances ``s_m^2`` combine to ``mu = mean_m mu_m`` and
``sigma^2 = mean_m s_m^2 + mean_m (mu_m - mu)^2`` (aleatoric + epistemic; the population variance of
the means, so identical members give 0 spread).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional

from atomgraph.outputs.property import PropertyTask

#: variance floor in normalised units (keeps the NLL finite for a model that is sure)
MIN_VARIANCE = 1e-6

#: the default weight of deep evidential regression's evidence regulariser (chemprop's)
EVIDENCE_WEIGHT = 0.2


def gaussian_nll(mean: torch.Tensor, variance: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian NLL (without the constant 0.5 log 2 pi) over the entries of ``target`` that are
    not NaN; 0 with a gradient when there are none. Shapes [B, T]."""
    mask = ~torch.isnan(target)
    if not bool(mask.any()):
        return (mean.sum() + variance.sum()) * 0.0
    m, v, t = mean[mask], variance[mask], target[mask]
    return 0.5 * (torch.log(v) + (t - m) ** 2 / v).mean()


def evidential_loss(
    gamma: torch.Tensor,
    nu: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    target: torch.Tensor,
    evidence_weight: float,
) -> torch.Tensor:
    """Mean deep-evidential loss over the entries of ``target`` that are not NaN (0 with a gradient when
    there are none): the Normal-Inverse-Gamma negative log marginal likelihood
    ``0.5 log(pi / nu) - alpha log(omega) + (alpha + 0.5) log(nu (y - gamma)^2 + omega)
    + lgamma(alpha) - lgamma(alpha + 0.5)`` with ``omega = 2 beta (1 + nu)``, plus ``evidence_weight``
    times ``|y - gamma| (2 nu + alpha)``. Shapes [B, T]."""
    mask = ~torch.isnan(target)
    if not bool(mask.any()):
        return (gamma.sum() + nu.sum() + alpha.sum() + beta.sum()) * 0.0
    g, n, a, b, y = gamma[mask], nu[mask], alpha[mask], beta[mask], target[mask]
    omega = 2 * b * (1 + n)
    residual = y - g
    nll = (
        0.5 * torch.log(torch.pi / n)
        - a * torch.log(omega)
        + (a + 0.5) * torch.log(n * residual**2 + omega)
        + torch.lgamma(a)
        - torch.lgamma(a + 0.5)
    )
    return (nll + evidence_weight * residual.abs() * (2 * n + a)).mean()


class DistributionTask(PropertyTask):
    """Regression whose model predicts a distribution per target (see the module docstring): the
    model's output is [B, k T], k = :attr:`outputs_per_target` blocks of T columns."""

    name: str
    loss_name: str
    outputs_per_target: int

    def __init__(self, kind: str = "regression", loss: str | None = None):
        if kind != "regression":
            raise ValueError(f"task.uncertainty {self.name} needs a regression task, not classification")
        if loss not in (None, self.loss_name):
            raise ValueError(
                f"task.uncertainty {self.name} trains on its own loss ({self.loss_name}), not task.loss "
                f"{loss!r}: set task.loss to null (or {self.loss_name})"
            )
        super().__init__("regression", "l1")  # PropertyTask's checks; the loss is this task's own
        self.loss_name = type(self).loss_name

    @classmethod
    def from_config(cls, kind: str, task: dict) -> DistributionTask:
        """The task of a ``task`` config section."""
        return cls(kind, task.get("loss"))

    def blocks(self, raw: torch.Tensor) -> list[torch.Tensor]:
        """Model output [B, k T] -> k blocks [B, T]."""
        return list(raw.chunk(self.outputs_per_target, dim=1))

    def mean_variance(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [B, T], variance [B, T]) in normalised units."""
        raise NotImplementedError

    def nll(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of the model output [B, k T] for normalised targets [B, T] (NaN: none)."""
        raise NotImplementedError

    def check_model(self, module) -> None:
        if getattr(module.model, "physical_output", False):
            raise ValueError(f"task.uncertainty {self.name} needs normalised outputs; this model's output "
                             "is a physical quantity (e.g. PaiNN's dipole head)")  # fmt: skip

    def predict(self, module, batch) -> torch.Tensor:
        return self.distribution(module, batch)[0]

    def distribution(self, module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [B, T], sigma [B, T]) in real units."""
        mean, variance = self.mean_variance(module.model(batch))
        return module.normalizer.denormalize(mean, batch), variance.sqrt() * module.normalizer.std

    def step(self, module, batch, stage: str) -> torch.Tensor:
        raw = module.model(batch)
        loss = self.nll(raw, module.normalizer.normalize(batch.y, batch))
        module.log(f"{stage}_loss", loss, batch_size=batch.num_graphs, on_step=False, on_epoch=True,
                   prog_bar=True, sync_dist=True)  # fmt: skip
        if stage != "train":
            pred = module.normalizer.denormalize(self.blocks(raw)[0], batch)
            for t, name in enumerate(module.info.names):
                mask = ~torch.isnan(batch.y[:, t])
                if bool(mask.any()):
                    error = (pred[mask, t] - batch.y[mask, t]).abs().mean()
                    module.log(f"{stage}_mae_{name}", error, batch_size=int(mask.sum()), sync_dist=True,
                               prog_bar=len(module.info.names) == 1)  # fmt: skip
        return loss


class MeanVarianceTask(DistributionTask):
    """Regression with a predicted variance: [B, 2T], T means then T raw variances."""

    name = "mean_variance"
    loss_name = "gaussian_nll"
    outputs_per_target = 2

    @staticmethod
    def split(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model output [B, 2T] -> (mean [B, T], variance [B, T]) in normalised units."""
        t = raw.shape[1] // 2
        return raw[:, :t], functional.softplus(raw[:, t:]) + MIN_VARIANCE

    def mean_variance(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(raw)

    def nll(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(*self.split(raw), target)


class EvidentialTask(DistributionTask):
    """Deep evidential regression: [B, 4T], the blocks gamma, nu, alpha, beta (raw)."""

    name = "evidential"
    loss_name = "evidential"
    outputs_per_target = 4

    def __init__(
        self, kind: str = "regression", loss: str | None = None, evidence_weight: float = EVIDENCE_WEIGHT
    ):
        super().__init__(kind, loss)
        try:
            weight = float(evidence_weight) if not isinstance(evidence_weight, bool) else float("nan")
        except (TypeError, ValueError):
            weight = float("nan")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"task.evidence_weight must be a finite number >= 0, got {evidence_weight!r}")
        self.evidence_weight = weight

    @classmethod
    def from_config(cls, kind: str, task: dict) -> EvidentialTask:
        return cls(kind, task.get("loss"), task.get("evidence_weight", EVIDENCE_WEIGHT))

    def parameters_of(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Model output [B, 4T] -> (gamma, nu, alpha, beta), each [B, T], in normalised units."""
        gamma, nu, alpha, beta = self.blocks(raw)
        positive = functional.softplus
        return (
            gamma,
            positive(nu) + MIN_VARIANCE,
            positive(alpha) + 1 + MIN_VARIANCE,
            positive(beta) + MIN_VARIANCE,
        )

    def mean_variance(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gamma, nu, alpha, beta = self.parameters_of(raw)
        return gamma, beta / (alpha - 1) * (1 + 1 / nu)

    def nll(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return evidential_loss(*self.parameters_of(raw), target, self.evidence_weight)


#: ``task.uncertainty`` -> the task of models that predict their own sigma
UNCERTAINTY_TASKS: dict[str, type[DistributionTask]] = {
    task.name: task for task in (MeanVarianceTask, EvidentialTask)
}
UNCERTAINTIES = (None, *UNCERTAINTY_TASKS)


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
