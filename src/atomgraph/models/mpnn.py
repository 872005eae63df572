"""Gilmer et al. (2017) message passing neural networks: the family of seed 003, not one point.

m_v^{t+1} = sum_w M(h_v^t, h_w^t, e_vw)   message function M (``message``, :mod:`atomgraph.nn.messages`):
                                           "matrix" A_{type(e)} h_w (GG-NN), "edge_network" A(e) h_w
                                           (enn, the paper's best), "pair" f(h_w, h_v, e)
h_v^{t+1} = GRU(h_v^t, m_v^{t+1})          one GRU and one M shared by all T steps (weight tying)
y = MLP(R({(h_v^T, x_v)}))                 readout R (``pool``): set2set over Lin([h^T, x]) (M steps),
                                           GG-NN's sum_v sigmoid(i([h_v^T, x_v])) * j(h_v^T) ("ggnn"),
                                           or any other node pool of :data:`atomgraph.nn.POOLS`

The paper's variants, each an argument:

* ``directed``: separate message functions for the edges into v (M_in, from h_w) and out of v (M_out,
  from the other end's state), concatenated: the GRU reads a message of width 2d. A molecule's graph
  holds every bond in both directions with the same features, so both channels see the same
  neighbours: as in the paper, direction only unties the weights (a second message function).
* ``towers`` = k: the state splits into k towers of width d/k, each with its own message function and
  GRU; after every step a network g shared by all atoms mixes the towers (d -> d). The edge network's
  matrices shrink from d^2 to k (d/k)^2 numbers per edge.
* ``master_dim``: a latent master node per molecule of its own width and GRU, joined to every atom by a
  special edge type (it sends Lin(g) to every atom and receives sum_v Lin(h_v)); left out of the readout.
* ``input_states``: h^0 = ReLU(W x) ("linear") or x zero-padded to d ("pad", the paper's choice).
* ``distance``: the edge's distance for vector-valued message functions: "none", "raw" (one column:
  with the 5 bond-type columns the paper's "raw distance feature"), "rbf" (Gaussians over
  0..graph.cutoff) or "bins" (the paper's 10 bins as one-hot columns). For "matrix", "bins" gives each
  virtual edge its distance bin as its type (bonded edges keep their bond class): 5 + 10 edge types,
  else 5 bond classes + the virtual type.

Virtual edges (their own edge type; every non-bonded pair, or those within ``virtual_cutoff``) and
Gilmer's donor/acceptor atom features come from the graph (``GraphSpec(virtual_edges=True,
atom_features="hbond")``, preset ``gilmer_virtual``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch_geometric.data import Data

from atomgraph.features import GaussianRBF
from atomgraph.features.bond_features import NUM_BOND_TYPES
from atomgraph.features.radial import GILMER_BIN_EDGES, distance_bins
from atomgraph.graphs.fields import batch_vector
from atomgraph.graphs.geometry import edge_lengths, edge_vectors
from atomgraph.graphs.spec import GraphSpec
from atomgraph.graphs.virtual import VIRTUAL_EDGE_TYPE
from atomgraph.models.card import ModelCard
from atomgraph.models.registry import register_model
from atomgraph.nn.messages import MESSAGE_FUNCTIONS, EdgeNetworkMessage, MatrixMessage, PairMessage
from atomgraph.nn.mlp import MLP
from atomgraph.nn.readout import GraphReadout
from atomgraph.nn.scatter import scatter_sum

DISTANCE_ENCODINGS = ("none", "raw", "rbf", "bins")
INPUT_STATES = ("linear", "pad")
NUM_BINS = len(GILMER_BIN_EDGES) + 1


def _message_function(kind: str, edge_dim: int, num_types: int, towers: int, width: int, edge_hidden: int):
    if kind == "matrix":
        return MatrixMessage(num_types, towers, width)
    if kind == "edge_network":
        return EdgeNetworkMessage(edge_dim, towers, width, edge_hidden)
    return PairMessage(edge_dim, towers, width, edge_hidden)


class GGNNReadout(nn.Module):
    """Li et al.'s gated sum: ``sum_v sigmoid(i([h_v, x_v])) * j(h_v)``, ``[N, d] -> [B, d]``."""

    def __init__(self, hidden: int, atom_dim: int):
        super().__init__()
        self.out_dim = hidden
        self.gate = MLP([hidden + atom_dim, hidden, hidden], act="relu")
        self.value = MLP([hidden, hidden, hidden], act="relu")

    def forward(self, h: torch.Tensor, x: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        gated = torch.sigmoid(self.gate(torch.cat([h, x], dim=-1))) * self.value(h)
        return scatter_sum(gated, batch, num_graphs)


class MasterNode(nn.Module):
    """Gilmer's latent master node: a ``[B, master_dim]`` state with its own GRU, read and written by
    every atom of its molecule at every step."""

    def __init__(self, hidden: int, master_dim: int):
        super().__init__()
        self.master_dim = master_dim
        self.to_atoms = nn.Linear(master_dim, hidden)
        self.from_atoms = nn.Linear(hidden, master_dim)
        self.gru = nn.GRUCell(master_dim, master_dim)

    def initial(self, num_graphs: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(num_graphs, self.master_dim)

    def message(self, state: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The message every atom receives from its molecule's master node: [N, hidden]."""
        return self.to_atoms(state).index_select(0, batch)

    def update(self, state: torch.Tensor, h: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The next master state from the atoms' states ``h [N, hidden]`` (before their update)."""
        return self.gru(scatter_sum(self.from_atoms(h), batch, state.shape[0]), state)


# positions are read with distance != "none" and by the "matrix" message with distance bins
CARD = ModelCard("bond", "bond", ("x", "edge_attr", "pos"), "steps", reads_positions=True, head=("output",))


@register_model("mpnn", card=CARD)
class GilmerMPNN(nn.Module):
    """Gilmer et al.'s MPNN family on bonded (optionally virtual-edge) molecular graphs.

    Args:
        graph: the GraphSpec of the input graphs (its cutoff bounds the RBF distance features).
        atom_dim, edge_dim: widths of ``x`` and ``edge_attr`` (filled in from the data).
        reductions: the TargetSpec reduction of each target; its length is the number of outputs
            (every target is read out ``"pooled"``: :mod:`atomgraph.nn.target_readout`).
        hidden: node state width d (paper: up to 200).
        steps: message passing steps T (paper: 3-8).
        set2set_steps: M of the set2set readout (paper: 1-12).
        edge_hidden: hidden width of the edge network and of the pair message's MLP.
        message: "edge_network" (default, the paper's enn-s2s), "matrix" or "pair".
        directed: separate in/out message functions, message width 2d.
        towers: k towers of width d/k (``hidden`` must be a multiple of k).
        master_dim: width of the latent master node (0: none).
        input_states: "linear" or "pad" (needs ``hidden >= atom_dim``).
        distance: "none" (default, the chemical graph only), "raw", "rbf" or "bins"; all but "none"
            need 3D positions.
        num_rbf: Gaussians of ``distance="rbf"``.
        pool: "set2set" (paper), "ggnn" or any :data:`~atomgraph.nn.POOLS` kind (the module keeps the
            attribute name ``readout`` for it, the name its weights have in checkpoints).
    Input: a bonded graph or batch. Output: [B, len(reductions)].
    """

    def __init__(
        self,
        graph: GraphSpec,
        atom_dim: int,
        edge_dim: int,
        reductions: Sequence[str] = ("sum",),
        hidden: int = 64,
        steps: int = 3,
        set2set_steps: int = 3,
        edge_hidden: int = 128,
        message: str = "edge_network",
        directed: bool = False,
        towers: int = 1,
        master_dim: int = 0,
        input_states: str = "linear",
        distance: str = "none",
        num_rbf: int = 16,
        pool: str = "set2set",
    ):
        super().__init__()
        if distance not in DISTANCE_ENCODINGS:
            raise ValueError(f"distance must be one of {DISTANCE_ENCODINGS}, got {distance!r}")
        if message not in MESSAGE_FUNCTIONS:
            raise ValueError(f"message must be one of {MESSAGE_FUNCTIONS}, got {message!r}")
        if input_states not in INPUT_STATES:
            raise ValueError(f"input_states must be one of {INPUT_STATES}, got {input_states!r}")
        if towers < 1 or hidden % towers:
            raise ValueError(f"hidden ({hidden}) must be a positive multiple of towers ({towers})")
        if input_states == "pad" and hidden < atom_dim:
            raise ValueError(f"input_states='pad' needs hidden >= atom_dim ({hidden} < {atom_dim})")
        if master_dim < 0:
            raise ValueError(f"master_dim must be >= 0, got {master_dim}")
        self.distance, self.steps, self.towers = distance, steps, towers
        self.hidden, self.atom_dim, self.input_states = hidden, atom_dim, input_states
        self.rbf = GaussianRBF(0.0, graph.cutoff, num_rbf) if distance == "rbf" else None
        self.typed_bins = message == "matrix" and distance == "bins"
        num_types = NUM_BOND_TYPES + (NUM_BINS if self.typed_bins else 1)
        extra = {"none": 0, "raw": 1, "rbf": num_rbf, "bins": NUM_BINS}[distance]
        width = hidden // towers
        self.messages = nn.ModuleList(  # [M_in] or [M_in, M_out]
            _message_function(message, edge_dim + extra, num_types, towers, width, edge_hidden)
            for _ in range(1 + directed)
        )
        self.project_atoms = nn.Linear(atom_dim, hidden) if input_states == "linear" else None
        self.grus = nn.ModuleList(nn.GRUCell(len(self.messages) * width, width) for _ in range(towers))
        self.mix = MLP([hidden, hidden, hidden], act="relu") if towers > 1 else None
        self.master = MasterNode(hidden, master_dim) if master_dim else None
        if pool == "ggnn":
            self.readout: nn.Module = GGNNReadout(hidden, atom_dim)
        else:
            self.project_readout = nn.Linear(hidden + atom_dim, hidden)
            self.readout = GraphReadout(pool, hidden, set2set_steps=set2set_steps)
        self.output = MLP([self.readout.out_dim, hidden, len(reductions)], act="relu")
        self._register_load_state_dict_pre_hook(_rename_single_tower_weights)

    # ------------------------------------------------------------------------------------- edges

    def edge_input(self, graph: Data) -> tuple[torch.Tensor, torch.Tensor]:
        """Each edge's vector ``[E, edge_dim + extra]`` and discrete type ``[E]``."""
        edge_type = graph.edge_type
        if self.distance == "none":
            return graph.edge_attr, edge_type
        if hasattr(graph, "has_3d") and not bool(graph.has_3d.all()):
            raise ValueError(
                f"MPNN with distance={self.distance!r} needs 3D positions; use distance='none' for 2D graphs"
            )
        d = edge_lengths(edge_vectors(graph))
        if self.distance == "raw":
            encoded = d.unsqueeze(-1)
        elif self.distance == "rbf":
            encoded = self.rbf(d)
        else:
            bins = distance_bins(d)
            encoded = nn.functional.one_hot(bins, NUM_BINS).to(d.dtype)
            if self.typed_bins:
                edge_type = torch.where(edge_type == VIRTUAL_EDGE_TYPE, VIRTUAL_EDGE_TYPE + bins, edge_type)
        return torch.cat([graph.edge_attr, encoded], dim=-1), edge_type

    # ------------------------------------------------------------------------------------- steps

    def initial_states(self, x: torch.Tensor) -> torch.Tensor:
        if self.project_atoms is not None:
            return torch.relu(self.project_atoms(x))
        return nn.functional.pad(x, (0, self.hidden - self.atom_dim))

    def node_states(self, graph: Data) -> torch.Tensor:
        """The atoms' final states h^T: [N, hidden]."""
        source, target = graph.edge_index
        edge_vector, edge_type = self.edge_input(graph)
        batch, num_graphs = batch_vector(graph)
        h = self.initial_states(graph.x)
        n, k = h.shape[0], self.towers
        master = self.master.initial(num_graphs, h) if self.master is not None else None
        ends = [(source, target), (target, source)]  # M_in: w -> v into v; M_out: v -> w, from w's state
        for _ in range(self.steps):
            towers = h.view(n, k, -1)
            parts = []
            for function, (sender, receiver) in zip(self.messages, ends, strict=False):
                messages = function(towers, sender, receiver, edge_vector, edge_type)
                parts.append(scatter_sum(messages, receiver, n))
            if master is not None:
                parts[0] = parts[0] + self.master.message(master, batch).view(n, k, -1)
                master = self.master.update(master, h, batch)
            incoming = torch.cat(parts, dim=-1)  # [N, k, channels * d/k]
            h = torch.cat([gru(incoming[:, i], towers[:, i]) for i, gru in enumerate(self.grus)], dim=-1)
            if self.mix is not None:
                h = self.mix(h)
        return h

    def forward(self, graph: Data) -> torch.Tensor:
        h = self.node_states(graph)
        batch, num_graphs = batch_vector(graph)
        if isinstance(self.readout, GGNNReadout):
            pooled = self.readout(h, graph.x, batch, num_graphs)
        else:
            pooled = self.readout(self.project_readout(torch.cat([h, graph.x], dim=-1)), batch, num_graphs)
        return self.output(pooled)


def _rename_single_tower_weights(state: Mapping[str, torch.Tensor], prefix: str, *args) -> None:
    """Checkpoints from before the family (one edge network ``edge_network.matrices``, one ``gru``)
    load into the default model (``messages.0.matrices``, ``grus.0``)."""
    renames = {
        f"{prefix}edge_network.matrices.": f"{prefix}messages.0.matrices.",
        f"{prefix}gru.": f"{prefix}grus.0.",
    }
    for key in list(state):
        for old, new in renames.items():
            if key.startswith(old):
                state[new + key[len(old) :]] = state.pop(key)  # type: ignore[attr-defined]
