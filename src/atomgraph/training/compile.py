"""``training.compile: true``: a property model's forward runs through ``torch.compile`` while it trains.

What is compiled: the model's ``forward``, with dynamic shapes (every batch has its own numbers of atoms,
edges and graphs, so one compiled graph serves them all). The compiled function is an attribute of the
model instance, not a wrapper module: parameters, ``state_dict`` keys and checkpoints are those of the
eager model, and evaluation, ``predict`` and a resumed run load them as usual (they run eagerly).

What is not: potentials. Their force loss differentiates the forces again (a double backward), which
``torch.compile`` does not support, so they train eagerly and the run says so in one line.

If compiling fails (inductor on CPU needs a C++ compiler; an operation dynamo cannot trace), the batch
that hit the failure says so in one line, is computed eagerly, and so is every later batch: the run goes
on, nothing is lost.

Measured (``benchmarks/qm9_schnet_vs_pyg.py --compile``): see the README's SchNet section.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

#: dynamo's notice for each graph break on a data-dependent branch (``bool(tensor)``, ``.item()``): our
#: models branch on whether a batch is periodic, and the break costs one eager region, not correctness
GRAPH_BREAK_LOGGER = "torch._dynamo.variables.tensor"


#: dynamo settings while compiling: trace operators whose output size depends on the data (``nonzero`` for
#: the pair layout of radius graphs, ``bincount`` for atoms per graph) and scalars read from tensors,
#: instead of splitting the graph at each of them
CAPTURE = {"capture_dynamic_output_shape_ops": True, "capture_scalar_outputs": True}


class CompiledForward:
    """A model's forward through ``torch.compile(dynamic=True)``, falling back to the eager forward for
    good the first time compiling fails (:class:`torch._dynamo.exc.TorchDynamoException`)."""

    def __init__(self, eager: Callable):
        self.eager = eager
        self.compiled = torch.compile(eager, dynamic=True)
        self.failed = False

    def __call__(self, *args, **kwargs):
        if not self.failed:
            try:
                with torch._dynamo.config.patch(CAPTURE):
                    return self.compiled(*args, **kwargs)
            except torch._dynamo.exc.TorchDynamoException as error:
                self.failed = True
                message = (
                    f"training.compile: torch.compile failed ({root_cause(error)}); training goes on eagerly"
                )
                print(message, flush=True)
                log.warning(message)
        return self.eager(*args, **kwargs)


def root_cause(error: BaseException) -> str:
    """``Type: first line`` of the innermost exception an error was raised from."""
    while (inner := getattr(error, "inner_exception", None) or error.__cause__) is not None:
        error = inner
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def compile_forward(model: nn.Module) -> CompiledForward:
    """Route ``model(...)`` through a :class:`CompiledForward` of its own forward; returns it."""
    logging.getLogger(GRAPH_BREAK_LOGGER).setLevel(logging.ERROR)
    compiled = CompiledForward(model.forward)
    model.forward = compiled  # an instance attribute: nn.Module.__call__ finds it before the class's
    return compiled


def eager_forward(model: nn.Module) -> None:
    """Undo :func:`compile_forward` (nothing to undo is fine)."""
    if isinstance(model.__dict__.get("forward"), CompiledForward):
        del model.forward


def compile_for_training(model: nn.Module, kind: str) -> str:
    """Apply ``training.compile`` to the model of a task of ``kind`` (``property`` or ``potential``);
    returns the line the run prints about it."""
    if kind == "potential":
        return (
            "training.compile: not applied -- a potential's force loss needs a double backward, "
            "which torch.compile does not support; training eagerly"
        )
    compile_forward(model)
    return "training.compile: the model's forward runs through torch.compile (dynamic shapes)"
