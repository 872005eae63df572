"""Streaming protein-ligand screening: the ligand file is read one record at a time, scored a chunk at a
time and appended in input order; the ranked file is the same whatever the chunk size, and a screen
killed mid-way resumes without losing or repeating a row."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from atomgraph.apps.complexes import ComplexError
from atomgraph.apps.complexes.ligand import iter_ligands
from atomgraph.apps.complexes.models.affinity_joint import JointGraphAffinity
from atomgraph.apps.complexes.screen import read_screen, screen
from atomgraph.apps.complexes.synthetic import (
    ligand_over_ring,
    molecule,
    peptide_mol,
    protein_from_mol,
    set_positions,
)

# the module, not the function the package exports under the same name
screen_module = importlib.import_module("atomgraph.apps.complexes.screen")
FAILING = [3, 7, 10, 13]  # the records of the library below that cannot be scored


def _library_blocks(protein) -> list[str]:
    """Eleven poses of benzoate over the ring, with a ligand far from the protein after poses 2 and 5,
    a molecule RDKit cannot sanitise after pose 7 and text that is no molecule at the end: 14 records."""
    ligand = ligand_over_ring(protein, "c1ccccc1C(=O)[O-]")
    far = set_positions(
        molecule("CCO", name="far_away"), molecule("CCO").GetConformer().GetPositions() + 60.0
    )
    broken = Chem.RWMol(molecule("C", name="broken_mol"))
    extra = broken.AddAtom(Chem.Atom(1))
    broken.AddBond(0, extra, Chem.BondType.SINGLE)
    broken.GetConformer().SetAtomPosition(extra, (0.0, 0.0, 1.1))
    blocks = []
    for k in range(10):
        shift = np.array([0.3 * k, 0.1 * (k % 3), 0.0])
        pose = set_positions(ligand, ligand.GetConformer().GetPositions() + shift)
        pose.SetProp("_Name", f"pose{k}")
        blocks.append(Chem.MolToMolBlock(pose, kekulize=False) + "$$$$\n")
        if k in (2, 5):
            blocks.append(Chem.MolToMolBlock(far, kekulize=False) + "$$$$\n")
        if k == 7:
            blocks.append(Chem.MolToMolBlock(broken, kekulize=False) + "$$$$\n")
    return [*blocks, "not a molecule\n"]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """(model, protein PDB, ligand SDF, the whole-file screen's CSV with batches of one)."""
    root = tmp_path_factory.mktemp("screen_stream")
    mol = peptide_mol("KDFYW", seed=1)
    pdb = root / "protein.pdb"
    Chem.MolToPDBFile(mol, str(pdb))
    sdf = root / "library.sdf"
    sdf.write_text("".join(_library_blocks(protein_from_mol(mol))))
    torch.manual_seed(0)
    model = JointGraphAffinity(hidden=16, layers=2)
    whole = root / "whole.csv"
    summary = screen(model, pdb, sdf, whole, batch_size=1, chunk_rows=10_000, progress=False)
    assert (summary.rows, summary.scored, summary.failed) == (14, 10, 4)
    return model, pdb, sdf, whole


def test_the_whole_file_screen_is_ranked_with_the_failures_last_in_input_order(library):
    *_, whole = library
    table = read_screen(whole)
    assert list(table.columns) == ["rank", "record", "name", "smiles", "affinity", "error"]
    assert table["rank"].iloc[:10].tolist() == list(range(1, 11)) and table["rank"].iloc[10:].isna().all()
    assert table["affinity"].iloc[:10].is_monotonic_decreasing and (table["error"].iloc[:10] == "").all()
    assert sorted(table["record"].iloc[:10]) == [k for k in range(14) if k not in FAILING]
    failed = table.iloc[10:]
    assert failed["record"].tolist() == FAILING and failed["affinity"].isna().all()
    assert failed["name"].tolist() == ["far_away", "far_away", "broken_mol", "not a molecule"]
    assert "share a coordinate frame" in failed["error"].iloc[0] and "sanitise" in failed["error"].iloc[2]
    assert "library.sdf record 13" in failed["error"].iloc[3]
    assert not whole.with_name("whole.csv.unranked.csv").exists()
    assert not whole.with_name("whole.csv.progress").exists()


@pytest.mark.parametrize("chunk_rows", [1, 2, 5])
def test_a_streamed_screen_writes_the_same_file_as_one_chunk(library, tmp_path, chunk_rows):
    model, pdb, sdf, whole = library
    out = tmp_path / "chunked.csv"
    summary = screen(model, pdb, sdf, out, batch_size=1, chunk_rows=chunk_rows, progress=False)
    assert (summary.output, summary.rows, summary.scored, summary.failed) == (out, 14, 10, 4)
    assert out.read_text() == whole.read_text()


def test_batches_across_failures_change_the_predictions_by_round_off_only(library, tmp_path):
    """Batches of 4 graphs inside chunks of 3 records, against batches of one: the same rows, ranks within
    float32 round-off of each other (the values are allclose; the order is checked on the text)."""
    model, pdb, sdf, whole = library
    out = tmp_path / "batched.csv"
    screen(model, pdb, sdf, out, batch_size=4, chunk_rows=3, progress=False)
    got, want = read_screen(out), read_screen(whole)
    assert list(got.columns) == list(want.columns)
    for column in ("rank", "record", "name", "smiles", "error"):
        assert got[column].tolist() == want[column].tolist(), column
    np.testing.assert_allclose(got["affinity"], want["affinity"], rtol=1e-5, equal_nan=True)


def _unranked_rows(out) -> pd.DataFrame:
    return pd.read_csv(out.with_name(out.name + ".unranked.csv"), dtype=str, keep_default_na=False)


def test_rows_are_written_as_the_file_is_read_and_a_resume_finishes_them(library, tmp_path, monkeypatch):
    """A reader that fails at record 7 (a file cut short, a disk gone) still leaves the three chunks of
    two records before it written, in input order, failures included: the records are read lazily and
    each chunk is appended as soon as it is scored. The resume then reads on from record 6."""
    model, pdb, sdf, whole = library
    real = screen_module.iter_ligands
    skips: list[int] = []

    def dies_at_record_7(path, format=None, template_smiles=None, skip=0):
        skips.append(skip)
        for record in real(path, format, template_smiles, skip):
            if record.index == 7:
                raise OSError("the disk went away")
            yield record

    monkeypatch.setattr(screen_module, "iter_ligands", dies_at_record_7)
    out = tmp_path / "killed.csv"
    with pytest.raises(OSError, match="disk went away"):
        screen(model, pdb, sdf, out, batch_size=1, chunk_rows=2, progress=False)
    assert not out.exists()
    written = _unranked_rows(out)
    assert written["record"].tolist() == ["0", "1", "2", "3", "4", "5"]
    assert written.loc[3, "name"] == "far_away" and written.loc[3, "error"] and not written.loc[3, "affinity"]
    assert (written.drop(index=3)["error"] == "").all()
    assert json.loads(out.with_name("killed.csv.progress").read_text())["rows"] == 6

    first: list[int] = []

    def counting(path, format=None, template_smiles=None, skip=0):
        skips.append(skip)
        for record in real(path, format, template_smiles, skip):
            first.append(record.index)
            yield record

    monkeypatch.setattr(screen_module, "iter_ligands", counting)
    summary = screen(model, pdb, sdf, out, batch_size=1, chunk_rows=2, progress=False, resume=True)
    assert skips == [0, 6] and first[0] == 6  # the six rows written are not read (parsed) again
    assert (summary.rows, summary.scored, summary.failed) == (14, 10, 4)
    assert out.read_text() == whole.read_text()


def kill_on_chunk(monkeypatch, chunk: int):
    """Make the screen stop with a KeyboardInterrupt (a kill between two chunks) when it scores chunk
    ``chunk`` (1-based); returns the real scoring function."""
    real, calls = screen_module._scored_rows, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == chunk:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(screen_module, "_scored_rows", killed)
    return real


def test_a_kill_mid_chunk_resumes_without_lost_or_repeated_rows(library, tmp_path, monkeypatch):
    model, pdb, sdf, whole = library
    real = kill_on_chunk(monkeypatch, 3)
    out = tmp_path / "killed.csv"
    with pytest.raises(KeyboardInterrupt):
        screen(model, pdb, sdf, out, batch_size=1, chunk_rows=3, progress=False)
    record = json.loads(out.with_name("killed.csv.progress").read_text())
    assert record["rows"] == 6 and len(_unranked_rows(out)) == 6
    with open(out.with_name("killed.csv.unranked.csv"), "a") as handle:
        handle.write("6,pose5,O=C([O-])c1cc")  # a chunk the kill cut mid-write
    monkeypatch.setattr(screen_module, "_scored_rows", real)
    summary = screen(model, pdb, sdf, out, batch_size=1, chunk_rows=3, progress=False, resume=True)
    assert out.read_text() == whole.read_text() and summary.rows == 14
    assert not out.with_name("killed.csv.progress").exists()
    assert not out.with_name("killed.csv.unranked.csv").exists()

    def never(*args, **kwargs):
        raise AssertionError("a finished screen is not scored again")

    monkeypatch.setattr(screen_module, "_scored_rows", never)
    again = screen(model, pdb, sdf, out, progress=False, resume=True)
    assert (again.rows, again.scored, again.failed) == (14, 10, 4) and out.read_text() == whole.read_text()


def test_a_resume_refuses_another_job_and_starts_afresh_without_a_record(library, tmp_path, monkeypatch):
    model, pdb, sdf, whole = library
    real = kill_on_chunk(monkeypatch, 2)
    out = tmp_path / "killed.csv"
    with pytest.raises(KeyboardInterrupt):
        screen(model, pdb, sdf, out, batch_size=1, chunk_rows=4, progress=False)
    monkeypatch.setattr(screen_module, "_scored_rows", real)
    other = tmp_path / "other.sdf"
    other.write_text(sdf.read_text())
    with pytest.raises(ValueError, match=r"killed\.csv\.progress: it records a job with ligands"):
        screen(model, pdb, other, out, progress=False, resume=True)
    with pytest.raises(ValueError, match="protein"):
        screen(model, tmp_path / "elsewhere.pdb", sdf, out, progress=False, resume=True)
    with pytest.raises(ValueError, match="chunk_rows"):
        screen(model, pdb, sdf, out, chunk_rows=0, progress=False)
    fresh = tmp_path / "fresh.csv"  # killed before its first chunk was written: no record, a new screen
    summary = screen(model, pdb, sdf, fresh, batch_size=1, progress=False, resume=True)
    assert summary.rows == 14 and fresh.read_text() == whole.read_text()


# ------------------------------------------------------------------------------------- the lazy reader


def _supplier_records(path) -> list[tuple]:
    """(name, parsed, mol block) of every record as RDKit's SDMolSupplier reads the whole file."""
    supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)
    out = []
    for index in range(len(supplier)):
        text = supplier.GetItemText(index)
        mol = supplier[index]
        out.append((text.splitlines()[0].strip() if text.strip() else "", mol is not None,
                    None if mol is None else Chem.MolToMolBlock(mol, kekulize=False)))  # fmt: skip
    return out


