"""Building blocks of the protein-ligand affinity models: node-set views of a complex graph and
pluggable molecular encoders that map a (sub)graph to node states.

Views (:class:`NodeSet`) cut one part out of a :class:`~atomgraph.apps.complexes.graph.ComplexData` batch:
:func:`ligand_view` (ligand atoms, ligand bonds), :func:`protein_view` (pocket atoms and protein edges,
or the residue graph) and :func:`full_view` (the whole interaction graph).

Encoders (:func:`build_encoder`) map a view to node states ``[n, out_dim]`` using node features, edge
features and Gaussian RBFs of the edge lengths (so they are invariant to rotations and translations):

* ``"mpnn"``: :class:`MPNNEncoder`, an edge-aware message passing network of this module (default);
* ``"gine"`` / ``"gatv2"``: PyG's GINEConv / GATv2Conv layers with residual connections and LayerNorm;
* ``"zoo:<name>"``: a registered atomgraph model exposing ``node_states(graph)`` and ``jump(states)``
  (the ConvStack models: ``zoo:gcn``, ``zoo:gat``, ``zoo:gatv2``, ``zoo:graphsage``), built with
  ``atom_dim``/``edge_dim``/``hidden``/``layers`` and run on the view as a bonded graph.

Ligand inputs (the models' ``ligand_inputs``): ``"complex"`` gives the ligand encoder the complex
layout (:data:`~atomgraph.apps.complexes.features.ATOM_LAYOUT`, every edge column and distance RBFs);
``"molecule"`` gives it only the columns atomgraph's molecule graphs have (:data:`MOLECULE_GRAPH`: the
standard atom features and the bond features, no distances), so a model trained on molecules (a
MoleculeNet run) can initialise it (``init.into``; :func:`ligand_encoder_parts`). Only heavy-atom ligands
(``data.complex.hydrogens: none``) can be read this way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GATv2Conv, GINEConv

from atomgraph.apps.complexes.features import ATOM_LAYOUT, EDGE_LAYOUT, EDGE_TYPE_INDEX
from atomgraph.apps.complexes.graph import ComplexGraphSettings
from atomgraph.features import DEFAULT_ATOM_FEATURIZER, DEFAULT_BOND_FEATURIZER, GaussianRBF
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.spec import GraphSpec, preset
from atomgraph.models.card import ModelPart
from atomgraph.nn.mlp import MLP
from atomgraph.nn.scatter import scatter_sum

LIGAND_INPUTS = ("complex", "molecule")
MOLECULE_GRAPH = preset("bond_heavy_atoms")
"""The molecule graphs whose inputs a ligand encoder reads with ``ligand_inputs="molecule"``: heavy atoms,
the standard atom features, the bond features, no distance features."""
LIGAND_EDGE_TYPES = (EDGE_TYPE_INDEX["ligand_bond"],)
PROTEIN_EDGE_TYPES = (EDGE_TYPE_INDEX["protein_bond"], EDGE_TYPE_INDEX["protein_contact"])
PROTEIN_LEVELS = ("atom", "residue")


def radial_stops(graph: GraphSpec | None = None) -> dict[str, float]:
    """Upper ends (Å) of the Gaussian distance features of each part of a complex graph, read from its
    spec (None: the ``complex`` defaults).

    ``ligand``: the bonded ligand graph (bonds < 2 Å); ``pocket``: the pocket atom graph (bonds, or
    pairs within ``protein_edge_cutoff``); ``residue``: Cα pairs within ``residue_cutoff``;
    ``interaction``: the joint graph, whose longest edges are ligand-pocket pairs within ``cutoff``;
    ``cross``: the cross-attention's ligand-pocket pairs (pocket nodes within ``pocket_radius`` of some
    ligand atom, so up to ~``pocket_radius`` + 4 Å from the others). Each grid keeps the end the models
    were measured with (8 / 8 / 12 / 8 / 12 Å) and grows with any setting that allows longer edges, so
    no edge length falls beyond its grid.
    """
    settings = {**asdict(ComplexGraphSettings()), **(graph.options if graph is not None else {})}
    cutoff = graph.cutoff if graph is not None and graph.cutoff is not None else settings["cutoff"]
    return {
        "ligand": 8.0,
        "pocket": max(8.0, float(settings["protein_edge_cutoff"])),
        "residue": max(12.0, float(settings["residue_cutoff"])),
        "interaction": max(8.0, float(cutoff)),
        "cross": max(12.0, float(settings["pocket_radius"]) + 4.0),
    }


@dataclass
class NodeSet:
    """Nodes and edges of one part of a batch of complexes.

    x [n, F]; pos [n, 3] Å; edge_index [2, e] (local numbering, row 0 source, row 1 target);
    edge_attr [e, F_e] or None; edge_type [e] or None; batch [n] graph of each node; num_graphs B;
    index [n]: each node's index in the full graph (None for residue nodes).
    """

    x: torch.Tensor
    pos: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor | None
    edge_type: torch.Tensor | None
    batch: torch.Tensor
    num_graphs: int
    index: torch.Tensor | None = None

    def edge_lengths(self) -> torch.Tensor:
        """[e] Å."""
        j, i = self.edge_index
        return torch.linalg.vector_norm(self.pos[j] - self.pos[i], dim=-1)


def _subgraph(graph: Data, nodes: torch.Tensor, edge_types: tuple[int, ...] | None) -> NodeSet:
    batch, num_graphs = batch_vector(graph)
    mask = torch.zeros(graph.num_nodes, dtype=torch.bool, device=graph.x.device)
    mask[nodes] = True
    keep = mask[graph.edge_index].all(dim=0)
    if edge_types is not None:
        keep &= torch.isin(graph.edge_type, torch.tensor(edge_types, device=graph.edge_type.device))
    new = torch.cumsum(mask.long(), 0) - 1
    return NodeSet(
        x=graph.x[nodes],
        pos=graph.pos[nodes],
        edge_index=new[graph.edge_index[:, keep]],
        edge_attr=graph.edge_attr[keep],
        edge_type=graph.edge_type[keep],
        batch=batch[nodes],
        num_graphs=num_graphs,
        index=nodes,
    )


def ligand_view(graph: Data, inputs: str = "complex") -> NodeSet:
    """Ligand atoms with the ligand bonds; ``inputs="molecule"`` keeps only the columns of
    :data:`MOLECULE_GRAPH` (the ligand's atom features and the bond features)."""
    view = _subgraph(graph, torch.nonzero(graph.node_role == 0).view(-1), LIGAND_EDGE_TYPES)
    if inputs == "complex":
        return view
    if inputs != "molecule":
        raise ValueError(f"ligand_inputs must be one of {LIGAND_INPUTS}, got {inputs!r}")
    atoms, bonds = ATOM_LAYOUT.slices["ligand"], EDGE_LAYOUT.slices["bond"]
    return replace(view, x=view.x[:, atoms], edge_attr=view.edge_attr[:, bonds])


def ligand_encoder(
    kind: str,
    atom_dim: int,
    edge_dim: int,
    inputs: str = "complex",
    graph: GraphSpec | None = None,
    **options,
) -> nn.Module:
    """The ligand's encoder (:func:`build_encoder`) for ``inputs`` "complex" (``atom_dim``/``edge_dim``
    columns and distance RBFs) or "molecule" (the :data:`MOLECULE_GRAPH` columns, no distances; only on
    complex graphs whose ligands are heavy atoms, ``graph``'s ``hydrogens: none``)."""
    if inputs not in LIGAND_INPUTS:
        raise ValueError(f"ligand_inputs must be one of {LIGAND_INPUTS}, got {inputs!r}")
    if inputs == "molecule":
        hydrogens = (graph.options if graph is not None else {}).get("hydrogens", "none")
        if hydrogens != "none":
            raise ValueError(
                f"ligand_inputs 'molecule' reads heavy-atom ligands, as molecule graphs hold them; this "
                f"complex graph has hydrogens {hydrogens!r} as nodes (set data.complex.hydrogens: none)"
            )
        atom_dim, edge_dim = DEFAULT_ATOM_FEATURIZER.layout.dim, DEFAULT_BOND_FEATURIZER.layout.dim
        options = {**options, "use_distance": False}
    return build_encoder(kind, atom_dim, edge_dim, **options)


ENCODER_FREE_ARGUMENTS = (
    "atom_dim", "edge_dim", "reductions", "dropout", "attention_dropout", "neighbor_samples", "pool",
    "set2set_steps",
)  # fmt: skip
"""Arguments of a ``zoo:`` encoder's model that may differ from the run it is initialised from: the input
widths (the weights' shapes check them), what acts only in training (dropouts, GraphSAGE's neighbour
sampling), and the readout and head an encoder never runs."""


def ligand_encoder_parts(name: str, encoder: nn.Module, inputs: str) -> dict[str, ModelPart]:
    """The parts of a model that a molecule model can initialise (``init.into``; a model's
    ``init_parts``): its ligand encoder ``name``'s registered model when it is a ``zoo:`` encoder reading
    molecule inputs, else none."""
    if inputs != "molecule" or not isinstance(encoder, ZooEncoder):
        return {}
    return {
        f"{name}.model": ModelPart(MOLECULE_GRAPH, encoder.arguments, ENCODER_FREE_ARGUMENTS, node_role=0)
    }


def protein_view(graph: Data, level: str = "atom") -> NodeSet:
    """Pocket atoms with protein edges (``level="atom"``) or the residue graph (``"residue"``)."""
    if level == "atom":
        return _subgraph(graph, torch.nonzero(graph.node_role == 1).view(-1), PROTEIN_EDGE_TYPES)
    if level != "residue":
        raise ValueError(f"protein level must be one of {PROTEIN_LEVELS}, got {level!r}")
    _, num_graphs = batch_vector(graph)
    n_res = graph.res_x.shape[0]
    if graph.res_edge_index.numel() and int(graph.res_edge_index.max()) >= n_res:
        raise ValueError(
            "res_edge_index points past the residue nodes: the batch was collated as a plain Data; "
            "keep the samples as ComplexData (ComplexDataset.load_file restores the class)"
        )
    return NodeSet(
        x=graph.res_x,
        pos=graph.res_pos,
        edge_index=graph.res_edge_index,
        edge_attr=None,
        edge_type=None,
        batch=graph.res_batch,
        num_graphs=num_graphs,
    )


def full_view(graph: Data) -> NodeSet:
    """Every node and edge of the interaction graph."""
    batch, num_graphs = batch_vector(graph)
    return NodeSet(
        graph.x,
        graph.pos,
        graph.edge_index,
        graph.edge_attr,
        graph.edge_type,
        batch,
        num_graphs,
        torch.arange(graph.num_nodes, device=graph.x.device),
    )


class EdgeInputs(nn.Module):
    """Edge inputs of a view: ``[edge_attr, RBF(length)]`` (a column of ones when both are absent)."""

    def __init__(self, edge_dim: int, num_rbf: int = 16, rbf_stop: float = 8.0, use_distance: bool = True):
        super().__init__()
        self.rbf = GaussianRBF(0.0, rbf_stop, num_rbf) if use_distance and num_rbf > 0 else None
        self.edge_dim = edge_dim
        self.out_dim = max(edge_dim + (num_rbf if self.rbf is not None else 0), 1)

    def forward(self, view: NodeSet) -> torch.Tensor:
        parts = []
        if self.edge_dim and view.edge_attr is not None:
            parts.append(view.edge_attr)
        if self.rbf is not None:
            parts.append(self.rbf(view.edge_lengths()))
        if not parts:
            return view.x.new_ones((view.edge_index.shape[1], 1))
        return torch.cat(parts, dim=-1)


class EdgeMPNNLayer(nn.Module):
    """h_i <- LayerNorm(h_i + U([h_i, sum_j M([h_i, h_j, e_ij])])): [n, d] -> [n, d]."""

    def __init__(self, hidden: int, edge_hidden: int, dropout: float = 0.0):
        super().__init__()
        self.message = MLP([2 * hidden + edge_hidden, hidden, hidden], act="silu")
        self.update = MLP([2 * hidden, hidden, hidden], act="silu", dropout=dropout)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        j, i = edge_index
        messages = self.message(torch.cat([h[i], h[j], e], dim=-1))
        aggregated = scatter_sum(messages, i, h.shape[0])
        return self.norm(h + self.update(torch.cat([h, aggregated], dim=-1)))


class MPNNEncoder(nn.Module):
    """Edge-aware message passing: embed nodes and edges (features + distance RBFs), L layers."""

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        hidden: int = 64,
        layers: int = 3,
        num_rbf: int = 16,
        rbf_stop: float = 8.0,
        use_distance: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.edge_inputs = EdgeInputs(edge_dim, num_rbf, rbf_stop, use_distance)
        self.embed = nn.Linear(node_dim, hidden)
        self.embed_edges = MLP([self.edge_inputs.out_dim, hidden, hidden], act="silu")
        self.layers = nn.ModuleList(EdgeMPNNLayer(hidden, hidden, dropout) for _ in range(layers))
        self.out_dim = hidden

    def forward(self, view: NodeSet) -> torch.Tensor:
        h = self.embed(view.x)
        e = self.embed_edges(self.edge_inputs(view))
        for layer in self.layers:
            h = layer(h, view.edge_index, e)
        return h


class PygConvEncoder(nn.Module):
    """GINEConv or GATv2Conv layers with edge features (+ RBFs), residual connections and LayerNorm."""

    def __init__(
        self,
        kind: str,
        node_dim: int,
        edge_dim: int,
        hidden: int = 64,
        layers: int = 3,
        num_rbf: int = 16,
        rbf_stop: float = 8.0,
        use_distance: bool = True,
        dropout: float = 0.0,
        heads: int = 4,
    ):
        super().__init__()
        self.edge_inputs = EdgeInputs(edge_dim, num_rbf, rbf_stop, use_distance)
        self.embed = nn.Linear(node_dim, hidden)
        self.embed_edges = MLP([self.edge_inputs.out_dim, hidden], act="silu")
        if kind == "gine":
            convs = [
                GINEConv(MLP([hidden, hidden, hidden], act="silu"), edge_dim=hidden) for _ in range(layers)
            ]
        elif kind == "gatv2":
            if hidden % heads:
                raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
            convs = [GATv2Conv(hidden, hidden // heads, heads=heads, edge_dim=hidden) for _ in range(layers)]
        else:
            raise ValueError(f"unknown PyG encoder {kind!r}")
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = hidden

    def forward(self, view: NodeSet) -> torch.Tensor:
        h = self.embed(view.x)
        e = self.embed_edges(self.edge_inputs(view))
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(h + self.dropout(torch.nn.functional.silu(conv(h, view.edge_index, e))))
        return h


class ZooEncoder(nn.Module):
    """A registered atomgraph model used as an encoder through its ``node_states``/``jump`` methods."""

    def __init__(
        self,
        name: str,
        node_dim: int,
        edge_dim: int,
        hidden: int = 64,
        layers: int = 3,
        num_rbf: int = 16,
        rbf_stop: float = 8.0,
        use_distance: bool = True,
        dropout: float = 0.0,
        **options,
    ):
        super().__init__()
        from atomgraph.models.registry import build_model

        self.arguments = {"hidden": hidden, "layers": layers, **options}  # what the model is built with
        self.edge_inputs = EdgeInputs(edge_dim, num_rbf, rbf_stop, use_distance)
        self.model = build_model(
            name,
            atom_dim=node_dim,
            edge_dim=self.edge_inputs.out_dim,
            reductions=["mean"],
            hidden=hidden,
            layers=layers,
            dropout=dropout,
            **options,
        )
        if not (hasattr(self.model, "node_states") and hasattr(self.model, "jump")):
            raise ValueError(f"model {name!r} has no node_states()/jump(); it cannot serve as an encoder")
        probe = self.model.jump(
            self.model.node_states(
                Data(
                    x=torch.zeros(2, node_dim),
                    edge_index=torch.tensor([[0, 1], [1, 0]]),
                    edge_attr=torch.zeros(2, self.edge_inputs.out_dim),
                )
            )
        )
        self.out_dim = int(probe.shape[-1])

    def forward(self, view: NodeSet) -> torch.Tensor:
        data = Data(x=view.x, edge_index=view.edge_index, edge_attr=self.edge_inputs(view), pos=view.pos)
        return self.model.jump(self.model.node_states(data))


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "mpnn": MPNNEncoder,
    "gine": lambda *a, **k: PygConvEncoder("gine", *a, **k),
    "gatv2": lambda *a, **k: PygConvEncoder("gatv2", *a, **k),
}


def build_encoder(kind: str, node_dim: int, edge_dim: int, **options) -> nn.Module:
    """An encoder ``NodeSet -> [n, out_dim]`` by name (see the module docstring); options: hidden, layers,
    num_rbf, rbf_stop, use_distance, dropout (and ``heads`` for gatv2 / the zoo model's own arguments)."""
    if kind.startswith("zoo:"):
        return ZooEncoder(kind[4:], node_dim, edge_dim, **options)
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder {kind!r}; choose from {sorted(ENCODERS)} or 'zoo:<model name>'")
    if kind == "mpnn":
        options.pop("heads", None)
    return ENCODERS[kind](node_dim, edge_dim, **options)


def with_edge_attr(view: NodeSet, edge_attr: torch.Tensor) -> NodeSet:
    """The view with other edge features."""
    return replace(view, edge_attr=edge_attr)
