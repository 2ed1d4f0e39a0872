#!/usr/bin/env bash
# The main job on the embedded default (SQLite, packaged embedder): ingest the shipped sample
# handbook, verify the index, re-ingest to show that nothing unchanged is redone.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${RAG_VENV:-.venv}"
export RAG_DATA_DIR="${RAG_DATA_DIR:-./data/demo}"
"$VENV/bin/rag" ingest examples/handbook --collection handbook --groups everyone --label internal
"$VENV/bin/rag" check
"$VENV/bin/rag" ingest examples/handbook --collection handbook --json
"$VENV/bin/rag" search "How many vacation days do employees get?" --top-k 3
