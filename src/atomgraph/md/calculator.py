"""An ASE calculator for trained atomgraph potentials: energy, forces and stress by autograd.

Neighbour lists are built with ``cutoff + skin`` and reused while no atom has moved more than
``skin / 2`` since the build (and numbers, cell and periodicity are unchanged); each step keeps the
pairs closer than ``cutoff`` (filtered in torch), so results equal those of a fresh graph. A cell
change (cell relaxation, NPT) always rebuilds.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress
from torch_geometric.data import Batch

from atomgraph.data.normalization import TargetNormalizer
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.graphs.radius_graph import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.outputs.potential import cast_graph, energy_forces_stress
from atomgraph.structures.validate import beyond_tables, unseen_elements


def load_potential(path: str | Path, which: str = "auto") -> tuple[torch.nn.Module, GraphSpec]:
    """The trained potential module of a run directory or exported file, and its graph spec."""
    from atomgraph.runs import TrainedRun

    run = TrainedRun.load(path, which)
    if not run.is_potential:
        raise ValueError(f"{path} is not a potential run (task.kind: potential)")
    if run.is_ensemble:
        raise ValueError(f"{path} is an ensemble: use CommitteeCalculator({str(path)!r}) (or calculator_for)")
    return run.module, run.graph


class BareModel(torch.nn.Module):
    """A model without a training run, as a potential: its output [B, 1] is the energy in eV (no
    normaliser, no per-element references), forces and stress by the same autograd path as trained
    potentials."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.normalizer = TargetNormalizer([True]).double()  # the identity: mean 0, std 1, no references

    def compute(
        self, batch: Batch, forces: bool = True, stress: bool = False, training: bool = False
    ) -> dict[str, torch.Tensor]:
        graph = cast_graph(batch, next(self.model.parameters()).dtype)
        return energy_forces_stress(self.model, self.normalizer, graph, forces, stress, training)


