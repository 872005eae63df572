"""Hostile inputs: absurd or broken files, degenerate cells, corrupt caches, bad labels, noisy RDKit.

Each test names the input it breaks and checks that the error (or warning) names the file, the
record/row and the problem, and that one bad record does not take the rest of the input down with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import ase
import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Data

from atomgraph.data.build import load_or_build
from atomgraph.data.csv_dataset import load_csv
from atomgraph.data.graph_dataset import DatasetMeta, GraphDataset
from atomgraph.graphs import neighbor_list, radius_graph
from atomgraph.structures import StructureError, from_smiles, read, read_records
from atomgraph.targets import TargetSet, TargetSpec

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


# ------------------------------------------------------- 4. radius graphs of unvalidated atoms


def test_radius_graph_rejects_coincident_atoms() -> None:
    atoms = ase.Atoms("H3", positions=[[0, 0, 0], [1, 0, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"atoms 1 and 2 .*coincide"):
        radius_graph(atoms, 3.0)
    with pytest.raises(ValueError, match=r"atoms 1 and 2 .*coincide"):
        radius_graph(atoms, 3.0, max_neighbors=1)
    # atom 1 sits on a periodic image of atom 0
    cell = ase.Atoms("H2", positions=[[0, 0, 0], [3, 0, 0]], cell=[3, 3, 3], pbc=True)
    with pytest.raises(ValueError, match=r"atoms 0 and 1 .*coincide.*shift"):
        radius_graph(cell, 3.5)
    # a lattice vector of 1e-12 Å along a periodic axis: an atom sits on its own image
    thin = ase.Atoms("H", cell=[[3, 0, 0], [0, 1e-12, 0], [0, 0, 5]], pbc=[True, True, False])
    with pytest.raises(ValueError, match=r"degenerate|coincide"):
        radius_graph(thin, 3.5)


def test_radius_graph_rejects_atomic_number_zero_and_unknown() -> None:
    atoms = ase.Atoms(numbers=[1, 0], positions=[[0, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"atom 1 has atomic number 0"):
        radius_graph(atoms, 3.0)
    atoms.numbers = [1, 119]
    with pytest.raises(ValueError, match=r"atom 1 has atomic number 119"):
        radius_graph(atoms, 3.0)
    atoms.numbers = [1, 1]
    assert radius_graph(atoms, 3.0).edge_index.shape == (2, 2)  # fine atoms still work


def test_neighbor_list_rejects_degenerate_periodic_cell_instead_of_crashing() -> None:
    # vesin dies with SIGFPE on these cells: run in a child so a crash fails the test, not the worker
    code = textwrap.dedent(
        """
        import numpy as np
        from atomgraph.graphs import neighbor_list
        for cell in ([[3, 0, 0], [0, 0, 0], [0, 0, 5]], [[3, 0, 0], [3, 0, 0], [0, 0, 5]]):
            try:
                neighbor_list(np.zeros((1, 3)), np.array(cell, float), [True, True, False], 3.5)
            except ValueError as error:
                print("ValueError:", error)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, f"child died with {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.count("ValueError:") == 2, done.stdout
    assert "degenerate" in done.stdout
    # a slab with an empty non-periodic third vector is fine
    pairs = neighbor_list(np.zeros((1, 3)), np.diag([3.0, 3.0, 0.0]), [True, True, False], 3.5)
    assert len(pairs) == 4


# -------------------------------------------------------------------- 5. corrupt dataset caches


def tiny_dataset(name: str = "tiny") -> GraphDataset:
    graphs = [
        Data(
            z=torch.tensor([1, 1]),
            pos=torch.zeros(2, 3),
            y=torch.full((1, 1), float(k)),
            natoms=torch.tensor([2]),
        )
        for k in range(3)
    ]
    return GraphDataset(graphs, DatasetMeta(name, TargetSet([TargetSpec("e", "eV", "sum")])))


def corrupt_bytes(kind: str, good: bytes) -> bytes:
    if kind == "random":
        return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "pickle":  # a plain pickle: the weights_only loader refuses it
        return b"\x80\x04\x95" + b"\x00" * 40
    return b""


