"""ModelCard: what a registered model needs and promises, checked before any data is read.

Every model of the registry carries a card (:func:`~atomgraph.models.registry.register_model`):

* ``graph_kind``: the graph it reads (``radius``, ``bond``, ``complex`` or ``sequence``) and
  ``default_graph``, the preset used when a config names none;
* ``inputs``: the graph fields it reads (``z``, ``pos``, ``x``, ``edge_attr``, ``cell``, ...);
* ``depth_arg``: the constructor argument that sets the number of message-passing layers (what an
  ablation over depth changes);
* potential capability: ``reads_positions`` (its output depends on atomic positions through
  differentiable edge vectors), ``smooth`` (edge contributions vanish smoothly at the cutoff, so the
  energy is continuous when an atom crosses it) and ``conservative`` (forces are -dE/dx by autograd).
  Only a model with all three can serve as a potential, and only on a graph without a neighbour cap
  (the k-th neighbour changes discontinuously);
* ``intensive_readout``: how ``readout: auto`` reads out targets that are not sums (reduction
  ``per_atom`` or ``mean``): ``"atom_mean"`` of atomic contributions (the atom-wise models) or
  ``"pooled"`` (CGCNN, MEGNet); None for models without a per-target readout, which read every target
  out by a node pool and an MLP (:mod:`atomgraph.nn.target_readout`);
* ``head``: the submodules that map learned states to the targets (their names' prefixes): what
  fine-tuning from another run leaves out with ``init.load: encoder``.

A model instance may also name parts that a run of *another* model can initialise (``init.into``):
its ``init_parts`` attribute, {module name: :class:`ModelPart`}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from typing import Any

from atomgraph.graphs.spec import GRAPH_KINDS, GraphSpec, preset
from atomgraph.nn.target_readout import READOUTS, resolve_readouts


@dataclass(frozen=True)
class ModelCard:
    graph_kind: str
    default_graph: str
    inputs: tuple[str, ...]
    depth_arg: str | None
    reads_positions: bool = False
    smooth: bool = False
    conservative: bool = False
    intensive_readout: str | None = None
    head: tuple[str, ...] = ("head",)

    def __post_init__(self) -> None:
        if self.intensive_readout not in (None, *READOUTS):
            raise ValueError(
                f"model card: intensive_readout must be None or one of {READOUTS}, "
                f"got {self.intensive_readout!r}"
            )
        if self.graph_kind not in GRAPH_KINDS:
            raise ValueError(f"model card: graph_kind must be one of {GRAPH_KINDS}, got {self.graph_kind!r}")
        if preset(self.default_graph).kind != self.graph_kind:
            raise ValueError(
                f"model card: default graph preset {self.default_graph!r} is not a {self.graph_kind} graph"
            )

    @classmethod
    def interatomic(cls, depth_arg: str, **extra) -> ModelCard:
        """The card of a model that can serve as a potential: radius graphs (preset ``molecule``) of
        ``z``, ``pos`` and ``cell``, smooth and conservative, intensive targets as atomic means."""
        settings = {
            "reads_positions": True,
            "smooth": True,
            "conservative": True,
            "intensive_readout": "atom_mean",
        }
        return cls("radius", "molecule", ("z", "pos", "cell"), depth_arg, **{**settings, **extra})

    @property
    def potential(self) -> bool:
        """Whether the model can serve as an interatomic potential (energy, forces, stress)."""
        return self.reads_positions and self.smooth and self.conservative

    def check_graph(self, spec: GraphSpec, model: str) -> None:
        """A ValueError when ``spec`` is not the kind of graph the model reads."""
        if spec.kind != self.graph_kind:
            raise ValueError(
                f"model {model!r} reads {self.graph_kind} graphs, but data.graph is a {spec.kind} graph "
                f"({spec.describe()}); use a {self.graph_kind} graph such as preset {self.default_graph!r}"
            )
        for key, field in (("site_features", "site_attr"), ("state_features", "state")):
            if getattr(spec, key) and field not in self.inputs:
                from atomgraph.models.registry import available_models, model_card  # the cards' owner

                readers = [name for name in available_models() if field in model_card(name).inputs]
                raise ValueError(
                    f"model {model!r} does not read data.graph.{key} {list(getattr(spec, key))} "
                    f"(graph.{field}); {', '.join(readers)} do, or leave them out"
                )

    def check_potential(self, spec: GraphSpec, model: str) -> None:
        """A ValueError naming what is missing when the model cannot be a potential on ``spec``."""
        missing = [
            text
            for ok, text in (
                (self.reads_positions, "does not read atomic positions (its forces would be zero)"),
                (self.smooth, "is not smooth at the cutoff (energies jump as atoms cross it)"),
                (self.conservative, "has no conservative forces"),
            )
            if not ok
        ]
        if missing:
            raise ValueError(
                f"model {model!r} cannot be a potential (task.kind: potential): it " + "; ".join(missing)
            )
        if spec.site_features or spec.state_features:
            raise ValueError(
                f"model {model!r} as a potential cannot read data.graph.site_features/state_features: "
                "they are computed once from the structure, so forces would not see them; leave them out"
            )
        if spec.max_neighbors is not None:
            raise ValueError(
                f"model {model!r} as a potential needs a graph without a neighbour cap: "
                f"data.graph.max_neighbors={spec.max_neighbors} makes the energy jump when the k-th "
                "neighbour changes; set it to null"
            )

    def target_readouts(self, readout: str | Sequence[str], reductions: Sequence[str]) -> list[str]:
        """The readout of each target (:func:`~atomgraph.nn.target_readout.resolve_readouts`) for the
        model's ``readout`` argument; every target ``"pooled"`` for models without one."""
        if self.intensive_readout is None:
            if "node" in reductions:
                raise ValueError(
                    "this model pools its atoms into one vector per graph and predicts no per-atom "
                    "values; node-level targets need a model with atom-wise outputs (SchNet or PaiNN, "
                    "for example: every model whose readout is chosen per target)"
                )
            return ["pooled"] * len(reductions)
        return resolve_readouts(readout, reductions, self.intensive_readout)

    def to_dict(self) -> dict:
        return {**asdict(self), "potential": self.potential}


@dataclass(frozen=True)
class ModelPart:
    """A part of a model that a trained run of the part's own model class can initialise (``init.into``).

    graph: the graph the source run must have been trained on (what the part reads).
    arguments: the part's constructor arguments; the source run's must agree on every argument of that
        class except those in ``free`` (so settings that shape no tensor, a norm or an activation, agree too).
    free: arguments that may differ (input widths, checked by the weights' shapes; dropout; what the
        part never runs, such as a readout and head).
    node_role: the ``node_role`` of the nodes the part reads (None: every node): the elements the
        source must have seen are those of these nodes.
    """

    graph: GraphSpec
    arguments: Mapping[str, Any] = dataclass_field(default_factory=dict)
    free: tuple[str, ...] = ()
    node_role: int | None = None