class Calculator(AseCalculator):
    """ASE calculator of a trained potential.

    Args:
        model: a run directory or exported file (its best checkpoint), a
            :class:`~atomgraph.runs.TrainedRun` or a potential PredictionModule (or the AtomgraphModule
            that trains it). The graph is the one the model was trained on (its
            :class:`~atomgraph.graphs.spec.GraphSpec`: cutoff and neighbour cap). Or a bare model (any
            registered model on radius graphs, e.g. from ``build_model``, or one of your own mapping a
            graph batch to [B, 1]): its output is taken as the energy in eV.
        skin: neighbour-list skin in Å (0 rebuilds every call).
        device: torch device (default: where the model's parameters are; a run loads on the CPU);
            dtype: compute dtype (default: the model's, float64 for "64-true" runs).
        allow_unseen_elements: by default a structure with an element the potential never saw in
            training is refused (MD and relaxation would run on garbage forces).
        graph: bare models only: the graph they read (default: a radius graph at ``model.cutoff``).
        compile: the model's forward through ``torch.compile`` (dynamic shapes, so neighbour-list
            rebuilds reuse the compiled code; eager again, with one line saying why, if compiling fails).
            It pays where kernel launches dominate, as on a GPU (PaiNN's MD step on an H200: 12.8 -> 8.9
            ms), not on a CPU core; the first call compiles (tens of seconds). It replaces the forward of
            the model it is given (``eager_forward`` undoes that) and clears torch.compile's caches, so
            other compiled models in the process compile again.

    Atoms closer than the closest pair of the training data (recorded as ``shortest_distance``) get a
    warning, the first time: the potential extrapolates there, and a collapsing structure is the usual
    sign of it. ``close_contacts`` counts the calls that saw such a pair.

    Results: ``energy``/``free_energy`` (eV), ``forces`` [N, 3] eV/Å and, when asked for (cells
    periodic in 3D), ``stress`` (6 Voigt components xx yy zz yz xz xy, eV/Å^3, ASE sign).
    ``builds`` counts the neighbour-list builds.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: str | Path | torch.nn.Module,
        skin: float = 0.5,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        allow_unseen_elements: bool = False,
        graph: GraphSpec | None = None,
        compile: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(model, str | Path):
            module, spec = load_potential(model)
        elif hasattr(model, "module") and hasattr(model, "graph"):  # a TrainedRun
            if not model.is_potential:
                raise ValueError(f"{model.source} is not a potential run (task.kind: potential)")
            module, spec = model.module, model.graph
        elif hasattr(model, "compute"):  # a PredictionModule (or AtomgraphModule)
            module, spec = model, model.graph_spec
        else:  # a bare model: its output is the energy in eV
            module = BareModel(model)
            spec = graph if graph is not None else GraphSpec("radius", float(model.cutoff))
        if graph is not None and graph != spec:
            raise ValueError(f"graph= is for bare models; this model was trained on {spec.describe()}")
        if spec.kind != "radius":
            raise ValueError(
                f"the calculator needs a model on radius graphs, this one reads {spec.describe()}"
            )
        cutoff, max_neighbors = spec.cutoff, spec.max_neighbors
        if skin < 0:
            raise ValueError(f"skin must be >= 0, got {skin}")
        if device is None:
            device = next(module.parameters()).device
        self.module = module.to(device).eval()
        if dtype is not None:
            self.module.model.to(dtype)
        self.dtype = next(self.module.model.parameters()).dtype
        self.device = torch.device(device)
        if compile:
            from atomgraph.training.compile import compile_forward

            compile_forward(self.module.model, notify=lambda line: warnings.warn(line, stacklevel=2))
        self.cutoff = float(cutoff)
        self.max_neighbors = max_neighbors
        self.skin = 0.0 if max_neighbors is not None else float(skin)  # k-nearest graphs: rebuild
        self.builds = 0
        elements = getattr(module, "hparams", {}).get("elements")
        self.elements = None if allow_unseen_elements else elements
        self.shortest_distance = getattr(module, "hparams", {}).get("shortest_distance")
        self.close_contacts = 0
        self._stress_wanted = False
        self._template: Batch | None = None
        self._pairs: torch.Tensor | None = None
        self._pair_lengths: torch.Tensor | None = None
        self._reference: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------------------ neighbour list
    def _needs_build(self, atoms: Atoms) -> bool:
        if self._template is None or self._reference is None or self.skin == 0.0:
            return True
        numbers, positions, cell, pbc = self._reference
        if len(atoms) != len(numbers) or not np.array_equal(atoms.numbers, numbers):
            return True
        if not np.array_equal(atoms.cell.array, cell) or not np.array_equal(atoms.pbc, pbc):
            return True
        moved = np.sqrt(((atoms.positions - positions) ** 2).sum(1).max(initial=0.0))
        return moved > 0.5 * self.skin

    def _build(self, atoms: Atoms) -> None:
        graph = radius_graph(atoms, self.cutoff + self.skin, self.max_neighbors, dtype=self.dtype)
        self._template = Batch.from_data_list([graph]).to(self.device)
        forward = getattr(graph, "edge_forward", None)  # pairs, then their reverses in that order
        self._pairs = torch.arange(int(forward.sum()), device=self.device) if forward is not None else None
        self._reference = (
            atoms.numbers.copy(),
            atoms.positions.copy(),
            atoms.cell.array.copy(),
            atoms.pbc.copy(),
        )
        self.builds += 1

    def graph(self, atoms: Atoms) -> Batch:
        """The graph of ``atoms`` within ``cutoff`` (a batch of one), from the cached neighbour list."""
        if self._needs_build(atoms):
            self._build(atoms)
        template = self._template
        graph = copy.copy(template)
        graph.pos = torch.as_tensor(atoms.positions, dtype=self.dtype, device=self.device)
        if self.skin == 0.0 or self._pairs is None:
            self._pair_lengths = None
            return graph
        with torch.no_grad():
            lengths = edge_lengths(edge_vectors(graph, edges=self._pairs))
        inside = lengths < self.cutoff
        kept = self._pairs[inside]
        self._pair_lengths = lengths[inside]  # for the close-contact check, not computed twice
        edges = torch.cat([kept, kept + len(self._pairs)])
        graph.edge_index = template.edge_index.index_select(1, edges)
        graph.edge_shift = template.edge_shift.index_select(0, edges)
        graph.edge_forward = torch.arange(len(edges), device=self.device) < len(kept)
        return graph

    # -------------------------------------------------------------------------------- calculation
    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        beyond = beyond_tables(atoms.numbers, self.module.normalizer.max_z, owner="potential")
        if beyond:
            raise ValueError(f"{atoms.get_chemical_formula()}: {beyond}")
        unseen = unseen_elements(atoms.numbers, self.elements)
        if unseen:
            raise ValueError(
                f"{atoms.get_chemical_formula()}: elements never seen in training ({', '.join(unseen)}); the "
                "forces would be garbage. Pass allow_unseen_elements=True to run anyway"
            )
        if "stress" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        # once asked for (cell relaxation, NPT), stress comes with every call: it is nearly free then,
        # while a separate call per property would double the cost; plain MD never pays for it
        self._stress_wanted = self._stress_wanted or "stress" in properties
        stress = self._stress_wanted and bool(atoms.pbc.all())
        graph = self.graph(atoms)
        self._check_distances(atoms, graph)
        out = self.module.compute(graph, forces=True, stress=stress, training=False)
        energy = float(out["energy"].detach().sum())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].detach().cpu().double().numpy(),
        }
        if stress:
            virial = out["stress"].detach().cpu().double().numpy()[0]
            self.results["stress"] = full_3x3_to_voigt_6_stress(virial)

    def _check_distances(self, atoms: Atoms, graph: Batch) -> None:
        """Warn (once) when two atoms are closer than any pair the potential was trained on."""
        if self.shortest_distance is None or graph.edge_index.numel() == 0:
            return
        lengths = self._pair_lengths  # the forward edges' lengths, from graph(), when it filtered pairs
        if lengths is None:
            with torch.no_grad():
                lengths = edge_lengths(edge_vectors(graph))
        closest = int(torch.argmin(lengths))
        if float(lengths[closest]) >= self.shortest_distance:
            return
        self.close_contacts += 1
        if self.close_contacts == 1:
            i, j = sorted(int(k) for k in graph.edge_index[:, closest])
            distance = float(lengths[closest])
            warnings.warn(
                f"{atoms.get_chemical_formula()}: atoms {i} and {j} are {distance:.3f} Å apart, "
                f"closer than any pair in the training data ({self.shortest_distance:.3f} Å); the potential "
                "extrapolates here (further such steps are counted in Calculator.close_contacts)",
                stacklevel=2,
            )
