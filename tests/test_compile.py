"""``training.compile``: the compiled forward equals the eager one (values and gradients, molecules and a
periodic cell in one batch, varying batch sizes), checkpoints keep the eager keys, copies compile their own
weights, potentials stay eager, a failed compile (forward or backward) falls back without losing the step
or moving batch-norm statistics twice, and an input error is raised, not blamed on the compiler."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from ase.build import bulk
from conftest import random_molecule, write_config, write_xyz
from torch._dynamo.backends.common import aot_autograd
from torch._dynamo.utils import counters
from torch_geometric.data import Batch

import atomgraph.training.compile as compile_module
import atomgraph.training.run as run_module
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
    assert counters["stats"]["unique_graphs"] > 0  # dynamo really compiled graphs
    with torch.no_grad():  # evaluation mode under no_grad compiles its own graph and agrees as well
        model.eval()
        torch.testing.assert_close(model(data[1]), eager[1][0], rtol=1e-4, atol=1e-5)
    assert not compiled.failed
    eager_forward(model)
    assert "forward" not in vars(model)


def test_copies_of_a_compiled_model_compute_with_their_own_weights():
    model, batch = small_model(), batches()[0]
    compile_forward(model)
    for duplicate in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        with torch.no_grad():
            for parameter in duplicate.parameters():
                parameter.mul_(0.5)
        assert vars(duplicate)["forward"].model is duplicate
        reference = small_model()
        reference.load_state_dict(duplicate.state_dict())
        torch.testing.assert_close(duplicate(batch), reference(batch), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(duplicate(batch), model(batch))


def test_potentials_train_eagerly_with_a_notice():
    model, notices = small_model(), []
    compile_for_training(model, "potential", notices.append)
    assert "double backward" in notices[-1] and "eagerly" in notices[-1]
    assert "forward" not in vars(model)
    compile_for_training(model, "property", notices.append)
    assert isinstance(vars(model)["forward"], CompiledForward) and "torch.compile" in notices[-1]


def compile_with(monkeypatch, backend) -> None:
    """Make the module's torch.compile use ``backend`` (its other arguments, ``dynamic``, kept)."""
    real_compile = torch.compile

    def compile_(fn, **kwargs):
        return real_compile(fn, **{**kwargs, "backend": backend})

    monkeypatch.setattr(compile_module.torch, "compile", compile_)


def test_a_compiled_forward_adds_the_image_term_for_periodic_batches_only(monkeypatch):
    """Molecules and cells get their own compiled code: the molecules' has no ``edge_shift @ cell``
    (an einsum over the edges), the cells' has it, and each equals the eager forward. Dynamic shapes, as
    ``compile_forward`` compiles: only the guard on :func:`periodic_images` keeps the cell batch out of
    the molecules' code."""
    traced = []

    def recording_backend(graph_module, example_inputs):
        traced.append(graph_module.code)
        return graph_module.forward

    compile_with(monkeypatch, recording_backend)
    model = small_model()
    molecules, with_cell = batches()
    with torch.no_grad():
        expected = [model(molecules), model(with_cell), model(molecules)]
        compile_forward(model)
        got, code = [], []  # per call: the graphs traced for it (the model's graph breaks split it)
        for batch in (molecules, with_cell, molecules):
            before = len(traced)
            got.append(model(batch))
            code.append("".join(traced[before:]))
    for actual, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(actual, reference, rtol=1e-5, atol=1e-6)
    assert code[0] and "einsum" not in code[0]
    assert "einsum" in code[1]
    assert code[2] == "", "the molecules' compiled code is reused"


def test_a_failed_compile_falls_back_to_eager_once(monkeypatch):
    def failing_backend(graph_module, example_inputs):
        raise RuntimeError("no backend here")

    compile_with(monkeypatch, failing_backend)
    model, notices = small_model(), []
    batch = batches()[0]
    expected = model(batch)
    compiled = compile_forward(model, notices.append)
    torch.testing.assert_close(model(batch), expected)
    torch.testing.assert_close(model(batch), expected)
    assert compiled.failed and len(notices) == 1
    assert (
        "torch.compile failed" in notices[0] and "no backend here" in notices[0] and "eagerly" in notices[0]
    )


class Normalised(torch.nn.Module):
    """A layer with batch-norm statistics (buffers a failed compile must not move twice)."""

    def __init__(self):
        super().__init__()
        self.linear, self.norm = torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8)

    def forward(self, x):
        return self.norm(self.linear(x)).sum(dim=1, keepdim=True)


def test_a_backward_that_fails_to_compile_falls_back_in_the_forward(monkeypatch):
    def failing_backward(graph_module, example_inputs):
        raise RuntimeError("no backward here")

    compile_with(
        monkeypatch, aot_autograd(fw_compiler=lambda gm, inputs: gm.forward, bw_compiler=failing_backward)
    )
    torch.manual_seed(0)
    eager, x = Normalised(), torch.randn(16, 4)
    model, notices = Normalised(), []
    model.load_state_dict(eager.state_dict())
    compiled = compile_forward(model, notices.append)
    out = model(x)  # the failure is raised here, inside the forward, and the eager forward runs once
    assert compiled.failed and "no backward here" in notices[0]
    out.sum().backward()
    eager_out = eager(x)
    eager_out.sum().backward()
    torch.testing.assert_close(out, eager_out)
    for (name, buffer), (_, reference) in zip(model.named_buffers(), eager.named_buffers(), strict=True):
        torch.testing.assert_close(buffer, reference, msg=name)  # the statistics moved once
    for parameter, reference in zip(model.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(parameter.grad, reference.grad)


def test_an_input_error_is_raised_not_blamed_on_the_compiler():
    model, notices = small_model(), []
    compiled = compile_forward(model, notices.append)
    batch = batches()[0]
    batch.z = batch.z.clone()
    batch.z[0] = 500  # no embedding row
    with pytest.raises(IndexError):
        model(batch)
    assert not compiled.failed and not notices


def test_a_compiled_training_run_trains_and_loads_eagerly(tmp_path, monkeypatch):
    calls = []

    def spy(model, kind, notify):
        calls.append(kind)
        compile_for_training(model, kind, notify)

    monkeypatch.setattr(run_module, "compile_for_training", spy)
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
    assert calls == ["property"]
    losses = pd.read_csv(run_dir / "logs" / "metrics.csv").dropna(subset=["train_loss"])["train_loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()
    run = TrainedRun.load(run_dir)
    assert "forward" not in vars(run.module.model)  # inference runs the eager model
    batch = Batch.from_data_list([run.build_graph(a) for a in molecules[:4]])
    with torch.no_grad():
        assert torch.isfinite(run.module(batch)).all()
