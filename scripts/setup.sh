#!/usr/bin/env bash
# Builds (or reuses) the virtualenv pinned by requirements.lock, then installs this checkout into it.
# RAG_VENV chooses where the virtualenv lives (default: .venv). Offline-safe: no model is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RAG_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
want="$(cat requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.lock-sha256" 2>/dev/null)" != "$want" ]; then
  echo "setup: building virtualenv $VENV from requirements.lock (a few minutes, once)" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade "pip==26.*" 2>/dev/null || true
  # torch==2.13.0 resolves to the CPU wheel (see README); --no-deps keeps torchvision and CUDA out.
  "$VENV/bin/python" -m pip install --quiet --no-deps -r requirements.lock
  echo "$want" > "$VENV/.lock-sha256"
fi
if ! log="$("$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1)"; then
  echo "$log" >&2
  echo "setup: installing this checkout into $VENV failed" >&2
  exit 1
fi
"$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') and not torch.version.cuda else 'setup: expected the CPU build of torch 2.13.0, got ' + torch.__version__)"
echo "setup: ready ($VENV)" >&2
