#!/usr/bin/env bash
# Builds (or reuses) the virtualenv pinned by requirements.lock, then installs this checkout into it.
# RAG_VENV chooses where the virtualenv lives (default: .venv). Offline-safe: no model is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RAG_VENV:-.venv}"
# torch==2.13.0 resolves to the CPU wheel (see README)
./scripts/venv-from-lock.sh "$VENV" requirements.lock
if ! log="$("$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1)"; then
  echo "$log" >&2
  echo "setup: installing this checkout into $VENV failed" >&2
  exit 1
fi
"$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') and not torch.version.cuda else 'setup: expected the CPU build of torch 2.13.0, got ' + torch.__version__)"
echo "setup: ready ($VENV)" >&2
