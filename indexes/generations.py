"""On-disk index generations: each is a complete folder; a manifest written last names the live one.

A crash at any moment leaves the previous manifest pointing at a complete, checksummed generation.
Each manifest pins the embedder that built its vectors (registry id, weights' SHA-256, dimension);
a copy of every generation's manifest is kept in its folder once it went live, so switching back to a kept
generation (a model rollback) is one atomic manifest write.
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
PUBLISHED = ".published.json"  # in each generation folder once it went live: its manifest (not checksummed)


@dataclass(frozen=True)
class Manifest:
    generation: int
    folder: str
    files: dict[str, str]  # relative path -> sha256
    watermark: dict = field(default_factory=dict)
    created_at: str = ""
    # the embedder of the vectors: {"id", "sha256", "dim"}; empty (manifests before issue 14): version 1
    model: dict = field(default_factory=dict)

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

    def kept(self, folder: str) -> Manifest | None:
        """The manifest a kept generation was published with; None when it is gone or was never copied."""
        path = self.root / folder / PUBLISHED
        if not path.is_file():
            return None
        try:
            return Manifest(**json.loads(path.read_bytes()))
        except (ValueError, TypeError):
            return None

    def switch(self, manifest: Manifest) -> None:
        """Make a kept, intact generation live again (atomically); the caller holds the writer lock."""
        problems = self.verify(manifest)
        if problems:
            raise IndexUnavailableError(f"generation {manifest.folder} cannot go live: {problems[0]}")
        write_bytes_atomic(self.root / MANIFEST, manifest.to_json())

    def _next_number(self, previous: Manifest | None) -> int:
        """Above every generation ever made live (after a switch back the live one is not the newest);
        a complete folder never made live (a crash before its switch) is written over."""
        numbers = [previous.generation if previous else 0]
        for path in self.root.glob(f"gen-*/{PUBLISHED}"):
            suffix = path.parent.name[4:]
            if suffix.isdigit():
                numbers.append(int(suffix))
        return max(numbers) + 1

    def publish(self, write: Callable[[Path], None], watermark: dict, model: dict | None = None) -> Manifest:
        """Write a new generation with `write(folder)`, then switch the manifest to it atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        previous = self.current()
        number = self._next_number(previous)
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
                model=dict(model or {}),
            )
            write_bytes_atomic(self.root / MANIFEST, manifest.to_json())
            write_bytes_atomic(final / PUBLISHED, manifest.to_json())
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

    def collect_garbage(self, keep: int, protect: frozenset[str] = frozenset()) -> None:
        """Drop old generations and leftovers of crashed writes; readers may still hold the newest `keep`,
        and `protect` names generations kept for a rollback (those of previously active embedders)."""
        current = self.current()
        if current is None:
            return
        gens = sorted(p for p in self.root.glob("gen-*") if p.is_dir())
        live = {current.folder} | set(protect)
        older = [p for p in gens if p.name < current.folder]
        live.update(p.name for p in older[-(keep - 1) :] if keep > 1)
        for path in gens:
            if path.name not in live:
                shutil.rmtree(path, ignore_errors=True)

        for path in self.root.glob(".gen-*.tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
