"""The live generation loaded for reading: vector and keyword index from one manifest, never mixed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexes.generations import GenerationStore, Manifest
from indexes.keyword import BM25KeywordIndex
from indexes.vector import FaissVectorIndex
from rag.errors import IndexUnavailableError


@dataclass(frozen=True)
class IndexSnapshot:
    manifest: Manifest
    vector: FaissVectorIndex
    keyword: BM25KeywordIndex


def load_snapshot(index_dir: Path, *, nprobe: int = 64) -> IndexSnapshot:
    """Readers map the vector file read-only: API replicas on one host share it in the page cache."""
    store = GenerationStore(index_dir)
    manifest = store.current()
    if manifest is None:
        raise IndexUnavailableError("no index yet: ingest some documents first")
    folder = store.folder(manifest)
    return IndexSnapshot(
        manifest, FaissVectorIndex.load(folder, nprobe=nprobe, mmap=True), BM25KeywordIndex.load(folder)
    )
