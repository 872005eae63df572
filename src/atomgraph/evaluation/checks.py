"""``atomgraph check RUN``: does a trained model respect the symmetries and limits it should?

Run on up to ``samples`` test rows of the run (its own dataset and split), in a float64 copy of the
model so that a broken symmetry is not hidden by (or confused with) float32 rounding:

* **permutation**: atoms renumbered (the graph relabelled): the outputs must not change;
* **translation**: every position shifted by one random vector: the outputs must not change;
* **rotation**: positions and cell rotated: the outputs must not change; a potential's forces must
  rotate with the structure;
* **reflection** (reported, never failed): positions and cell inverted. An E(3)-invariant model gives
  the same outputs; a model with 2D chirality tags or an SE(3)-only one need not;
* potentials, additionally: **forces** against central finite differences of the energy, **energy
  conservation** in a short NVE run (ASE velocity Verlet, 0.5 fs, 300 K start) and **smoothness at the
  cutoff** (a dimer of the structure's first two elements pulled across the cutoff radius: the energy
  jump there against the change over the last 0.5 Å inside);
* **over-smoothing** (reported): the normalised Dirichlet energy mean_edges |h_i - h_j|^2 /
  (2 mean_atoms |h_i|^2) of the node states after each message-passing block (1 for unrelated states
  of neighbours, 0 for equal ones); a curve falling towards 0 means neighbours become alike with depth;
* **worst test errors** (reported): the k rows of ``predictions_test.csv`` with the largest absolute
  error, their size and elements, and how rare their rarest element is among the training rows; the
  structures drawn side by side (``plots/worst_errors.png``).

Tolerances (float64): invariances to 1e-6 relative to the outputs' magnitude, forces to 1e-4 relative
to the largest force component, NVE drift below 1 meV/atom, a cutoff jump below 1e-3 of the change
inside. Each check is a :class:`Check`; :func:`check_run` returns them and writes ``check.json``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from atomgraph.evaluation.plots import oversmoothing_plot, structures_grid
from atomgraph.graphs.geometry import random_rotation
from atomgraph.graphs.virtual import VIRTUAL_EDGE_TYPE
from atomgraph.outputs.potential import cast_graph

INVARIANCE_RTOL = 1e-9
FORCE_RTOL = 1e-4
NVE_DRIFT_EV_PER_ATOM = 1e-3
CUTOFF_JUMP_RATIO = 1e-3
BLOCK_LISTS = ("interactions", "layers", "convs", "blocks")


@dataclass
class Check:
    """One check: passed is True/False, or None for a report that has no pass mark."""

    name: str
    passed: bool | None
    value: float | None
    limit: float | None
    detail: str

    def line(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "INFO"}[self.passed]
        return f"{status:4s}  {self.name:16s} {self.detail}"


# ----------------------------------------------------------------------------------- transformations


def permuted(graph: Data, generator: torch.Generator) -> tuple[Data, torch.Tensor]:
    """The same structure with its atoms renumbered (node attributes reordered, edges relabelled), and
    the new number of each old atom [N]."""
    n = graph.num_nodes
    order = torch.randperm(n, generator=generator)
    new_index = torch.empty_like(order)
    new_index[order] = torch.arange(n)
    out = copy.copy(graph)
    for key, value in graph.items():
        if torch.is_tensor(value) and graph.is_node_attr(key) and value.shape[:1] == (n,):
            out[key] = value[order]
    out.edge_index = new_index[graph.edge_index]
    return out, new_index


def moved(graph: Data, rotation: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> Data:
    """Positions (and cell rows) times ``rotation`` (a 3x3 orthogonal matrix), then shifted."""
    out = copy.copy(graph)
    if rotation is not None:
        out.pos = graph.pos @ rotation.T
        if getattr(graph, "cell", None) is not None:
            out.cell = graph.cell @ rotation.T
    if shift is not None:
        out.pos = out.pos + shift
    return out


# ---------------------------------------------------------------------------------------- the checks


def _outputs(module: nn.Module, graph: Data) -> dict[str, torch.Tensor]:
    batch = Batch.from_data_list([graph])
    if module.kind == "potential":
        out = module.compute(batch, forces=True)
        return {"energy": out["energy"].detach(), "forces": out["forces"].detach()}
    with torch.no_grad():
        return {"outputs": module(batch)}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / (b.abs().max() + 1.0))


def _worse(current: float, new: float) -> float:
    """The larger of two errors, NaN winning (a NaN output must fail, not vanish in max())."""
    return current if new <= current else new


def symmetry_checks(module: nn.Module, graphs: list[Data], seed: int = 0) -> list[Check]:
    """Permutation, translation, rotation and reflection of each of ``graphs`` (float64 module)."""
    generator = torch.Generator().manual_seed(seed)
    worst = {"permutation": 0.0, "translation": 0.0, "rotation": 0.0, "reflection": 0.0}
    card = getattr(module.model, "card", None)  # a registered model says whether it reads positions
    has_positions = all(getattr(g, "pos", None) is not None for g in graphs)
    reads_positions = has_positions and getattr(card, "reads_positions", True)
    for graph in graphs:
        base = _outputs(module, graph)
        key = "forces" if "forces" in base else None
        perm_graph, new_index = permuted(graph, generator)
        perm = _outputs(module, perm_graph)
        scalar = "energy" if "energy" in base else "outputs"
        node_level = getattr(getattr(module, "info", None), "node_level", False)  # outputs follow atoms
        error = _relative(perm[scalar][new_index] if node_level else perm[scalar], base[scalar])
        if key:  # forces follow their atoms
            error = _worse(error, _relative(perm["forces"][new_index], base["forces"]))
        worst["permutation"] = _worse(worst["permutation"], error)
        if not reads_positions:
            continue
        shift = torch.randn(3, generator=generator, dtype=graph.pos.dtype) * 5.0
        translated = _outputs(module, moved(graph, shift=shift))
        worst["translation"] = _worse(worst["translation"], _relative(translated[scalar], base[scalar]))
        rotation = random_rotation(generator, graph.pos.dtype)
        rotated = _outputs(module, moved(graph, rotation=rotation))
        error = _relative(rotated[scalar], base[scalar])
        if key:
            error = _worse(error, _relative(rotated["forces"], base["forces"] @ rotation.T))
        worst["rotation"] = _worse(worst["rotation"], error)
        reflected = _outputs(module, moved(graph, rotation=-torch.eye(3, dtype=graph.pos.dtype)))
        error = _relative(reflected[scalar], base[scalar])
        if key:  # an inversion-invariant energy has inverted forces
            error = _worse(error, _relative(reflected["forces"], -base["forces"]))
        worst["reflection"] = _worse(worst["reflection"], error)
    checks = [
        Check(
            "permutation",
            worst["permutation"] <= INVARIANCE_RTOL,
            worst["permutation"],
            INVARIANCE_RTOL,
            f"max relative change {worst['permutation']:.2e} over {len(graphs)} structures",
        )
    ]
    if not reads_positions:
        why = "the model does not read positions" if has_positions else "the graphs carry no positions"
        checks.append(Check("positions", None, None, None, f"{why}: translation and rotation not checked"))
        return checks
    for name in ("translation", "rotation"):
        what = " (forces rotated alike)" if name == "rotation" and module.kind == "potential" else ""
        checks.append(
            Check(
                name,
                worst[name] <= INVARIANCE_RTOL,
                worst[name],
                INVARIANCE_RTOL,
                f"max relative change {worst[name]:.2e}{what}",
            )
        )
    invariant = worst["reflection"] <= INVARIANCE_RTOL
    checks.append(
        Check(
            "reflection",
            None,
            worst["reflection"],
            INVARIANCE_RTOL,
            f"max relative change {worst['reflection']:.2e}: "
            + (
                "E(3)-invariant (a mirror image gets the same prediction)"
                if invariant
                else "not invariant to inversion (chirality-aware or not E(3)-invariant)"
            ),
        )
    )
    return checks


def force_check(module: nn.Module, graph: Data, step: float = 1e-4, atoms: int = 3) -> Check:
    """Autograd forces of up to ``atoms`` atoms against central differences of the energy (Å)."""
    forces = _outputs(module, graph)["forces"]
    worst = 0.0
    for atom in range(min(atoms, graph.num_nodes)):
        for axis in range(3):
            energies = []
            for sign in (1.0, -1.0):
                shifted = copy.copy(graph)
                shifted.pos = graph.pos.clone()
                shifted.pos[atom, axis] += sign * step
                energies.append(float(_outputs(module, shifted)["energy"].sum()))
            numeric = -(energies[0] - energies[1]) / (2 * step)
            worst = _worse(worst, abs(numeric - float(forces[atom, axis])))
    scale = float(forces.abs().max()) + 1e-3
    return Check(
        "forces",
        worst <= FORCE_RTOL * scale,
        worst / scale,
        FORCE_RTOL,
        f"max |autograd - finite difference| {worst:.2e} eV/Å (largest force {scale:.2e})",
    )


def nve_check(calculator, atoms, steps: int) -> Check:
    """Total-energy drift per atom over ``steps`` velocity-Verlet steps of 0.5 fs from 300 K."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calculator
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    start = atoms.get_total_energy()
    totals = []
    dynamics = VelocityVerlet(atoms, 0.5 * units.fs)
    for _ in range(steps):
        dynamics.run(1)
        totals.append(atoms.get_total_energy())
    drift = abs(totals[-1] - start) / len(atoms)
    spread = (max(totals) - min(totals)) / len(atoms)
    return Check(
        "energy drift",
        drift <= NVE_DRIFT_EV_PER_ATOM,
        drift,
        NVE_DRIFT_EV_PER_ATOM,
        f"|E_total(end) - E_total(0)| = {1e3 * drift:.3f} meV/atom after {steps} steps of 0.5 fs "
        f"(fluctuation {1e3 * spread:.3f} meV/atom)",
    )