@pytest.mark.parametrize(
    "case", ["plain", "no_final_terminator", "blank_tail", "empty_record", "crlf", "junk"]
)
def test_the_lazy_sdf_reader_splits_records_as_rdkit_does(tmp_path, case):
    ethanol = Chem.MolToMolBlock(molecule("CCO", name="ethanol"))
    amine = Chem.MolToMolBlock(molecule("CCN", name="ethylamine"))
    end = "$$$$\n"
    text = {
        "plain": ethanol + end + amine + end,
        "no_final_terminator": ethanol + end + amine,
        "blank_tail": ethanol + end + amine + end + "\n\n",
        "empty_record": ethanol + end + end + amine + end,
        "crlf": (ethanol + end + amine + end).replace("\n", "\r\n"),
        "junk": ethanol + end + "junk\n" + end + amine + end,
    }[case]
    path = tmp_path / "ligands.sdf"
    path.write_bytes(text.encode())
    expected = _supplier_records(path)
    got = [(r.name, r.ok, None if r.mol is None else Chem.MolToMolBlock(r.mol, kekulize=False))
           for r in iter_ligands(path)]  # fmt: skip
    assert got == expected and sum(ok for _, ok, _ in got) == 2
    assert [r.index for r in iter_ligands(path, skip=1)] == list(range(1, len(expected)))


