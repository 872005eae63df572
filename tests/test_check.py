"""``atomgraph check``: each check passes on a model that respects it and fails on one built to break it."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from atomgraph.apps.potentials.lennard_jones import lennard_jones_clusters
from atomgraph.cli.main import main
from atomgraph.evaluation.checks import (
    cutoff_check,
    dirichlet_energies,
    force_check,
    permuted,
    symmetry_checks,
)
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.graphs.radius_graph import radius_graph
from atomgraph.training.config import load_config
from atomgraph.training.module import AtomgraphModule


def potential(model: nn.Module | None = None) -> AtomgraphModule:
    """A float64 SchNet potential (untrained), or the same module around ``model``."""
    module = AtomgraphModule(
        model={
            "name": "schnet",
            "reductions": ["sum"],
            "hidden": 8,
            "filters": 8,
            "interactions": 2,
            "num_rbf": 6,
        },
        targets=[{"name": "energy", "unit": "eV", "reduction": "sum"}],
        task={"kind": "potential"},
        training={},
        graph={"kind": "radius", "cutoff": 3.0},
    ).double()
    if model is not None:
        module.model = model
    return module.eval()


class ReadsCoordinates(nn.Module):
    """E = sum of x coordinates: permutation invariant, not translation or rotation invariant."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, dtype=torch.float64))

    def forward(self, graph):
        return self.scale * graph.pos[:, :1].sum().view(1, 1)


class HiddenGradient(ReadsCoordinates):
    """E = sum |r|^2 with the positions detached: autograd sees no force, finite differences do."""

    def forward(self, graph):
        return self.scale * (graph.pos.detach() ** 2).sum().view(1, 1) + 0.0 * graph.pos.sum()


class OrderDependent(ReadsCoordinates):
    """E = sum_i i |r_i|^2: depends on how the atoms are numbered."""

    def forward(self, graph):
        weights = torch.arange(graph.num_nodes, dtype=graph.pos.dtype)
        return self.scale * (weights * graph.pos.pow(2).sum(-1)).sum().view(1, 1)


def graphs(n: int = 3):
    return [radius_graph(a, 3.0) for a in lennard_jones_clusters(n, 5, 7, min_distance=1.0, seed=1)]


def _double(graph):
    graph.pos = graph.pos.double()
    if getattr(graph, "cell", None) is not None:
        graph.cell = graph.cell.double()
    return graph


def test_permuted_graph_is_the_same_structure():
    graph = graphs(1)[0]
    relabelled, new_index = permuted(graph, torch.Generator().manual_seed(0))
    assert torch.equal(relabelled.pos[new_index], graph.pos)
    old = {(int(a), int(b)) for a, b in graph.edge_index.T}
    new = {(int(a), int(b)) for a, b in relabelled.edge_index.T}
    assert new == {(int(new_index[a]), int(new_index[b])) for a, b in old}


def test_symmetry_checks_pass_on_a_potential_and_fail_on_one_reading_coordinates():
    structures = [_double(g) for g in graphs()]
    results = {c.name: c for c in symmetry_checks(potential(), structures)}
    assert results["permutation"].passed and results["translation"].passed and results["rotation"].passed
    assert results["reflection"].passed is None and "E(3)-invariant" in results["reflection"].detail
    broken = {c.name: c for c in symmetry_checks(potential(ReadsCoordinates()), structures)}
    assert broken["permutation"].passed
    assert broken["translation"].passed is False and broken["rotation"].passed is False
    assert "not invariant" in broken["reflection"].detail
    ordered = {c.name: c for c in symmetry_checks(potential(OrderDependent()), structures)}
    assert ordered["permutation"].passed is False


def test_a_nan_output_fails_instead_of_vanishing():
    class NotANumber(ReadsCoordinates):
        def forward(self, graph):
            return self.scale * graph.pos.sum().view(1, 1) * float("nan")

    results = {c.name: c for c in symmetry_checks(potential(NotANumber()), [_double(graphs(1)[0])])}
    assert results["permutation"].passed is False and results["rotation"].passed is False


def test_force_check_catches_forces_that_are_not_the_energy_gradient():
    graph = _double(graphs(1)[0])
    assert force_check(potential(), graph).passed
    failed = force_check(potential(HiddenGradient()), graph)
    assert failed.passed is False and failed.value > 0.1


def test_cutoff_check_tells_a_smooth_cutoff_from_a_hard_one():
    def smooth(d):  # C^2 at 3 Å
        return -((3.0 - d) ** 3) if d < 3.0 else 0.0

    def hard(d):
        return -1.0 / d if d < 3.0 else 0.0

    assert cutoff_check(smooth, 3.0).passed
    assert cutoff_check(hard, 3.0).passed is False
    assert cutoff_check(hard, 3.0, required=False).passed is None  # a model not smooth by design
    assert cutoff_check(lambda d: 0.0, 3.0).passed is None  # no interaction: nothing to judge


def test_cli_exit_status_is_1_when_a_check_fails(monkeypatch, tmp_path, capsys):
    import atomgraph.evaluation.checks as checks

    failing = [checks.Check("rotation", False, 0.5, 1e-9, "max relative change 5.00e-01")]
    monkeypatch.setattr(checks, "check_run", lambda *args, **kwargs: failing)
    with pytest.raises(SystemExit) as exited:
        main(["check", str(tmp_path)])
    assert exited.value.code == 1 and "1 of 1 checks failed: rotation" in capsys.readouterr().out


def test_dirichlet_energy_per_block():
    graph = graphs(1)[0]
    model = potential().float().model
    energies = dirichlet_energies(model, graph)
    assert len(energies) == 2 and all(e >= 0 for e in energies)


def test_cli_check_on_a_trained_potential(lj_run, capsys):
    main(["check", str(lj_run), "--samples", "2", "--md-steps", "20", "--worst", "2"])
    out = capsys.readouterr().out
    for name in ("permutation", "translation", "rotation", "reflection", "forces", "energy drift", "cutoff"):
        assert f"PASS  {name}" in out or f"INFO  {name}" in out, name
    assert "worst error 1" in out and "0 of " in out
    record = json.loads((lj_run / "check.json").read_text())
    assert {c["name"] for c in record["checks"]} >= {
        "permutation",
        "forces",
        "energy drift",
        "over-smoothing",
    }
    assert len(record["worst_errors"]) == 2 and (lj_run / "plots" / "oversmoothing.png").exists()
    assert (lj_run / "plots" / "worst_errors.png").stat().st_size > 5000  # the two structures drawn


def test_cli_check_on_a_bond_graph_model(tmp_path, scaffold_csv, capsys):
    """A GAT on bond graphs: permutation and (trivially) positions checked, no potential checks."""
    config = load_config(
        None,
        [
            f"run_dir={tmp_path / 'gat'}",
            "data.dataset=csv",
            f"data.path={scaffold_csv}",
            "data.targets=[value]",
            f"data.cache={tmp_path / 'cache'}",
            "data.split.sizes=[0.6,0.2,0.2]",
            "model.name=gat",
            "model.hidden=8",
            "model.layers=2",
            "model.heads=2",
            "training.epochs=1",
            "training.accelerator=cpu",
            "training.progress=false",
        ],
    )
    run_dir = train_and_evaluate(config, progress=False)
    main(["check", str(run_dir), "--samples", "3", "--worst", "1"])
    out = capsys.readouterr().out
    assert "PASS  permutation" in out and "worst error 1" in out and "over-smoothing" in out
    assert "forces" not in out and "energy drift" not in out and "cutoff" not in out
