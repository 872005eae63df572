"""Helpers the benchmark scripts share for writing their results files."""

from __future__ import annotations

from pathlib import Path

from atomgraph.evaluation.jsonfile import finite_json  # noqa: F401  (re-exported for the scripts)

ROOT = Path(__file__).resolve().parents[1]


def relative(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
