"""Protein-ligand complexes: reading, pockets, interactions, graphs, datasets, explanations, screening.

* Reading: :func:`read_protein` (PDB/mmCIF via gemmi -> :class:`Protein`), :func:`read_ligands` /
  :func:`read_ligand` (SDF, MOL2, PDBQT -> RDKit Mol with pose; bad records reported), :func:`load_complex`
  / :func:`make_complex` (-> :class:`Complex`: ligand + pocket + atom typing), :func:`extract_pocket`,
  :func:`check_frames`; every failure is a :class:`ComplexError` naming the file.
* Interactions: :func:`detect_interactions` -> :class:`Interaction` list (H-bond, hydrophobic,
  pi-stacking, salt bridge, electrostatic; thresholds in :class:`InteractionThresholds`),
  :func:`interaction_table`.
* Graphs: :func:`complex_graph` -> :class:`ComplexData` (joint interaction graph + pocket residue graph;
  fields in :mod:`atomgraph.complexes.graph`), :class:`ComplexGraphSettings`; feature layouts in
  :mod:`atomgraph.complexes.features`.
* Data: :func:`load_complexes` (:func:`load_openff`, :func:`load_pdbbind`) -> :class:`ComplexDataset`;
  :func:`load_sequence_csv` (SMILES + sequence + label, GraphDTA-style); :func:`group_split`,
  :func:`leave_one_group_out`; :class:`RandomRotationNoise` augmentation; config section parsing in
  :mod:`atomgraph.complexes.config`.
* Evaluation: :func:`affinity_metrics` (pooled and per-target Pearson/Spearman/Kendall/RMSE),
  :func:`interaction_decomposition`, :func:`atom_importance`, :func:`explain_complex` (B-factor outputs).
* Screening: :func:`screen`.
* Synthetic complexes for tests and examples (peptides, placed ligands): :mod:`atomgraph.complexes.synthetic`.

Models (registered by name): ``affinity_late_fusion``, ``affinity_joint``, ``affinity_cross_attention``,
``affinity_sequence`` and the ``affinity_ligand_only`` baseline in :mod:`atomgraph.models`.
"""

from atomgraph.complexes.augment import RandomRotationNoise, random_rotation
from atomgraph.complexes.complex import Complex, load_complex, make_complex
from atomgraph.complexes.dataset import (
    ComplexDataset,
    load_complexes,
    load_openff,
    load_pdbbind,
    parse_pdbbind_index,
    read_labels,
)
from atomgraph.complexes.errors import ComplexError
from atomgraph.complexes.explain import atom_importance, explain_complex, interaction_decomposition
from atomgraph.complexes.graph import ComplexData, ComplexGraphSettings, complex_graph
from atomgraph.complexes.interactions import (
    INTERACTION_TYPES,
    Interaction,
    InteractionThresholds,
    detect_interactions,
    interaction_table,
)
from atomgraph.complexes.ligand import LigandRecord, read_ligand, read_ligands
from atomgraph.complexes.metrics import affinity_metrics
from atomgraph.complexes.pocket import check_frames, extract_pocket
from atomgraph.complexes.protein import Protein, read_protein, write_protein_bfactors
from atomgraph.complexes.screen import screen
from atomgraph.complexes.sequence import encode_sequence, load_sequence_csv, protein_sequence, sequence_graph
from atomgraph.complexes.splits import group_split, leave_one_group_out

__all__ = [
    "INTERACTION_TYPES",
    "Complex",
    "ComplexData",
    "ComplexDataset",
    "ComplexError",
    "ComplexGraphSettings",
    "Interaction",
    "InteractionThresholds",
    "LigandRecord",
    "Protein",
    "RandomRotationNoise",
    "affinity_metrics",
    "atom_importance",
    "check_frames",
    "complex_graph",
    "detect_interactions",
    "encode_sequence",
    "explain_complex",
    "extract_pocket",
    "group_split",
    "interaction_decomposition",
    "interaction_table",
    "leave_one_group_out",
    "load_complex",
    "load_complexes",
    "load_openff",
    "load_pdbbind",
    "load_sequence_csv",
    "make_complex",
    "parse_pdbbind_index",
    "protein_sequence",
    "random_rotation",
    "read_labels",
    "read_ligand",
    "read_ligands",
    "read_protein",
    "screen",
    "sequence_graph",
    "write_protein_bfactors",
]
