"""QM9 readers (canonical archive, qm9pack CSVs) and the checksummed downloader."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from atomgraph.data import qm9_source
from atomgraph.data.download import download, file_digest, verify_file
from atomgraph.data.qm9_source import (
    HARTREE_TO_EV,
    QM9_ARCHIVE_MD5,
    QM9_ARCHIVE_SHA256,
    QM9_NUM_CHARACTERIZED,
    QM9_TARGET_NAMES,
    QM9_TARGETS,
    QM9_UNCHARACTERIZED_MD5,
    QM9_UNCHARACTERIZED_SHA256,
    QM9Records,
    download_qm9,
    parse_uncharacterized,
    read_qm9_archive,
)
from atomgraph.targets import QM9


# --------------------------------------------------------------------------------------------------
# A tiny archive in the canonical format
# --------------------------------------------------------------------------------------------------
# Properties in file order: A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv
def _gdb_line(mol_id: int, values: str) -> str:
    """Line 2 of a QM9 file: "gdb <id>" then the 15 properties, tab separated."""
    return "\t".join([f"gdb {mol_id}", *values.split()])


METHANE_PROPS = (
    "157.7118 157.70997 157.70699 0. 13.21 -0.3877 0.1171 0.5048 35.3641 0.044749 "
    "-40.47893 -40.476062 -40.475117 -40.498597 6.469"
)
AMMONIA_PROPS = (
    "293.60975 293.54111 191.39397 1.6256 9.46 -0.257 0.0829 0.3399 26.1563 0.034358 "
    "-56.525887 -56.523026 -56.522082 -56.544961 6.316"
)
WATER_PROPS = (
    "799.58812 437.90386 282.94545 1.8511 6.31 -0.2928 0.0687 0.3615 19.0002 2.1375*^-2 "
    "-76.404702 -76.401867 -76.400922 -76.422349 6.002"
)
HCN_PROPS = "1.0 2.0 3.0 0.5 10.0 -0.25 0.05 0.30 20.0 0.01 -93.4 -93.3 -93.2 -93.5 7.0"

METHANE = f"""5
{_gdb_line(1, METHANE_PROPS)}
C\t-0.0126981359\t 1.0858041578\t 0.0080009958\t-0.535689
H\t 0.002150416\t-0.0060313176\t 0.0019761204\t 0.133921
H\t 1.0117308433\t 1.4637511618\t 0.0002765748\t 0.133922
H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923
H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923
1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078
C\tC
InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4
"""

# Water, with Mathematica-style exponents in a coordinate, a charge and a property.
WATER = f"""3
{_gdb_line(3, WATER_PROPS)}
O\t-0.0343604951\t 0.9775395708\t 0.0076015923\t-0.6*^-1
H\t 0.0647664923\t 0.0205721989\t 1.2*^-6\t 0.33
H\t 0.8717346331\t 1.3007924439\t 0.0006585001\t 0.27
1658.4\t3843.1\t3951.2
O\tO
InChI=1S/H2O/h1H2\tInChI=1S/H2O/h1H2
"""

AMMONIA = f"""4
{_gdb_line(2, AMMONIA_PROPS)}
N\t-0.0404260543\t 1.0241077531\t 0.0625637998\t-0.707143
H\t 0.0172574639\t 0.0125452063\t-0.0273771593\t 0.235712
H\t 0.9157893661\t 1.3587451948\t-0.0287577581\t 0.235712
H\t-0.5202777357\t 1.3435321258\t-0.7755426124\t 0.23572
1103.8733\t1684.1158\t1684.3072\t3458.7145\t3575.2414\t3575.3343
N\tN
InChI=1S/H3N/h1H3\tInChI=1S/H3N/h1H3
"""

# HCN whose relaxed SMILES differs from the GDB-17 one; listed in UNCHARACTERIZED below.
ODD = f"""3
{_gdb_line(5, HCN_PROPS)}
C\t0.0\t0.0\t0.0\t-0.1
N\t1.15\t0.0\t0.0\t-0.2
H\t-1.06\t0.0\t0.0\t0.3
700.0\t800.0\t900.0
C#N\t[CH]=N
InChI=1S/CHN/c1-2/h1H\tInChI=1S/CHN/c1-2/h1H
"""

UNCHARACTERIZED = """ Molecules which failed the geometry consistency check
 (the header of the published file is free text)

----------------------------------------------------------------------------
  Index   SMILES_GDB-17   SMILES_B3LYP   ...
----------------------------------------------------------------------------
      5   C#N   [CH]=N   1.2
  21725   CC1=CC=CN1   CC1=CC=C[NH]1   3.4
