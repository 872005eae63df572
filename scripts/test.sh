#!/usr/bin/env bash
# Install (if needed) and run the test suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-auto}" "$@"
