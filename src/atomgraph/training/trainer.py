"""The Lightning trainer of a run: checkpoints (best and last), early stopping, loggers, devices."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from atomgraph.training.config import check_precision
from atomgraph.training.progress import EpochSummary


class _NoAdvertising(logging.Filter):
    """Drop Lightning's "Tip: try installing litlogger" line: nothing a user of a run can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdvertising())

# Lightning warnings that say nothing a user of a run can act on: its own use of a torch internal
# (Lightning 2.6 on torch 2.13); per-step logging on small sets (runs log per epoch); and, on resume,
# the existing logs and checkpoints (keep_metrics_history keeps the earlier metrics; last.ckpt is
# meant to be replaced)
_LIGHTNING_NOISE = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*smaller than the logging interval.*",
    r"Experiment logs directory .* exists and is not empty.*",
    r"Checkpoint directory .* exists and is not empty.*",
)


def quiet_lightning() -> None:
    """Ignore Lightning's uninformative warnings (called for every trainer: warning filters may have
    been reset since import, as pytest does for each test)."""
    for message in _LIGHTNING_NOISE:
        warnings.filterwarnings("ignore", message=message)


quiet_lightning()


def make_trainer(
    training: dict, run_dir: Path, inference_mode: bool = True, extra_callbacks: tuple = ()
) -> L.Trainer:
    """A trainer writing ``checkpoints/best.ckpt`` (lowest val_loss), ``checkpoints/last.ckpt`` (for
    resume, every ``checkpoint_every_n_steps`` optimiser steps or each epoch) and ``logs/metrics.csv``.
    ``inference_mode=False`` for potentials: their validation needs autograd forces. ``extra_callbacks``
    run before the checkpoints (so a checkpoint sees what they change before validation)."""
    quiet_lightning()
    best = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,  # a re-run overwrites best.ckpt instead of writing best-v1.ckpt
    )
    last = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="last",
        save_top_k=1,
        every_n_train_steps=training["checkpoint_every_n_steps"],
        enable_version_counter=False,
    )
    callbacks = [*extra_callbacks, best, last, LearningRateMonitor(logging_interval="epoch"), EpochSummary()]
    if training["early_stopping_patience"]:
        # checked after validation: a run stopped by max_steps mid-epoch has no val_loss at epoch end
        callbacks.append(
            EarlyStopping(
                "val_loss",
                patience=training["early_stopping_patience"],
                mode="min",
                check_on_train_epoch_end=False,
            )
        )
    loggers = [CSVLogger(run_dir, name="logs", version="")]
    if training["tensorboard"]:
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    check_precision(training["precision"])  # also for configs that did not come through load_config
    return L.Trainer(
        max_epochs=training["epochs"],
        max_steps=training["max_steps"],
        max_time=training["max_time"],
        accelerator=training["accelerator"],
        devices=training["devices"],
        num_nodes=training["num_nodes"],
        strategy=training["strategy"],
        precision=training["precision"],
        gradient_clip_val=training["gradient_clip"],
        deterministic=training["deterministic"],
        callbacks=callbacks,
        logger=loggers,
        enable_progress_bar=training["progress"],
        enable_model_summary=False,
        log_every_n_steps=10,
        default_root_dir=run_dir,
        inference_mode=inference_mode,
    )


def run_device(training: dict) -> torch.device:
    """The device a run's work after ``fit`` (the energy-offset refit, the report) uses: the first one it
    trained on -- a CUDA device when ``training.accelerator`` asks for one ("cuda", "gpu", or "auto" with
    CUDA present; ``training.devices`` as a list names which), else the CPU. Lightning hands the module
    back on the CPU after ``fit``."""
    accelerator = str(training["accelerator"]).lower()
    if accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available()):
        devices = training["devices"]
        return torch.device("cuda", int(devices[0]) if isinstance(devices, list | tuple) else 0)
    return torch.device("cpu")
