"""atomgraph's potentials with the model's forward through torch.compile (``training.compile``'s wrapper):
the ``infer`` and ``md`` modes of :mod:`frameworks.atomgraph` (a training step differentiates the forces
again, which torch.compile does not support)."""

from __future__ import annotations

from common import Bench

from frameworks.atomgraph import setup as eager_setup
from frameworks.atomgraph import versions

__all__ = ["setup", "versions"]


def setup(family: str, hparams: dict, frames, mode: str, device: str = "cpu", steps: int = 10) -> Bench:
    if mode == "train":
        raise ValueError("torch.compile does not support a training step's double backward")
    return eager_setup(family, hparams, frames, mode, device=device, steps=steps, compile=True)
