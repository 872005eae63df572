"""Named column layouts for feature matrices.

A :class:`FeatureLayout` is an ordered list of :class:`FeatureBlock` s. Each block owns a contiguous run of
columns; the layout gives the total width (``dim``), one name per column (``names``) and the column range
of every block (``slices``). The atom and bond featurisers and the element property table describe their
output with one, so ``x[:, layout.slices["element"]]`` is the element one-hot of an atom feature matrix.

Column names follow one convention: ``"block=label"`` for a one-hot slot (``"element=C"``,
``"element=other"``, ``"formal_charge=+1"``) and the bare block name for a single scalar column
(``"mass"``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

OTHER = "other"
"""Label of the catch-all slot that ends every one-hot block."""


@dataclass(frozen=True)
class FeatureBlock:
    """A named run of columns.

    Attributes:
        name: block name, unique within a layout.
        columns: one name per column, in order.
        one_hot: ``True`` when exactly one column of the block is 1 per row and the others are 0.
    """

    name: str
    columns: tuple[str, ...]
    one_hot: bool = False

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError(f"feature block {self.name!r} has no columns")

    @property
    def width(self) -> int:
        """Number of columns."""
        return len(self.columns)


def one_hot_block(name: str, labels: Iterable[object], other: bool = True) -> FeatureBlock:
    """A one-hot block with columns ``"name=label"`` for each label, plus ``"name=other"`` if ``other``."""
    columns = [f"{name}={label}" for label in labels]
    if other:
        columns.append(f"{name}={OTHER}")
    return FeatureBlock(name, tuple(columns), one_hot=True)


def scalar_block(name: str) -> FeatureBlock:
    """A single float column named ``name``."""
    return FeatureBlock(name, (name,))


def one_hot_index(value: Hashable, choices: Sequence[Hashable]) -> int:
    """Position of ``value`` in ``choices``, or ``len(choices)`` (the "other" slot) when absent."""
    try:
        return list(choices).index(value)
    except ValueError:
        return len(choices)


class FeatureLayout:
    """An ordered list of feature blocks laid out side by side.

    Args:
        blocks: the blocks, left to right; names must be unique.

    Example::

        >>> layout = FeatureLayout([one_hot_block("element", ["H", "C"]), scalar_block("mass")])
        >>> layout.dim, layout.names
        (4, ['element=H', 'element=C', 'element=other', 'mass'])
        >>> layout.slices["mass"]
        slice(3, 4, None)
    """

    def __init__(self, blocks: Iterable[FeatureBlock]) -> None:
        self._blocks: tuple[FeatureBlock, ...] = tuple(blocks)
        seen: set[str] = set()
        for block in self._blocks:
            if block.name in seen:
                raise ValueError(f"duplicate feature block name {block.name!r}")
            seen.add(block.name)
        slices: dict[str, slice] = {}
        start = 0
        for block in self._blocks:
            slices[block.name] = slice(start, start + block.width)
            start += block.width
        self._slices = slices
        self._dim = start

    @property
    def blocks(self) -> tuple[FeatureBlock, ...]:
        """The blocks, left to right."""
        return self._blocks

    @property
    def dim(self) -> int:
        """Total number of columns."""
        return self._dim

    @property
    def names(self) -> list[str]:
        """One name per column, length ``dim``."""
        return [column for block in self._blocks for column in block.columns]

    @property
    def slices(self) -> dict[str, slice]:
        """Block name -> column range; the ranges partition ``[0, dim)`` in block order."""
        return dict(self._slices)

    @property
    def one_hot_blocks(self) -> list[str]:
        """Names of the one-hot blocks."""
        return [block.name for block in self._blocks if block.one_hot]

    def block(self, name: str) -> FeatureBlock:
        """The block called ``name`` (``KeyError`` naming the known blocks if absent)."""
        for block in self._blocks:
            if block.name == name:
                return block
        raise KeyError(f"no feature block {name!r}; blocks are {[b.name for b in self._blocks]}")

    def index(self, column: str) -> int:
        """Column position of the column called ``column``."""
        try:
            return self.names.index(column)
        except ValueError:
            raise KeyError(f"no feature column {column!r}") from None

    def describe(self) -> str:
        """A plain-text table: one line per block with its column range and column names."""
        lines = []
        for block in self._blocks:
            s = self._slices[block.name]
            kind = "one-hot" if block.one_hot else "float"
            lines.append(f"{s.start:4d}:{s.stop:<4d} {block.name:<20s} {kind:<8s} {', '.join(block.columns)}")
        return "\n".join(lines)

    def __len__(self) -> int:
        return self._dim

    def __repr__(self) -> str:
        inner = ", ".join(f"{block.name}:{block.width}" for block in self._blocks)
        return f"FeatureLayout(dim={self._dim}, blocks=[{inner}])"


class LayoutIntrospection:
    """``layout``, ``dim``, ``names`` and ``slices`` of a featuriser that keeps its ``_layout``."""

    _layout: FeatureLayout

    @property
    def layout(self) -> FeatureLayout:
        """The column layout."""
        return self._layout

    @property
    def dim(self) -> int:
        """Number of feature columns."""
        return self._layout.dim

    @property
    def names(self) -> list[str]:
        """One name per column."""
        return self._layout.names

    @property
    def slices(self) -> dict[str, slice]:
        """Block name -> column slice."""
        return self._layout.slices
