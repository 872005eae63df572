"""``training.compile: true``: a property model's forward runs through ``torch.compile`` while it trains.

What is compiled: the model's ``forward``, with dynamic shapes (every batch has its own numbers of atoms,
edges and graphs, so one compiled graph serves them all). The compiled function is an attribute of the
model instance, not a wrapper module: parameters, ``state_dict`` keys and checkpoints are those of the
eager model, and evaluation, ``predict`` and a resumed run load them as usual (they run eagerly).

What is not: potentials. Their force loss differentiates the forces again (a double backward), which
``torch.compile`` does not support, so they train eagerly and the run says so in one line.

If compiling fails (inductor on CPU needs a C++ compiler; an operation it cannot generate code for), the
run says so in one line and goes on eagerly; nothing is lost. Inductor compiles a backward pass lazily, at
the first ``backward()``, where no fallback is possible any more; so the first call with gradients
compiles the backward as well, on a probe forward that leaves no trace (no gradients accumulated; buffers
such as batch-norm statistics and the random state restored).

Measured: ``benchmarks/compile_speed.py`` (per model) and ``benchmarks/qm9_schnet_vs_pyg.py --compile``;
see the README.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

#: dynamo's notice for each graph break on a data-dependent branch (``bool(tensor)``, ``.item()``): a
#: graph break costs one more compiled region, not correctness
GRAPH_BREAK_LOGGER = "torch._dynamo.variables.tensor"


class CompiledForward:
    """``model``'s forward through ``torch.compile(dynamic=True)``, falling back to the eager forward for
    good the first time compiling its forward or its backward fails."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.eager = model.forward
        self.compiled = torch.compile(self.eager, dynamic=True)
        self.failed = False
        self.backward_compiled = False

    def __call__(self, *args, **kwargs):
        if not self.failed:
            try:
                if not self.backward_compiled and torch.is_grad_enabled():
                    self.compile_backward(*args, **kwargs)
                return self.compiled(*args, **kwargs)
            except Exception as error:  # a genuine error of the input raises again from the eager forward
                self.failed = True
                cause = root_cause(error)
                message = f"training.compile: torch.compile failed ({cause}); training goes on eagerly"
                print(message, flush=True)
                log.warning(message)
        return self.eager(*args, **kwargs)

    def compile_backward(self, *args, **kwargs) -> None:
        """A probe forward and backward: compiles both now; leaves parameters' gradients, buffers and the
        random state as they were."""
        buffers = [buffer.detach().clone() for buffer in self.model.buffers()]
        devices = sorted({p.device.index or 0 for p in self.model.parameters() if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=devices):
            out = self.compiled(*args, **kwargs)
            parameters = [p for p in self.model.parameters() if p.requires_grad]
            if torch.is_tensor(out) and out.requires_grad and parameters:
                torch.autograd.grad(out.sum(), parameters, allow_unused=True)
        with torch.no_grad():
            for buffer, saved in zip(self.model.buffers(), buffers, strict=True):
                buffer.copy_(saved)
        self.backward_compiled = True


def root_cause(error: BaseException) -> str:
    """``Type: first line`` of the innermost exception an error was raised from."""
    while (inner := getattr(error, "inner_exception", None) or error.__cause__) is not None:
        error = inner
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def compile_forward(model: nn.Module) -> CompiledForward:
    """Route ``model(...)`` through a :class:`CompiledForward` of its own forward; returns it."""
    logging.getLogger(GRAPH_BREAK_LOGGER).setLevel(logging.ERROR)
    compiled = CompiledForward(model)
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
