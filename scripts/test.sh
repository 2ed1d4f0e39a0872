#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite (SQLite always; PostgreSQL when reachable,
# required when RAG_REQUIRE_POSTGRES=1). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${RAG_VENV:-.venv}"
exec "$VENV/bin/python" -m pytest "$@"
