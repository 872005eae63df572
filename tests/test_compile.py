"""``training.compile``: the compiled forward equals the eager one (values and gradients, molecules and a
periodic cell in one batch, varying batch sizes), checkpoints keep the eager keys, potentials stay eager,
and a failed compile falls back without losing the step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from ase.build import bulk
from conftest import random_molecule, write_config, write_xyz
from torch_geometric.data import Batch

import atomgraph.training.compile as compile_module
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.graphs import radius_graph
from atomgraph.graphs.spec import GraphSpec
from atomgraph.models import build_model
from atomgraph.runs import TrainedRun
from atomgraph.training.compile import (
    CompiledForward,
    compile_for_training,
    compile_forward,
    eager_forward,
)
from atomgraph.training.config import load_config

CUTOFF = 4.0


SMALL = {
    "schnet": {"hidden": 16, "filters": 16, "interactions": 2, "num_rbf": 8},
    "painn": {"hidden": 16, "interactions": 2, "num_rbf": 8},  # vector features, edges in chunks on CPU
}


def small_model(name: str = "schnet") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, graph=GraphSpec(cutoff=CUTOFF), reductions=["sum", "mean"], **SMALL[name])


def batches() -> list[Batch]:
    """Two batches of different sizes; the second holds a periodic cell beside molecules."""
    rng = np.random.default_rng(0)
    crystal = bulk("Si", "diamond", a=5.43)
    crystal.rattle(0.05, seed=3)
    first = [radius_graph(random_molecule(rng), CUTOFF) for _ in range(3)]
    second = [*(radius_graph(random_molecule(rng), CUTOFF) for _ in range(4)), radius_graph(crystal, CUTOFF)]
    return [Batch.from_data_list(first), Batch.from_data_list(second)]


def outputs_and_gradients(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(batch)
    (out**2).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_compiled_forward_equals_eager_and_keeps_the_state_dict(name):
    model = small_model(name)
    keys = list(model.state_dict())
    data = batches()
    eager = [outputs_and_gradients(model, b) for b in data]
    compiled = compile_forward(model)
    assert list(model.state_dict()) == keys  # checkpoints keep the eager model's keys
    for batch, (out, grads) in zip(data, eager, strict=True):
        got, got_grads = outputs_and_gradients(model, batch)
        torch.testing.assert_close(got, out, rtol=1e-4, atol=1e-5)
        for g, ref in zip(got_grads, grads, strict=True):
            torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # evaluation mode under no_grad compiles its own graph and agrees as well
        model.eval()
        torch.testing.assert_close(model(data[1]), eager[1][0], rtol=1e-4, atol=1e-5)
    assert not compiled.failed  # it really ran compiled
    eager_forward(model)
    assert "forward" not in vars(model)


def test_potentials_train_eagerly_with_a_notice():
    model = small_model()
    notice = compile_for_training(model, "potential")
    assert "double backward" in notice and "eagerly" in notice
    assert "forward" not in vars(model)
    notice = compile_for_training(model, "property")
    assert isinstance(vars(model)["forward"], CompiledForward) and "torch.compile" in notice


def test_a_failed_compile_falls_back_to_eager_once(monkeypatch, capsys):
    def failing_backend(graph_module, example_inputs):
        raise RuntimeError("no backend here")

    real_compile = torch.compile
    monkeypatch.setattr(
        compile_module.torch, "compile", lambda fn, **kwargs: real_compile(fn, backend=failing_backend)
    )
    model = small_model()
    batch = batches()[0]
    expected = model(batch)
    compiled = compile_forward(model)
    torch.testing.assert_close(model(batch), expected)
    torch.testing.assert_close(model(batch), expected)
    assert compiled.failed
    printed = capsys.readouterr().out
    assert printed.count("torch.compile failed") == 1 and "no backend here" in printed
    assert "eagerly" in printed


def test_a_backward_that_fails_to_compile_falls_back_before_any_backward(monkeypatch, capsys):
    from torch._dynamo.backends.common import aot_autograd

    def failing_backward(graph_module, example_inputs):
        raise RuntimeError("no backward here")

    backend = aot_autograd(fw_compiler=lambda gm, inputs: gm.forward, bw_compiler=failing_backward)
    real_compile = torch.compile
    monkeypatch.setattr(
        compile_module.torch, "compile", lambda fn, **kwargs: real_compile(fn, backend=backend)
    )
    model = small_model()
    batch = batches()[0]
    eager_out, eager_grads = outputs_and_gradients(model, batch)
    compiled = compile_forward(model)
    out, grads = outputs_and_gradients(model, batch)  # the backward runs: the eager one
    assert compiled.failed and "no backward here" in capsys.readouterr().out
    torch.testing.assert_close(out, eager_out)
    for g, ref in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(g, ref)


class Normalised(torch.nn.Module):
    """A layer with batch-norm statistics (buffers a probe forward must not move)."""

    def __init__(self):
        super().__init__()
        self.linear, self.norm = torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8)

    def forward(self, x):
        return self.norm(self.linear(x)).sum(dim=1, keepdim=True)


def test_the_backward_probe_leaves_no_trace():
    torch.manual_seed(0)
    eager, x = Normalised(), torch.randn(16, 4)
    model = Normalised()
    model.load_state_dict(eager.state_dict())
    compiled = compile_forward(model)
    torch.testing.assert_close(model(x), eager(x), rtol=1e-5, atol=1e-5)
    assert compiled.backward_compiled and not compiled.failed
    assert all(p.grad is None for p in model.parameters())  # the probe accumulated nothing
    for name, buffer in eager.named_buffers():  # the statistics moved once, as in the eager call
        torch.testing.assert_close(dict(model.named_buffers())[name], buffer, rtol=1e-5, atol=1e-6)


def test_a_compiled_training_run_trains_and_loads_eagerly(tmp_path, capsys):
    xyz = tmp_path / "mols.xyz"
    molecules = write_xyz(xyz, n=24, seed=0, noise=0.02)
    config = {
        "name": "compiled",
        "run_dir": str(tmp_path / "run"),
        "data": {"dataset": "structures", "path": str(xyz), "targets": ["energy"], "graph": {"cutoff": 4.0},
                 "cache": str(tmp_path / "cache")},
        "model": {"name": "schnet", "hidden": 16, "filters": 16, "interactions": 2, "num_rbf": 8},
        "training": {"batch_size": 8, "epochs": 3, "lr": 5e-3, "scheduler": "none",
                     "early_stopping_patience": 0, "accelerator": "cpu", "progress": False, "compile": True},
    }  # fmt: skip
    run_dir = train_and_evaluate(load_config(write_config(tmp_path / "c.yaml", config)))
    assert "torch.compile failed" not in capsys.readouterr().out
    losses = pd.read_csv(run_dir / "logs" / "metrics.csv").dropna(subset=["train_loss"])["train_loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()
    run = TrainedRun.load(run_dir)
    assert "forward" not in vars(run.module.model)  # inference runs the eager model
    batch = Batch.from_data_list([run.build_graph(a) for a in molecules[:4]])
    with torch.no_grad():
        assert torch.isfinite(run.module(batch)).all()
