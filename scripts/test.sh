#!/usr/bin/env bash
# Install (if needed) and run the test suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/lint-imports --no-logo  # the import rules in pyproject.toml ([tool.importlinter])
.venv/bin/python -m pytest -q -n "${PYTEST_WORKERS:-auto}" "$@"
