"""On-disk index generations: each is a complete folder; a manifest written last names the live one.

A crash at any moment leaves the previous manifest pointing at a complete, checksummed generation.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from indexes.durable import fsync_dir, fsync_tree, sha256_file, write_bytes_atomic
from rag.errors import IndexUnavailableError, IndexWriteError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    generation: int
    folder: str
    files: dict[str, str]  # relative path -> sha256
    watermark: dict = field(default_factory=dict)
    created_at: str = ""

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, indent=2, sort_keys=True).encode()


class GenerationStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def current(self) -> Manifest | None:
        path = self.root / MANIFEST
        if not path.exists():
            return None
        try:
            return Manifest(**json.loads(path.read_bytes()))
        except (ValueError, TypeError) as exc:
            raise IndexUnavailableError(f"unreadable index manifest {path.name}: {exc}") from exc

    def folder(self, manifest: Manifest) -> Path:
        return self.root / manifest.folder

    def verify(self, manifest: Manifest) -> list[str]:
        """Checksum problems of a generation's files; empty when it is intact."""
        problems = []
        folder = self.folder(manifest)
        for rel, expected in sorted(manifest.files.items()):
            path = folder / rel
            if not path.is_file():
                problems.append(f"missing index file {manifest.folder}/{rel}")
            elif sha256_file(path) != expected:
                problems.append(f"checksum mismatch in {manifest.folder}/{rel}")
        return problems

    def publish(self, write: Callable[[Path], None], watermark: dict) -> Manifest:
        """Write a new generation with `write(folder)`, then switch the manifest to it atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        previous = self.current()
        number = (previous.generation if previous else 0) + 1
        name = f"gen-{number:06d}"
        tmp = self.root / f".{name}.tmp-{os.getpid()}"
        final = self.root / name
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            write(tmp)
            fsync_tree(tmp)
            files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            if final.exists():  # left by a crash after rename but before the manifest switch
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(self.root)
            manifest = Manifest(
                generation=number,
                folder=name,
                files=files,
                watermark=watermark,
                created_at=dt.datetime.now(dt.UTC).isoformat(),
            )
            write_bytes_atomic(self.root / MANIFEST, manifest.to_json())
        except OSError as exc:
            # the manifest was not switched: the previous generation stays live; the half-written
            # one is removed so a full disk is not left fuller (the next publish redoes the work)
            if self._live_folder() == name:  # switched; only the folder's fsync after it failed
                return manifest
            for leftover in (tmp, final, self.root / f".{MANIFEST}.tmp-{os.getpid()}"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                elif leftover.exists():
                    leftover.unlink(missing_ok=True)
            live = f"generation {previous.generation} stays live" if previous else "no generation is live yet"
            raise IndexWriteError(
                f"could not write index generation {number} ({exc.strerror or exc}); {live}, "
                "the next publish retries (free space, then `rag reindex` or re-run the ingest)"
            ) from exc
        return manifest

    def _live_folder(self) -> str | None:
        try:
            current = self.current()
        except IndexUnavailableError:
            return None
        return current.folder if current else None

    def collect_garbage(self, keep: int) -> None:
        """Drop old generations and leftovers of crashed writes; readers may still hold the newest `keep`."""
        current = self.current()
        if current is None:
            return
        gens = sorted(p for p in self.root.glob("gen-*") if p.is_dir())
        live = {current.folder}
        older = [p for p in gens if p.name < current.folder]
        live.update(p.name for p in older[-(keep - 1) :] if keep > 1)
        for path in gens:
            if path.name not in live:
                shutil.rmtree(path, ignore_errors=True)
        for path in self.root.glob(".gen-*.tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
