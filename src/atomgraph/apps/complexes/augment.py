"""Training-time augmentation of complex graphs: a random rigid rotation and small coordinate noise."""

from __future__ import annotations

import copy

import torch
from torch_geometric.data import Data

from atomgraph.graphs.geometry import random_rotation


class RandomRotationNoise:
    """Rotate a complex about its ligand centroid and jitter the atoms: a ``transform`` for datasets.

    Args:
        rotate: apply a uniform random rotation to ``pos`` and ``res_pos`` together.
        noise: standard deviation (Å) of Gaussian noise added to every coordinate (0 = none).
        seed: seed of the transform's own generator (None: torch's global generator).

    The stored edge features (types, H-bond angle cosines) are kept: with small noise (0.1 Å) they stay
    close to the geometry. Models in :mod:`atomgraph.models` that compute only distances are invariant to
    the rotation; it matters for models that are not. Apply it to training samples only::

        train_set.transform = RandomRotationNoise(noise=0.1)
    """

    def __init__(self, rotate: bool = True, noise: float = 0.1, seed: int | None = None):
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.rotate = rotate
        self.noise = float(noise)
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, data: Data) -> Data:
        data = copy.copy(data)
        pos = data.pos
        role = getattr(data, "node_role", None)
        ligand = pos[role == 0] if role is not None and bool((role == 0).any()) else pos
        centre = ligand.mean(dim=0, keepdim=True)
        rotation = (
            random_rotation(self.generator, pos.dtype) if self.rotate else torch.eye(3, dtype=pos.dtype)
        )
        data.pos = self._move(pos, centre, rotation)
        if getattr(data, "res_pos", None) is not None:
            data.res_pos = self._move(data.res_pos, centre, rotation)
        return data

    def _move(self, positions: torch.Tensor, centre: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        moved = (positions - centre) @ rotation.T + centre
        if self.noise > 0:
            moved = moved + self.noise * torch.randn(moved.shape, generator=self.generator, dtype=moved.dtype)
        return moved

    def __repr__(self) -> str:
        return f"RandomRotationNoise(rotate={self.rotate}, noise={self.noise})"
