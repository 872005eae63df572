"""Strict JSON for results files: NaN and infinities (an undefined Spearman, a metric of an empty
subset) are written as ``null``, never as the bare ``NaN`` other JSON readers reject."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def finite_json(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (numpy scalars become Python numbers)."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def write_json(path: str | Path, value: Any) -> Path:
    """Write ``value`` as indented strict JSON (see :func:`finite_json`); returns the path."""
    path = Path(path)
    path.write_text(json.dumps(finite_json(value), indent=2, default=float, allow_nan=False))
    return path