def cutoff_check(
    energy: Callable[[float], float], cutoff: float, required: bool = True, epsilon: float = 1e-3
) -> Check:
    """``energy(d)`` of a dimer at distance d (Å): the jump across the cutoff against the change over the
    last 0.5 Å inside it. ``required``: fail a jump (potentials, models whose card promises smoothness);
    otherwise it is reported."""
    jump = abs(energy(cutoff - epsilon) - energy(cutoff + epsilon))
    inside = abs(energy(cutoff - 0.5) - energy(cutoff + epsilon))
    if not inside > 1e-12:
        return Check(
            "cutoff", None, None, None, f"the dimer does not interact within 0.5 Å of r_c = {cutoff} Å"
        )
    ratio = jump / inside
    detail = f"energy jump {jump:.2e} across r_c = {cutoff} Å against {inside:.2e} over the last 0.5 Å"
    passed = ratio <= CUTOFF_JUMP_RATIO if required else None
    return Check(
        "cutoff", passed, ratio, CUTOFF_JUMP_RATIO, detail + ("" if required else " (not smooth by design)")
    )


def dirichlet_energies(model: nn.Module, graph: Data) -> list[float]:
    """Normalised Dirichlet energy mean_edges |h_i - h_j|^2 / (2 mean_atoms |h_i|^2), states centred over
    the atoms, after each block: the model's ``node_states`` when it has them (the conv stacks: after
    norm, activation and residual), else the node-sized outputs of its first list of blocks
    (``interactions``, ``layers``, ``convs`` or ``blocks``). Empty when neither applies."""
    batch = Batch.from_data_list([graph])
    n, edges = graph.num_nodes, graph.edge_index.shape[1]
    states: list[torch.Tensor] = []
    if hasattr(model, "node_states"):
        with torch.no_grad():
            states = [h.detach().reshape(n, -1) for h in model.node_states(batch)]
    else:
        blocks = next(
            (getattr(model, k) for k in BLOCK_LISTS if isinstance(getattr(model, k, None), nn.ModuleList)),
            None,
        )
        if blocks is None or n == edges:  # node- and edge-sized outputs would be indistinguishable
            return []

        def keep(_module, _inputs, output):
            tensors = output if isinstance(output, tuple) else (output,)
            first = next(
                (t for t in tensors if torch.is_tensor(t) and t.dim() >= 2 and t.shape[0] == n), None
            )
            if first is not None:
                states.append(first.detach().reshape(n, -1))

        hooks = [block.register_forward_hook(keep) for block in blocks]
        try:
            with torch.no_grad():
                model(batch)
        finally:
            for hook in hooks:
                hook.remove()
    source, target = graph.edge_index
    out = []
    for h in states:  # 1 for unrelated neighbour states, 0 for equal ones
        h = h - h.mean(0, keepdim=True)
        difference = (h[source] - h[target]).pow(2).sum(-1).mean() if edges else h.new_zeros(())
        out.append(float(difference / (2 * h.pow(2).sum(-1).mean() + 1e-12)))
    return out


