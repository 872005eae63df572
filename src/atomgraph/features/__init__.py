"""Node and edge features: atom/bond featurisers, element property tables, distance encodings.

* :mod:`~atomgraph.features.layout`: :class:`FeatureLayout`, named column blocks (``dim``, ``names``,
  ``slices``) describing every feature matrix below.
* :mod:`~atomgraph.features.atom_features`: :class:`AtomFeaturizer`, ``rdkit Mol -> [n_atoms, 47]``
  (element, formal charge, Gasteiger charge, hybridisation, H count, aromatic, chirality, mass, degree,
  ring; optionally H-bond donor/acceptor); :data:`DEFAULT_ATOM_FEATURIZER`, the named
  :data:`ATOM_FEATURE_SETS`.
* :mod:`~atomgraph.features.gasteiger`: RDKit's Gasteiger-Marsili charges, computed for many molecules
  at once from their atom and bond records.
* :mod:`~atomgraph.features.prepared`: molecules made ready for the featurisers (ring info, valences).
* :mod:`~atomgraph.features.bond_features`: :class:`BondFeaturizer`, ``rdkit Mol -> [n_bonds, 11]``
  (type, conjugated, ring, E/Z stereo) and :func:`bond_type_index` for integer edge types.
* :mod:`~atomgraph.features.element_properties`: per-element properties from mendeleev (shipped as a CSV)
  for crystal graphs: :func:`element_property_table` ``[101, 24]``, :func:`element_features`,
  :class:`ElementEmbeddingTable`.
* :mod:`~atomgraph.features.radial`: distance encodings ``d [E] (Å) -> [E, num]`` and cutoff functions
  ``[E] -> [E]``: :class:`GaussianRBF`, :class:`BesselRBF`, :class:`CosineCutoff`,
  :class:`PolynomialEnvelope`.
"""

from atomgraph.features.atom_features import (
    ATOM_FEATURE_SETS,
    DEFAULT_ATOM_FEATURIZER,
    DEFAULT_ELEMENTS,
    AtomFeaturizer,
    gasteiger_charges,
)
from atomgraph.features.bond_features import (
    DEFAULT_BOND_FEATURIZER,
    NUM_BOND_TYPES,
    BondFeaturizer,
    bond_type_index,
    bond_type_indices,
)
from atomgraph.features.element_properties import (
    ELEMENT_PROPERTIES,
    ELEMENT_TABLE_PATH,
    MAX_ATOMIC_NUMBER,
    ElementEmbeddingTable,
    build_element_table,
    element_features,
    element_property_layout,
    element_property_table,
    element_symbols,
)
from atomgraph.features.layout import FeatureBlock, FeatureLayout, one_hot_block, one_hot_index, scalar_block
from atomgraph.features.radial import BesselRBF, CosineCutoff, GaussianRBF, PolynomialEnvelope

__all__ = [
    "ATOM_FEATURE_SETS",
    "DEFAULT_ATOM_FEATURIZER",
    "DEFAULT_BOND_FEATURIZER",
    "DEFAULT_ELEMENTS",
    "ELEMENT_PROPERTIES",
    "ELEMENT_TABLE_PATH",
    "MAX_ATOMIC_NUMBER",
    "NUM_BOND_TYPES",
    "AtomFeaturizer",
    "BesselRBF",
    "BondFeaturizer",
    "CosineCutoff",
    "ElementEmbeddingTable",
    "FeatureBlock",
    "FeatureLayout",
    "GaussianRBF",
    "PolynomialEnvelope",
    "bond_type_index",
    "bond_type_indices",
    "build_element_table",
    "element_features",
    "element_property_layout",
    "element_property_table",
    "element_symbols",
    "gasteiger_charges",
    "one_hot_block",
    "one_hot_index",
    "scalar_block",
]