@pytest.mark.parametrize("kind", ["random", "truncated", "zero", "pickle"])
# a pickle header is one of the corruptions under test
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_cache_is_deleted_and_rebuilt(tmp_path: Path, caplog, kind: str) -> None:
    path = tmp_path / "cache" / "data.pt"
    tiny_dataset().save(path)
    path.write_bytes(corrupt_bytes(kind, path.read_bytes()))
    with pytest.raises(ValueError, match=r"data\.pt.*corrupt") as info:
        GraphDataset.load_file(path)
    assert "weights_only=False" not in str(info.value)  # never advise the unsafe loader

    builds = []

    def build() -> GraphDataset:
        builds.append(1)
        return tiny_dataset("rebuilt")

    with caplog.at_level(logging.WARNING):
        dataset = load_or_build(path, build)
    assert builds == [1] and dataset.meta.name == "rebuilt"
    warning = "\n".join(r.getMessage() for r in caplog.records)
    assert "data.pt" in warning and "corrupt" in warning and "rebuild" in warning
    assert GraphDataset.load_file(path).meta.name == "rebuilt"  # the new cache is good
    assert load_or_build(path, build).meta.name == "rebuilt" and builds == [1]  # and is used
    assert not list(path.parent.glob("*.tmp"))


def test_cache_save_failure_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "data.pt"

    def failing_save(self, target) -> None:
        Path(target).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(GraphDataset, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        load_or_build(path, tiny_dataset)
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "data.pt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"data.pt.{dead.pid}.tmp"
    stale.write_bytes(b"left by a killed save")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    live = tmp_path / f"data.pt.{os.getppid()}.tmp"  # another process still writing
    live.write_bytes(b"in progress")
    os.utime(live, (old, old))
    other = tmp_path / "other.pt.12345.tmp"  # someone else's cache: not ours to touch
    other.write_bytes(b"x")
    load_or_build(path, tiny_dataset)
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert path.exists()


# ------------------------------------------------------------------- 6. non-numeric CSV labels


def test_non_numeric_csv_labels_are_reported_per_cell(tmp_path: Path, caplog) -> None:
    table = pd.DataFrame(
        {
            "smiles": ["CCO", "CCN", "CCC", "CO"],
            "y1": ["1.0", "n/a?", "3.0", "4.0"],
            "y2": ["abc", "2.0", "", "inf"],
        }
    )
    path = tmp_path / "labels.csv"
    table.to_csv(path, index=False)
    with caplog.at_level(logging.WARNING):
        dataset = load_csv(path, target_columns=["y1", "y2"], cache=tmp_path / "cache", progress=False)
    assert len(dataset) == 4  # every row kept, with its other labels
    y = dataset.targets_array()
    np.testing.assert_array_equal(np.isnan(y), [[False, True], [True, False], [False, True], [False, True]])
    assert y[0, 0] == 1.0 and y[1, 1] == 2.0 and y[2, 0] == 3.0 and y[3, 0] == 4.0
    bad = dataset.meta.settings["bad_labels"]
    assert bad == [
        {"id": "labels.csv:2", "index": 0, "column": "y2", "value": "abc"},
        {"id": "labels.csv:3", "index": 1, "column": "y1", "value": "n/a?"},
        {"id": "labels.csv:5", "index": 3, "column": "y2", "value": "inf"},
    ]  # the blank cell is an ordinary missing label, not a bad one
    warning = "\n".join(r.getMessage() for r in caplog.records)
    assert "labels.csv" in warning and "3 " in warning and "'abc'" in warning and "labels.csv:2" in warning
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # from the cache: still reported
        again = load_csv(path, target_columns=["y1", "y2"], cache=tmp_path / "cache", progress=False)
    assert again.meta.settings["bad_labels"] == bad
    assert "'abc'" in "\n".join(r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------- 7. SPDX license in pyproject


def test_pyproject_license_is_an_spdx_string() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    requires = project["build-system"]["requires"]
    assert "setuptools>=77" in requires  # the first setuptools that accepts an SPDX license string


# ------------------------------------------------------------------------- 8. RDKit log noise


SDF_2D_WITH_Z = """water
     RDKit          2D

  3  2  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.1000 O   0  0  0  0  0  0  0  0  0  0  0  0
    0.9600    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0
   -0.2400    0.9300    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  1  3  1  0
M  END
$$$$
"""


def test_rdkit_warnings_are_silenced_but_errors_still_raised(tmp_path: Path, capfd) -> None:
    for _ in range(3):
        from_smiles("[H].[H]Cl")  # RDKit: "not removing hydrogen atom without neighbors"
    read(write_text(tmp_path / "flat.sdf", SDF_2D_WITH_Z * 3))  # "tagged as 2D, but ... Z coordinate"
    captured = capfd.readouterr()
    assert "WARNING" not in captured.err and "Warning" not in captured.err, captured.err
    assert "not removing hydrogen" not in captured.out + captured.err
    with pytest.raises(StructureError, match=r"'C1CC'.*unclosed ring"):
        from_smiles("C1CC")  # real errors still reach the exception with RDKit's reason
