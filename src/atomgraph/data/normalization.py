"""Target normalisation fitted on the training split only, with per-element reference energies.

Intensive targets: y_norm = (y - mean) / std.
Extensive targets: y_norm = (y - sum_i ref[z_i] - mean_per_atom * n_atoms) / std, where the element
references come from a least-squares fit of y on element counts (training rows only) and std is that
of the whole residual, so normalised targets have unit variance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.graphs.fields import batch_vector
from atomgraph.nn.scatter import scatter_sum


class TargetNormalizer(nn.Module):
    """Maps targets to and from the unit-variance space the models are trained in.

    Buffers (saved in checkpoints): ``mean`` [T], ``std`` [T], ``atomref`` [max_z + 1, T] (eV or the
    target's unit per atom), ``extensive`` [T].
    """

    def __init__(self, extensive: Sequence[bool], max_z: int = 100):
        super().__init__()
        t = len(extensive)
        self.register_buffer("extensive", torch.tensor(list(extensive), dtype=torch.bool))
        self.register_buffer("mean", torch.zeros(t))
        self.register_buffer("std", torch.ones(t))
        self.register_buffer("atomref", torch.zeros(max_z + 1, t))

    def fit(self, y: np.ndarray, numbers: Sequence[np.ndarray], atomref: bool = True) -> TargetNormalizer:
        """Fit on training targets y [M, T] (NaN = missing) and their atomic numbers."""
        y = np.asarray(y, dtype=np.float64).reshape(len(numbers), -1)
        max_z = self.atomref.shape[0] - 1
        counts = np.zeros((len(numbers), max_z + 1))
        for row, z in enumerate(numbers):
            if len(z) and z.max() > max_z:
                raise ValueError(f"atomic number {z.max()} above the normaliser's max_z {max_z}")
            np.add.at(counts[row], z, 1.0)
        n_atoms = counts[:, 1:].sum(1)
        mean, std = np.zeros(y.shape[1]), np.ones(y.shape[1])
        refs = np.zeros((max_z + 1, y.shape[1]))
        for t in range(y.shape[1]):
            ok = ~np.isnan(y[:, t])
            if ok.sum() < 2:
                raise ValueError(f"target {t}: fewer than two training labels, cannot normalise")
            target = y[ok, t]
            if self.extensive[t]:
                if atomref:
                    present = np.flatnonzero(counts[ok].sum(0) > 0)
                    coef, *_ = np.linalg.lstsq(counts[ok][:, present], target, rcond=None)
                    refs[present, t] = coef
                residual = target - counts[ok] @ refs[:, t]
                mean[t] = residual.sum() / n_atoms[ok].sum()
                spread = residual - mean[t] * n_atoms[ok]
            else:
                mean[t] = target.mean()
                spread = target - mean[t]
            std[t] = max(float(spread.std()), 1e-8)
        dtype = self.mean.dtype
        self.mean.copy_(torch.tensor(mean, dtype=dtype))
        self.std.copy_(torch.tensor(std, dtype=dtype))
        self.atomref.copy_(torch.tensor(refs, dtype=dtype))
        return self

    def _offset(self, graph: Data) -> torch.Tensor:
        """mean (intensive) or sum_i ref[z_i] + mean * n (extensive): [B, T]."""
        batch, num_graphs = batch_vector(graph)
        real = (graph.z > 0).to(self.mean.dtype)
        refs = scatter_sum(self.atomref[graph.z], batch, num_graphs)
        n = scatter_sum(real, batch, num_graphs).unsqueeze(1)
        return torch.where(self.extensive, refs + self.mean * n, self.mean.expand(num_graphs, -1))

    def normalize(self, y: torch.Tensor, graph: Data) -> torch.Tensor:
        return (y - self._offset(graph)) / self.std

    def denormalize(self, pred: torch.Tensor, graph: Data) -> torch.Tensor:
        return pred * self.std + self._offset(graph)
