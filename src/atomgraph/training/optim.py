"""Optimisers and learning-rate schedules (plateau, cosine, Gilmer's linear decay) with warm-up."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from atomgraph.training.finetune import parameter_groups

SCHEDULERS = ("plateau", "cosine", "linear_decay", "none")


def make_optimizer(groups: list[dict], settings: dict) -> torch.optim.Optimizer:
    """Adam or AdamW over parameter groups (dicts with ``params``; :func:`parameter_groups`)."""
    name = settings["optimizer"].lower()
    tensors = [p for group in groups for p in group["params"]]
    # the fused kernels update all parameters at once (CPU and CUDA floating point tensors)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)
    if name == "adam":
        return torch.optim.Adam(groups, lr=settings["lr"], weight_decay=settings["weight_decay"], fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(
            groups, lr=settings["lr"], weight_decay=settings["weight_decay"], fused=fused
        )
    raise ValueError(f"unknown optimizer {settings['optimizer']!r}; choose adam or adamw")


def step_lr_factor(step: int, total_steps: int, settings: dict) -> float:
    """Multiplier of the base lr at optimiser step ``step`` for the step-based schedules.

    Warm-up rises linearly over ``warmup_steps``; then ``cosine`` anneals to ``min_lr`` and
    ``linear_decay`` (Gilmer et al.) holds until ``decay_start`` of training and falls linearly to
    ``lr * decay_factor``.
    """
    warmup = settings["warmup_steps"]
    if warmup and step < warmup:
        return (step + 1) / warmup
    kind = settings["scheduler"]
    progress = min(1.0, step / max(total_steps, 1))
    if kind == "cosine":
        floor = settings["min_lr"] / settings["lr"]
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if kind == "linear_decay":
        start = settings["decay_start"]
        if progress <= start:
            return 1.0
        return 1.0 - (1.0 - settings["decay_factor"]) * (progress - start) / max(1.0 - start, 1e-9)
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, settings: dict, total_steps: int) -> list[dict]:
    """Lightning scheduler configs. Step schedules include the warm-up; with ``plateau`` or ``none``
    the warm-up is applied by the module (:func:`warmup_factor`) so it cannot undo plateau cuts."""
    kind = settings["scheduler"]
    if kind not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {kind!r}; choose from {SCHEDULERS}")
    schedulers = []
    if kind in ("cosine", "linear_decay"):
        lam = LambdaLR(optimizer, lambda step: step_lr_factor(step, total_steps, settings))
        schedulers.append({"scheduler": lam, "interval": "step"})
    if kind == "plateau":
        plateau = ReduceLROnPlateau(
            optimizer,
            factor=settings["plateau_factor"],
            patience=settings["plateau_patience"],
            min_lr=settings["min_lr"],
        )
        schedulers.append({"scheduler": plateau, "monitor": "val_loss", "interval": "epoch"})
    return schedulers


def warmup_factor(step: int, settings: dict) -> float | None:
    """The warm-up multiplier at ``step`` for plateau/none schedules, or None once warm-up is over."""
    warmup = settings["warmup_steps"]
    if settings["scheduler"] in ("cosine", "linear_decay") or not warmup or step >= warmup:
        return None
    return (step + 1) / warmup


class OptimizationMixin:
    """Optimiser, schedules and warm-up for the Lightning modules: the trainable parameters of
    ``self.model``, grouped by ``self.lr_factors`` (fine-tuning), with ``self.training_settings`` (the
    ``training`` config section) and ``self.total_steps``."""

    def configure_optimizers(self):
        """The optimiser over the trainable parameters, grouped by the fine-tuning ``lr_factors``."""
        groups = parameter_groups(self.model, self.training_settings["lr"], self.lr_factors)
        optimizer = make_optimizer(groups, self.training_settings)
        schedulers = make_scheduler(optimizer, self.training_settings, self.total_steps)
        return [optimizer], schedulers

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        factor = warmup_factor(self.trainer.global_step, self.training_settings)
        if factor is not None:
            for group in optimizer.param_groups:
                # the ceiling the warm-up rises to: the configured lr, less every plateau cut made since
                # (a cut shows as an lr below the one set at the previous step)
                base = self.training_settings["lr"] * group.get("lr_factor", 1.0)
                ceiling = group.setdefault("warmup_ceiling", base)
                previous = group.get("warmup_lr")
                if previous is not None and group["lr"] < previous:
                    ceiling *= group["lr"] / previous
                group["warmup_ceiling"] = ceiling
                group["lr"] = group["warmup_lr"] = ceiling * factor
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
