#!/usr/bin/env bash
# Create .venv and install atomgraph with its pinned CPU torch. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.atomgraph-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    # torch first and pinned: a bare "torch" requirement would pull a CUDA build.
    .venv/bin/pip install -q "torch==${TORCH_VERSION:-2.13.0}"
    .venv/bin/pip install -q -e ".[dev,qm9,bench]"
    touch "$stamp"
fi
