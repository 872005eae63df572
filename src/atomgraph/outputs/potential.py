"""Interatomic potentials: energy, forces and stress of any model, by autograd, and their loss.

Every model maps a graph batch to normalised graph outputs [B, T]; with a sum readout on the
extensive target "energy" this is a sum of atomic contributions. Here, once for every model:

* energy E = model(graph) * std + sum_i atomref[z_i] + mean * N   (eV; TargetNormalizer, fitted on
  the training split);
* forces F = -dE/dpos                                           (eV/Å, [N, 3]);
  a model with ``direct_forces`` (PaiNN's direct force head) gives F = head * std in the same pass
  instead: not conservative, and no stress (NaN where asked for in evaluation; refused in training);
* stress sigma = (1/V) dE/d(epsilon) at epsilon = 0              (eV/Å^3, [B, 3, 3]), the strain
  epsilon applied to positions and cell by :func:`~atomgraph.graphs.apply_strain`. This is ASE's sign
  convention: positive (tensile) when the cell wants to shrink. Non-periodic graphs get NaN stress.

Loss (physical units): w_E * mean_graphs((E_pred - E) / N)^2 + w_F * mean_components(F_pred - F)^2
+ w_S * mean_components(sigma_pred - sigma)^2, with NaN labels masked out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import apply_strain, cell_volume

#: Graph fields that are labels, never cast to the model's dtype (energies need float64: float32
#: resolves only ~2 meV at the 17,000 eV of an aspirin molecule).
LABEL_FIELDS = ("y",)


def cast_graph(graph: Data, dtype: torch.dtype) -> Data:
    """A shallow copy of ``graph`` with its floating fields (pos, cell, forces, stress, ...) in ``dtype``.

    ``y`` keeps its dtype. Returns ``graph`` itself when nothing needs casting.
    """
    changes = {
        key: value.to(dtype)
        for key, value in graph.items()
        if key not in LABEL_FIELDS
        and isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.dtype != dtype
    }
    if not changes:
        return graph
    out = copy.copy(graph)
    for key, value in changes.items():
        out[key] = value
    return out


def energy_forces_stress(
    model: nn.Module,
    normalizer: nn.Module,
    batch: Data,
    forces: bool = True,
    stress: bool = False,
    training: bool = True,
    column: int = 0,
) -> dict[str, torch.Tensor]:
    """Energies, and by autograd forces and stress, of a graph or batch.

    model: maps the graph to normalised outputs [B, T]; normalizer: its
    :class:`~atomgraph.data.TargetNormalizer`; column: the energy's column of T. ``training=True``
    keeps the graph of the derivatives (``create_graph``) so a force loss can be backpropagated.
    The batch itself is not modified: a shallow copy gets ``pos`` requiring grad (no clone) and,
    with ``stress``, positions and cells strained by a zero strain [B, 3, 3] requiring grad.

    Returns ``{"energy": [B] eV, "forces": [N, 3] eV/Å, "stress": [B, 3, 3] eV/Å^3}`` (the last two
    when asked for; stress is NaN for graphs that are not periodic in 3D).
    """
    if getattr(model, "direct_forces", False) and forces:
        if stress and training:
            raise ValueError(
                "a model with direct forces has no stress to train (it is not the energy's derivative): "
                "set task.stress_weight: 0"
            )
        outputs, direct = model.energy_and_forces(batch)
        energy = normalizer.denormalize(outputs, batch)[:, column]
        out = {"energy": energy, "forces": direct * normalizer.std[column]}
        if stress:  # evaluation of labelled cells: no prediction (NaN), as for a molecule
            out["stress"] = energy.new_full((energy.shape[0], 3, 3), float("nan"))
        return out
    if (forces or stress) and torch.is_inference_mode_enabled():
        raise RuntimeError(
            "forces and stress need autograd: call outside torch.inference_mode() "
            "(Lightning: Trainer(inference_mode=False))"
        )
    with torch.enable_grad():
        graph = copy.copy(batch)
        pos = batch.pos.detach().requires_grad_(forces)
        graph.pos = pos
        inputs = [pos] if forces else []
        strain = None
        if stress:
            _, num_graphs = batch_vector(batch)
            strain = torch.zeros(num_graphs, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=True)
            graph.pos, graph.cell = apply_strain(graph, strain)
            inputs.append(strain)
        energy = normalizer.denormalize(model(graph), graph)[:, column]
        out = {"energy": energy}
        if not inputs:
            return out
        grads = torch.autograd.grad(
            energy.sum(), inputs, create_graph=training, materialize_grads=True
        )  # materialize: an atom without neighbours gets zero force, not None
    if forces:
        out["forces"] = -grads[0]
    if stress:
        volume = cell_volume(batch.cell).to(grads[-1].dtype)
        periodic = batch.pbc.view(-1, 3).all(dim=1) & (volume > 0)
        safe = torch.where(periodic, volume, torch.ones_like(volume))
        virial = grads[-1] / safe.view(-1, 1, 1)
        out["stress"] = torch.where(periodic.view(-1, 1, 1), virial, torch.full_like(virial, float("nan")))
    return out


def _masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    mask = ~torch.isnan(target) & ~torch.isnan(pred.detach())
    if not bool(mask.any()):
        return None
    return ((pred[mask] - target[mask].to(pred.dtype)) ** 2).mean()


def _masked_abs_errors(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Absolute errors of the labelled entries, flattened."""
    pred, target = pred.detach(), target.to(pred.dtype)
    mask = ~torch.isnan(target) & ~torch.isnan(pred)
    return (pred[mask] - target[mask]).abs()


