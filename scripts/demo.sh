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
# development mode: the audit log's signing key is generated once into the data folder
# (production requires RAG_AUDIT_SIGNING_KEY, see README)
export RAG_MODE="${RAG_MODE:-development}"
PORT="${RAG_DEMO_PORT:-8000}"
"$RAG" ingest examples/handbook --collection handbook --groups everyone --label internal
"$RAG" check
"$RAG" ingest examples/handbook --collection handbook --json   # unchanged: nothing is redone

# an employee who may read the handbook (group 'everyone'); the key is printed once
if ! KEY="$("$RAG" users add demo-employee --role employee --groups everyone 2>/dev/null)"; then
  KEY="$("$RAG" users key demo-employee --label demo)"
fi
"$RAG" serve --port "$PORT" &   # the first start converts the packaged model once (~20 s)
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
  curl -sf "localhost:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "demo: the server exited" >&2; exit 1; }
  sleep 1
done
echo; echo "== POST /v1/query"
curl -sf "localhost:$PORT/v1/query" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
     -d '{"question": "What is the meal allowance in Portugal?"}'
echo; echo; echo "== rag ask"
"$RAG" ask "Where are the offices?" --as demo-employee
echo; echo "== rag audit verify"
"$RAG" audit verify