def worst_errors(run_dir: Path, dataset, split: dict, k: int) -> list[dict]:
    """The ``k`` test rows with the largest absolute error of the first target (predictions_test.csv)."""
    import pandas as pd
    from ase.data import chemical_symbols

    table_path = run_dir / "predictions_test.csv"
    if not table_path.exists():
        return []
    table = pd.read_csv(table_path)
    true_column = next((c for c in table.columns if c.endswith("_true")), None)
    if true_column is None:
        return []
    pred_column = true_column[: -len("_true")] + "_pred"
    if "atom" in table.columns:  # node-level: one row per atom; each molecule's worst atom stands for it
        table["position"] = (table["atom"] == 0).cumsum() - 1  # a molecule's rows start at atom 0
        worst = (table[pred_column] - table[true_column]).abs().groupby(table["position"]).idxmax()
        table = table.loc[worst.dropna().to_numpy()].set_index("position")  # NaN: no labelled atom
    error = (table[pred_column] - table[true_column]).abs()
    train_numbers = dataset[torch.as_tensor(split["train"])].atomic_numbers()
    share = {}
    for numbers in train_numbers:
        for z in set(int(v) for v in numbers):
            share[z] = share.get(z, 0) + 1
    test_numbers = dataset[torch.as_tensor(split["test"])].atomic_numbers()
    rows = []
    for position in error.sort_values(ascending=False).index[:k]:
        numbers = test_numbers[position]
        rarest = min(set(int(z) for z in numbers), key=lambda z: share.get(z, 0))
        rows.append(
            {
                "target": true_column[: -len("_true")],
                "id": str(table["id"][position]),
                "position": int(position),  # in the test split
                "atoms": len(numbers),
                "true": float(table[true_column][position]),
                "predicted": float(table[pred_column][position]),
                "abs_error": float(error[position]),
                **({"atom": int(table["atom"][position])} if "atom" in table.columns else {}),
                "rarest_element": chemical_symbols[rarest],
                "rarest_element_training_share": share.get(rarest, 0) / max(len(train_numbers), 1),
            }
        )
    return rows


