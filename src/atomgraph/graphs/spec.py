"""GraphSpec: the one owner of how a structure becomes a graph.

A :class:`GraphSpec` names the graph kind, *the* cutoff, the neighbour cap, hydrogens, the atom
feature set and Gilmer's virtual edges of bond graphs, and (for kinds built by an application, such
as protein-ligand complexes) that application's own settings in ``options``. Every consumer reads the
cutoff from here: the dataset builder, the models (their radial bases span ``0 .. cutoff``), the ASE
calculator, predict, explain and screening. It is stored in every checkpoint and written to the run record
exactly as built, so inference rebuilds the graph that training built.

Presets have names (:data:`PRESETS`, extended by applications through :func:`register_preset`):
``cgcnn_crystal`` is CGCNN's 12 nearest neighbours within 8 Å. A config names a preset
(``data.graph: cgcnn_crystal``), gives the fields (``data.graph: {kind: radius, cutoff: 6.0}``), or
both (``data.graph: {preset: cgcnn_crystal, cutoff: 6.0}``: the preset with one field changed).
Nothing is ever inferred by comparing a value with a default.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ase import Atoms
from rdkit import Chem
from torch_geometric.data import Data

from atomgraph.features.atom_features import ATOM_FEATURE_SETS
from atomgraph.graphs.structure_features import add_structure_features, site_feature, state_feature

GRAPH_KINDS = ("radius", "bond", "complex", "sequence")
"""radius: all pairs within ``cutoff`` over periodic images; bond: the chemical graph; complex and
sequence: protein-ligand samples built by the complexes application."""


@dataclass(frozen=True)
class GraphSpec:
    """How a structure becomes a graph (see the module docstring).

    kind: one of :data:`GRAPH_KINDS`.
    cutoff: Å. Radius graphs: every pair closer than this (over periodic images); the models' radial
        bases span 0..cutoff. Bond graphs: the range of distance features where a model uses them.
        Complex graphs: ligand-pocket pairs closer than this get an inter-molecular edge.
    max_neighbors: radius graphs: keep only the k nearest neighbours of each atom (None: all).
    explicit_hydrogens: bond graphs: hydrogens as nodes (False: heavy atoms only, as in chemprop).
    atom_features: bond graphs: the named atom feature set (:data:`ATOM_FEATURE_SETS`: "standard",
        or "hbond" with Gilmer's donor/acceptor flags).
    edge_rbf: bond graphs: append this many Gaussians of each edge's length (centres evenly over
        0..``cutoff`` Å, width their spacing) to ``edge_attr`` -- distance-aware bond features for the
        GAT, GATv2, GCN and GraphSAGE (seed 000's extension 2); needs 3D coordinates (0: none).
    virtual_edges: bond graphs: Gilmer's virtual edges, one per non-bonded atom pair (edge type
        :data:`~atomgraph.graphs.virtual.VIRTUAL_EDGE_TYPE`). (Gilmer's master node is part of the model:
        the MPNN's ``master_dim``.)
    virtual_cutoff: Å: virtual edges only for pairs closer than this (None: every pair, the paper's;
        a molecule without 3D coordinates always gets every pair).
    site_features: radius graphs: named per-site inputs computed from the structure
        (:mod:`atomgraph.graphs.structure_features`: ``coordination``; the crystals application adds
        ``oxidation_state``), concatenated into ``graph.site_attr`` [N, F] in this order.
    state_features: radius graphs: named per-structure inputs (``space_group`` from the crystals
        application), concatenated into ``graph.state`` [1, S].
    options: settings of an application's builder (complex graphs: pocket radius, residue cutoff...).
    preset: the name of the preset this spec came from (recorded, never used to decide anything).
    """

    kind: str = "radius"
    cutoff: float = 5.0
    max_neighbors: int | None = None
    explicit_hydrogens: bool = True
    atom_features: str = "standard"
    edge_rbf: int = 0
    virtual_edges: bool = False
    virtual_cutoff: float | None = None
    site_features: tuple[str, ...] = ()
    state_features: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=True)
    preset: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in GRAPH_KINDS:
            raise ValueError(f"data.graph.kind must be one of {GRAPH_KINDS}, got {self.kind!r}")
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, int | float) or not self.cutoff > 0:
            raise ValueError(f"data.graph.cutoff must be a positive number of Å, got {self.cutoff!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))
        if self.max_neighbors is not None and (
            isinstance(self.max_neighbors, bool)
            or not isinstance(self.max_neighbors, int)
            or self.max_neighbors < 1
        ):
            raise ValueError(
                f"data.graph.max_neighbors must be a positive integer or null, got {self.max_neighbors!r}"
            )
        if self.virtual_cutoff is not None and (not self.virtual_edges or not self.virtual_cutoff > 0):
            raise ValueError(
                f"data.graph.virtual_cutoff must be a positive number of Å with virtual_edges: true, "
                f"got {self.virtual_cutoff!r}"
            )
        if self.kind != "bond" and (self.virtual_edges or self.atom_features != "standard" or self.edge_rbf):
            raise ValueError("data.graph.virtual_edges, atom_features and edge_rbf apply to bond graphs only")
        if (
            isinstance(self.edge_rbf, bool)
            or not isinstance(self.edge_rbf, int)
            or self.edge_rbf == 1
            or self.edge_rbf < 0
        ):
            raise ValueError(
                f"data.graph.edge_rbf must be 0 or a count of Gaussians >= 2, got {self.edge_rbf!r}"
            )
        if self.atom_features not in ATOM_FEATURE_SETS:
            raise ValueError(
                f"data.graph.atom_features must be one of {sorted(ATOM_FEATURE_SETS)}, "
                f"got {self.atom_features!r}"
            )
        if self.kind != "radius" and self.max_neighbors is not None:
            raise ValueError("data.graph.max_neighbors applies to radius graphs only")
        object.__setattr__(self, "options", dict(self.options))
        for key in ("site_features", "state_features"):
            names = getattr(self, key) or ()
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"data.graph.{key} must be a list of feature names, got {names!r}")
            names = tuple(names)
            if len(set(names)) != len(names):
                raise ValueError(f"data.graph.{key} names a feature twice: {list(names)}")
            if names and self.kind != "radius":
                raise ValueError(
                    f"data.graph.{key} apply to radius graphs only (this is a {self.kind} graph)"
                )
            lookup = site_feature if key == "site_features" else state_feature
            for name in names:  # an unknown name, or a missing package, is an error naming it
                lookup(name).check_available()
            object.__setattr__(self, key, names)

    @property
    def site_width(self) -> int:
        """Columns of ``graph.site_attr`` (0 without site features)."""
        return sum(site_feature(name).width for name in self.site_features)

    @property
    def element_site_columns(self) -> list[int]:
        """The columns of ``graph.site_attr`` that describe a site's element (they move with it when
        the shortcut diagnostic scrambles elements)."""
        columns, start = [], 0
        for name in self.site_features:
            feature = site_feature(name)
            if feature.per_element:
                columns += range(start, start + feature.width)
            start += feature.width
        return columns

    @property
    def state_width(self) -> int:
        """Columns of ``graph.state`` (0 without state features)."""
        return sum(state_feature(name).width for name in self.state_features)

    # ------------------------------------------------------------------------------------ building

    def build(self, atoms: Atoms) -> Data:
        """The graph of one structure (``atoms.info["rdkit_mol"]`` is used for bond graphs)."""
        builder = _BUILDERS.get(self.kind)
        if builder is None:
            raise ValueError(
                f"graphs of kind {self.kind!r} are built by their application from its own samples, "
                "not from a single structure"
            )
        graph = builder(self, atoms)
        if self.site_features or self.state_features:
            add_structure_features(graph, atoms, self.site_features, self.state_features)
        return graph

    def structure_from_smiles(self, smiles: str) -> Atoms:
        """The structure this spec's graph of a SMILES is built from: one 3D conformer for radius graphs;
        for bond graphs no 2D drawing (their ``pos`` is zero without a 3D conformer) and, for heavy-atom
        graphs, the hydrogens left implicit (they would be removed again). Raises StructureError."""
        from atomgraph.structures import from_smiles

        hydrogens = self.kind != "bond" or self.explicit_hydrogens
        return from_smiles(smiles, embed_3d=self.kind == "radius", depict=False, hydrogens=hydrogens)

    def graph_from_smiles(self, smiles: str) -> Data:
        """The graph of a SMILES, equal to ``build(structure_from_smiles(smiles))``; bond graphs are
        built straight from the RDKit molecule, without the ``ase.Atoms`` in between (prediction's
        fast path). Raises StructureError."""
        if self.kind != "bond":
            return self.build(self.structure_from_smiles(smiles))
        from atomgraph.structures.smiles import parse_smiles

        return _bond_graph_of(self, parse_smiles(smiles, hydrogens=self.explicit_hydrogens), sanitised=True)

    def graphs_from_smiles(self, smiles: Sequence[str]) -> list[Data | Exception]:
        """:meth:`graph_from_smiles` of many SMILES, in order: each entry the graph, or the error that
        SMILES raised (StructureError, or the ValueError/RuntimeError/KeyError of a failed
        featurisation). Bond graphs are prediction's fast path: each SMILES is parsed and read whole, then
        let go, and the graphs of all of them are featurised together
        (:class:`~atomgraph.graphs.bond_graph.BondGraphBuilder`); a molecule that cannot be read gets
        its error and costs no other. The graphs' tensors are views into tensors the chunk shares:
        clone a graph before storing it on its own."""
        if self.kind != "bond":
            return [_graph_or_error(self.graph_from_smiles, text) for text in smiles]
        from atomgraph.features.prepared import prepared
        from atomgraph.graphs.bond_graph import BondGraphBuilder
        from atomgraph.structures.smiles import parse_smiles

        builder = BondGraphBuilder(ATOM_FEATURE_SETS[self.atom_features])
        errors: list[Exception | None] = []  # per SMILES: None once its molecule is in the builder
        for text in smiles:
            try:  # each molecule read whole and let go at once (BondGraphBuilder)
                builder.add(prepared(_heavy_atoms(self, parse_smiles(text, self.explicit_hydrogens), True)))
                errors.append(None)
            except GRAPH_ERRORS as error:
                errors.append(error)
        try:
            built = (_graph_or_error(_with_edge_extras, self, graph) for graph in builder.graphs())
        except GRAPH_ERRORS:  # the chunk's encoding failed: the molecules read are built one by one
            read = [text for text, error in zip(smiles, errors, strict=True) if error is None]
            built = (_graph_or_error(self.graph_from_smiles, text) for text in read)
        return [next(built) if error is None else error for error in errors]

    def interaction_cutoff(self, value: float | None, model: str) -> float:
        """A model's own (smaller) interaction cutoff checked against this spec: ``value`` if it is
        at most :attr:`cutoff`, the spec's cutoff when ``value`` is None; a larger one is an error."""
        if value is None:
            return self.cutoff
        if not value > 0 or value > self.cutoff + 1e-9:
            raise ValueError(
                f"model {model!r}: interaction_cutoff={value} Å must be positive and at most the graph "
                f"cutoff data.graph.cutoff={self.cutoff} Å (edges beyond the graph cutoff do not exist)"
            )
        return float(value)

    # ------------------------------------------------------------------------------------- records

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (safe to store in a checkpoint read with ``weights_only=True``)."""
        out = asdict(self)
        out["options"] = dict(self.options)
        out["site_features"] = list(self.site_features)
        out["state_features"] = list(self.state_features)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GraphSpec:
        values = _without_master_node(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown graph spec keys {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def key(self) -> str:
        """A short stable hash of everything that changes the built graphs (for cache file names)."""
        values = self.to_dict()
        values.pop("preset")
        # fields added later hash only when set, and the removed master_node as it always was, so the
        # caches of specs that use none of them keep their names
        unset_values = (
            ("atom_features", "standard"),
            ("edge_rbf", 0),
            ("virtual_cutoff", None),
            ("site_features", []),
            ("state_features", []),
        )
        for name, unset in unset_values:
            if values[name] == unset:
                values.pop(name)
        values["master_node"] = False
        features = [site_feature(n) for n in self.site_features] + [
            state_feature(n) for n in self.state_features
        ]
        if features:  # what they compute can change without their names changing
            values["feature_versions"] = {f.name: f.version for f in features}
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        """One line for logs: ``radius graph, 8 Å, 12 nearest (preset cgcnn_crystal)``."""
        parts = [f"{self.kind} graph"]
        if self.kind in ("radius", "complex"):
            parts.append(f"{self.cutoff:g} Å")
        if self.max_neighbors is not None:
            parts.append(f"{self.max_neighbors} nearest")
        if self.kind == "bond" and not self.explicit_hydrogens:
            parts.append("heavy atoms")
        if self.atom_features != "standard":
            parts.append(f"{self.atom_features} atom features")
        if self.virtual_edges:
            within = f" within {self.virtual_cutoff:g} Å" if self.virtual_cutoff is not None else ""
            parts.append(f"virtual edges{within}")
        if self.edge_rbf:
            parts.append(f"{self.edge_rbf} distance Gaussians on the edges")
        if self.site_features:
            parts.append(f"site features {'+'.join(self.site_features)}")
        if self.state_features:
            parts.append(f"state {'+'.join(self.state_features)}")
        text = ", ".join(parts)
        return f"{text} (preset {self.preset})" if self.preset else text


def _without_master_node(values: Mapping[str, Any]) -> dict[str, Any]:
    """Graph fields recorded before Gilmer's master node moved from the graph to the MPNN: a
    ``master_node: false`` is dropped, a true one (a graph the model can no longer read) refused."""
    values = dict(values)
    if values.pop("master_node", False):
        raise ValueError(
            "data.graph.master_node is no longer a graph option: Gilmer's master node is part of the "
            "MPNN (model.master_dim: its own width and GRU, left out of the readout)"
        )
    return values


# ------------------------------------------------------------------------------------- builders

Builder = Callable[[GraphSpec, Atoms], Data]


def _radius(spec: GraphSpec, atoms: Atoms) -> Data:
    from atomgraph.graphs.radius_graph import radius_graph

    return radius_graph(atoms, spec.cutoff, spec.max_neighbors)


def _bond(spec: GraphSpec, atoms: Atoms) -> Data:
    mol = atoms.info.get("rdkit_mol")
    return _bond_graph_of(spec, mol if mol is not None else atoms)


#: what building one graph may raise besides StructureError (RDKit and featurisation failures)
GRAPH_ERRORS = (ValueError, RuntimeError, KeyError)


def _graph_or_error(build: Callable, *args: Any) -> Any:
    """``build(*args)``, or the exception (of :data:`GRAPH_ERRORS`) it raised."""
    try:
        return build(*args)
    except GRAPH_ERRORS as error:
        return error


def _bond_graph_of(spec: GraphSpec, molecule: Chem.Mol | Atoms, sanitised: bool = False) -> Data:
    """The bond graph of an RDKit molecule, which is not changed (or of ase.Atoms without one: an
    error naming it)."""
    from atomgraph.graphs.bond_graph import bond_graph

    if not isinstance(molecule, Chem.Mol):
        return bond_graph(molecule)  # raises, naming the structure
    graph = bond_graph(_heavy_atoms(spec, molecule, sanitised), ATOM_FEATURE_SETS[spec.atom_features])
    return _with_edge_extras(spec, graph)


def _heavy_atoms(spec: GraphSpec, molecule: Chem.Mol, sanitised: bool) -> Chem.Mol:
    """The molecule a bond graph of ``spec`` reads: ``molecule`` itself, or for heavy-atom graphs a
    copy without hydrogens (``RemoveHs``, which also sanitises: hybridisation, conjugation,
    aromaticity; an impossible valence raises). Only a molecule known to be ``sanitised`` and without
    hydrogen atoms is used as it is."""
    from atomgraph.structures.rdkit_convert import capture_rdkit_errors

    if spec.explicit_hydrogens or (sanitised and molecule.GetNumHeavyAtoms() == molecule.GetNumAtoms()):
        return molecule
    with capture_rdkit_errors():  # no "not removing hydrogen atom without neighbors" each time
        return Chem.RemoveHs(molecule)


def _with_edge_extras(spec: GraphSpec, graph: Data) -> Data:
    """A bond graph with the virtual edges and distance features ``spec`` asks for."""
    from atomgraph.graphs.virtual import add_virtual_edges, with_distance_features

    if spec.virtual_edges:
        graph = add_virtual_edges(graph, spec.virtual_cutoff)
    if spec.edge_rbf:
        graph = with_distance_features(graph, spec.edge_rbf, spec.cutoff)
    return graph


_BUILDERS: dict[str, Builder] = {"radius": _radius, "bond": _bond}


# -------------------------------------------------------------------------------------- presets

PRESETS: dict[str, GraphSpec] = {}


def register_preset(name: str, spec: GraphSpec) -> GraphSpec:
    """Add a named preset (applications register theirs); the stored spec records its name."""
    key = name.lower()
    named = replace(spec, preset=key)
    if key in PRESETS and PRESETS[key] != named:
        raise ValueError(f"graph preset {name!r} is already registered as {PRESETS[key]}")
    PRESETS[key] = named
    return named


def preset(name: str) -> GraphSpec:
    """The preset named ``name``; an unknown name is an error listing the known ones."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown graph preset {name!r}; known: {sorted(PRESETS)}") from None


