"""Streaming prediction: the output is written chunk by chunk and is the same whatever the chunk size;
a job killed mid-way (kill -9, or an error) resumes without losing or repeating rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SCAFFOLD_SMILES, write_csv
from test_training import csv_config, load

import atomgraph.evaluation.predict as predict_module
from atomgraph.evaluation.experiment import train_and_evaluate
from atomgraph.evaluation.predict import predict_file, read_predictions
from atomgraph.evaluation.progress_record import ProgressRecord


@pytest.fixture(scope="module")
def run_and_library(tmp_path_factory):
    """A small run on the scaffold SMILES, and a 240-row library with bad rows and an extra column."""
    root = tmp_path_factory.mktemp("stream")
    values = [len(s) * 0.1 for s in SCAFFOLD_SMILES]
    csv = write_csv(root / "train.csv", SCAFFOLD_SMILES, value=values)
    run_dir = train_and_evaluate(load(root, csv_config(root, csv, "value", epochs=1)), progress=False)
    smiles = [*SCAFFOLD_SMILES * 4]
    smiles[17], smiles[101] = "C1CC(", "not a molecule"
    library = write_csv(root / "library.csv", smiles, batch=[k // 10 for k in range(len(smiles))])
    whole = predict_file(run_dir, library, root / "whole.csv", chunk_rows=10_000)
    return run_dir, library, root / "whole.csv", whole


def assert_same_output(path: Path, reference: Path) -> None:
    """The same rows, in the same order, with the same text in every column but the predictions, and
    the same predictions to float32 rounding: a row predicted in a batch of another size (another
    chunking) may differ in the last bit (BLAS blocks matrix products by their size)."""
    got, want = (
        pd.read_csv(path, dtype=str, keep_default_na=False),
        pd.read_csv(reference, dtype=str, keep_default_na=False),
    )
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    for column in got.columns:
        if column == "value":
            a, b = pd.to_numeric(got[column]), pd.to_numeric(want[column])
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-5, equal_nan=True)
        else:
            assert got[column].tolist() == want[column].tolist(), column


def test_chunked_output_equals_one_chunk_and_keeps_every_row_in_order(run_and_library, tmp_path):
    run_dir, library, whole_path, whole = run_and_library
    summary = predict_file(run_dir, library, tmp_path / "chunked.csv", chunk_rows=7)
    assert_same_output(tmp_path / "chunked.csv", whole_path)
    assert (summary.rows, summary.skipped, summary.predicted) == (240, 2, 238) == (
        whole.rows, whole.skipped, whole.predicted)  # fmt: skip
    table = read_predictions(tmp_path / "chunked.csv")
    assert list(table["id"]) == [f"library.csv:{k + 2}" for k in range(240)]
    assert list(table["batch"]) == [k // 10 for k in range(240)]
    assert table.loc[[17, 101], "value"].isna().all() and (table.loc[[17, 101], "error"] != "").all()
    assert not (tmp_path / "chunked.csv.progress").exists()


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")


@pytest.mark.parametrize("fork", [pytest.param(True, marks=LINUX), False], ids=["forked", "spawned"])
def test_worker_processes_give_the_same_output(run_and_library, tmp_path, monkeypatch, fork):
    run_dir, library, whole_path, whole = run_and_library
    monkeypatch.setattr(predict_module, "FORK_WORKERS", fork)
    summary = predict_file(run_dir, library, tmp_path / "workers.csv", chunk_rows=25, workers=2)
    assert_same_output(tmp_path / "workers.csv", whole_path)
    assert (summary.rows, summary.skipped) == (whole.rows, whole.skipped)
    with pytest.raises(ValueError, match="workers"):
        predict_file(run_dir, library, tmp_path / "bad.csv", workers=-1)


def test_graphs_built_in_worker_processes_equal_those_built_here(run_and_library):
    """The path of a model on another device: workers build the graphs, this process predicts."""
    from atomgraph.evaluation.input_rows import featurised_chunks, input_rows
    from atomgraph.runs import TrainedRun

    run_dir, library, _, _ = run_and_library
    spec = TrainedRun.load(run_dir).graph
    here = [row for chunk in featurised_chunks(input_rows(library, "smiles"), spec, 25) for row in chunk]
    there = [row for chunk in featurised_chunks(input_rows(library, "smiles"), spec, 25, 2) for row in chunk]
    assert [(r.id, r.error, r.graph is None) for r in here] == [
        (r.id, r.error, r.graph is None) for r in there
    ]
    for a, b in zip(here, there, strict=True):
        if a.graph is not None:
            assert set(a.graph.keys()) == set(b.graph.keys())
            for key in a.graph.keys():
                assert torch.equal(a.graph[key], b.graph[key]), key


def test_top_k_rows_are_the_best_of_the_whole_output(run_and_library, tmp_path):
    from atomgraph.evaluation.top_k import top_k_rows

    run_dir, library, whole_path, _ = run_and_library
    predict_file(
        run_dir, library, tmp_path / "p.csv", chunk_rows=50, top_k=7, rank_by="value", descending=True
    )
    top = pd.read_csv(tmp_path / "p.top7.csv")
    full = read_predictions(whole_path)
    expected = full[full["error"] == ""].sort_values("value", ascending=False, kind="stable").head(7)
    assert top["id"].tolist() == expected["id"].tolist() and top["rank"].tolist() == list(range(1, 8))
    assert len(set(top["id"])) == 7  # each row once, though it is read in chunks
    import atomgraph.evaluation.top_k as top_k_module

    small = top_k_module.CHUNK
    top_k_module.CHUNK = 13  # many chunks: the bounded merge gives the same rows
    try:
        assert top_k_rows(whole_path, 7, "value", True)["id"].tolist() == expected["id"].tolist()
        lowest = top_k_rows(whole_path, 3, "value", False)
    finally:
        top_k_module.CHUNK = small
    assert lowest["value"].tolist() == sorted(full["value"].dropna())[:3]
    with pytest.raises(ValueError, match="rank-by"):
        predict_file(run_dir, library, tmp_path / "q.csv", top_k=3, rank_by="nope")


SLOW_PREDICT = """
import sys, time
import atomgraph.evaluation.predict as p
original = p._predict_chunk
def slow(*args, **kwargs):
    time.sleep(0.3)
    return original(*args, **kwargs)
