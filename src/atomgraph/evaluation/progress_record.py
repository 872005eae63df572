"""The progress record of a streaming job (``predict``, ``screen``, ``screen-crystals``): what it has
appended to its rows file, so that a killed job resumes without losing or repeating a row.

``<output>.progress`` (JSON) holds the job (its inputs, as the caller names them), the rows written and
the size in bytes of the rows file after the last complete chunk, and any counts the job keeps. A
resumed job checks that the record is of the same job, cuts the rows file back to that size (a chunk the
kill left half-written is dropped) and goes on after the rows recorded; a finished job removes it. The
record is replaced whole (written beside, then renamed), so a kill while it is written leaves the previous
record, never a truncated one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class ProgressRecord:
    """The record at ``path`` of the job ``job`` (JSON-able values naming its inputs)."""

    path: Path
    job: dict[str, Any]

    @classmethod
    def beside(cls, output: str | Path, job: dict[str, Any]) -> ProgressRecord:
        """The record of the job writing ``output``: ``<output>.progress``."""
        output = Path(output)
        return cls(output.with_name(output.name + ".progress"), job)

    def exists(self) -> bool:
        return self.path.exists()

    @property
    def _beside(self) -> Path:
        """Where the next record is written before it replaces this one."""
        return self.path.with_name(self.path.name + ".tmp")

    def resume(self, rows_file: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
        """The record of a killed job, ``rows_file`` cut back to the rows it records; a ValueError naming
        the record when it cannot be read, lacks one of the ``extra`` keys the job appends (e.g. its
        counts), is of another job, or its rows file is gone."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError) as error:
            record = error
        if isinstance(record, dict):
            for key, value in self.job.items():
                if record.get(key) != value:
                    raise ValueError(
                        f"{self.path}: it records a job with {key} {record.get(key)}, not {value}; run it "
                        "again with the same inputs, or without resume"
                    )
        if not isinstance(record, dict) or not {"rows", "bytes", *extra} <= record.keys():
            raise ValueError(
                f"{self.path}: not a readable progress record ({record!r:.80}); run without resume"
            )
        if not rows_file.exists():
            raise ValueError(f"{self.path}: the rows it records ({rows_file}) are gone; run without resume")
        with open(rows_file, "r+b") as handle:
            handle.truncate(record["bytes"])  # drop a chunk the kill left half-written
        return record

    def append(self, rows_file: Path, table: pd.DataFrame, rows: int, **extra: Any) -> None:
        """Append ``table`` (its columns in file order; a header on the first chunk) to ``rows_file``, then
        record ``rows`` (the rows written in all) and ``extra`` (e.g. counts) with the file's new size."""
        with open(rows_file, "a", newline="") as handle:
            table.to_csv(handle, header=handle.tell() == 0, index=False)
            handle.flush()
            size = handle.tell()
        self._beside.write_text(json.dumps({**self.job, "rows": rows, "bytes": size, **extra}))
        os.replace(self._beside, self.path)  # a kill before this line leaves the previous record whole

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self._beside.unlink(missing_ok=True)  # what a kill while it was written left
