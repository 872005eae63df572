"""Export a trained potential through metatomic: one TorchScript file that LAMMPS (``pair_style
metatomic``), i-PI, torch-sim, ASE and every other engine with a metatomic interface load.

The exported module computes, for each atom i of the systems the engine passes,

    e_i = o_i * std + atomref[z_i] + mean          (eV; o_i: the model's normalised atomic output)

so that E = sum_i e_i is :meth:`~atomgraph.data.TargetNormalizer.denormalize` of the model's sum readout,
exactly the energy of :func:`~atomgraph.outputs.potential.energy_forces_stress`. Forces and stress are
the engine's: autograd through the neighbour-list vectors, which metatomic makes differentiable with
respect to positions and cell. The model's arithmetic is its own: the exported module calls the
model's tensor-only entry point ``pair_atom_outputs(z, pairs, vectors)`` (the one its ``forward`` uses
too), on a half neighbour list at the graph's cutoff requested from the engine.

Output ``energy`` (eV, per atom or per system; ``selected_atoms`` honoured, so LAMMPS's domain
decomposition works), length unit Å, dtype that of the run (float64 for ``64-true`` runs; the
normaliser's offsets are added in float64, then cast). ``interaction_range`` is the cutoff times the
number of message-passing steps, how far the engine's ghost atoms must reach.

Covered: models that define ``pair_atom_outputs`` (SchNet), on radius graphs without a neighbour cap.
Refused with the reason: ensembles, non-potentials, other models, direct-force models, ``max_neighbors``.
"""

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, List, Optional  # noqa: UP035 (metatomic checks forward's typing.List etc.)

import torch

from atomgraph.runs import TrainedRun


@contextmanager
def torch_without_pyg_patches() -> Iterator[None]:
    """PyG (``torch_geometric.hash_tensor``) replaces ``torch.index_select`` and ``torch.select`` with
    Python wrappers that TorchScript cannot compile; metatensor compiles functions calling them when it
    is imported, and metatomic when it saves a model. Inside this block torch has its own functions."""
    try:
        from torch_geometric import hash_tensor
    except ImportError:  # a PyG without the patches
        yield
        return
    originals = {"index_select": "_old_index_select", "select": "_old_select"}
    patched = {name: getattr(torch, name) for name in originals}
    try:
        for name, original in originals.items():
            setattr(torch, name, getattr(hash_tensor, original, patched[name]))
        yield
    finally:
        for name, function in patched.items():
            setattr(torch, name, function)


with torch_without_pyg_patches():
    from metatensor.torch import Labels, TensorBlock, TensorMap
    from metatomic.torch import (
        AtomisticModel,
        ModelCapabilities,
        ModelMetadata,
        ModelOutput,
        NeighborListOptions,
        System,
    )

#: what a model defines to be exportable: the TorchScript entry point (z [N], pairs [2, P], vectors
#: [P, 3]) -> [N, T] that its forward uses too, and how far its atoms see (Å)
ENTRY_POINTS = ("pair_atom_outputs", "interaction_range")


class MetatomicPotential(torch.nn.Module):
    """A trained potential behind metatomic's ``ModelInterface`` (see the module docstring).

    model: an atomgraph model with ``pair_atom_outputs``; column: the energy's output column;
    scale, shift: the normaliser's ``std`` and ``mean`` of that column (eV, eV/atom); element_energy:
    its per-element references ``atomref[:, column]`` [max_z + 1] (eV); cutoff: the graph's (Å).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        column: int,
        scale: float,
        shift: float,
        element_energy: torch.Tensor,
        cutoff: float,
    ):
        super().__init__()
        self.model = model
        self.column = column
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64))
        self.register_buffer("element_energy", element_energy.detach().to(torch.float64).clone())
        self.neighbors = NeighborListOptions(cutoff=cutoff, full_list=False, strict=True)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:  # noqa: UP006 (metatomic's signature)
        return [self.neighbors]

    def atom_energies(self, systems: List[System]) -> torch.Tensor:  # noqa: UP006
        """e_i (eV, float64) of every atom of ``systems``, in order: [sum of N]."""
        numbers: List[torch.Tensor] = []  # noqa: UP006
        pairs: List[torch.Tensor] = []  # noqa: UP006
        vectors: List[torch.Tensor] = []  # noqa: UP006
        start = 0
        for system in systems:
            neighbors = system.get_neighbor_list(self.neighbors)
            atoms = neighbors.samples.values[:, :2].to(torch.long) + start  # first, second
            pairs.append(torch.stack([atoms[:, 1], atoms[:, 0]]))  # j = second, i = first
            vectors.append(neighbors.values.reshape(-1, 3))  # positions[second] - positions[first] + shift
            numbers.append(system.types.to(torch.long))
            start += system.positions.shape[0]
        z = torch.cat(numbers)
        outputs = self.model.pair_atom_outputs(z, torch.cat(pairs, dim=1), torch.cat(vectors))
        return outputs[:, self.column].to(torch.float64) * self.scale + self.element_energy[z] + self.shift

    def forward(
        self,
        systems: List[System],  # noqa: UP006
        outputs: Dict[str, ModelOutput],  # noqa: UP006
        selected_atoms: Optional[Labels],  # noqa: UP045
    ) -> Dict[str, TensorMap]:  # noqa: UP006
        results: Dict[str, TensorMap] = {}  # noqa: UP006
        if "energy" not in outputs or len(systems) == 0:
            return results
        device, dtype = systems[0].positions.device, systems[0].positions.dtype
        energies = self.atom_energies(systems)
        counts = torch.tensor([s.positions.shape[0] for s in systems], dtype=torch.long, device=device)
        starts = torch.cumsum(counts, 0) - counts
        if selected_atoms is None:
            system = torch.repeat_interleave(torch.arange(len(systems), device=device), counts)
            atom = torch.arange(energies.shape[0], device=device) - starts[system]
        else:
            system = selected_atoms.values[:, 0].to(torch.long)
            atom = selected_atoms.values[:, 1].to(torch.long)
            energies = energies[starts[system] + atom]
        if outputs["energy"].sample_kind == "atom":
            samples = Labels(["system", "atom"], torch.stack([system, atom], dim=1).to(torch.int32))
            values = energies.unsqueeze(1)
        else:
            samples = Labels(
                ["system"], torch.arange(len(systems), device=device).unsqueeze(1).to(torch.int32)
            )
            values = torch.zeros(len(systems), 1, dtype=energies.dtype, device=device)
            values = values.index_add(0, system, energies.unsqueeze(1))
        block = TensorBlock(
            values=values.to(dtype),
            samples=samples,
            components=torch.jit.annotate(List[Labels], []),  # noqa: UP006
            properties=Labels(["energy"], torch.zeros(1, 1, dtype=torch.int32, device=device)),
        )
        keys = Labels(["_"], torch.zeros(1, 1, dtype=torch.int32, device=device))
        results["energy"] = TensorMap(keys, [block])
        return results


def exportable_models() -> list[str]:
    """Names of the registered models that define the export's entry point."""
    from atomgraph.models import available_models, model_class

    return [name for name in available_models() if _exportable(model_class(name))]


