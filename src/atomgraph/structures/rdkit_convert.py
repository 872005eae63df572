"""RDKit molecule -> :class:`ase.Atoms`, shared by :mod:`.smiles` and :mod:`.readers`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import ase
from rdkit import Chem, rdBase

from atomgraph.structures.errors import StructureError

_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")


def mol_to_atoms(mol: Chem.Mol, source: str, conf_id: int = -1) -> ase.Atoms:
    """Convert an RDKit molecule with a conformer into a non-periodic :class:`ase.Atoms`.

    The atom order is RDKit's, so ``atoms.numbers[i] == mol.GetAtomWithIdx(i).GetAtomicNum()``.
    Hydrogens are whatever the molecule holds explicitly (call ``Chem.AddHs`` first to have them all).

    Args:
        mol: the molecule; it must carry at least one conformer (coordinates in Å).
        source: what to call the molecule in error messages and ``atoms.info["source"]``.
        conf_id: the conformer to take the positions from (``-1``: the first one).

    Returns:
        ``ase.Atoms`` with positions (Å) from the conformer, ``pbc=False`` and a zero cell. ``info`` holds
        ``"rdkit_mol"`` (the molecule; reduced to the chosen conformer when it has several),
        ``"coordinates"`` (``"3d"`` or ``"2d"`` as the conformer reports), ``"charge"`` (total formal
        charge, e), ``"source"`` and ``"name"`` when the molecule has a non-empty ``_Name``. The structure
        is *not* validated here; callers run :func:`~atomgraph.structures.validate_atoms`.

    Raises:
        StructureError: if ``mol`` is ``None``, has no conformer, or has no conformer ``conf_id``.
    """
    if mol is None:
        raise StructureError(f"{source}: no RDKit molecule (parsing failed)", source=source)
    if mol.GetNumConformers() == 0:
        raise StructureError(f"{source}: RDKit molecule has no conformer (no coordinates)", source=source)
    try:
        conf = mol.GetConformer(conf_id)
    except ValueError as exc:
        ids = [c.GetId() for c in mol.GetConformers()]
        raise StructureError(f"{source}: no conformer with id {conf_id} (have {ids})", source=source) from exc
    if mol.GetNumConformers() > 1:
        mol = Chem.Mol(mol, False, conf.GetId())
    numbers = [mol.GetAtomWithIdx(i).GetAtomicNum() for i in range(mol.GetNumAtoms())]  # not GetAtoms(): slow
    atoms = ase.Atoms(numbers=numbers, positions=conf.GetPositions(), pbc=False)
    atoms.info["rdkit_mol"] = mol
    atoms.info["coordinates"] = "3d" if conf.Is3D() else "2d"
    atoms.info["charge"] = int(Chem.GetFormalCharge(mol))
    if mol.HasProp("_Name") and mol.GetProp("_Name").strip():
        atoms.info["name"] = mol.GetProp("_Name").strip()
    atoms.info["source"] = source
    return atoms


class _Log:
    """Collected RDKit error-log messages (empty when this RDKit cannot capture them)."""

    def __init__(self) -> None:
        self.text = ""

    def reason(self) -> str:
        """The captured messages as one line, without RDKit's timestamps, prefixed by ': '."""
        lines = [_TIMESTAMP.sub("", line).strip() for line in self.text.splitlines()]
        lines = [line for line in lines if line and "moving to the beginning of the next" not in line]
        return (": " + "; ".join(lines)) if lines else ""


@contextlib.contextmanager
def capture_rdkit_errors() -> Iterator[_Log]:
    """Capture RDKit's error log (instead of printing it) so error messages can quote RDKit's reason,
    and silence its warnings ("not removing hydrogen atom without neighbors", "molecule is tagged as
    2D, but ...", one line per molecule: thousands when reading a dataset). Errors still surface as
    the exceptions the callers raise, with the captured reason.

    Uses ``rdBase.CaptureErrorLog`` where the installed RDKit has it; otherwise RDKit keeps printing to
    stderr (warnings included) and the reason is left empty.
    """
    log = _Log()
    capture_cls = getattr(rdBase, "CaptureErrorLog", None)
    if capture_cls is None:
        yield log
        return
    # logs blocked outside, errors captured inside: RDKit then captures errors and drops the rest
    with rdBase.BlockLogs(), capture_cls() as capture:
        try:
            yield log
        finally:
            log.text = str(capture.messages or "")
