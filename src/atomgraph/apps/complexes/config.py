"""The ``data.complex`` config section: how a training config names a complex or sequence dataset.

Keys (all optional; the config loader fills the defaults from :func:`complex_settings`):

================== ========= ===========================================================================
key                default   meaning
================== ========= ===========================================================================
layout             auto      "auto", "openff" or "pdbbind" (``data.dataset: complexes``)
targets            null      OpenFF targets to use (null: all)
labels             null      PDBbind INDEX file or labels CSV (null: found in the folder)
pocket_radius ...  see       every :class:`~atomgraph.apps.complexes.graph.ComplexGraphSettings` field
                   settings  (pocket_radius, cutoff, hydrogens, protein_edges, protein_edge_cutoff,
                             residue_cutoff, waters)
augment_rotate     true      random rotation of training samples
augment_noise      0.1       Å of Gaussian coordinate noise on training samples (0: none)
conformers         0         aligned RDKit conformer poses per complex, one picked at random (or the
                             crystal pose) at every visit of a training sample (0: none; see
                             :mod:`~atomgraph.apps.complexes.conformers`)
test_groups        []        ``data.split.kind: group``: the held-out targets
val_groups         []        ... and validation targets (else a random ``val_fraction`` of the rest)
val_fraction       0.1
sequence_column    sequence  ``data.dataset: protein_sequence``: the CSV's sequence column
max_length         1000      ... and the sequence length kept
================== ========= ===========================================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from atomgraph.apps.complexes.augment import RandomRotationNoise
from atomgraph.apps.complexes.graph import ComplexGraphSettings

_SETTINGS_KEYS = {f.name for f in fields(ComplexGraphSettings)}


@dataclass
class ComplexConfig:
    """The parsed ``data.complex`` section (see the module docstring)."""

    settings: ComplexGraphSettings = field(default_factory=ComplexGraphSettings)
    layout: str = "auto"
    targets: list[str] | None = None
    labels: str | None = None
    augment_rotate: bool = True
    augment_noise: float = 0.1
    conformers: int = 0
    test_groups: list[str] = field(default_factory=list)
    val_groups: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    sequence_column: str = "sequence"
    max_length: int = 1000

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> ComplexConfig:
        section = dict(section or {})
        own = {f.name for f in fields(cls)} - {"settings"}
        unknown = sorted(set(section) - own - _SETTINGS_KEYS)
        if unknown:
            raise ValueError(f"unknown data.complex keys {unknown}; known: {sorted(own | _SETTINGS_KEYS)}")
        settings = ComplexGraphSettings(**{k: section.pop(k) for k in list(section) if k in _SETTINGS_KEYS})
        return cls(settings=settings, **section)

    def __post_init__(self) -> None:
        if isinstance(self.conformers, bool) or not isinstance(self.conformers, int) or self.conformers < 0:
            raise ValueError(f"data.complex.conformers must be a whole number >= 0, got {self.conformers!r}")

    def augmentation(self) -> RandomRotationNoise | None:
        """The training transform, or None when both rotation and noise are off."""
        if not self.augment_rotate and self.augment_noise <= 0:
            return None
        return RandomRotationNoise(self.augment_rotate, self.augment_noise)

    def augment(self, train_subset, data: dict, progress: bool = True) -> None:
        """Prepare the training subset of the dataset ``data`` (the config's section) names: its transform,
        and its conformer poses when ``conformers`` > 0 (built or read from the cache, training only)."""
        train_subset.transform = self.augmentation()
        if self.conformers:
            from atomgraph.apps.complexes.dataset import complex_source

            source = complex_source(data["path"], self.settings, self.layout, self.targets, self.labels,
                                    data.get("cache"))  # fmt: skip
            train_subset.conformer_poses = source.poses(train_subset.meta.ids, self.conformers, progress)


def complex_settings() -> dict[str, Any]:
    """The ``data.complex`` keys with their defaults (flat: the graph settings beside the others)."""
    defaults = ComplexConfig()
    own = {f.name: getattr(defaults, f.name) for f in fields(ComplexConfig) if f.name != "settings"}
    return {**asdict(defaults.settings), **own}


def complex_config(config: dict) -> ComplexConfig:
    """The ``data.complex`` section of a full run config, parsed."""
    return ComplexConfig.from_section(config.get("data", {}).get("complex"))


def load_complex_dataset(config: dict, progress: bool = True):
    """The dataset of a run config whose ``data.dataset`` is "complexes" or "protein_sequence"."""
    data = config["data"]
    options = complex_config(config)
    if data["dataset"] == "complexes":
        from atomgraph.apps.complexes.dataset import load_complexes

        return load_complexes(
            data["path"],
            options.settings,
            options.layout,
            options.targets,
            options.labels,
            data.get("cache"),
            progress,
        )
    if data["dataset"] == "protein_sequence":
        if options.conformers:
            raise ValueError("data.complex.conformers needs 3D complexes (data.dataset: complexes)")
        from atomgraph.apps.complexes.sequence import load_sequence_csv

        return load_sequence_csv(
            data["path"],
            data.get("smiles_column", "smiles"),
            options.sequence_column,
            data["targets"],
            options.max_length,
            data.get("cache"),
            progress,
        )
    raise ValueError(f"data.dataset {data['dataset']!r} is not a complex dataset")


def group_split_from_config(config: dict, dataset) -> dict:
    """``data.split.kind: group``: hold out ``data.complex.test_groups`` (and ``val_groups``)."""
    from atomgraph.apps.complexes.splits import group_split

    options = complex_config(config)
    if not options.test_groups:
        raise ValueError("data.split.kind 'group' needs data.complex.test_groups (e.g. [cdk2])")
    groups = dataset.groups() if hasattr(dataset, "groups") else dataset.meta.settings.get("groups", [])
    return group_split(
        groups, options.test_groups, options.val_groups, options.val_fraction, config["data"]["split"]["seed"]
    )
