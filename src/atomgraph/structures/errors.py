"""The one exception of :mod:`atomgraph.structures`."""

from __future__ import annotations


class StructureError(ValueError):
    """A structure could not be read or failed a sanity check.

    The message always names the input (a file path or a SMILES string) and, where the parser can tell,
    the 0-based record index ("record 3") or the line. The same facts are kept as attributes so that
    callers can act on them without parsing the message.

    Attributes:
        source: the input that failed (file path, "path record i" or "SMILES '...'"), or ``None``.
        record: 0-based record index inside a multi-structure file, or ``None``.
        line: 1-based line number in the file, or ``None``.
    """

    def __init__(
        self, message: str, source: str | None = None, record: int | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.source = source
        self.record = record
        self.line = line
