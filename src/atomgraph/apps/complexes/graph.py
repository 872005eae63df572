"""Complex graphs: ligand and pocket atoms in one graph with typed intra- and inter-molecular edges,
plus the pocket's residue graph, in one :class:`ComplexData` sample.

:class:`ComplexData` fields (N nodes = ligand atoms first, then pocket atoms; R pocket residues):

============== ========== ======= ==========================================================================
field          shape      dtype   meaning
============== ========== ======= ==========================================================================
x              [N, 90]    float   atom features (:data:`~atomgraph.apps.complexes.features.ATOM_LAYOUT`)
z              [N]        int64   atomic numbers
pos            [N, 3]     float   positions, Å
node_role      [N]        int64   0 ligand atom, 1 protein (pocket) atom
source_atom    [N]        int64   index of the atom in the ligand Mol (role 0) or in the pocket (role 1)
edge_index     [2, E]     int64   row 0 source j, row 1 target i; every edge in both directions
edge_attr      [E, 25]    float   edge features (:data:`~atomgraph.apps.complexes.features.EDGE_LAYOUT`)
edge_type      [E]        int64   index into :data:`~atomgraph.apps.complexes.features.EDGE_TYPES`
res_x          [R, 24]    float   residue features (:data:`~atomgraph.apps.complexes.features.RESIDUE_LAYOUT`;
                                  [R, 28] with ``residue_structure``: + helix/strand/coil, relative SASA)
res_pos        [R, 3]     float   residue positions (Cα; heavy-atom centroid without Cα), Å
res_edge_index [2, E_r]   int64   residue pairs with Cα-Cα < ``residue_cutoff`` (both directions);
                                  incremented by R when batched (:meth:`ComplexData.__inc__`)
res_batch      [R]        int64   graph of each residue (0 in a single sample; batched like ``batch``)
atom_residue   [N]        int64   residue node of each protein atom; ligand atoms point at residue 0
                                  (use ``node_role`` to tell them apart); incremented by R when batched
n_ligand, n_protein, n_residues, natoms  [1] int64  node counts (natoms = N)
y              [1, T]     float   targets (NaN = missing)
============== ========== ======= ==========================================================================

Positions of both node sets move together: rotate ``pos`` and ``res_pos`` alike (see
:mod:`atomgraph.apps.complexes.augment`). The models compute every distance from positions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from rdkit import Chem
from scipy.spatial import cKDTree
from torch_geometric.data import Data

from atomgraph.apps.complexes.complex import Complex
from atomgraph.apps.complexes.features import (
    ATOM_LAYOUT,
    EDGE_LAYOUT,
    EDGE_TYPE_INDEX,
    RESIDUE_LAYOUT,
)
from atomgraph.apps.complexes.interactions import (
    PRIORITY,
    Interaction,
    InteractionThresholds,
    detect_interactions,
)
from atomgraph.apps.complexes.pocket import DEFAULT_POCKET_RADIUS
from atomgraph.apps.complexes.protein import Protein
from atomgraph.apps.complexes.residue_structure import COLUMNS as STRUCTURE_COLUMNS
from atomgraph.apps.complexes.residue_structure import check_biotite, residue_structure
from atomgraph.apps.complexes.residues import (
    AMINO_ACIDS,
    hydrophobicity,
    is_water,
    residue_charge,
    residue_type,
)
from atomgraph.apps.complexes.typing import AtomTyping
from atomgraph.features import DEFAULT_ATOM_FEATURIZER, DEFAULT_BOND_FEATURIZER, DEFAULT_ELEMENTS
from atomgraph.features.layout import one_hot_index

FEATURES_VERSION = 2
"""Version of the node and edge features (part of every cache key): 2 computes the ligand's heavy-atom
features without its hydrogens, as molecule graphs do, with chiral tags on stereocentres only."""
HYDROGEN_MODES = ("none", "polar", "all")
PROTEIN_EDGE_MODES = ("bonds", "radius")
_ELEMENT_NUMBERS = tuple(Chem.GetPeriodicTable().GetAtomicNumber(e) for e in DEFAULT_ELEMENTS)
_RESIDUE_TYPES = (*AMINO_ACIDS,)


def check_features_version(graph) -> None:
    """Raise unless the complex :class:`~atomgraph.graphs.spec.GraphSpec` ``graph`` (a run's) was built
    with today's :data:`FEATURES_VERSION` (specs recorded before the version was kept are version 1)."""
    version = graph.options.get("features", 1)
    if version != FEATURES_VERSION:
        raise ValueError(
            f"the run's complex graphs have features version {version}, today's are {FEATURES_VERSION} "
            "(ligand heavy-atom features now computed without hydrogens, chiral tags on stereocentres "
            "only): its model would read other inputs than it was trained on; retrain it"
        )


class ComplexData(Data):
    """A complex graph (fields in the module docstring) that batches its residue graph correctly."""

    def __inc__(self, key: str, value, *args, **kwargs):
        if key in ("res_edge_index", "atom_residue"):
            return int(self.res_x.size(0))
        if key == "res_batch":
            return 1
        return super().__inc__(key, value, *args, **kwargs)


@dataclass(frozen=True)
class ComplexGraphSettings:
    """How a complex becomes a graph (all part of a dataset's cache key).

    pocket_radius: Å, residues with a heavy atom this close to the ligand form the pocket.
    cutoff: Å, ligand-pocket atom pairs closer than this get an inter-molecular edge.
    hydrogens: atom nodes for hydrogens: "none" (heavy atoms only; hydrogens still count in the ligand
        features and the H-bond angles), "polar" (H on N/O) or "all".
    protein_edges: "bonds" (covalent bonds inferred from distances) or "radius" (also every other pocket
        pair within ``protein_edge_cutoff`` Å, typed protein_contact).
    residue_cutoff: Å, Cα-Cα distance below which residue nodes are joined.
    waters: keep crystal waters in the pocket (read time).
    residue_structure: append each residue's secondary structure (helix / strand / coil) and relative
        solvent accessibility, computed on the whole protein with Biotite, to ``res_x``
        (:mod:`atomgraph.apps.complexes.residue_structure`; 4 more columns).
    """

    pocket_radius: float = DEFAULT_POCKET_RADIUS
    cutoff: float = 5.0
    hydrogens: str = "none"
    protein_edges: str = "bonds"
    protein_edge_cutoff: float = 4.0
    residue_cutoff: float = 10.0
    waters: bool = False
    residue_structure: bool = False

    def __post_init__(self) -> None:
        if self.hydrogens not in HYDROGEN_MODES:
            raise ValueError(f"hydrogens must be one of {HYDROGEN_MODES}, got {self.hydrogens!r}")
        if self.protein_edges not in PROTEIN_EDGE_MODES:
            raise ValueError(f"protein_edges must be one of {PROTEIN_EDGE_MODES}, got {self.protein_edges!r}")
        for name in ("pocket_radius", "cutoff", "protein_edge_cutoff", "residue_cutoff"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.residue_structure:
            check_biotite()

    @property
    def thresholds(self) -> InteractionThresholds:
        return InteractionThresholds(cutoff=self.cutoff)

    def key(self) -> str:
        """Short stable hash for cache file names: the settings (those added later count only when set)
        and :data:`FEATURES_VERSION`."""
        values = {**asdict(self), "features": FEATURES_VERSION}
        if not values["residue_structure"]:
            values.pop("residue_structure")
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def residue_dim(self) -> int:
        """Width of ``res_x``."""
        return RESIDUE_LAYOUT.dim + (len(STRUCTURE_COLUMNS) if self.residue_structure else 0)


def _selected(numbers: np.ndarray, typing: AtomTyping, mode: str) -> np.ndarray:
    """Indices of the atoms that become nodes."""
    if mode == "all":
        return np.arange(len(numbers))
    keep = numbers > 1
    if mode == "polar":
        parent = typing.h_parent
        keep |= (numbers == 1) & (parent >= 0) & np.isin(numbers[np.maximum(parent, 0)], (7, 8))
    return np.flatnonzero(keep)


def _common_features(numbers, typing: AtomTyping, role: int) -> np.ndarray:
    """[n, 90] rows with the element, role, pharmacophore and backbone blocks filled."""
    s = ATOM_LAYOUT.slices
    x = np.zeros((len(numbers), ATOM_LAYOUT.dim))
    x[
        np.arange(len(numbers)),
        s["element"].start + np.array([one_hot_index(int(z), _ELEMENT_NUMBERS) for z in numbers], dtype=int),
    ] = 1.0
    x[:, s["role"].start + role] = 1.0
    flags = [
        typing.donor,
        typing.acceptor,
        typing.charge > 0,
        typing.charge < 0,
        typing.hydrophobic,
        typing.aromatic,
    ]
    x[:, s["pharmacophore"]] = np.stack(flags, axis=1).astype(float)
    x[:, s["backbone"].start] = typing.backbone.astype(float)
    return x


def ligand_node_features(mol: Chem.Mol, typing: AtomTyping) -> np.ndarray:
    """[L, 90] joint-layout features of every ligand atom.

    The ``ligand.*`` columns of heavy atoms are those of the ligand without its hydrogens, as atomgraph's
    molecule graphs featurise a molecule (hydrogens folded into their heavy atoms: Gasteiger charges
    computed with implicit hydrogens), so a model trained on molecules reads the same values here;
    hydrogen atoms get those of the ligand with its hydrogens. Chiral tags are those of the pose, on
    stereocentres only (a file read with explicit hydrogens tags every CH2 from its 3D coordinates).
    """
    numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    x = _common_features(numbers, typing, 0)
    block = ATOM_LAYOUT.slices["ligand"]
    mol = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(mol)
    x[:, block] = DEFAULT_ATOM_FEATURIZER(mol).double().numpy()
    heavy = numbers != 1  # what RemoveAllHs keeps (dummy atoms too)
    if heavy.any() and not heavy.all():
        try:
            bare = Chem.RemoveAllHs(mol)
        except (ValueError, RuntimeError):  # RDKit cannot strip them: keep the explicit-hydrogen values
            bare = None
        if bare is not None and bare.GetNumAtoms() == int(heavy.sum()):
            x[np.flatnonzero(heavy), block] = DEFAULT_ATOM_FEATURIZER(bare).double().numpy()
    return x


def protein_node_features(pocket: Protein, typing: AtomTyping) -> np.ndarray:
    """[P, 90] joint-layout features of every pocket atom."""
    x = _common_features(pocket.numbers, typing, 1)
    start = ATOM_LAYOUT.slices["residue"].start
    kinds = [one_hot_index(residue_type(name), _RESIDUE_TYPES) for name in pocket.residue_names]
    x[np.arange(len(pocket)), start + np.array(kinds, dtype=int)] = 1.0
    return x


def residue_nodes(pocket: Protein) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pocket residues in order (``Protein.residues()``): features [R, 24], positions [R, 3] (Å) and the
    residue node of every pocket atom [P]."""
    residues = pocket.residues()
    features = np.zeros((len(residues), RESIDUE_LAYOUT.dim))
    positions = np.zeros((len(residues), 3))
    s = RESIDUE_LAYOUT.slices
    atom_residue = np.searchsorted(np.sort(residues), pocket.residue_index)
    atom_residue = np.argsort(residues)[atom_residue]
    for r, residue in enumerate(residues):
        atoms = np.flatnonzero(pocket.residue_index == residue)
        name = str(pocket.residue_names[atoms[0]])
        features[r, s["residue"].start + one_hot_index(residue_type(name), _RESIDUE_TYPES)] = 1.0
        features[r, s["charge"].start] = residue_charge(name)
        features[r, s["hydropathy"].start] = hydrophobicity(name) / 4.5
        features[r, s["water"].start] = float(is_water(name))
        ca = atoms[pocket.atom_names[atoms] == "CA"]
        heavy = atoms[pocket.numbers[atoms] > 1]
        positions[r] = (
            pocket.positions[ca[0]] if len(ca) else pocket.positions[heavy if len(heavy) else atoms].mean(0)
        )
    return features, positions, atom_residue


def _pairs_within(positions: np.ndarray, cutoff: float) -> np.ndarray:
    """Unordered pairs [P, 2] (i < j) closer than ``cutoff``."""
    if len(positions) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    return cKDTree(positions).query_pairs(cutoff, output_type="ndarray").astype(np.int64).reshape(-1, 2)


def _pair_records(interactions: list[Interaction]) -> dict:
    """(ligand atom, pocket atom) -> {"kinds": set, "ligand_donor", "protein_donor", "angle"}."""
    records: dict[tuple[int, int], dict] = {}
    for item in interactions:
        if item.kind == "pi_stacking":
            continue
        key = (item.ligand_atoms[0], item.protein_atoms[0])
        rec = records.setdefault(
            key, {"kinds": set(), "ligand_donor": 0.0, "protein_donor": 0.0, "angle": np.nan}
        )
        rec["kinds"].add(item.kind)
        if item.kind == "hbond":
            rec["ligand_donor" if item.detail == "ligand donor" else "protein_donor"] = 1.0
            if not np.isnan(item.angle):
                rec["angle"] = item.angle if np.isnan(rec["angle"]) else max(rec["angle"], item.angle)
    return records


def complex_graph(
    complex_: Complex,
    settings: ComplexGraphSettings | None = None,
    y: np.ndarray | None = None,
    interactions: list[Interaction] | None = None,
) -> ComplexData:
    """The :class:`ComplexData` of a complex (fields in the module docstring).

    y: targets [T] (NaN = missing); interactions: reuse a :func:`detect_interactions` result.
    """
    settings = settings or ComplexGraphSettings()
    mol, pocket = complex_.ligand, complex_.pocket
    ltyp, ptyp = complex_.ligand_typing, complex_.pocket_typing
    lpos, ppos = complex_.ligand_positions, pocket.positions
    lnum = complex_.ligand_numbers
    if interactions is None:
        interactions = detect_interactions(complex_, settings.thresholds)

    lig_nodes = _selected(lnum, ltyp, settings.hydrogens)
    pro_nodes = _selected(pocket.numbers, ptyp, settings.hydrogens)
    n_lig, n_pro = len(lig_nodes), len(pro_nodes)
    lig_map = np.full(len(lnum), -1, dtype=np.int64)
    lig_map[lig_nodes] = np.arange(n_lig)
    pro_map = np.full(len(pocket), -1, dtype=np.int64)
    pro_map[pro_nodes] = n_lig + np.arange(n_pro)

    x = np.concatenate(
        [ligand_node_features(mol, ltyp)[lig_nodes], protein_node_features(pocket, ptyp)[pro_nodes]]
    )
    positions = np.concatenate([lpos[lig_nodes], ppos[pro_nodes]])
    edges: list[tuple[int, int]] = []
    attrs: list[np.ndarray] = []
    types: list[int] = []

    def add(a: int, b: int, kind: str, attr: np.ndarray | None = None) -> None:
        row = np.zeros(EDGE_LAYOUT.dim) if attr is None else attr
        row[EDGE_LAYOUT.slices["edge_type"].start + EDGE_TYPE_INDEX[kind]] = 1.0
        edges.append((a, b))
        attrs.append(row)
        types.append(EDGE_TYPE_INDEX[kind])

    bond_features = DEFAULT_BOND_FEATURIZER(mol).double().numpy()
    for bond in mol.GetBonds():
        a, b = lig_map[bond.GetBeginAtomIdx()], lig_map[bond.GetEndAtomIdx()]
        if a >= 0 and b >= 0:
            row = np.zeros(EDGE_LAYOUT.dim)
            row[EDGE_LAYOUT.slices["bond"]] = bond_features[bond.GetIdx()]
            add(int(a), int(b), "ligand_bond", row)

    covalent = {(int(i), int(j)) for i, j in ptyp.bonds}
    for i, j in ptyp.bonds:
        if pro_map[i] >= 0 and pro_map[j] >= 0:
            add(int(pro_map[i]), int(pro_map[j]), "protein_bond")
    if settings.protein_edges == "radius":
        for i, j in pro_nodes[_pairs_within(ppos[pro_nodes], settings.protein_edge_cutoff)]:
            if (min(i, j), max(i, j)) not in covalent:
                add(int(pro_map[i]), int(pro_map[j]), "protein_contact")

    _add_inter_edges(complex_, interactions, settings, lig_nodes, pro_nodes, lig_map, pro_map, add)

    res_x, res_pos, atom_residue = residue_nodes(pocket)
    if settings.residue_structure:
        structure = residue_structure(complex_.protein)
        res_x = np.concatenate([res_x, np.stack([structure[int(r)] for r in pocket.residues()])], axis=1)
    ca_pairs = _pairs_within(res_pos, settings.residue_cutoff)
    res_edges = (
        np.concatenate([ca_pairs, ca_pairs[:, ::-1]]).T if len(ca_pairs) else np.zeros((2, 0), dtype=np.int64)
    )

    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2)
    edge_index = np.concatenate([pairs, pairs[:, ::-1]]).T
    edge_attr = np.concatenate([np.array(attrs).reshape(-1, EDGE_LAYOUT.dim)] * 2)
    edge_type = np.concatenate([np.array(types, dtype=np.int64)] * 2)
    dtype = torch.get_default_dtype()
    targets = np.full((1, 0), np.nan) if y is None else np.asarray(y, dtype=float).reshape(1, -1)
    node_atom_residue = np.concatenate([np.zeros(n_lig, dtype=np.int64), atom_residue[pro_nodes]])
    return ComplexData(
        x=torch.tensor(x, dtype=dtype),
        z=torch.tensor(np.concatenate([lnum[lig_nodes], pocket.numbers[pro_nodes]]), dtype=torch.long),
        pos=torch.tensor(positions, dtype=dtype),
        node_role=torch.cat([torch.zeros(n_lig, dtype=torch.long), torch.ones(n_pro, dtype=torch.long)]),
        source_atom=torch.tensor(np.concatenate([lig_nodes, pro_nodes]), dtype=torch.long),
        edge_index=torch.tensor(edge_index, dtype=torch.long),
        edge_attr=torch.tensor(edge_attr, dtype=dtype),
        edge_type=torch.tensor(edge_type, dtype=torch.long),
        res_x=torch.tensor(res_x, dtype=dtype),
        res_pos=torch.tensor(res_pos, dtype=dtype),
        res_edge_index=torch.tensor(res_edges, dtype=torch.long),
        res_batch=torch.zeros(len(res_x), dtype=torch.long),
        atom_residue=torch.tensor(node_atom_residue, dtype=torch.long),
        n_ligand=torch.tensor([n_lig]),
        n_protein=torch.tensor([n_pro]),
        n_residues=torch.tensor([len(res_x)]),
        natoms=torch.tensor([n_lig + n_pro]),
        y=torch.tensor(targets, dtype=dtype),
    )


def _add_inter_edges(complex_, interactions, settings, lig_nodes, pro_nodes, lig_map, pro_map, add) -> None:
    """Ligand-pocket edges within the cutoff, typed by :data:`PRIORITY`, plus pi-stacking ring pairs."""
    ltyp, ptyp = complex_.ligand_typing, complex_.pocket_typing
    lpos, ppos = complex_.ligand_positions, complex_.pocket.positions
    records = _pair_records(interactions)
    stacked: set[tuple[int, int]] = set()
    for item in interactions:
        if item.kind != "pi_stacking":
            continue
        lring = [a for a in item.ligand_atoms if lig_map[a] >= 0]
        pring = [p for p in item.protein_atoms if pro_map[p] >= 0]
        d = np.linalg.norm(lpos[lring][:, None] - ppos[pring][None], axis=-1)
        close = np.argwhere(d < settings.cutoff)
        if len(close) == 0:
            close = np.array([np.unravel_index(np.argmin(d), d.shape)])
        stacked.update((lring[a], pring[b]) for a, b in close)

    pairs: set[tuple[int, int]] = set(stacked)
    if len(lig_nodes) and len(pro_nodes):
        tree = cKDTree(ppos[pro_nodes])
        for k, near in enumerate(tree.query_ball_point(lpos[lig_nodes], r=settings.cutoff)):
            pairs.update((int(lig_nodes[k]), int(pro_nodes[p])) for p in near)
    s = EDGE_LAYOUT.slices
    for lig, pro in sorted(pairs):
        rec = records.get((lig, pro))
        kinds = set(rec["kinds"]) if rec else set()
        if (lig, pro) in stacked:
            kinds.add("pi_stacking")
        kind = next((k for k in PRIORITY if k in kinds), "contact")
        row = np.zeros(EDGE_LAYOUT.dim)
        if rec is not None:
            start = s["hbond"].start
            row[start] = rec["ligand_donor"]
            row[start + 1] = rec["protein_donor"]
            if not np.isnan(rec["angle"]):
                row[start + 2] = np.cos(np.radians(rec["angle"]))
                row[start + 3] = 1.0
        row[s["charge_product"].start] = float(ltyp.charge[lig] * ptyp.charge[pro])
        add(int(lig_map[lig]), int(pro_map[pro]), kind, row)
