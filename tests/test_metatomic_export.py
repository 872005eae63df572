"""Export to metatomic: the exported file, loaded by metatomic's own ASE calculator, gives the energies,
forces and stress of atomgraph's calculator; runs that cannot be exported are refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_potentials import ENERGY, GRAPH, OPTIM, SCHNET, molecule, periodic_cell, potential_module

from atomgraph.cli.main import main
from atomgraph.graphs.spec import GraphSpec
from atomgraph.md import Calculator

try:  # the exporter imports metatensor with torch's own functions (PyG, imported by now, replaces some)
    from atomgraph.md.metatomic_export import export_metatomic, torch_without_pyg_patches
except ImportError:  # metatomic-torch is the `export` extra, which scripts/setup.sh installs
    pytest.skip("metatomic-torch is not installed (pip install -e '.[export]')", allow_module_level=True)
from atomgraph.runs import TrainedRun
from atomgraph.training.ensemble_module import EnsembleModule
from atomgraph.training.module import AtomgraphModule

with torch_without_pyg_patches():  # metatensor compiles TorchScript on import (see the exporter)
    from metatensor.torch import Labels
    from metatomic.torch import ModelOutput, load_atomistic_model
    from metatomic_ase import MetatomicCalculator

ELEMENTS = [1, 6, 8, 29]  # the molecule's H, C, O and the cell's Cu
TOLERANCE = {torch.float64: {"rtol": 1e-10, "atol": 1e-12}, torch.float32: {"rtol": 2e-6, "atol": 2e-6}}


def trained_run(tmp_path: Path, dtype: torch.dtype = torch.float64) -> TrainedRun:
    """A SchNet potential with a non-trivial normaliser (std 3, mean -0.3 eV/atom, references -0.1 z eV),
    written as an exported atomgraph file and loaded from it, as ``atomgraph export`` users have it."""
    module = potential_module(dtype=dtype)
    module.hparams["elements"] = ELEMENTS
    run = TrainedRun(module.eval(), module.graph_spec, module.info, None, tmp_path / "run")
    return TrainedRun.load(run.export(tmp_path / "run.pt"))


@pytest.fixture(scope="module", params=[torch.float64, torch.float32], ids=["float64", "float32"])
def exported(request, tmp_path_factory):
    """(run, path of its metatomic export) for a float64 and a float32 run."""
    tmp_path = tmp_path_factory.mktemp(f"metatomic_{str(request.param)[6:]}")
    run = trained_run(tmp_path, request.param)
    assert run.module.compute_dtype == request.param
    path = tmp_path / "schnet.pt"
    main(["export-metatomic", str(tmp_path / "run.pt"), str(path)])  # the CLI, on the exported file
    return run, path


@pytest.mark.parametrize("make", [molecule, periodic_cell], ids=["molecule", "periodic"])
def test_metatomic_calculator_equals_atomgraphs(exported, make):
    run, path = exported
    tolerance = TOLERANCE[run.module.compute_dtype]
    atoms = make()
    ours, theirs = atoms.copy(), atoms.copy()
    ours.calc = Calculator(run, skin=0.0)
    theirs.calc = MetatomicCalculator(path, check_consistency=True, device="cpu")
    energy = ours.get_potential_energy()
    assert abs(energy) > 1.0  # the references and the mean dominate: a missing offset shows
    np.testing.assert_allclose(theirs.get_potential_energy(), energy, **tolerance)
    forces = ours.get_forces()
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(theirs.get_forces(), forces, **tolerance)
    if atoms.pbc.all():
        np.testing.assert_allclose(theirs.get_stress(), ours.get_stress(), **tolerance)
    # the per-atom energies (LAMMPS's compute pe/atom) add up to the energy
    np.testing.assert_allclose(theirs.get_potential_energies().sum(), energy, **tolerance)


def test_batches_and_selected_atoms(exported):
    """Several systems in one call, and ``selected_atoms`` (LAMMPS's domain decomposition: only the
    local atoms' energies count, the ghosts are neighbours)."""
    run, path = exported
    tolerance = TOLERANCE[run.module.compute_dtype]
    structures = [molecule(), periodic_cell()]
    expected = []
    for atoms in structures:
        atoms.calc = Calculator(run, skin=0.0)
        expected.append(atoms.get_potential_energy())
    calc = MetatomicCalculator(path, check_consistency=True, device="cpu")
    total = calc.run_model(structures, {"energy": ModelOutput(unit="eV", sample_kind="system")})["energy"]
    np.testing.assert_allclose(total.block().values.detach().numpy()[:, 0], expected, **tolerance)

    per_atom = ModelOutput(unit="eV", sample_kind="atom")
    every = calc.run_model(structures, {"energy": per_atom})["energy"].block()
    chosen = torch.tensor([[0, 1], [0, 4], [1, 0]], dtype=torch.int32)
    some = calc.run_model(structures, {"energy": per_atom}, Labels(["system", "atom"], chosen))["energy"]
    assert some.block().samples.values.tolist() == chosen.tolist()
    rows = [every.samples.position(tuple(row)) for row in chosen.tolist()]
    np.testing.assert_allclose(some.block().values.detach().numpy(), every.values.detach().numpy()[rows])
    sums = calc.run_model(structures, {"energy": ModelOutput(unit="eV")}, Labels(["system", "atom"], chosen))[
        "energy"
    ]
    np.testing.assert_allclose(
        sums.block().values.detach().numpy()[:, 0],
        [every.values[rows[0], 0] + every.values[rows[1], 0], every.values[rows[2], 0]],
        **tolerance,
    )


def test_capabilities_and_unseen_elements(exported):
    run, path = exported
    model = load_atomistic_model(path)
    capabilities = model.capabilities()
    assert capabilities.atomic_types == ELEMENTS
    assert capabilities.interaction_range == pytest.approx(GRAPH["cutoff"] * SCHNET["interactions"])
    assert capabilities.dtype == str(run.module.compute_dtype)[6:]
    (request,) = model.requested_neighbor_lists()
    assert (request.cutoff, request.full_list, request.strict) == (GRAPH["cutoff"], False, True)
    atoms = molecule()
    atoms.numbers[0] = 7  # nitrogen: never seen
    atoms.calc = MetatomicCalculator(path, device="cpu")
    with pytest.raises(ValueError, match="does not support the atomic type '7'"):
        atoms.get_potential_energy()


def test_runs_that_cannot_be_exported_are_refused_with_the_reason(tmp_path):
    out = tmp_path / "model.pt"
    gap = [{"name": "gap", "unit": "eV", "reduction": "mean"}]
    prop = AtomgraphModule(SCHNET, gap, {"kind": "property"}, OPTIM, graph=GRAPH).eval()
    with pytest.raises(ValueError, match=r"not a potential \(task.kind: potential\)"):
        export_metatomic(TrainedRun(prop, prop.graph_spec, prop.info, None, tmp_path), out)

    painn = {"name": "painn", "hidden": 8, "interactions": 2, "num_rbf": 6}
    other = AtomgraphModule(painn, ENERGY, {"kind": "potential"}, OPTIM, graph=GRAPH).eval()
    with pytest.raises(ValueError, match=r"model 'painn' cannot be exported to metatomic.*supported: schnet"):
        export_metatomic(TrainedRun(other, other.graph_spec, other.info, None, tmp_path), out)

    capped = GraphSpec(cutoff=4.0, max_neighbors=12).to_dict()
    knn = AtomgraphModule(SCHNET, ENERGY, {"kind": "potential"}, OPTIM, graph=capped).eval()
    with pytest.raises(ValueError, match=r"12 nearest.*without a neighbour cap"):
        export_metatomic(TrainedRun(knn, knn.graph_spec, knn.info, None, tmp_path), out)

    members = EnsembleModule([potential_module(seed) for seed in (0, 1)]).eval()
    with pytest.raises(ValueError, match="is an ensemble; export one member"):
        export_metatomic(TrainedRun(members, members.graph_spec, members.info, None, tmp_path), out)
    assert not out.exists()

    with pytest.raises(SystemExit) as stop:  # the CLI: one line, exit status 2
        main(["export-metatomic", str(tmp_path / "missing"), str(out)])
    assert stop.value.code == 2
