"""Which files a job covers: a folder walked recursively (or one file), never leaving the folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import NotFoundError
from rag.paths import inside


@dataclass(frozen=True, slots=True)
class Discovered:
    files: list[Path]
    skipped: list[tuple[Path, str]]  # (path, reason) for entries an admin should hear about
    unreadable: list[Path] = field(default_factory=list)  # folders whose documents must not be deleted

    def fully_seen(self, path: str) -> bool:
        """False for paths under a folder that could not be listed: absent there is not deleted."""
        return not any(path.startswith(str(d).rstrip("/") + "/") for d in self.unreadable)


def _hidden(name: str) -> bool:
    # dotfiles (.git, .rag-access.yaml) and Office lock files are never documents
    return name.startswith(".") or name.startswith("~$")


def discover(target: Path) -> Discovered:
    """Regular files under `target`, sorted. Symlinks are not followed: those that stay inside the
    folder point at files indexed anyway, and those that leave it are reported."""
    if not target.exists() and not target.is_symlink():
        raise NotFoundError(f"path not found: {target}")
    root = target.resolve()
    if root.is_file():
        return Discovered([root], [])
    if not root.is_dir():
        raise NotFoundError(f"not a regular file or folder: {target}")
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    unreadable: list[Path] = []

    def walk_error(exc: OSError) -> None:
        folder = Path(exc.filename)
        unreadable.append(folder)
        skipped.append((folder, f"folder not readable: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=walk_error):
        here = Path(dirpath)
        for name in list(dirnames):
            path = here / name
            if _hidden(name):
                dirnames.remove(name)
            elif path.is_symlink():
                dirnames.remove(name)
                if not inside(path.resolve(), root):
                    skipped.append((path, "symlink leaves the ingested folder; not followed"))
        for name in filenames:
            path = here / name
            if _hidden(name):
                continue
            if path.is_symlink():
                if not inside(path.resolve(), root):
                    skipped.append((path, "symlink leaves the ingested folder; not followed"))
                continue
            if path.is_file():
                files.append(path)
    files.sort()
    return Discovered(files, skipped, unreadable)
