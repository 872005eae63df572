"""Feature layouts of complex graphs: joint atom nodes, residue nodes and typed edges.

Atom nodes (``x``, :data:`ATOM_LAYOUT`, 90 columns) share one layout for ligand and protein atoms:

=============== ===== ===========================================================================
block           width content
=============== ===== ===========================================================================
element         13    one-hot H, B, C, N, O, F, Si, P, S, Cl, Br, I, other
role            2     one-hot ligand, protein
pharmacophore   6     donor, acceptor, positive, negative, hydrophobic, aromatic (0/1, see typing)
backbone        1     protein backbone atom (N, CA, C, O, OXT and their H)
residue         21    one-hot of the protein atom's residue: 20 amino acids, other (waters,
                      cofactors, ions); all zero for ligand atoms
ligand.*        47    :class:`~atomgraph.features.AtomFeaturizer` columns for ligand atoms, zero
                      for protein atoms
=============== ===== ===========================================================================

Residue nodes (``res_x``, :data:`RESIDUE_LAYOUT`, 24 columns): residue one-hot (21), side-chain
charge at pH 7 (e), Kyte-Doolittle hydropathy / 4.5, water flag.

Edges (``edge_attr``, :data:`EDGE_LAYOUT`, 25 columns): edge-type one-hot (:data:`EDGE_TYPES`, 9),
the 11 :class:`~atomgraph.features.BondFeaturizer` columns for ligand bonds, the H-bond block
(ligand donates, protein donates, cos of the best D-H...A angle, angle known) and the product of the
two atoms' group charges (-1 attractive, +1 repulsive, 0). Distances are not stored: models compute
them from ``pos`` so that a moved or augmented complex stays consistent.
"""

from __future__ import annotations

from atomgraph.apps.complexes.residues import AMINO_ACIDS
from atomgraph.features import DEFAULT_ATOM_FEATURIZER, DEFAULT_BOND_FEATURIZER, DEFAULT_ELEMENTS
from atomgraph.features.layout import FeatureBlock, FeatureLayout, one_hot_block, scalar_block

EDGE_TYPES: tuple[str, ...] = (
    "ligand_bond",
    "protein_bond",
    "protein_contact",
    "contact",
    "hbond",
    "hydrophobic",
    "pi_stacking",
    "salt_bridge",
    "electrostatic",
)
"""``edge_type`` values (index in this tuple). Intra-molecular: ligand_bond, protein_bond (covalent,
inferred from distances), protein_contact (non-bonded protein pairs with ``protein_edges="radius"``).
Inter-molecular (ligand-protein within the cutoff): contact (no typed interaction) and the interaction
types of :mod:`atomgraph.apps.complexes.interactions`."""
EDGE_TYPE_INDEX: dict[str, int] = {name: k for k, name in enumerate(EDGE_TYPES)}
INTRA_EDGE_TYPES: tuple[str, ...] = EDGE_TYPES[:3]
INTER_EDGE_TYPES: tuple[str, ...] = EDGE_TYPES[3:]
NUM_EDGE_TYPES = len(EDGE_TYPES)

PHARMACOPHORE = ("donor", "acceptor", "positive", "negative", "hydrophobic", "aromatic")


def _prefixed(name: str, layout: FeatureLayout) -> FeatureBlock:
    return FeatureBlock(name, tuple(f"{name}.{column}" for column in layout.names))


ATOM_LAYOUT = FeatureLayout(
    [
        one_hot_block("element", DEFAULT_ELEMENTS),
        one_hot_block("role", ("ligand", "protein"), other=False),
        FeatureBlock("pharmacophore", tuple(f"pharmacophore={p}" for p in PHARMACOPHORE)),
        scalar_block("backbone"),
        one_hot_block("residue", AMINO_ACIDS),
        _prefixed("ligand", DEFAULT_ATOM_FEATURIZER.layout),
    ]
)
RESIDUE_LAYOUT = FeatureLayout(
    [
        one_hot_block("residue", AMINO_ACIDS),
        scalar_block("charge"),
        scalar_block("hydropathy"),
        scalar_block("water"),
    ]
)
EDGE_LAYOUT = FeatureLayout(
    [
        one_hot_block("edge_type", EDGE_TYPES, other=False),
        _prefixed("bond", DEFAULT_BOND_FEATURIZER.layout),
        FeatureBlock(
            "hbond", ("hbond.ligand_donor", "hbond.protein_donor", "hbond.cos_angle", "hbond.has_angle")
        ),
        scalar_block("charge_product"),
    ]
)
ATOM_DIM = ATOM_LAYOUT.dim
RESIDUE_DIM = RESIDUE_LAYOUT.dim
EDGE_DIM = EDGE_LAYOUT.dim
