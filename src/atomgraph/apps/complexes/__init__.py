"""The protein-ligand application: reading, pockets, interactions, graphs, datasets, models,
explanations, screening; importing it registers its datasets, split, models and CLI commands.

* Reading: :func:`read_protein` (PDB/mmCIF via gemmi -> :class:`Protein`), :func:`read_ligands` /
  :func:`read_ligand` (SDF, MOL2, PDBQT -> RDKit Mol with pose; bad records reported), :func:`load_complex`
  / :func:`make_complex` (-> :class:`Complex`: ligand + pocket + atom typing), :func:`extract_pocket`,
  :func:`check_frames`; every failure is a :class:`ComplexError` naming the file.
* Interactions: :func:`detect_interactions` -> :class:`Interaction` list (H-bond, hydrophobic,
  pi-stacking, salt bridge, electrostatic; thresholds in :class:`InteractionThresholds`),
  :func:`interaction_table`.
* Graphs: :func:`complex_graph` -> :class:`ComplexData` (joint interaction graph + pocket residue graph;
  fields in :mod:`atomgraph.apps.complexes.graph`), :class:`ComplexGraphSettings`; feature layouts in
  :mod:`atomgraph.apps.complexes.features`.
* Data: :func:`load_complexes` (:func:`load_openff`, :func:`load_pdbbind`) -> :class:`ComplexDataset`;
  :func:`load_sequence_csv` (SMILES + sequence + label, GraphDTA-style); :func:`group_split`,
  :func:`leave_one_group_out`; :class:`RandomRotationNoise` augmentation; config section parsing in
  :mod:`atomgraph.apps.complexes.config`.
* Evaluation: :func:`affinity_metrics` (pooled and per-target Pearson/Spearman/Kendall/RMSE),
  :func:`interaction_decomposition`, :func:`atom_importance`, :func:`explain_complex` (B-factor outputs).
* Screening: :func:`screen`.
* Synthetic complexes for tests and examples (peptides, placed ligands):
  :mod:`atomgraph.apps.complexes.synthetic`.

Registered here: the datasets ``complexes`` (OpenFF/PDBbind complex graphs) and ``protein_sequence``
(ligand + sequence samples), the leave-targets-out ``group`` split, the training augmentation (random
rotation and noise); settings come from the ``data.complex`` section
(:mod:`atomgraph.apps.complexes.config`). Models (registered by name, in
:mod:`atomgraph.apps.complexes.models`): ``affinity_late_fusion``, ``affinity_joint``,
``affinity_cross_attention``, ``affinity_sequence`` and the ``affinity_ligand_only`` baseline. CLI
commands (:mod:`atomgraph.apps.complexes.commands`): ``screen``, ``explain-complex``.
"""

from dataclasses import asdict

from atomgraph.apps.complexes import commands, models  # noqa: F401  (register the CLI commands, models)
from atomgraph.apps.complexes.augment import RandomRotationNoise, random_rotation
from atomgraph.apps.complexes.complex import Complex, load_complex, make_complex
from atomgraph.apps.complexes.config import (
    complex_config,
    complex_settings,
    group_split_from_config,
    load_complex_dataset,
)
from atomgraph.apps.complexes.dataset import (
    ComplexDataset,
    load_complexes,
    load_openff,
    load_pdbbind,
    parse_pdbbind_index,
    read_labels,
)
from atomgraph.apps.complexes.errors import ComplexError
from atomgraph.apps.complexes.explain import atom_importance, explain_complex, interaction_decomposition
from atomgraph.apps.complexes.graph import (
    FEATURES_VERSION,
    ComplexData,
    ComplexGraphSettings,
    check_features_version,
    complex_graph,
)
from atomgraph.apps.complexes.interactions import (
    INTERACTION_TYPES,
    Interaction,
    InteractionThresholds,
    detect_interactions,
    interaction_table,
)
from atomgraph.apps.complexes.leak_check import format_leak_check, leak_check
from atomgraph.apps.complexes.ligand import LigandRecord, read_ligand, read_ligands
from atomgraph.apps.complexes.metrics import affinity_metrics
from atomgraph.apps.complexes.pocket import check_frames, extract_pocket
from atomgraph.apps.complexes.protein import Protein, read_protein, write_protein_bfactors
from atomgraph.apps.complexes.screen import screen
from atomgraph.apps.complexes.sequence import (
    encode_sequence,
    load_sequence_csv,
    protein_sequence,
    sequence_graph,
)
from atomgraph.apps.complexes.splits import group_split, leave_one_group_out
from atomgraph.data.registry import register_dataset, register_split
from atomgraph.data.sources import existing_path
from atomgraph.evaluation.protocols import register_protocol
from atomgraph.graphs.spec import GraphSpec

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
    "leak_check",
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


def _complex_dataset(data: dict, spec: GraphSpec, progress: bool) -> ComplexDataset:
    existing_path(data)
    if spec.kind == "complex":
        check_features_version(spec)
    return load_complex_dataset({"data": data}, progress)


def _augment(data: dict, train_subset, progress: bool) -> None:
    complex_config({"data": data}).augment(train_subset, data, progress)


def _group_split(data: dict, dataset):
    return group_split_from_config({"data": data}, dataset)


def _complex_graph(data: dict) -> GraphSpec:
    """The spec of complex graphs: the inter-molecular cutoff and the other ``data.complex`` graph
    settings (pocket radius, hydrogens, protein edges, residue cutoff, waters) in ``options``."""
    settings = asdict(complex_config({"data": data}).settings)
    cutoff = settings.pop("cutoff")
    if not settings["residue_structure"]:  # recorded only when on
        settings.pop("residue_structure")
    settings["features"] = FEATURES_VERSION  # runs of other feature versions are refused
    return GraphSpec("complex", cutoff, options=settings, preset="complex")


def _sequence_graph(data: dict) -> GraphSpec:
    options = complex_config({"data": data})
    return GraphSpec("sequence", options=({"max_length": options.max_length}), preset="sequence")


register_dataset(
    "complexes", _complex_dataset, "complex", _augment, "complexes", _complex_graph, "complex",
    complex_settings(),
)  # fmt: skip
register_dataset(
    "protein_sequence", _complex_dataset, "sequence", None, "complexes", _sequence_graph, "complex",
    complex_settings(),
)  # fmt: skip
register_split("group", _group_split)


def leak_report(results: dict, config: dict, module, dataset, split: dict, pred) -> None:
    """The leak check (:mod:`atomgraph.apps.complexes.leak_check`) of the run's split, in its report."""
    rows = list(dataset.indices())
    train, test = [rows[i] for i in split["train"]], [rows[i] for i in split["test"]]
    ids, smiles = dataset.meta.ids, dataset.meta.smiles
    results["leak_check"] = leak_check(
        [ids[i] for i in train],
        [smiles[i] for i in train],
        [ids[i] for i in test],
        [smiles[i] for i in test],
        dataset.targets_array()[split["test"], 0],
        pred[:, 0],
    )


def leak_report_lines(results: dict) -> str:
    return format_leak_check(results["leak_check"]) if "leak_check" in results else ""


for _name in ("complexes", "protein_sequence"):
    register_protocol(_name, leak_report, leak_report_lines)
