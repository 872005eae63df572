"""Hostile inputs: absurd or broken files, degenerate cells, corrupt caches, bad labels, noisy RDKit.

Each test names the input it breaks and checks that the error (or warning) names the file, the
record/row and the problem, and that one bad record does not take the rest of the input down with it.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import ase
import pytest

from atomgraph.structures import StructureError, read, read_records

ROOT = Path(__file__).resolve().parents[1]


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------ 1. absurd XYZ atom count


def test_xyz_absurd_atom_count_fails_fast_naming_file_frame_and_count(tmp_path: Path) -> None:
    path = write_text(tmp_path / "huge.xyz", "1000000000\ncomment\nH 0 0 0\nH 0 0 0.74\n")
    start = time.perf_counter()
    with deadline(30), pytest.raises(StructureError, match=r"huge\.xyz record 0.*1000000000 atoms") as info:
        read(path)
    assert time.perf_counter() - start < 5
    assert info.value.record == 0
    # the same count in a later frame: the frames before it are still read
    good = "2\n\nH 0 0 0\nH 0 0 0.74\n"
    path = write_text(tmp_path / "huge2.xyz", good + "999999999\ncomment\nH 0 0 0\n")
    with deadline(30):
        records = read_records(path)
    assert isinstance(records[0], ase.Atoms)
    assert isinstance(records[1], StructureError)
    assert "huge2.xyz record 1" in str(records[1]) and "999999999 atoms" in str(records[1])


# ---------------------------------------------------------------- 2. one broken frame of many


def test_xyz_broken_middle_frame_is_reported_in_place_and_later_frames_read(tmp_path: Path) -> None:
    frames = [
        "2\nframe0\nH 0 0 0\nH 0 0 0.74\n",
        "2\nframe1\nH 0 0 0\nH 0 zero 0.74\n",  # not a number
        "2\nframe2\nH 0 0 0\nH 0 0 0.75\n",
    ]
    path = write_text(tmp_path / "three.xyz", "".join(frames))
    records = read_records(path)
    assert len(records) == 3
    assert isinstance(records[0], ase.Atoms) and isinstance(records[2], ase.Atoms)
    assert records[2].positions[1, 2] == pytest.approx(0.75)
    assert records[2].info["source"].endswith("three.xyz record 2")
    error = records[1]
    assert isinstance(error, StructureError)
    assert error.record == 1
    assert "three.xyz record 1 (starting at line 5)" in str(error)
    with pytest.raises(StructureError, match=r"three\.xyz record 1"):
        read(path)  # read/read_all still refuse a file with a bad record

    frames[1] = "2\nframe1\nH 0 0 0\nXx 0 0 0.74\n"  # unknown element
    records = read_records(write_text(tmp_path / "xx.xyz", "".join(frames)))
    assert [type(r).__name__ for r in records] == ["Atoms", "StructureError", "Atoms"]
    assert "unknown element symbol 'Xx'" in str(records[1])


# ---------------------------------------------------------------------- 3. degenerate CIF cell

CIF = """data_{name}
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c {c}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma {gamma}
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
Cl1 Cl 0.5 0.5 0.5
"""


@pytest.mark.parametrize(("c", "gamma"), [(0, 90), (4.0, 0), (-1, 90)])
def test_cif_degenerate_cell_names_file_and_cell(tmp_path: Path, c: float, gamma: float) -> None:
    path = write_text(tmp_path / "flat.cif", CIF.format(name="flat", c=c, gamma=gamma))
    with pytest.raises(StructureError, match=r"flat\.cif record 0.*degenerate cell") as info:
        read(path)
    message = str(info.value)
    assert "volume" in message and f"c={c:g}" in message
    # a good block after the bad one is still read
    good = CIF.format(name="good", c=4.0, gamma=90)
    records = read_records(write_text(tmp_path / "two.cif", CIF.format(name="bad", c=c, gamma=gamma) + good))
    assert isinstance(records[0], StructureError) and isinstance(records[1], ase.Atoms)
