#!/usr/bin/env bash
# Lint and layering: ruff (rules and formatting, configured in pyproject.toml) and import-linter's
# contracts (which package may import which). The tools come from requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${RAG_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/lint-imports"
echo "lint: ok" >&2
