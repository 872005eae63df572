"""``training.compile: true``: a property model's forward runs through ``torch.compile`` while it trains.

What is compiled: the model's ``forward``, with dynamic shapes (every batch has its own numbers of atoms,
edges and graphs, so one compiled graph serves them all), in training and in the validation passes of
``fit``. The compiled function is an attribute of the model instance, not a wrapper module: parameters,
``state_dict`` keys and checkpoints are those of the eager model; ``evaluate`` and ``predict`` load them
into an eager model, and a resumed run compiles again (or not: ``training.compile`` does not change what
is trained, so a run may be resumed with it switched).

What is not: potentials. Their force loss differentiates the forces again (a double backward), which
``torch.compile`` does not support, so they train eagerly and the run says so in one line.

If compiling fails (inductor on CPU needs a C++ compiler; an operation it cannot generate code for;
dynamo's recompile limit), the run says so in one line and goes on eagerly; nothing is lost. AOTAutograd
compiles each backward pass together with its forward (``force_non_lazy_backward_lowering``) instead of
at the first ``backward()``, so a failing backward also fails inside the forward call, where the
fallback is. An error that the eager forward raises as well (bad input) is raised, not blamed on the
compiler.

A compiled forward takes all edges at once (:func:`atomgraph.nn.edge_chunks.edge_chunk`), not in
cache-sized chunks: on a CPU, batches with very many edges can run slower compiled than eagerly.

Measured: ``benchmarks/compile_speed.py`` (per model: 1.02-1.46x on QM9 batches),
``benchmarks/qm9_schnet_vs_pyg.py --compile`` and ``benchmarks/peers/run.py --compile`` (potentials'
inference and MD, where it does not pay on a CPU); see the README.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from atomgraph.graphs.geometry import any_periodic, periodic_images

log = logging.getLogger(__name__)

#: dynamo's notice for each graph break on a data-dependent branch (``bool(tensor)``, ``.item()``): a
#: graph break costs one more compiled region, not correctness
GRAPH_BREAK_LOGGER = "torch._dynamo.variables.tensor"


class CompiledForward:
    """``model``'s forward through ``torch.compile(dynamic=True)``, falling back to the eager forward for
    good the first time compiling fails. ``notify`` receives the one line saying so (default: the
    module's logger). Copies (``copy.deepcopy``, pickle) compile the copied model's own forward."""

    def __init__(self, model: nn.Module, notify: Callable[[str], None] | None = None) -> None:
        self.model = model
        self.notify = notify or log.warning
        self.eager = types.MethodType(type(model).forward, model)  # the class's forward, bound
        self.compiled = torch.compile(self.eager, dynamic=True)
        self.failed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return self.eager(*args, **kwargs)
        try:
            with (
                torch._functorch.config.patch(force_non_lazy_backward_lowering=True),
                torch._dynamo.config.patch(fail_on_recompile_limit_hit=True),
                periodic_images(any_periodic(args[0] if args else None, sync=False)),
            ):
                return self.compiled(*args, **kwargs)
        except Exception as error:
            out = self.eager(*args, **kwargs)  # raises if the input itself is at fault
            self.failed = True
            message = f"torch.compile failed ({root_cause(error)}); the model goes on eagerly"
            self.notify(message)
            return out

    def __reduce__(self) -> tuple:
        return CompiledForward, (self.model,), {"failed": self.failed}


def root_cause(error: BaseException) -> str:
    """``Type: first line`` of the innermost exception an error was raised from."""
    while (inner := getattr(error, "inner_exception", None) or error.__cause__) is not None:
        error = inner
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def compile_forward(model: nn.Module, notify: Callable[[str], None] | None = None) -> CompiledForward:
    """Route ``model(...)`` through a :class:`CompiledForward` of its own forward; returns it. Clears
    dynamo's caches first: each model (a search's trials, one after another) starts below the
    recompile limit."""
    torch._dynamo.reset()
    logging.getLogger(GRAPH_BREAK_LOGGER).setLevel(logging.ERROR)
    compiled = CompiledForward(model, notify)
    model.forward = compiled  # an instance attribute: nn.Module.__call__ finds it before the class's
    return compiled


def eager_forward(model: nn.Module) -> None:
    """Undo :func:`compile_forward` (nothing to undo is fine)."""
    if isinstance(model.__dict__.get("forward"), CompiledForward):
        del model.forward


def compile_for_training(model: nn.Module, kind: str, notify: Callable[[str], None]) -> None:
    """Apply ``training.compile`` to the model of a task of ``kind`` (``property`` or ``potential``);
    ``notify`` gets one line saying what was done (and, later, one if compiling fails)."""
    if kind == "potential":
        notify(
            "training.compile: not applied -- a potential's force loss needs a double backward, "
            "which torch.compile does not support; training eagerly"
        )
        return
    compile_forward(model, notify)
    notify("training.compile: the model's forward runs through torch.compile (dynamic shapes)")