def test_the_lazy_reader_is_an_iterator_with_its_checks_made_at_once(tmp_path):
    path = tmp_path / "ligands.sdf"
    path.write_text(Chem.MolToMolBlock(molecule("CCO", name="ethanol")) + "$$$$\n")
    records = iter_ligands(path)
    assert iter(records) is records and next(records).name == "ethanol"
    with pytest.raises(ComplexError, match="unknown ligand format"):
        iter_ligands(tmp_path / "ligands.xyz")  # raised by the call, before any record is asked for
    with pytest.raises(ComplexError, match="not found"):
        iter_ligands(tmp_path / "missing.sdf")
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    with pytest.raises(ComplexError, match="no ligand records"):
        list(iter_ligands(empty))


def test_the_screen_command_streams_and_prints_the_summary(library, tmp_path, monkeypatch):
    """``atomgraph screen`` with a model standing in for the run: the options reach the stream, the
    summary is printed, and --resume on the finished output redoes nothing."""
    from typer.testing import CliRunner

    from atomgraph.cli.main import app

    model, pdb, sdf, whole = library
    real = screen_module.scoring_model
    monkeypatch.setattr(
        screen_module, "scoring_model", lambda run, settings=None, **options: real(model, settings, **options)
    )
    out = tmp_path / "cli.csv"
    arguments = [
        "screen",
        str(tmp_path / "run"),
        "--protein",
        str(pdb),
        "--ligands",
        str(sdf),
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(app, [*arguments, "--batch-size", "1", "--chunk-rows", "3"])
    assert result.exit_code == 0, result.output
    assert f"ranked 10 of 14 ligands -> {out}; 4 failed" in result.output
    assert out.read_text() == whole.read_text()
    result = CliRunner().invoke(app, [*arguments, "--resume"])
    assert result.exit_code == 0 and "ranked 10 of 14 ligands" in result.output