@dataclass
class PotentialTask:
    """Weights of the energy (per atom), force and stress terms of the loss, all in physical units
    (eV/atom, eV/Å, eV/Å^3). Defaults w_E = 1, w_F = 100, w_S = 0 (stress not trained)."""

    energy_weight: float = 1.0
    force_weight: float = 100.0
    stress_weight: float = 0.0

    #: the energy target is normalised (atomref, mean, std) like every regression target
    normalizes = True

    @classmethod
    def from_config(cls, task: dict) -> PotentialTask:
        return cls(
            float(task.get("energy_weight", cls.energy_weight)),
            float(task.get("force_weight", cls.force_weight)),
            float(task.get("stress_weight", cls.stress_weight)),
        )

    def wants(self, batch: Data, evaluate: bool = False) -> tuple[bool, bool]:
        """(forces, stress) to compute: those with labels in the batch and, in training, a weight."""
        has_forces = getattr(batch, "forces", None) is not None
        has_stress = getattr(batch, "stress", None) is not None
        if evaluate:
            return has_forces, has_stress and bool(batch.pbc.all())
        return has_forces and self.force_weight > 0, has_stress and self.stress_weight > 0

    def loss(self, out: dict[str, torch.Tensor], batch: Data, column: int = 0) -> dict[str, torch.Tensor]:
        """``{"loss", "energy", "forces", "stress"}``: the weighted total and its unweighted terms."""
        natoms = batch.natoms.view(-1).to(out["energy"].dtype)
        terms: dict[str, torch.Tensor] = {}
        energy = _masked_mse(out["energy"] / natoms, batch.y[:, column] / natoms)
        if energy is not None:
            terms["energy"] = energy
        for name in ("forces", "stress"):
            if name in out:
                term = _masked_mse(out[name], batch[name])
                if term is not None:
                    terms[name] = term
        weights = {"energy": self.energy_weight, "forces": self.force_weight, "stress": self.stress_weight}
        total = out["energy"].sum() * 0.0  # keeps a graph when a batch has no labels
        for name, term in terms.items():
            total = total + weights[name] * term
        terms["loss"] = total
        return terms

    # ------------------------------------------------------------------ the module's output interface

    #: validation and test need autograd forces: the trainer runs with inference_mode=False
    needs_grad = True

    def predict(self, module, batch: Data) -> torch.Tensor:
        """Energies etc. [B, T] in real units (eV for the energy), without forces."""
        graph = cast_graph(batch, module.compute_dtype)
        return module.normalizer.denormalize(module.model(graph), graph)

    def step(self, module, batch: Data, stage: str) -> torch.Tensor:
        """The weighted energy/force/stress loss; validation and test also log the MAE of energy per
        atom (meV/atom), force components (meV/Å) and stress (meV/Å^3)."""
        training = stage == "train"
        forces, stress = self.wants(batch, evaluate=not training)
        with torch.enable_grad():
            out = module.compute(batch, forces, stress, training=training)
            terms = self.loss(out, batch, module.column)
        n = batch.num_graphs
        module.log(f"{stage}_loss", terms["loss"].detach(), batch_size=n, on_step=False, on_epoch=True,
                   prog_bar=True, sync_dist=True)  # fmt: skip
        if not training:
            names = {"energy_per_atom": "energy_mae_mev_per_atom", "forces": "force_mae_mev_per_a",
                     "stress": "stress_mae_mev_per_a3"}  # fmt: skip
            for key, errors in self.errors(out, batch, module.column).items():
                if errors.numel():
                    module.log(f"{stage}_{names[key]}", 1000.0 * errors.mean(), batch_size=errors.numel(),
                               sync_dist=True, prog_bar=key == "forces")  # fmt: skip
        return terms["loss"]

    def errors(self, out: dict[str, torch.Tensor], batch: Data, column: int = 0) -> dict[str, torch.Tensor]:
        """Absolute errors: ``energy_per_atom`` [B'] eV/atom, ``forces`` [3N'] eV/Å, ``stress`` eV/Å^3."""
        natoms = batch.natoms.view(-1).to(out["energy"].dtype)
        errors = {"energy_per_atom": _masked_abs_errors(out["energy"] / natoms, batch.y[:, column] / natoms)}
        for name in ("forces", "stress"):
            if name in out:
                errors[name] = _masked_abs_errors(out[name], batch[name])
        return errors