p._predict_chunk = slow
p.predict_file(sys.argv[1], sys.argv[2], sys.argv[3], chunk_rows=9)
"""


def _started_until_written(script: str, run_dir, library, out: Path, rows: int) -> subprocess.Popen:
    """``script`` started in a process predicting ``library`` into ``out``, once its progress record
    counts at least ``rows`` rows written."""
    record = out.with_name(out.name + ".progress")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = [sys.executable, "-c", script, str(run_dir), str(library), str(out)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (record.exists() and json.loads(record.read_text())["rows"] >= rows):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    return process


@pytest.mark.slow
def test_a_killed_predict_resumes_without_lost_or_repeated_rows(run_and_library, tmp_path):
    run_dir, library, whole_path, _ = run_and_library
    out = tmp_path / "killed.csv"
    record = tmp_path / "killed.csv.progress"
    process = _started_until_written(SLOW_PREDICT, run_dir, library, out, rows=27)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = json.loads(record.read_text())["rows"]
    assert 27 <= written < 240
    summary = predict_file(run_dir, library, out, chunk_rows=50, resume=True)
    assert_same_output(out, whole_path)
    assert summary.rows == 240 and summary.skipped == 2
    assert not record.exists()


SLOW_PREDICT_IN_WORKERS = SLOW_PREDICT.replace("chunk_rows=9)", "chunk_rows=9, workers=2)")


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the workers' kill is Linux's")
def test_a_killed_predict_with_workers_leaves_no_worker_and_resumes(run_and_library, tmp_path):
    run_dir, library, whole_path, _ = run_and_library
    out = tmp_path / "killed.csv"
    record = tmp_path / "killed.csv.progress"
    process = _started_until_written(SLOW_PREDICT_IN_WORKERS, run_dir, library, out, rows=27)
    workers = _children(process.pid)
    assert len(workers) >= 2  # the two workers (and the executor's helpers, if any)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a worker outlived the killed job"
    written = json.loads(record.read_text())["rows"]
    assert 27 <= written < 240
    summary = predict_file(run_dir, library, out, chunk_rows=50, resume=True, workers=2)
    assert_same_output(out, whole_path)
    assert summary.rows == 240 and summary.skipped == 2


def test_a_half_written_chunk_is_cut_off_on_resume(run_and_library, tmp_path, monkeypatch):
    run_dir, library, whole_path, _ = run_and_library
    out = tmp_path / "broken.csv"
    original, calls = predict_module._predict_chunk, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            with open(out, "a") as handle:  # what a kill in the middle of a write leaves
                handle.write("library.csv:9999,CCO,,")
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(predict_module, "_predict_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        predict_file(run_dir, library, out, chunk_rows=20)
    monkeypatch.setattr(predict_module, "_predict_chunk", original)
    assert json.loads((tmp_path / "broken.csv.progress").read_text())["rows"] == 60
    predict_file(run_dir, library, out, chunk_rows=20, resume=True)
    assert out.read_text() == whole_path.read_text()
    again = predict_file(run_dir, library, out, resume=True)  # complete: counted, not redone
    assert (again.rows, again.predicted, again.skipped) == (240, 238, 2)
    with pytest.raises(ValueError, match=r"records a job with input /elsewhere.csv"):
        (tmp_path / "broken.csv.progress").write_text(json.dumps({"input": "/elsewhere.csv", "rows": 1}))
        predict_file(run_dir, library, out, resume=True)
    pd.testing.assert_frame_equal(read_predictions(out), read_predictions(whole_path))


def test_a_kill_while_the_progress_record_is_written_leaves_the_previous_record(tmp_path, monkeypatch):
    """The record is rewritten after every chunk; a kill half-way through that write (here: the file
    truncated, then the interrupt) must leave a record a resume can read, not an empty file."""
    rows_file = tmp_path / "out.csv"
    record = ProgressRecord.beside(rows_file, {"input": "library.csv"})
    table = pd.DataFrame({"id": ["a", "b"], "value": [1.0, 2.0]})
    record.append(rows_file, table, rows=2)
    record.append(rows_file, table, rows=4)
    size = rows_file.stat().st_size

    def killed_while_writing(path, text, *args, **kwargs):
        open(path, "w").close()  # the truncation a write begins with, and nothing after it
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        record.append(rows_file, table, rows=6)
    monkeypatch.undo()
    resumed = record.resume(rows_file)
    assert (resumed["rows"], resumed["bytes"]) == (4, size)
    assert rows_file.stat().st_size == size  # the chunk the kill left unrecorded is cut off
    assert pd.read_csv(rows_file)["value"].tolist() == [1.0, 2.0, 1.0, 2.0]
    record.remove()  # the finished job leaves neither the record nor what the kill left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


UNREADABLE = [
    "",
    '{"input": "library.csv"',
    "[1, 2]",
    '{"input": "library.csv"}',
    '{"input": "library.csv", "rows": 2, "bytes": 9}',  # no counts, which predict's records hold
    None,  # a folder where the record should be
]


@pytest.mark.parametrize("text", UNREADABLE)
def test_an_unreadable_progress_record_is_refused_by_name(tmp_path, text):
    rows_file = tmp_path / "out.csv"
    rows_file.write_text("id,value\n")
    record = ProgressRecord.beside(rows_file, {"input": "library.csv"})
    if text is None:
        record.path.mkdir()
    else:
        record.path.write_text(text)
    with pytest.raises(ValueError, match=r"out\.csv\.progress: not a readable progress record"):
        record.resume(rows_file, extra=("counts",))


def test_predicting_imports_neither_the_trainer_nor_the_report_libraries(run_and_library, tmp_path):
    """Lightning (~1 s), scikit-learn (~0.8 s) and matplotlib are training's and the report's: the
    ``predict`` command (the CLI with every application's commands, loading the run, predicting)
    imports none of them."""
    run_dir, library, _, _ = run_and_library
    script = (
        "import sys\n"
        "from atomgraph.cli.main import main\n"
        "main(['predict', sys.argv[1], sys.argv[2], '-o', sys.argv[3], '--chunk-rows', '50'])\n"
        "heavy = ('lightning', 'pytorch_lightning', 'torchmetrics', 'sklearn', 'matplotlib')\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & set(heavy)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = [sys.executable, "-c", script, str(run_dir), str(library), str(tmp_path / "out.csv")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_console_script_keeps_the_exit_status_and_freezes_what_is_left(tmp_path):
    """``atomgraph`` runs :func:`console`: the command's exit status comes through, and what is alive at
    the end is frozen, so the interpreter's teardown does not walk it (``main`` itself freezes nothing:
    tests and other programs call it in a process that goes on)."""
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name="atomgraph")
    assert script.value == "atomgraph.cli.main:console"
    code = (
        "import gc, sys\n"
        "from atomgraph.cli.main import console, main\n"
        "try:\n"
        "    main(['predict', sys.argv[1], sys.argv[2]])\n"
        "except SystemExit as done:\n"
        "    print(done.code, gc.get_freeze_count())\n"
        "sys.argv = ['atomgraph', 'predict', sys.argv[1], sys.argv[2]]\n"
        "try:\n"
        "    console()\n"
        "except SystemExit as done:\n"
        "    print(done.code, gc.get_freeze_count() > 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = [sys.executable, "-c", code, str(tmp_path / "no_run"), str(tmp_path / "no.csv")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["2 0", "2 True"]
    assert "no_run" in done.stderr


@LINUX
def test_the_predict_command_runs_one_worker_per_core_unless_told(run_and_library, tmp_path, monkeypatch):
    """``atomgraph predict`` without ``--workers``: one forked worker per usable core on the CPU, the
    same output as one process; none on one core, for one chunk, on another device or where workers
    would be spawned."""
    from atomgraph.cli.main import main

    run_dir, library, whole_path, _ = run_and_library
    monkeypatch.setattr(predict_module, "FORK_WORKERS", True)
    monkeypatch.setattr(predict_module, "default_workers", lambda: 2)
    assert predict_module.automatic_workers("cpu") == 2
    assert predict_module.automatic_workers("cuda") == 0  # not the CPU: this process predicts
    assert predict_module.automatic_workers("cpu", chunks=1) == 0  # one chunk: no worker to share it with
    assert predict_module.automatic_workers("cpu", chunks=3) == 2
    started, original = [], predict_module.in_worker_processes

    def spy(jobs, workers, *args, **kwargs):
        started.append(workers)
        return original(jobs, workers, *args, **kwargs)

    monkeypatch.setattr(predict_module, "in_worker_processes", spy)
    main(["predict", str(run_dir), str(library), "-o", str(tmp_path / "auto.csv"), "--chunk-rows", "50"])
    assert started == [2]
    assert_same_output(tmp_path / "auto.csv", whole_path)
    main(["predict", str(run_dir), str(library), "-o", str(tmp_path / "one.csv"), "--workers", "0"])
    assert started == [2]  # told: this process alone
    monkeypatch.setattr(predict_module, "default_workers", lambda: 1)
    assert predict_module.automatic_workers("cpu") == 0
    monkeypatch.setattr(predict_module, "default_workers", lambda: 8)
    monkeypatch.setattr(predict_module, "FORK_WORKERS", False)
    assert predict_module.automatic_workers("cpu") == 0


def _dies_on_row_30(chunk: list) -> pd.DataFrame:
    """A worker's job that kills its process when the chunk holds row 30 (what the out-of-memory killer,
    or a crash in native code on one molecule, does); otherwise the real one."""
    if any(row.id == "library.csv:32" for row in chunk):  # the 31st data row (ids count file lines)
        os.kill(os.getpid(), signal.SIGKILL)
    return _REAL_JOB(chunk)


_REAL_JOB = predict_module._predicted_in_worker


@LINUX
def test_a_row_that_kills_its_worker_costs_only_that_row(run_and_library, tmp_path, monkeypatch):
    run_dir, library, whole_path, whole = run_and_library
    monkeypatch.setattr(predict_module, "FORK_WORKERS", True)
    monkeypatch.setattr(predict_module, "_predicted_in_worker", _dies_on_row_30)  # forked: the workers see it
    out = tmp_path / "died.csv"
    summary = predict_file(run_dir, library, out, chunk_rows=25, workers=2)
    assert (summary.rows, summary.skipped) == (whole.rows, whole.skipped + 1)
    got, want = read_predictions(out), read_predictions(whole_path)
    assert got["id"].tolist() == want["id"].tolist()
    died = got["id"] == "library.csv:32"
    assert got.loc[died, "error"].tolist() == [f"library.csv:32: {predict_module.WORKER_DIED}"]
    assert got.loc[died, "value"].isna().all()
    pd.testing.assert_frame_equal(got[~died], want[~died], rtol=1e-5)