----------------------------------------------------------------------------
"""


def _write_archive(path: Path, records: dict[int, str]) -> Path:
    """A tar.bz2 with one dsgdb9nsd_NNNNNN.xyz member per record, written out of id order."""
    with tarfile.open(path, "w:bz2") as tar:
        for mol_id, text in sorted(records.items(), reverse=True):
            data = text.encode()
            info = tarfile.TarInfo(f"dsgdb9nsd_{mol_id:06d}.xyz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Path:
    return _write_archive(tmp_path / "dsgdb9nsd.xyz.tar.bz2", {1: METHANE, 2: AMMONIA, 3: WATER, 5: ODD})


def test_targets_table():
    assert QM9_TARGET_NAMES[:12] == ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G",
                                     "Cv")  # fmt: skip
    assert QM9_TARGET_NAMES[12:15] == ("A", "B", "C")
    assert QM9_TARGET_NAMES[15:] == ("omega1", "U0_atom", "U_atom", "H_atom", "G_atom")  # derived
    assert [t.name for t in QM9_TARGETS] == list(QM9_TARGET_NAMES[:15])  # the columns read
    by_name = {t.name: t for t in QM9_TARGETS}
    for name in ("homo", "lumo", "gap", "zpve", "U0", "U", "H", "G"):
        assert by_name[name].unit == "eV" and by_name[name].source_unit == "Hartree"
        assert by_name[name].factor == HARTREE_TO_EV == 27.211386245988
    energies = {"U0", "U", "H", "G", "U0_atom", "U_atom", "H_atom", "G_atom"}
    assert {t.name for t in QM9 if t.extensive} == {"alpha", "r2", "zpve", "Cv", *energies}
    assert by_name["mu"].unit == "D" and by_name["A"].unit == "GHz" and by_name["Cv"].unit == "cal/mol/K"


def test_read_archive(tiny_archive: Path):
    rec = read_qm9_archive(tiny_archive, progress=False)
    assert isinstance(rec, QM9Records)
    assert len(rec) == 4
    np.testing.assert_array_equal(rec.ids, [1, 2, 3, 5])  # sorted by id
    assert rec.ids.dtype == np.int64
    np.testing.assert_array_equal(rec.numbers[0], [6, 1, 1, 1, 1])
    np.testing.assert_array_equal(rec.numbers[1], [7, 1, 1, 1])
    np.testing.assert_array_equal(rec.numbers[2], [8, 1, 1])
    assert rec.numbers[0].dtype == np.int64
    assert rec.positions[0].shape == (5, 3) and rec.positions[0].dtype == np.float64
    np.testing.assert_allclose(rec.positions[0][1], [0.002150416, -0.0060313176, 0.0019761204])
    # '*^' exponents
    assert rec.positions[2][1, 2] == pytest.approx(1.2e-6)
    assert rec.mulliken[2][0] == pytest.approx(-0.06)
    np.testing.assert_allclose(rec.mulliken[0], [-0.535689, 0.133921, 0.133922, 0.133923, 0.133923])
    assert rec.smiles == ["C", "N", "O", "C#N"]
    assert rec.smiles_relaxed == ["C", "N", "O", "[CH]=N"]
    assert rec.target_names == list(QM9_TARGET_NAMES)
    assert rec.targets.shape == (4, len(QM9_TARGET_NAMES)) == (4, 20)

    # unit conversion: Hartree -> eV, the rest unchanged
    assert rec.target("homo")[0] == pytest.approx(-0.3877 * 27.2114, rel=1e-6)
    assert rec.target("U0")[0] == pytest.approx(-40.47893 * HARTREE_TO_EV)
    assert rec.target("gap")[2] == pytest.approx(0.3615 * HARTREE_TO_EV)
    assert rec.target("zpve")[2] == pytest.approx(0.021375 * HARTREE_TO_EV)  # '*^' in a property
    assert rec.target("mu")[0] == 0.0
    assert rec.target("alpha")[1] == pytest.approx(9.46)
    assert rec.target("Cv")[2] == pytest.approx(6.002)
    np.testing.assert_allclose([rec.target(k)[0] for k in "ABC"], [157.7118, 157.70997, 157.70699])
    assert rec.units["homo"] == "eV" and rec.units["r2"] == "bohr^2" and rec.units["omega1"] == "cm^-1"
    # derived: the highest harmonic frequency, and the energy relative to the free atoms
    np.testing.assert_allclose(rec.target("omega1"), [3151.7078, 3575.3343, 3951.2, 900.0])
    atoms = {"U0": [-37.846772, -0.500273], "G": [-37.861317, -0.510927]}  # QM9's atomref, C and H
    for name, (carbon, hydrogen) in atoms.items():
        expected = (rec.target(name)[0] / HARTREE_TO_EV - carbon - 4 * hydrogen) * HARTREE_TO_EV
        assert rec.target(f"{name}_atom")[0] == pytest.approx(expected)
    assert rec.target("U0_atom")[0] == pytest.approx(-17.172, abs=1e-3)  # methane, as in PyG's QM9


def test_qm9_graphs_carry_the_mulliken_charges_as_node_level_targets(tiny_archive: Path, tmp_path: Path):
    from atomgraph.data.qm9 import load_qm9
    from atomgraph.graphs.spec import GraphSpec
    from atomgraph.training.datasets import select_targets

    records = read_qm9_archive(tiny_archive, progress=False)
    dataset = load_qm9(GraphSpec("radius", 5.0), source=tiny_archive, cache=tmp_path, progress=False)
    assert dataset.meta.node_targets.names == ["mulliken"]
    select_targets(dataset, ["mulliken"])
    assert dataset.targets.node_level and dataset.targets.units == ["e"]
    kept = [records.ids.tolist().index(int(i)) for i in dataset.meta.ids]
    np.testing.assert_allclose(
        dataset.targets_array()[:, 0], np.concatenate([records.mulliken[k] for k in kept]), rtol=1e-6
    )
    # heavy-atom graphs have no node per hydrogen, so no per-atom labels (and another cache file)
    heavy = load_qm9(GraphSpec("bond", explicit_hydrogens=False), source=tiny_archive, cache=tmp_path,
                     progress=False)  # fmt: skip
    assert heavy.meta.node_targets.names == []
    with pytest.raises(ValueError, match="unknown targets"):
        select_targets(heavy, ["mulliken"])


def test_read_archive_excludes_uncharacterized(tiny_archive: Path, tmp_path: Path):
    listing = tmp_path / "uncharacterized.txt"
    listing.write_text(UNCHARACTERIZED)
    excluded = parse_uncharacterized(listing)
    assert excluded == {5, 21725}
    rec = read_qm9_archive(tiny_archive, exclude_ids=excluded, progress=False)
    np.testing.assert_array_equal(rec.ids, [1, 2, 3])
    assert rec.smiles == ["C", "N", "O"]
    assert len(rec.numbers) == len(rec.positions) == len(rec.mulliken) == rec.targets.shape[0] == 3


def test_read_archive_rejects_mismatched_id(tmp_path: Path):
    path = _write_archive(tmp_path / "bad.tar.bz2", {7: METHANE})  # file 7 says "gdb 1"
    with pytest.raises(ValueError, match="gdb 1"):
        read_qm9_archive(path, progress=False)


def test_subset(tiny_archive: Path):
    rec = read_qm9_archive(tiny_archive, progress=False)
    sub = rec.subset([2, 0])
    np.testing.assert_array_equal(sub.ids, [3, 1])
    assert sub.smiles == ["O", "C"] and sub.smiles_relaxed == ["O", "C"]
    np.testing.assert_array_equal(sub.targets, rec.targets[[2, 0]])
    np.testing.assert_array_equal(sub.positions[1], rec.positions[0])
    masked = rec.subset(rec.ids > 2)
    np.testing.assert_array_equal(masked.ids, [3, 5])
    assert len(rec.subset([])) == 0
    assert len(rec.subset(slice(1, 3))) == 2


# --------------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def source_file(tmp_path: Path) -> tuple[str, bytes]:
    payload = os.urandom(300_000) + b"QM9"
    src = tmp_path / "remote" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(payload)
    return src.as_uri(), payload


def test_download_checksum_ok(source_file, tmp_path: Path):
    url, payload = source_file
    sha = hashlib.sha256(payload).hexdigest()
    md5 = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "cache" / "sub" / "payload.bin"
    out = download(url, dest, sha256=sha, md5=md5.upper(), progress=False)
    assert out == dest and dest.read_bytes() == payload
    assert file_digest(dest, "sha256") == sha and file_digest(dest, "md5") == md5
    assert [p.name for p in dest.parent.iterdir()] == ["payload.bin"]  # no temporary file left


def test_download_bad_checksum(source_file, tmp_path: Path):
    url, _ = source_file
    dest = tmp_path / "cache" / "payload.bin"
    wrong = "0" * 64
    with pytest.raises(ValueError, match=r"payload\.bin.*sha256.*0{64}"):
        download(url, dest, sha256=wrong, progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []
    with pytest.raises(ValueError, match="md5"):
        download(url, dest, md5="f" * 32, progress=False)
    assert not dest.exists()


def test_download_skips_existing_good_file(source_file, tmp_path: Path, monkeypatch):
    url, payload = source_file
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "payload.bin"
    download(url, dest, sha256=sha, progress=False)
    mtime = dest.stat().st_mtime_ns
    time.sleep(0.01)

    def no_network(*args, **kwargs):
        raise AssertionError("urlopen must not be called for a valid cached file")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert download(url, dest, sha256=sha, progress=False) == dest
    assert dest.stat().st_mtime_ns == mtime


def test_download_replaces_corrupt_existing_file(source_file, tmp_path: Path):
    url, payload = source_file
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"truncated")
    download(url, dest, sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    assert dest.read_bytes() == payload


def test_verify_file_accepts_only_matching_digests(tmp_path: Path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"QM9" * 1000)
    sha, md5 = hashlib.sha256(path.read_bytes()).hexdigest(), hashlib.md5(path.read_bytes()).hexdigest()
    assert verify_file(path, sha256=sha) and verify_file(path, md5=md5)
    assert verify_file(path, sha256=f" {sha.upper()}\n", md5=md5.upper())  # as pasted from a web page
    flipped = sha[:-1] + ("0" if sha[-1] != "0" else "1")
    assert not verify_file(path, sha256=flipped)
    assert not verify_file(path, sha256=sha, md5="0" * 32)  # every digest given must match
    assert not verify_file(path, sha256=flipped, md5=md5)
    path.write_bytes(b"QM9" * 999 + b"QM8")  # one byte changed
    assert not verify_file(path, sha256=sha) and not verify_file(path, md5=md5)


def _serve(monkeypatch, archive: Path, listing: Path) -> list[str]:
    """Point download_qm9 at local files; returns the list of URLs it opens (anything else fails)."""
    monkeypatch.setattr(qm9_source, "QM9_ARCHIVE_URL", archive.as_uri())
    monkeypatch.setattr(qm9_source, "QM9_UNCHARACTERIZED_URL", listing.as_uri())
    opened: list[str] = []
    urlopen = urllib.request.urlopen

    def local_only(request, *args, **kwargs):
        url = getattr(request, "full_url", request)
        assert url.startswith("file:"), f"network access to {url}"
        opened.append(url)
        return urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    return opened


def test_download_qm9_rejects_files_not_matching_the_published_checksums(tiny_archive, tmp_path, monkeypatch):
    listing = tmp_path / "remote_uncharacterized.txt"
    listing.write_text(UNCHARACTERIZED)
    opened = _serve(monkeypatch, tiny_archive, listing)
    root = tmp_path / "qm9"
    # the pinned digests are the real archive's: the tiny stand-in is refused and not kept
    with pytest.raises(ValueError, match=rf"dsgdb9nsd.*sha256 expected {QM9_ARCHIVE_SHA256}"):
        download_qm9(root, progress=False)
    assert opened == [tiny_archive.as_uri()] and list(root.iterdir()) == []

    # pinned to the bytes served, the archive is accepted; the listing still has the real pins
    digests = {
        "QM9_ARCHIVE_SHA256": file_digest(tiny_archive, "sha256"),
        "QM9_ARCHIVE_MD5": file_digest(tiny_archive, "md5"),
        "QM9_UNCHARACTERIZED_SHA256": file_digest(listing, "sha256"),
        "QM9_UNCHARACTERIZED_MD5": file_digest(listing, "md5"),
    }
    monkeypatch.setattr(qm9_source, "QM9_ARCHIVE_SHA256", digests["QM9_ARCHIVE_SHA256"])
    monkeypatch.setattr(qm9_source, "QM9_ARCHIVE_MD5", digests["QM9_ARCHIVE_MD5"])
    with pytest.raises(ValueError, match=rf"uncharacterized.*sha256 expected {QM9_UNCHARACTERIZED_SHA256}"):
        download_qm9(root, progress=False)
    assert [p.name for p in root.iterdir()] == ["dsgdb9nsd.xyz.tar.bz2"]

    # both pinned to the bytes served: accepted, stored and read
    monkeypatch.setattr(qm9_source, "QM9_UNCHARACTERIZED_SHA256", digests["QM9_UNCHARACTERIZED_SHA256"])
    monkeypatch.setattr(qm9_source, "QM9_UNCHARACTERIZED_MD5", digests["QM9_UNCHARACTERIZED_MD5"])
    monkeypatch.setattr(qm9_source, "QM9_NUM_UNCHARACTERIZED", 2)
    records = download_qm9(root, progress=False)
    np.testing.assert_array_equal(records.ids, [1, 2, 3])  # 5 is listed as uncharacterised
    stored = {p.name: p for p in root.iterdir()}
    assert stored.keys() == {"dsgdb9nsd.xyz.tar.bz2", "uncharacterized.txt"}
    assert stored["dsgdb9nsd.xyz.tar.bz2"].read_bytes() == tiny_archive.read_bytes()
    assert len(opened) == 4

    # a valid cached copy is used as it is; a corrupted one is replaced by a verified download
    assert len(download_qm9(root, progress=False)) == 3 and len(opened) == 4
    stored["dsgdb9nsd.xyz.tar.bz2"].write_bytes(b"corrupt")
    assert len(download_qm9(root, progress=False)) == 3 and len(opened) == 5
    assert stored["dsgdb9nsd.xyz.tar.bz2"].read_bytes() == tiny_archive.read_bytes()

    # a right sha256 does not excuse a wrong md5, for either file; the bad file is not kept
    monkeypatch.setattr(qm9_source, "QM9_ARCHIVE_MD5", QM9_ARCHIVE_MD5)
    with pytest.raises(ValueError, match=rf"md5 expected {QM9_ARCHIVE_MD5}"):
        download_qm9(root, progress=False)
    assert [p.name for p in root.iterdir()] == ["uncharacterized.txt"]
    monkeypatch.setattr(qm9_source, "QM9_ARCHIVE_MD5", digests["QM9_ARCHIVE_MD5"])
    monkeypatch.setattr(qm9_source, "QM9_UNCHARACTERIZED_MD5", QM9_UNCHARACTERIZED_MD5)
    with pytest.raises(ValueError, match=rf"md5 expected {QM9_UNCHARACTERIZED_MD5}"):
        download_qm9(root, progress=False)
    assert [p.name for p in root.iterdir()] == ["dsgdb9nsd.xyz.tar.bz2"]


# --------------------------------------------------------------------------------------------------
# qm9pack (real data)
# --------------------------------------------------------------------------------------------------
def _qm9pack_dir() -> Path | None:
    try:
        from atomgraph.data.qm9_source import qm9pack_data_dir

        return qm9pack_data_dir()
    except (ImportError, FileNotFoundError):
        return None


needs_qm9pack = pytest.mark.skipif(_qm9pack_dir() is None, reason="qm9pack data not installed")


@pytest.mark.realdata
@needs_qm9pack
def test_read_qm9pack_head():
    from atomgraph.data.qm9_source import read_qm9pack

    rec = read_qm9pack(limit=200, progress=False)
    assert len(rec) == 200
    assert rec.ids[0] == 1 and np.all(np.diff(rec.ids) > 0)
    np.testing.assert_array_equal(rec.numbers[0], [6, 1, 1, 1, 1])  # methane
    assert rec.smiles[0] == "C"
    assert rec.positions[0].shape == (5, 3)
    assert rec.target("U0")[0] == pytest.approx(-40.47893 * HARTREE_TO_EV)
    assert rec.target("U0")[0] == pytest.approx(-1101.4878, abs=1e-3)
    assert rec.target("homo")[0] == pytest.approx(-0.3877 * HARTREE_TO_EV)
    assert rec.target("mu")[0] == 0.0
    assert rec.target("omega1")[0] == pytest.approx(3151.7078)  # the archive's methane frequencies
    assert rec.target("U0_atom")[0] == pytest.approx(-17.172, abs=1e-3)
    assert rec.target_names == list(QM9_TARGET_NAMES)
    assert rec.units["U0"] == "eV"
    for z, pos, q in zip(rec.numbers, rec.positions, rec.mulliken, strict=True):
        assert pos.shape == (len(z), 3) and q.shape == (len(z),)
        assert np.isfinite(pos).all()
        assert set(z.tolist()) <= {1, 6, 7, 8, 9}
    assert np.isfinite(rec.targets).all()


@pytest.mark.realdata
@needs_qm9pack
def test_qm9pack_row_count():
    """130,831 rows across the three parts, counted on raw bytes (about a second)."""
    data_dir = _qm9pack_dir()
    rows = 0
    for name in ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv"):
        with open(data_dir / name, "rb") as f:
            rows += f.read().count(b'\n"dsgdb9nsd_')
    assert rows == QM9_NUM_CHARACTERIZED == 130_831
