#!/usr/bin/env bash
# The main job on the embedded default (SQLite, packaged embedder, packaged SmolLM2 on the CPU):
# ingest the shipped sample handbook, verify the index, serve the API, answer questions over HTTP
# and on the command line, then stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
VENV="${RAG_VENV:-.venv}"
RAG="$VENV/bin/rag"
export RAG_DATA_DIR="${RAG_DATA_DIR:-./data/demo}"
PORT="${RAG_DEMO_PORT:-8000}"
"$RAG" ingest examples/handbook --collection handbook --groups everyone --label internal
"$RAG" check
"$RAG" ingest examples/handbook --collection handbook --json   # unchanged: nothing is redone

"$RAG" serve --port "$PORT" &   # the first start converts the packaged model once (~20 s)
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
  curl -sf "localhost:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "demo: the server exited" >&2; exit 1; }
  sleep 1
done
echo; echo "== POST /v1/query"
curl -sf "localhost:$PORT/v1/query" -H 'Content-Type: application/json' \
     -d '{"question": "What is the meal allowance in Portugal?"}'
echo; echo; echo "== rag ask"
"$RAG" ask "Where are the offices?"
