"""Target normalisation fitted on the training split only, with per-element reference energies.

Intensive targets: y_norm = (y - mean) / std.
Extensive targets: y_norm = (y - sum_i ref[z_i] - mean_per_atom * n_atoms) / std, where the element
references come from a least-squares fit of y on element counts (training rows only) and std is that
of the whole residual, so normalised targets have unit variance.
Node-level targets (one label per atom, e.g. Mulliken charges): y_norm = (y_i - ref[z_i] - mean) / std,
ref[z] the training mean of element z (the same fit with one atom per row): the model learns how an
atom differs from its element's average.
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
    target's unit per atom), ``extensive`` [T]. ``node_level``: the targets are one value per atom
    (labels and predictions [N, T]; see the module docstring).
    """

    def __init__(self, extensive: Sequence[bool], max_z: int = 100, node_level: bool = False):
        super().__init__()
        t = len(extensive)
        self.node_level = node_level
        self.register_buffer("extensive", torch.tensor(list(extensive), dtype=torch.bool))
        self.register_buffer("mean", torch.zeros(t))
        self.register_buffer("std", torch.ones(t))
        self.register_buffer("atomref", torch.zeros(max_z + 1, t))

    @property
    def max_z(self) -> int:
        """The largest atomic number of the per-element references: a trained module builds them as far
        as its model's element tables go (``model.max_z``)."""
        return int(self.atomref.shape[0]) - 1

    def fit(self, y: np.ndarray, numbers: Sequence[np.ndarray], atomref: bool = True) -> TargetNormalizer:
        """Fit on training targets y [M, T] (NaN = missing) and their atomic numbers (one array per
        graph); node-level targets: y [sum n, T], the atoms of the graphs in order."""
        if self.node_level:
            return self._fit_node_level(y, numbers, atomref)
        y = np.asarray(y, dtype=np.float64).reshape(len(numbers), -1)
        max_z = self.atomref.shape[0] - 1
        counts = np.zeros((len(numbers), max_z + 1))
        for row, z in enumerate(numbers):
            self._check_numbers(z)
            np.add.at(counts[row], z, 1.0)
        n_atoms = counts[:, 1:].sum(1)
        mean, std = np.zeros(y.shape[1]), np.ones(y.shape[1])
        refs = np.zeros((max_z + 1, y.shape[1]))
        for t in range(y.shape[1]):
            ok = _labelled(y, t)
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
        return self._store(mean, std, refs)

    def _fit_node_level(
        self, y: np.ndarray, numbers: Sequence[np.ndarray], atomref: bool
    ) -> TargetNormalizer:
        """Node-level targets y [sum n, T]: each element's training mean as its reference (with
        ``atomref``), the mean and std of what is left; memory and time linear in the atoms."""
        z = np.concatenate([np.asarray(n, dtype=np.int64) for n in numbers]) if len(numbers) else np.zeros(0)
        y = np.asarray(y, dtype=np.float64).reshape(len(z), -1)
        self._check_numbers(z)
        max_z = self.atomref.shape[0] - 1
        mean, std = np.zeros(y.shape[1]), np.ones(y.shape[1])
        refs = np.zeros((max_z + 1, y.shape[1]))
        for t in range(y.shape[1]):
            ok = _labelled(y, t)
            if atomref:
                count = np.bincount(z[ok], minlength=max_z + 1)
                total = np.bincount(z[ok], weights=y[ok, t], minlength=max_z + 1)
                refs[:, t] = np.divide(total, count, out=np.zeros(max_z + 1), where=count > 0)
            residual = y[ok, t] - refs[z[ok], t]
            mean[t] = residual.mean()
            std[t] = max(float(residual.std()), 1e-8)
        return self._store(mean, std, refs)

    def _check_numbers(self, z: np.ndarray) -> None:
        max_z = self.atomref.shape[0] - 1
        if len(z) and z.max() > max_z:
            raise ValueError(f"atomic number {z.max()} above the normaliser's max_z {max_z}")

    def _store(self, mean: np.ndarray, std: np.ndarray, refs: np.ndarray) -> TargetNormalizer:
        """Copy fitted values into the buffers (in their dtype)."""
        dtype = self.mean.dtype
        self.mean.copy_(torch.tensor(mean, dtype=dtype))
        self.std.copy_(torch.tensor(std, dtype=dtype))
        self.atomref.copy_(torch.tensor(refs, dtype=dtype))
        return self

    def _offset(self, graph: Data) -> torch.Tensor:
        """mean (intensive) or sum_i ref[z_i] + mean * n (extensive): [B, T]; node-level: ref[z_i] +
        mean, [N, T]."""
        if self.node_level:
            return self.atomref[graph.z] + self.mean
        batch, num_graphs = batch_vector(graph)
        real = (graph.z > 0).to(self.mean.dtype)
        refs = scatter_sum(self.atomref[graph.z], batch, num_graphs)
        n = scatter_sum(real, batch, num_graphs).unsqueeze(1)
        return torch.where(self.extensive, refs + self.mean * n, self.mean.expand(num_graphs, -1))

    def normalize(self, y: torch.Tensor, graph: Data) -> torch.Tensor:
        return (y - self._offset(graph)) / self.std

    def denormalize(self, pred: torch.Tensor, graph: Data) -> torch.Tensor:
        return pred * self.std + self._offset(graph)


def _labelled(y: np.ndarray, t: int) -> np.ndarray:
    """The rows of ``y`` with a label in column ``t``; an error when fewer than two have one."""
    ok = ~np.isnan(y[:, t])
    if ok.sum() < 2:
        raise ValueError(f"target {t}: fewer than two training labels, cannot normalise")
    return ok
