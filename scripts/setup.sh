#!/usr/bin/env bash
# Create .venv and install atomgraph with its pinned CPU torch. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.atomgraph-installed
# pip quiet, less the notes a machine's pip configuration prints for every package (find-links folders
# that do not exist); real warnings and errors still show, and a failed install still stops the script
pip_install() {
    .venv/bin/pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    pip_install --upgrade pip
    # torch first and pinned: a bare "torch" requirement would pull a CUDA build.
    pip_install "torch==${TORCH_VERSION:-2.13.0}"
    pip_install -e ".[dev,qm9,bench,export,complexes]"
    touch "$stamp"
fi
