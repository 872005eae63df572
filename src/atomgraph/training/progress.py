"""One plain line per epoch, readable in logs and CI where a live progress bar does not refresh."""

from __future__ import annotations

import sys
import time

import lightning as L


class EpochSummary(L.Callback):
    """Prints ``epoch, train/val loss, validation MAE per target, learning rate, elapsed time``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch:3d}"]
        for key in sorted(metrics):
            # the squared errors are logged for the learning curves' R², not for reading
            if key.startswith(("train_loss", "val_")) and not key.endswith("_step") and "_mse_" not in key:
                parts.append(f"{key.removesuffix('_epoch')}={float(metrics[key]):.4g}")
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        parts.append(f"lr={lr:.2e}")
        parts.append(f"{time.perf_counter() - self.start:.0f}s")
        print("  ".join(parts), file=sys.stderr, flush=True)
