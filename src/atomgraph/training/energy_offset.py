"""When a potential's constant energy offset is fitted (how: :mod:`atomgraph.outputs.energy_offset`).

* before the first epoch, on up to ``START_ROWS`` training rows: an untrained model then predicts the
  reference energies instead of a random constant;
* before every validation, on ``EPOCH_ROWS`` evenly spaced training rows: force-dominated training lets
  the energy's constant drift by hundreds of meV between epochs (measured on rMD17 aspirin), so the
  validation loss, the choice of ``best.ckpt`` and every checkpoint see the current offset. 128 rows
  cost ~5 % of an aspirin epoch and fix the constant to ~std/11;
* after training, on up to ``FINAL_ROWS`` training rows, in ``best.ckpt`` and ``last.ckpt``: the
  offset the run is evaluated and deployed with, least squares over the training rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import Dataset, Subset
from torch_geometric.loader import DataLoader

from atomgraph.data.safe_load import safe_torch_load

START_ROWS = 2000
EPOCH_ROWS = 128
FINAL_ROWS = 20_000


def spaced_rows(rows: Dataset, count: int, batch_size: int) -> DataLoader:
    """A loader over at most ``count`` evenly spaced items of ``rows`` (all of them when fewer): spaced,
    not the first ones, so that a dataset sorted by system still shows every element."""
    if len(rows) > count:
        rows = Subset(rows, torch.linspace(0, len(rows) - 1, count).round().long().tolist())
    return DataLoader(rows, batch_size=batch_size, shuffle=False)


class EnergyOffsetRefit(L.Callback):
    """Refits the energy offset at the start of training and before each validation (not during the
    sanity check). rows: the training rows; batch_size: of the fitting passes (no gradients)."""

    def __init__(self, rows: Dataset, batch_size: int):
        self.start = spaced_rows(rows, START_ROWS, batch_size)
        self.epoch = spaced_rows(rows, EPOCH_ROWS, batch_size)

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.ckpt_path is None:  # a resumed run continues with its checkpoint's offset
            module.fit_energy_offset(self.start)

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            module.fit_energy_offset(self.epoch)


def refit_checkpoints(
    module: L.LightningModule,
    checkpoints: list[Path],
    rows: Dataset,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> None:
    """Fit the offset of each checkpoint's weights on up to ``FINAL_ROWS`` training rows and write it
    back into that checkpoint (atomically: a temporary file renamed over it). ``module`` is reused as
    the container the weights are loaded into, on ``device`` (the one the run trained on: Lightning
    hands the module back on the CPU)."""
    loader = spaced_rows(rows, FINAL_ROWS, batch_size)
    module.to(device)
    for path in checkpoints:
        if not path.exists():
            continue
        checkpoint = safe_torch_load(path, "checkpoint")
        module.load_state_dict(checkpoint["state_dict"])
        module.fit_energy_offset(loader)
        checkpoint["state_dict"]["normalizer.atomref"] = module.normalizer.atomref.detach().cpu().clone()
        tmp = path.with_name(path.name + ".tmp")
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)
