"""Fine-tuning: start a run from another run's weights, freeze parts of the model, give parts their own
learning rate. The config's ``init`` section::

    init:
      from: runs/qm9_schnet_homo_cpu   # a run directory, checkpoint or exported file (weights_only)
      load: encoder                    # all | encoder (everything but the model card's head)
      freeze: [embedding, interactions.0]   # parameter-name prefixes kept fixed
      lr_factors: {interactions: 0.1}  # parameter-name prefix -> multiplier of training.lr
      allow_new_elements: false        # refuse training rows with elements the source never saw
      into: null                       # copy the source into this part of the model instead (below)

``into`` names a part of the model that another kind of run can initialise (the model's ``init_parts``:
{module name: the graph the source must have been trained on}): the affinity models' ligand encoder,
a ``zoo:`` model reading molecule inputs, takes the weights of that model trained on molecules (a
MoleculeNet run), its head left out with ``load: encoder``. Freezing and learning rates still name
the parameters of the whole model (``freeze: [ligand_encoder]``).

Loading (:func:`load_initial_weights`) copies every chosen tensor by name and refuses any that is
missing or has another shape, naming them; the source must be the same model on the same graph spec
(:func:`check_source`), or, with ``into``, the same model as that part on the graph the part reads.
Freezing and learning-rate groups (:func:`freeze`, :func:`parameter_groups`) are part of the module,
so a resumed run keeps them. The source run itself is read by
:func:`atomgraph.runs.initial_weights` (the only loader of trained runs).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from atomgraph.graphs.spec import GraphSpec
from atomgraph.training.config import ConfigError

LOADS = ("all", "encoder")


@dataclass
class InitialWeights:
    """What a run starts from: the source's model name, its weights (the model's state dict), the graph
    spec it was trained on, the elements of its training rows (None: not recorded) and its model
    arguments (constants such as ``avg_num_neighbors`` that are not weights but shape the function)."""

    source: str
    model: str
    state: dict[str, torch.Tensor]
    graph: GraphSpec
    elements: list[int] | None
    arguments: dict = field(default_factory=dict)


def check_source(initial: InitialWeights, model: str, graph: GraphSpec, into: str | None = None) -> None:
    """A ConfigError when the source is another model or was trained on another graph (with ``into``,
    the part is checked once the model is built: :func:`init_part`)."""
    if into:
        return
    if initial.model != model:
        raise ConfigError(
            f"init.from {initial.source}: a {initial.model!r} model cannot initialise model.name {model!r}"
        )
    if initial.graph != graph:
        raise ConfigError(
            f"init.from {initial.source}: trained on {initial.graph.describe()}, but this run builds "
            f"{graph.describe()}; fine-tune on the source's graph (data.graph)"
        )


def check_elements(initial: InitialWeights, elements: Iterable[int], allow_new: bool) -> None:
    """A ConfigError naming the training elements the source never saw (unless ``allow_new``)."""
    from ase.data import chemical_symbols

    if initial.elements is None or allow_new:
        return
    new = sorted(set(int(z) for z in elements) - set(initial.elements))
    if new:
        names = ", ".join(chemical_symbols[z] for z in new)
        raise ConfigError(
            f"init.from {initial.source}: the training rows have elements the source never saw ({names}); "
            "their weights would start untrained. Set init.allow_new_elements: true to go on"
        )


def _under(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def init_part(model: nn.Module, initial: InitialWeights, into: str):
    """The :class:`~atomgraph.models.card.ModelPart` ``into`` of ``model`` and its module, checked to be
    the source's model class, trained on the graph the part reads, with the same settings."""
    from atomgraph.models import model_class

    parts = getattr(model, "init_parts", {})
    if into not in parts:
        raise ConfigError(
            f"init.into: {type(model).__name__} has no part {into!r} that another run can initialise "
            f"(it has: {sorted(parts) or 'none'})"
        )
    part, module = parts[into], model.get_submodule(into)
    source_class = model_class(initial.model)
    if type(module) is not source_class:
        raise ConfigError(
            f"init.from {initial.source}: a {initial.model!r} model cannot initialise {into} "
            f"({type(module).__name__})"
        )
    if replace(initial.graph, cutoff=part.graph.cutoff) != part.graph:  # bond graphs without RBFs
        raise ConfigError(
            f"init.from {initial.source}: trained on {initial.graph.describe()}, but {into} reads "
            f"{part.graph.describe()}"
        )
    defaults = {
        name: p.default
        for name, p in inspect.signature(source_class).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    source, wanted = {**defaults, **initial.arguments}, {**defaults, **part.arguments}
    differ = [k for k in defaults if k not in part.free and source[k] != wanted[k]]
    if differ:
        details = ", ".join(f"{k} {source[k]!r} -> {wanted[k]!r}" for k in differ)
        raise ConfigError(
            f"init.from {initial.source}: its {initial.model!r} is built otherwise than {into}: {details}"
        )
    return part, module


def load_initial_weights(
    model: nn.Module, initial: InitialWeights, load: str, head: Sequence[str]
) -> list[str]:
    """Copy the source weights into ``model`` (a whole model, or the module of a part from
    :func:`init_part`): every tensor (``all``) or all but those under the ``head`` prefixes (``encoder``).
    Returns the names loaded; refuses, naming them, tensors the source lacks or holds with another shape."""
    if load not in LOADS:
        raise ConfigError(f"init.load must be one of {LOADS}, got {load!r}")
    target = model.state_dict()
    chosen = [k for k in target if load == "all" or not _under(k, head)]
    missing = [k for k in chosen if k not in initial.state]
    shape = [k for k in chosen if k in initial.state and initial.state[k].shape != target[k].shape]
    if missing or shape:
        hint = "; init.load: encoder leaves the head out (new targets)" if load == "all" else ""
        details = [*(f"{k} (not in the source)" for k in missing[:5])]
        details += [f"{k} {tuple(initial.state[k].shape)} -> {tuple(target[k].shape)}" for k in shape[:5]]
        raise ConfigError(
            f"init.from {initial.source}: {len(missing) + len(shape)} tensors do not fit: "
            f"{', '.join(details)}{hint}"
        )
    model.load_state_dict({k: initial.state[k] for k in chosen}, strict=False)
    return chosen


def freeze(model: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """Stop gradients of the parameters under ``prefixes``; returns their names. A prefix that matches
    no parameter is an error naming the model's top-level modules."""
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(_under(name, [prefix]) for name in names):
            tops = sorted({name.split(".")[0] for name in names})
            raise ConfigError(f"init.freeze: {prefix!r} matches no parameter; the model has {tops}")
    frozen = []
    for name, parameter in model.named_parameters():
        if _under(name, prefixes):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def parameter_groups(model: nn.Module, lr: float, lr_factors: Mapping[str, float]) -> list[dict]:
    """Optimiser groups of the trainable parameters: one per prefix of ``lr_factors`` (the first that
    matches; lr = ``lr`` x factor) and one for the rest. Each group carries its ``lr_factor``."""
    for prefix, factor in lr_factors.items():
        if not float(factor) > 0:
            raise ConfigError(f"init.lr_factors.{prefix}: a factor must be positive, got {factor!r}")
    groups: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in lr_factors}
    rest: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        prefix = next((p for p in lr_factors if _under(name, [p])), None)
        (groups[prefix] if prefix is not None else rest).append(parameter)
    empty = [prefix for prefix, params in groups.items() if not params]
    if empty:
        raise ConfigError(f"init.lr_factors: {empty} match no trainable parameter")
    out = [{"params": params, "lr": lr * float(lr_factors[p]), "lr_factor": float(lr_factors[p])}
           for p, params in groups.items()]  # fmt: skip
    if rest:
        out.append({"params": rest, "lr": lr, "lr_factor": 1.0})
    return out
