#!/usr/bin/env bash
# Sets up the environments and runs the whole test suite (SQLite always; PostgreSQL when reachable,
# required when RAG_REQUIRE_POSTGRES=1; the real vLLM server from its own virtualenv, skipped with
# RAG_SKIP_VLLM=1, required when RAG_REQUIRE_VLLM=1). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${RAG_VENV:-.venv}"
export RAG_VLLM_VENV="${RAG_VLLM_VENV:-.venv-vllm}"
if [ "${RAG_SKIP_VLLM:-0}" != "1" ]; then
  ./scripts/setup-vllm.sh
fi
# the CLI tests run `rag` from the same environment
export PATH="$(cd "$VENV/bin" && pwd):$PATH"
exec "$VENV/bin/python" -m pytest "$@"
