"""Which paths an ingestion request may name: inside a configured root, after resolving links."""

from __future__ import annotations

import os
from pathlib import Path

from rag.errors import PathNotAllowedError


def inside(path: Path, root: Path) -> bool:
    """Both resolved already: is `path` the root or below it?"""
    return path == root or root in path.parents


def is_unlinked(path: Path) -> bool:
    """True when no component of the absolute `path` is a symlink: it names what it resolves to.

    Job paths are stored resolved when queued, so a path that no longer resolves to itself was
    swapped for a link since (a time-of-check/time-of-use attack on the ingest roots)."""
    return Path(os.path.realpath(path)) == path


def check_within_roots(target: Path, roots: list[Path]) -> Path:
    """For ingestion requested over the API: the resolved path must lie inside a configured root."""
    resolved = target.resolve()
    for root in roots:
        if inside(resolved, root.resolve()):
            return resolved
    raise PathNotAllowedError("path is outside the configured ingest roots")