def _structure(graph: Data):
    """The ASE Atoms of a graph (positions, numbers, cell and periodicity)."""
    from ase import Atoms

    cell = getattr(graph, "cell", None)
    cell = cell.view(3, 3).numpy() if cell is not None else np.zeros((3, 3))
    pbc = getattr(graph, "pbc", None)
    pbc = pbc.view(-1).numpy() if pbc is not None else np.abs(cell).sum(1) > 0
    return Atoms(numbers=graph.z.numpy(), positions=graph.pos.numpy(), cell=cell, pbc=pbc)


def _drawable(graph: Data):
    """The structure of a graph to draw: its Atoms, or for a molecule without 3D coordinates (a graph
    built from SMILES) its bonds laid out in 2D by RDKit's depiction."""
    atoms = _structure(graph)
    if "has_3d" not in graph or bool(graph.has_3d.all()):
        return atoms
    from rdkit import Chem
    from rdkit.Chem import rdDepictor

    mol = Chem.RWMol()
    for z in graph.z.tolist():
        mol.AddAtom(Chem.Atom(int(z)))
    kinds = getattr(graph, "edge_type", torch.zeros(graph.edge_index.shape[1], dtype=torch.long)).tolist()
    pairs = graph.edge_index.t().tolist()
    bonds = {
        (min(a, b), max(a, b))
        for (a, b), kind in zip(pairs, kinds, strict=True)
        if a != b and kind != VIRTUAL_EDGE_TYPE
    }
    for i, j in bonds:
        mol.AddBond(i, j, Chem.BondType.SINGLE)
    rdDepictor.Compute2DCoords(mol)
    atoms.positions = mol.GetConformer().GetPositions()
    return atoms


