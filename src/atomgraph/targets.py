"""TargetSpec: the one owner of what a predicted quantity means.

A :class:`TargetSpec` names a target, its unit, how per-atom contributions make the graph value
(``reduction``), whether it is a regression or a classification label, and which end of it ranks
first in a screen. The readout of every model, the normaliser, the metrics, the report and the
screening commands read these fields; nothing else stores them.

reduction:
    ``sum`` -- extensive: the sum of atomic contributions; grows with the system (total energies,
    the cell volume, QM9's U0 or heat capacity);
    ``per_atom`` -- a per-atom quantity built from atomic contributions: their mean (formation energy
    in eV/atom); unchanged when a cell is replicated;
    ``mean`` -- intensive: a pooled property (HOMO, band gap, moduli, affinities);
    ``node`` -- a node-level label: one value per atom (QM9's Mulliken charges), predicted for every
    atom and never reduced; its labels are ``y`` [N, T] (one row per atom) instead of [M, T], so a
    target set is all node-level or all graph-level.

Tables of known targets live here: :data:`QM9`, :data:`QM9_ATOMS`, :data:`MATERIALS_PROJECT`
(and :data:`MATERIALS_PROJECT_CLASSES`), :data:`ELASTICITY` (and :data:`ELASTICITY_LOG10`),
:data:`AFFINITY`. :func:`known_target` looks a name up in all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

REDUCTIONS = ("sum", "per_atom", "mean", "node")
KINDS = ("regression", "classification")
RANKS_FIRST = ("low", "high")


@dataclass(frozen=True)
class TargetSpec:
    """One target: name, unit, reduction (see the module docstring), kind and ranking direction.

    ranks_first: ``"low"`` when the smallest values are the hits of a screen (formation energies,
    binding free energies), ``"high"`` for the largest (band gaps in a window aside, moduli, pK).
    chemical_accuracy: the error (in ``unit``) a chemist accepts in place of the reference method, where
        one is agreed (QM9: Faber et al. 2017, the yardstick of Gilmer et al.'s Table 2); reports then
        give ``chemical_accuracy_ratio`` = MAE / chemical_accuracy (below 1: within chemical accuracy).
    """

    name: str
    unit: str = ""
    reduction: str = "mean"
    kind: str = "regression"
    ranks_first: str = "low"
    description: str = ""
    chemical_accuracy: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a target needs a name")
        if self.reduction not in REDUCTIONS:
            raise ValueError(
                f"target {self.name!r}: reduction must be one of {REDUCTIONS}, got {self.reduction!r}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"target {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.chemical_accuracy is not None and not self.chemical_accuracy > 0:
            raise ValueError(
                f"target {self.name!r}: chemical_accuracy must be positive, got {self.chemical_accuracy!r}"
            )
        if self.ranks_first not in RANKS_FIRST:
            raise ValueError(
                f"target {self.name!r}: ranks_first must be one of {RANKS_FIRST}, got {self.ranks_first!r}"
            )

    @property
    def extensive(self) -> bool:
        """Whether the target grows with the system (a sum over atoms)."""
        return self.reduction == "sum"

    @property
    def per_atom(self) -> bool:
        return self.reduction == "per_atom"

    @property
    def node_level(self) -> bool:
        """Whether the target is one value per atom (reduction ``node``), not one per graph."""
        return self.reduction == "node"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TargetSet(Sequence[TargetSpec]):
    """The targets of a dataset or model, in the column order of ``y`` [M, T]."""

    def __init__(self, specs: Iterable[TargetSpec | Mapping[str, Any]]):
        self.specs: tuple[TargetSpec, ...] = tuple(
            s if isinstance(s, TargetSpec) else TargetSpec(**dict(s)) for s in specs
        )
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate target names in {names}")
        if len({s.node_level for s in self.specs}) > 1:
            nodes = [s.name for s in self.specs if s.node_level]
            raise ValueError(
                f"targets mix node-level {nodes} and graph-level ones: labels are one row per atom or one "
                f"per graph, so train them in separate runs ({names})"
            )

    def __getitem__(self, index):  # type: ignore[override]
        return self.specs[index]

    def __len__(self) -> int:
        return len(self.specs)

    def __iter__(self) -> Iterator[TargetSpec]:
        return iter(self.specs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TargetSet) and self.specs == other.specs

    def __repr__(self) -> str:
        return f"TargetSet({[s.name for s in self.specs]})"

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def units(self) -> list[str]:
        return [s.unit for s in self.specs]

    @property
    def extensive(self) -> list[bool]:
        return [s.extensive for s in self.specs]

    @property
    def reductions(self) -> list[str]:
        return [s.reduction for s in self.specs]

    @property
    def node_level(self) -> bool:
        """Whether the targets are node-level (one label row per atom; see the module docstring)."""
        return bool(self.specs) and self.specs[0].node_level

    @property
    def kind(self) -> str:
        """``regression`` or ``classification``: what a model of these targets is trained as. A dataset
        may hold both kinds of column (the crystals' band gap beside the derived ``is_metal``); a set
        that mixes them has no kind, and training it is refused."""
        kinds = {s.kind for s in self.specs}
        if len(kinds) > 1:
            raise ValueError(
                f"targets mix regression and classification: {self.names}; train one kind per run "
                "(data.targets)"
            )
        return self.specs[0].kind if self.specs else "regression"

    def spec(self, name: str) -> TargetSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise ValueError(f"unknown target {name!r}; available: {self.names}")

    def select(self, names: Sequence[str]) -> tuple[TargetSet, list[int]]:
        """The named targets (in that order) and their columns."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"unknown targets {missing}; available: {self.names}")
        columns = [self.names.index(n) for n in names]
        return TargetSet(self.specs[c] for c in columns), columns

    def with_changes(self, name: str, **changes: Any) -> TargetSet:
        """A copy with one target's fields changed (e.g. ``reduction="sum"`` from a config)."""
        spec = self.spec(name)
        return TargetSet(replace(spec, **changes) if s is spec else s for s in self.specs)

    def to_list(self) -> list[dict[str, Any]]:
        """Plain types (safe in checkpoints read with ``weights_only=True``)."""
        return [s.to_dict() for s in self.specs]


# ------------------------------------------------------------------------------------ the tables

_EV = "eV"

_KCAL = 0.043  # eV: 1 kcal/mol, chemical accuracy for energies

QM9: tuple[TargetSpec, ...] = (
    TargetSpec("mu", "D", "mean", description="dipole moment magnitude", chemical_accuracy=0.1),
    TargetSpec("alpha", "bohr^3", "sum", description="isotropic polarizability", chemical_accuracy=0.1),
    TargetSpec(
        "homo", _EV, "mean", description="energy of the highest occupied orbital", chemical_accuracy=_KCAL
    ),
    TargetSpec(
        "lumo", _EV, "mean", description="energy of the lowest unoccupied orbital", chemical_accuracy=_KCAL
    ),
    TargetSpec("gap", _EV, "mean", ranks_first="high", description="lumo - homo", chemical_accuracy=_KCAL),
    TargetSpec("r2", "bohr^2", "sum", description="electronic spatial extent <R^2>", chemical_accuracy=1.2),
    TargetSpec("zpve", _EV, "sum", description="zero-point vibrational energy", chemical_accuracy=0.0012),
    TargetSpec(
        "U0",
        _EV,
        "sum",
        description="internal energy at 0 K (total, not atomisation)",
        chemical_accuracy=_KCAL,
    ),
    TargetSpec("U", _EV, "sum", description="internal energy at 298.15 K", chemical_accuracy=_KCAL),
    TargetSpec("H", _EV, "sum", description="enthalpy at 298.15 K", chemical_accuracy=_KCAL),
    TargetSpec("G", _EV, "sum", description="free energy at 298.15 K", chemical_accuracy=_KCAL),
    TargetSpec("Cv", "cal/mol/K", "sum", description="heat capacity at 298.15 K", chemical_accuracy=0.050),
    TargetSpec("A", "GHz", "mean", description="rotational constant A"),
    TargetSpec("B", "GHz", "mean", description="rotational constant B"),
    TargetSpec("C", "GHz", "mean", description="rotational constant C"),
    TargetSpec(
        "omega1",
        "cm^-1",
        "mean",
        description="highest harmonic vibrational frequency",
        chemical_accuracy=10.0,
    ),
    TargetSpec(
        "U0_atom",
        _EV,
        "sum",
        description="atomisation energy at 0 K (U0 minus the free atoms')",
        chemical_accuracy=_KCAL,
    ),
    TargetSpec("U_atom", _EV, "sum", description="atomisation energy at 298.15 K", chemical_accuracy=_KCAL),
    TargetSpec("H_atom", _EV, "sum", description="atomisation enthalpy at 298.15 K", chemical_accuracy=_KCAL),
    TargetSpec(
        "G_atom", _EV, "sum", description="atomisation free energy at 298.15 K", chemical_accuracy=_KCAL
    ),
)
"""The 20 QM9 targets in the units atomgraph converts them to, in the column order of the set: the 15
properties of the files, the highest harmonic frequency and the four atomisation energies (total minus
the free atoms' B3LYP energies, QM9's ``atomref``), with the chemical accuracy of Gilmer et al.'s report
(Faber et al. 2017; none for the rotational constants)."""

QM9_ATOMS: tuple[TargetSpec, ...] = (
    TargetSpec("mulliken", "e", "node", description="Mulliken partial charge of each atom"),
)
"""QM9's node-level targets: one value per atom, hydrogens included (graphs that drop hydrogens have
none)."""

MATERIALS_PROJECT: tuple[TargetSpec, ...] = (
    TargetSpec("formation_energy_per_atom", "eV/atom", "per_atom", description="formation energy"),
    TargetSpec("band_gap", _EV, "mean", ranks_first="high", description="PBE band gap"),
    TargetSpec("fermi_energy", _EV, "mean", description="Fermi energy"),
    TargetSpec("volume", "Å^3", "sum", description="cell volume (grows with the cell)"),
    TargetSpec("magnetization", "μB", "sum", ranks_first="high", description="total magnetisation per cell"),
)
"""Materials Project crystals (``../shared/data/mp_crystals``), in the label file's column order."""

ELASTICITY: tuple[TargetSpec, ...] = (
    TargetSpec("bulk_modulus", "GPa", "mean", ranks_first="high", description="VRH bulk modulus"),
    TargetSpec("shear_modulus", "GPa", "mean", ranks_first="high", description="VRH shear modulus"),
    TargetSpec("poisson_ratio", "", "mean", description="Poisson ratio"),
)

ELASTICITY_LOG10: tuple[TargetSpec, ...] = (
    TargetSpec(
        "log10_bulk_modulus", "log10(GPa)", "mean", ranks_first="high",
        description="base-10 logarithm of the VRH bulk modulus",
    ),
    TargetSpec(
        "log10_shear_modulus", "log10(GPa)", "mean", ranks_first="high",
        description="base-10 logarithm of the VRH shear modulus",
    ),
)  # fmt: skip
"""The moduli in log space (they span three decades), derived from the GPa columns by the crystal
reader (:data:`atomgraph.apps.crystals.dataset.LOG10_LABELS`)."""

MATERIALS_PROJECT_CLASSES: tuple[TargetSpec, ...] = (
    TargetSpec(
        "is_metal", "", "mean", kind="classification", ranks_first="high",
        description="1 for a metal (PBE band gap 0), 0 for a semiconductor or insulator",
    ),
)  # fmt: skip
"""Classes derived from the Materials Project labels by the crystal reader when a run asks for them
(:data:`atomgraph.apps.crystals.dataset.CLASS_LABELS`)."""

AFFINITY: tuple[TargetSpec, ...] = (
    TargetSpec("pK", "-log10(M)", "mean", ranks_first="high", description="binding affinity (pKi/pKd/pIC50)"),
)

POTENTIAL: tuple[TargetSpec, ...] = (
    TargetSpec("energy", _EV, "sum", description="total potential energy (forces are -dE/dx)"),
)

_TABLES = (
    QM9,
    QM9_ATOMS,
    MATERIALS_PROJECT,
    MATERIALS_PROJECT_CLASSES,
    ELASTICITY,
    ELASTICITY_LOG10,
    AFFINITY,
    POTENTIAL,
)


def known_target(name: str) -> TargetSpec | None:
    """The spec of a target in one of the tables, or None."""
    for table in _TABLES:
        for spec in table:
            if spec.name == name:
                return spec
    return None


def guess_target(name: str, unit: str = "", kind: str = "regression") -> TargetSpec:
    """A spec for a column (one value per graph): the known one if the name is in a graph-level table,
    else a per-atom target for names ending in ``_per_atom`` or units ending in ``/atom``, else
    intensive."""
    known = known_target(name)
    if known is not None and not known.node_level:  # a column is one value per row: never node-level
        return replace(known, kind=kind) if known.kind != kind else known
    per_atom = name.endswith("_per_atom") or unit.replace(" ", "").endswith("/atom")
    return TargetSpec(name, unit, "per_atom" if per_atom else "mean", kind)


def targets_from_columns(
    names: Sequence[str],
    units: Sequence[str] | None = None,
    extensive: Sequence[bool] | None = None,
    kind: str = "regression",
) -> TargetSet:
    """Targets of a table's columns: known names get their table entry (:func:`guess_target`);
    ``extensive`` flags, where given, make a column a sum (True) or intensive (False)."""
    specs = []
    for k, name in enumerate(names):
        spec = guess_target(name, units[k] if units else "", kind)
        if units and units[k] and spec.unit != units[k]:
            spec = replace(spec, unit=units[k])
        if extensive is not None:
            if extensive[k]:
                spec = replace(spec, reduction="sum")
            elif spec.reduction == "sum":
                spec = replace(spec, reduction="mean")
        specs.append(spec)
    return TargetSet(specs)
