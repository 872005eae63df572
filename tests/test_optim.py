"""Learning-rate schedules and warm-up: the lr each optimiser step uses, from the training settings."""

from __future__ import annotations

import itertools
import math

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from atomgraph.training.config import load_config
from atomgraph.training.optim import OptimizationMixin

# these tests build their own Lightning trainers: the filter make_trainer applies is applied here
pytestmark = pytest.mark.filterwarnings(r"ignore:.*isinstance\(treespec, LeafSpec\)")

LR, MIN_LR, TOTAL = 0.1, 0.001, 100


def training_settings(**overrides) -> dict:
    """The ``training`` section of a config: the defaults with ``overrides``."""
    return load_config(settings={"training": {"lr": LR, "min_lr": MIN_LR, **overrides}})["training"]


class Tiny(OptimizationMixin, L.LightningModule):
    """One weight fitted to y = 2x; the validation loss is whatever ``val_losses`` says for the epoch."""

    def __init__(self, training: dict, total_steps: int = TOTAL, val_losses=()):
        super().__init__()
        self.model = nn.Linear(1, 1)  # what the mixin optimises (OptimizationMixin's contract)
        self.training_settings = training
        self.total_steps = total_steps
        self.lr_factors: dict[str, float] = {}
        self.val_losses = list(val_losses)
        self.lrs: list[float] = []  # the lr of every optimiser step, in order

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.model(x) - y) ** 2).mean()

    def on_before_optimizer_step(self, optimizer):  # after warm-up set the lr, before the update
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", float(self.val_losses[self.current_epoch]))


def step_schedule(training: dict, steps: int = TOTAL + 20) -> list[float]:
    """The lr of each optimiser step under the configured step schedule (no trainer needed)."""
    module = Tiny(training)
    (optimizer,), schedulers = module.configure_optimizers()
    (config,) = schedulers
    assert config["interval"] == "step"
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        config["scheduler"].step()
    return lrs


def fit(training: dict, epochs: int, val_losses, steps_per_epoch: int = 4) -> Tiny:
    """A real Lightning fit of :class:`Tiny`: one sample per batch, validation after every epoch."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, steps_per_epoch).unsqueeze(1)
    data = DataLoader(TensorDataset(x, 2 * x), batch_size=1)
    module = Tiny(training, total_steps=epochs * steps_per_epoch, val_losses=val_losses)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, data, DataLoader(TensorDataset(x[:1], x[:1]), batch_size=1))
    return module


def test_cosine_anneals_from_lr_to_min_lr():
    lrs = step_schedule(training_settings(scheduler="cosine"))
    assert lrs[0] == pytest.approx(LR)
    for step in (25, 50, 75):
        expected = MIN_LR + (LR - MIN_LR) * 0.5 * (1 + math.cos(math.pi * step / TOTAL))
        assert lrs[step] == pytest.approx(expected)
    assert lrs[50] == pytest.approx((LR + MIN_LR) / 2)
    assert lrs[TOTAL:] == pytest.approx([MIN_LR] * 20)  # held at the floor after the last step
    assert all(b <= a for a, b in itertools.pairwise(lrs))


def test_linear_decay_holds_then_falls_to_lr_times_decay_factor():
    lrs = step_schedule(training_settings(scheduler="linear_decay", decay_start=0.4, decay_factor=0.05))
    assert lrs[:41] == pytest.approx([LR] * 41)  # constant for the first 40 % of training
    assert lrs[70] == pytest.approx(LR * (1 - 0.95 * 0.5))  # halfway through the decay
    assert lrs[TOTAL] == pytest.approx(LR * 0.05)
    assert lrs[TOTAL:] == pytest.approx([LR * 0.05] * 20)
    falling = lrs[40 : TOTAL + 1]
    steps = [a - b for a, b in itertools.pairwise(falling)]
    assert steps == pytest.approx([LR * 0.95 / 60] * 60)  # a straight line


@pytest.mark.parametrize("scheduler", ["cosine", "linear_decay"])
def test_warmup_rises_linearly_then_hands_over_to_the_step_schedule(scheduler):
    lrs = step_schedule(training_settings(scheduler=scheduler, warmup_steps=10))
    assert lrs[:10] == pytest.approx([LR * k / 10 for k in range(1, 11)])  # ends at lr on step 9
    assert max(lrs) == pytest.approx(LR)
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(lrs[9:]))  # then only falls
    floor = MIN_LR if scheduler == "cosine" else LR * 0.05
    assert lrs[TOTAL] == pytest.approx(floor)
    without = step_schedule(training_settings(scheduler=scheduler))
    assert lrs[10:] == pytest.approx(without[10:])  # warm-up replaces only the first steps


def test_unknown_scheduler_is_rejected():
    with pytest.raises(ValueError, match="unknown scheduler 'step'"):
        Tiny(training_settings(scheduler="step")).configure_optimizers()


def test_warmup_without_a_schedule_in_a_real_fit():
    module = fit(training_settings(scheduler="none", warmup_steps=6), epochs=3, val_losses=[1.0] * 3)
    assert module.lrs == pytest.approx([LR * k / 6 for k in range(1, 7)] + [LR] * 6)


def test_plateau_halves_the_lr_after_patience_epochs_without_improvement():
    # val_loss improves for two epochs, then stalls: epochs 3, 4 are bad (patience 1), the cut comes
    # after epoch 3's validation (two bad epochs > patience), and the next after two more
    val_losses = [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    settings = training_settings(scheduler="plateau", plateau_patience=1, plateau_factor=0.5, min_lr=0.03)
    module = fit(settings, epochs=7, val_losses=val_losses, steps_per_epoch=2)
    per_epoch = module.lrs[::2]
    assert module.lrs[1::2] == per_epoch  # the lr changes between epochs only
    assert per_epoch == pytest.approx([LR, LR, LR, LR, LR / 2, LR / 2, 0.03])  # floored at min_lr


def test_plateau_cuts_after_the_warmup_are_kept():
    # 4 steps an epoch, warm-up over the first 6; the stalled val_loss cuts the lr after epoch 1
    settings = training_settings(scheduler="plateau", plateau_patience=0, warmup_steps=6)
    module = fit(settings, epochs=3, val_losses=[1.0, 1.0, 1.0])
    warm = [LR * k / 6 for k in range(1, 7)]
    assert module.lrs == pytest.approx([*warm, LR, LR, *[LR / 2] * 4])


def test_a_plateau_cut_during_the_warmup_is_not_lost():
    # 2 steps an epoch, warm-up over 8 steps (4 epochs); the val_loss stalls from the start, so with
    # patience 0 the lr is halved after epochs 1, 2, 3: the warm-up should end at lr / 8, not at lr
    settings = training_settings(scheduler="plateau", plateau_patience=0, warmup_steps=8, min_lr=1e-6)
    module = fit(settings, epochs=5, val_losses=[1.0] * 5, steps_per_epoch=2)
    assert module.lrs[-1] == pytest.approx(LR / 8)
