#!/usr/bin/env bash
# venv-from-lock.sh VENV LOCK: (re)builds VENV with exactly the packages pinned in LOCK, unless it
# was already built from a lock with the same SHA-256. --no-deps: the lock is the whole set, so
# nothing (a CUDA torch, torchvision) can slip in through a dependency.
set -euo pipefail
VENV="$1"
LOCK="$2"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
want="$(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.lock-sha256" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setup: building virtualenv $VENV from $LOCK (a few minutes, once)" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip==26.*" 2>/dev/null || true
"$VENV/bin/python" -m pip install --quiet --no-deps -r "$LOCK"
echo "$want" > "$VENV/.lock-sha256"