def _exportable(model: type | torch.nn.Module) -> bool:
    return all(hasattr(model, name) for name in ENTRY_POINTS) and not getattr(model, "direct_forces", False)


def metatomic_module(run: TrainedRun) -> MetatomicPotential:
    """The exported module of a trained run (a copy of its model); a ValueError naming the run and what
    is supported when the run cannot be exported."""
    where = f"{run.source} ({run.model_name})"
    if run.is_ensemble:
        raise ValueError(
            f"{run.source} is an ensemble; export one member (members/<k>): the export writes one model, "
            "not a committee"
        )
    if not run.is_potential:
        raise ValueError(
            f"{where} is not a potential (task.kind: potential); only potentials (energy, forces, "
            "stress) are exported to metatomic"
        )
    model = run.module.model
    if not _exportable(model):
        raise ValueError(
            f"{where}: model {run.model_name!r} cannot be exported to metatomic (it has no TorchScript "
            f"entry point {ENTRY_POINTS[0]}, or predicts direct forces); supported: "
            f"{', '.join(exportable_models())}"
        )
    if run.graph.kind != "radius" or run.graph.max_neighbors is not None:
        raise ValueError(
            f"{where} reads a {run.graph.describe()}; metatomic engines pass every pair within a cutoff, "
            "so only radius graphs without a neighbour cap (max_neighbors) are exported"
        )
    column = run.module.column
    readouts = getattr(getattr(model, "head", None), "readouts", None)
    if readouts is not None and readouts[column] != "sum":
        raise ValueError(
            f"{where}: the energy is read out {readouts[column]!r}, not as a sum of atomic energies; "
            "only sum readouts are exported"
        )
    normalizer = run.module.normalizer
    return MetatomicPotential(
        copy.deepcopy(model).eval(),  # AtomisticModel freezes the parameters it is given
        column,
        float(normalizer.std[column]),
        float(normalizer.mean[column]),
        normalizer.atomref[:, column],
        run.graph.cutoff,
    )


def export_metatomic(run: str | Path | TrainedRun, path: str | Path) -> Path:
    """Write a trained potential (a run directory, checkpoint or exported file, or a loaded
    :class:`~atomgraph.runs.TrainedRun`) as a metatomic model file; returns its path.

    Load it with ``metatomic_ase.MetatomicCalculator(path)`` in ASE, ``pair_style metatomic path`` in
    LAMMPS, or any metatomic engine. Raises ValueError for runs that cannot be exported (see
    :func:`metatomic_module`).
    """
    trained = run if isinstance(run, TrainedRun) else TrainedRun.load(run)
    module = metatomic_module(trained)
    dtype = trained.module.compute_dtype
    elements = sorted(trained.elements or range(1, module.element_energy.shape[0]))
    capabilities = ModelCapabilities(
        outputs={"energy": ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=[int(z) for z in elements],
        interaction_range=float(module.model.interaction_range()),
        length_unit="angstrom",
        supported_devices=["cuda", "cpu"],
        dtype={torch.float32: "float32", torch.float64: "float64"}[dtype],
    )
    metadata = ModelMetadata(
        name=f"atomgraph {trained.model_name} potential",
        description=f"{trained.model_name} potential trained with atomgraph on a {trained.graph.describe()}",
        extra={"atomgraph-graph": json.dumps(trained.graph.to_dict(), sort_keys=True)},
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch_without_pyg_patches():
        AtomisticModel(module.eval(), metadata, capabilities).save(str(path))
    return path
