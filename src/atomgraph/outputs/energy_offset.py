"""The constant part of a potential's energy error, fitted exactly from the training labels.

Forces and stress do not see a constant shift of the energy, and with the usual weights (forces x100)
a trained potential can carry one: on rMD17 aspirin a PaiNN run had 104 meV energy MAE of which ~90
meV was one shift. The shift is therefore never left to gradient descent. The energy residuals
r_g = E_g - Ê_g (eV) of the training graphs are regressed on their element counts c_g[z]:

    delta = argmin_d sum_g (r_g - sum_z c_g[z] d[z])^2      (minimum-norm solution, eV per atom of z)

and ``delta`` is added to the normaliser's per-element references, which changes energies by
sum_z c[z] delta[z] and leaves forces and stress untouched. For one fixed composition (rMD17) this is
the mean residual; for mixed compositions it is the per-element offset. When it is done during
training is :mod:`atomgraph.training.energy_offset`'s; sums are kept as normal equations
(counts^T counts, counts^T residual) so that they accumulate over batches.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data

from atomgraph.graphs.fields import batch_vector
from atomgraph.nn.scatter import scatter_sum


class EnergyOffsetFit:
    """Normal equations of energy residuals on element counts, accumulated over batches.

    max_z: the largest atomic number (the normaliser's ``atomref`` has ``max_z + 1`` rows).
    """

    def __init__(self, max_z: int):
        self.max_z = max_z
        self.reset()

    def reset(self) -> None:
        self.gram = torch.zeros(self.max_z + 1, self.max_z + 1, dtype=torch.float64)
        self.rhs = torch.zeros(self.max_z + 1, dtype=torch.float64)
        self.graphs = 0

    def add(self, graph: Data, residual: torch.Tensor) -> None:
        """Accumulate one batch: ``residual`` [B] eV = label - prediction (NaN = unlabelled, skipped)."""
        batch, num_graphs = batch_vector(graph)
        real = graph.z > 0
        counts = scatter_sum(
            torch.nn.functional.one_hot(graph.z[real], self.max_z + 1).to(torch.float64),
            batch[real],
            num_graphs,
        )  # [B, max_z + 1]
        residual = residual.detach().to(torch.float64).view(-1)
        ok = ~torch.isnan(residual)
        counts, residual = counts[ok].cpu(), residual[ok].cpu()
        self.gram += counts.T @ counts
        self.rhs += counts.T @ residual
        self.graphs += int(ok.sum())

    def solve(self) -> torch.Tensor:
        """Per-element offsets [max_z + 1] eV (zero for elements not seen since the last reset)."""
        delta = torch.zeros(self.max_z + 1, dtype=torch.float64)
        present = torch.nonzero(self.gram.diagonal() > 0).view(-1)
        if self.graphs == 0 or present.numel() == 0:
            return delta
        gram = self.gram[present][:, present]
        delta[present] = torch.linalg.pinv(gram, hermitian=True, rtol=1e-10) @ self.rhs[present]
        return delta

    def apply(self, normalizer: torch.nn.Module, column: int) -> torch.Tensor:
        """Add the solved offsets to ``normalizer.atomref[:, column]``, reset; returns the offsets."""
        delta = self.solve()
        normalizer.atomref[:, column] += delta.to(normalizer.atomref)
        self.reset()
        return delta