register_preset("molecule", GraphSpec("radius", 5.0))
# bond graphs: the cutoff bounds distance features (the MPNN's Gaussians over 0..6 Å)
register_preset("bond", GraphSpec("bond", 6.0))
register_preset("bond_heavy_atoms", GraphSpec("bond", 6.0, explicit_hydrogens=False))
register_preset("gilmer_virtual", GraphSpec("bond", 6.0, atom_features="hbond", virtual_edges=True))
register_preset("cgcnn_crystal", GraphSpec("radius", 8.0, max_neighbors=12))
register_preset("megnet_crystal", GraphSpec("radius", 5.0))
register_preset("complex", GraphSpec("complex", 5.0))
register_preset("sequence", GraphSpec("sequence"))


def resolve_graph_spec(value: str | Mapping[str, Any] | GraphSpec | None, default: GraphSpec) -> GraphSpec:
    """The spec a config's ``data.graph`` asks for.

    ``value``: None (use ``default``), a preset name, a :class:`GraphSpec`, or a mapping of fields
    with an optional ``preset`` key whose spec the other fields change. A mapping without ``preset``
    changes ``default`` (so ``{cutoff: 6}`` keeps the default kind).
    """
    if value is None:
        return default
    if isinstance(value, GraphSpec):
        return value
    if isinstance(value, str):
        return preset(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"data.graph must be a preset name or a mapping, got {value!r}")
    values = _without_master_node(value)
    name = values.pop("preset", None)
    if name is not None and "+" in str(name):  # a recorded "cgcnn_crystal+changes": the fields say it all
        name = name.split("+")[0]
    base = preset(name) if name else default
    known = {f.name for f in fields(GraphSpec)} - {"preset"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown data.graph keys {unknown}; known: {sorted(known | {'preset'})}")
    if not values:
        return base
    changed = replace(base, **values)
    if changed == base:  # e.g. a recorded spec read back: every field given, none changed
        return base
    # a changed preset is no longer that preset; say where it came from
    return replace(changed, preset=f"{base.preset}+changes" if base.preset else None)
