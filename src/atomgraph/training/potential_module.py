"""The Lightning module of potential runs: energies, forces and stress of a registered model.

Any model of the registry with a sum readout on the target "energy" (eV) becomes a potential: forces
and stress come from :func:`~atomgraph.tasks.potential.energy_forces_stress`. Validation and test
need gradients, so the trainer runs with ``inference_mode=False`` and the steps enable them.

Precision: the model runs in the dtype of its parameters (``training.precision: "64-true"`` makes
it float64); the target normaliser is always float64, and so are the energies it returns, so that
reference energies of ~10^4 eV keep meV resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from atomgraph.data.normalization import TargetNormalizer
from atomgraph.tasks.potential import PotentialTask, cast_graph, energy_forces_stress
from atomgraph.training.module import build_parts
from atomgraph.training.optim import OptimizationMixin


class PotentialModule(OptimizationMixin, L.LightningModule):
    """Energy (eV), forces (eV/Å) and stress (eV/Å^3) of a registered model, trained on all three.

    Arguments as :class:`~atomgraph.training.module.PropertyModule`; ``task`` holds ``kind:
    potential`` and ``energy_weight``, ``force_weight``, ``stress_weight``; ``targets`` must contain
    the extensive target "energy".
    """

    kind = "potential"

    def __init__(
        self,
        model: dict,
        targets: list[dict],
        task: dict,
        training: dict,
        total_steps: int = 1,
        graph: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model, self.info, self.graph_spec = build_parts(model, targets, graph)
        if "energy" not in self.info.names:
            raise ValueError(f"a potential needs the target 'energy' (eV); the targets are {self.info.names}")
        self.column = self.info.names.index("energy")
        if not self.info.extensive[self.column]:
            raise ValueError("the energy target of a potential must be extensive (sum of atomic energies)")
        self.task = PotentialTask.from_config(task)
        self.normalizer = TargetNormalizer(self.info.extensive).double()
        self.training_settings = training
        self.total_steps = total_steps

    @property
    def dtype_(self) -> torch.dtype:
        """The dtype the model computes in (that of its parameters)."""
        return next(self.model.parameters()).dtype

    def forward(self, batch: Data) -> torch.Tensor:
        """Energies etc. [B, T] in real units (eV for the energy), without forces."""
        graph = cast_graph(batch, self.dtype_)
        return self.normalizer.denormalize(self.model(graph), graph)

    def compute(
        self, batch: Data, forces: bool = True, stress: bool = False, training: bool = False
    ) -> dict[str, torch.Tensor]:
        """``{"energy": [B] eV, "forces": [N, 3] eV/Å, "stress": [B, 3, 3] eV/Å^3}`` of a batch."""
        graph = cast_graph(batch, self.dtype_)
        return energy_forces_stress(self.model, self.normalizer, graph, forces, stress, training, self.column)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        training = stage == "train"
        forces, stress = self.task.wants(batch, evaluate=not training)
        out = self.compute(batch, forces, stress, training=training)
        terms = self.task.loss(out, batch, self.column)
        n = batch.num_graphs
        self.log(
            f"{stage}_loss",
            terms["loss"].detach(),
            batch_size=n,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
        )
        if not training:
            self._log_errors(out, batch, stage)
        return terms["loss"]

    def _log_errors(self, out: dict[str, torch.Tensor], batch: Batch, stage: str) -> None:
        """MAE of energy per atom (meV/atom), force components (meV/Å) and stress (meV/Å^3)."""
        names = {
            "energy_per_atom": "energy_mae_mev_per_atom",
            "forces": "force_mae_mev_per_a",
            "stress": "stress_mae_mev_per_a3",
        }
        for key, errors in self.task.errors(out, batch, self.column).items():
            if errors.numel():
                self.log(
                    f"{stage}_{names[key]}",
                    1000.0 * errors.mean(),
                    batch_size=errors.numel(),
                    sync_dist=True,
                    prog_bar=key == "forces",
                )

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        with torch.enable_grad():
            self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        with torch.enable_grad():
            self._step(batch, "test")


def predict_potential(
    module: PotentialModule, graphs: Sequence[Data], batch_size: int = 32, stress: bool | None = None
) -> dict[str, np.ndarray]:
    """Predicted and reference energies, forces (and stress) of every graph, as float64 arrays.

    Returns ``energy``/``energy_true`` [M] eV, ``natoms`` [M], ``forces``/``forces_true`` [sum N, 3]
    eV/Å (when the graphs have forces) and ``stress``/``stress_true`` [M, 3, 3] eV/Å^3 (periodic
    graphs with stress labels, unless ``stress=False``).
    """
    module.eval()
    device = next(module.parameters()).device
    rows: dict[str, list[np.ndarray]] = {}
    for batch in DataLoader(graphs, batch_size=batch_size, shuffle=False):
        batch = batch.to(device)
        has_forces, has_stress = module.task.wants(batch, evaluate=True)
        want_stress = has_stress if stress is None else stress and has_stress
        out = module.compute(batch, forces=True, stress=want_stress, training=False)
        found = {
            "energy": out["energy"],
            "energy_true": batch.y[:, module.column],
            "natoms": batch.natoms.view(-1),
            "forces": out["forces"],
        }
        if has_forces:
            found["forces_true"] = batch.forces
        if want_stress:
            found["stress"], found["stress_true"] = out["stress"], batch.stress
        for key, value in found.items():
            rows.setdefault(key, []).append(value.detach().cpu().double().numpy())
    return {key: np.concatenate(values) for key, values in rows.items()}