def check_run(
    run_dir: str | Path, samples: int = 8, md_steps: int = 100, worst: int = 5, seed: int = 0
) -> list[Check]:
    """Every check above on a run directory; writes ``check.json`` (and ``plots/oversmoothing.png``)."""
    from atomgraph.data import load_split
    from atomgraph.evaluation.jsonfile import write_json
    from atomgraph.runs import TrainedRun
    from atomgraph.training.datasets import load_dataset

    if samples < 1:
        raise ValueError(f"check: samples must be at least 1, got {samples}")
    run_dir = Path(run_dir)
    run = TrainedRun.load(run_dir)
    if run.is_ensemble:
        raise ValueError(f"{run_dir}: check one member of an ensemble (members/<k>), not the ensemble")
    if run.config is None:
        raise ValueError(f"{run_dir}: no config.yaml, so no dataset and split to check on")
    dataset = load_dataset(run.config, run.graph, progress=False)
    split = load_split(run_dir / "split.json", len(dataset))
    if len(split["test"]) == 0:
        raise ValueError(f"{run_dir}: the run's test split is empty")
    rows = split["test"][:: max(1, len(split["test"]) // samples)][:samples]
    module = copy.deepcopy(run.module).double().eval()
    graphs = [cast_graph(dataset[int(i)], torch.float64) for i in rows]
    checks = symmetry_checks(module, graphs, seed)
    if module.kind == "potential":
        checks.append(force_check(module, graphs[0]))
        if md_steps > 0:
            from atomgraph.md import Calculator

            calculator = Calculator(module, allow_unseen_elements=True)  # the float64 copy
            checks.append(nve_check(calculator, _structure(dataset[int(rows[0])]), md_steps))
    if run.graph.kind == "radius":
        cutoff = float(getattr(module.model, "cutoff", run.graph.cutoff))  # an interaction cutoff if any
        smooth = getattr(getattr(module.model, "card", None), "smooth", False)
        if run.graph.max_neighbors is not None:
            checks.append(
                Check("cutoff", False if module.kind == "potential" else None, None, None,
                      f"a neighbour cap (max_neighbors {run.graph.max_neighbors}): the outputs jump "
                      "wherever the k-th and (k+1)-th neighbours swap")
            )  # fmt: skip
        else:
            required = module.kind == "potential" or smooth
            checks.append(cutoff_check(_dimer_energy(module, run, graphs[0]), cutoff, required))
    energies = dirichlet_energies(module.model, graphs[0])
    if energies:
        checks.append(
            Check(
                "over-smoothing",
                None,
                energies[-1],
                None,
                "Dirichlet energy per block: " + ", ".join(f"{e:.3g}" for e in energies),
            )
        )
        title = f"{run.model_name}: node-state similarity with depth"
        oversmoothing_plot(energies, run_dir / "plots" / "oversmoothing.png", title)
    rows_worst = worst_errors(run_dir, dataset, split, worst)
    if rows_worst:
        structures = [_drawable(dataset[int(split["test"][row["position"]])]) for row in rows_worst]
        titles = [
            f"{row['id']}: {atoms.get_chemical_formula()}\n|error| {row['abs_error']:.3g} "
            f"(true {row['true']:.3g})"
            for row, atoms in zip(rows_worst, structures, strict=True)
        ]
        structures_grid(structures, titles, run_dir / "plots" / "worst_errors.png")
    for rank, row in enumerate(rows_worst, 1):
        share = 100 * row["rarest_element_training_share"]
        detail = (
            f"{row['id']}: {row['target']} |error| {row['abs_error']:.4g} ({row['atoms']} atoms; "
            f"rarest element {row['rarest_element']} in {share:.1f} % of the training rows)"
        )
        checks.append(Check(f"worst error {rank}", None, row["abs_error"], None, detail))
    write_json(
        run_dir / "check.json",
        {"checks": [asdict(c) for c in checks], "worst_errors": rows_worst, "dirichlet_energy": energies},
    )
    return checks


def _dimer_energy(module: nn.Module, run, graph: Data) -> Callable[[float], float]:
    """d -> the model's first output (energy for potentials) for a dimer of the graph's first two
    elements (the first element twice for one-element graphs) at distance d, graph rebuilt each time."""
    from ase import Atoms

    elements = list(dict.fromkeys(int(z) for z in graph.z.tolist()))
    pair = (elements[0], elements[1] if len(elements) > 1 else elements[0])

    def energy(distance: float) -> float:
        dimer = Atoms(numbers=pair, positions=[[0.0, 0.0, 0.0], [distance, 0.0, 0.0]])
        built = cast_graph(run.build_graph(dimer), torch.float64)
        out = _outputs(module, built)
        return float((out["energy"] if "energy" in out else out["outputs"]).reshape(-1)[0])

    return energy
