"""Search over the live index generation, returning passages with their documents' metadata.

Filters (collection, path prefix, labels) and, later, a user's allowed documents become one set of
allowed chunk ids that both the FAISS and the BM25 search apply *before* ranking, so a filtered
query gets its full top-k from what it may see instead of a post-filtered remainder.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from indexes.generations import MANIFEST, Manifest
from indexes.snapshot import IndexSnapshot, load_snapshot
from rag.access import AccessScope
from rag.db.models import Chunk, Collection, Document
from rag.protocols import Embedder
from rag.retrieval import FusionParams, HybridRetriever, Mode, embed_query
from rag.types import Passage, SearchFilters, SearchResult


class LiveSnapshot:
    """The newest published generation, reloaded when the manifest changes.

    A reload builds the new snapshot completely before swapping one reference, so a request uses
    one generation from start to end and never sees a half-loaded index; the old one is released
    when its last request finishes.
    """

    def __init__(self, index_dir: Path, check_every_s: float = 1.0, nprobe: int = 64) -> None:
        self.index_dir = index_dir
        self.nprobe = nprobe
        self.check_every_s = check_every_s
        self._snapshot: IndexSnapshot | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def _manifest_stamp(self) -> tuple[int, int] | None:
        try:
            st = (self.index_dir / MANIFEST).stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino

    def get(self) -> IndexSnapshot:
        """Raises IndexUnavailableError when nothing was ever published."""
        now = time.monotonic()
        snapshot = self._snapshot
        if snapshot is not None and now - self._checked < self.check_every_s:
            return snapshot
        with self._lock:
            if self._snapshot is not None and time.monotonic() - self._checked < self.check_every_s:
                return self._snapshot
            stamp = self._manifest_stamp()
            if self._snapshot is None or stamp != self._stamp:
                self._snapshot = load_snapshot(self.index_dir, nprobe=self.nprobe)
                self._stamp = stamp
            self._checked = time.monotonic()
            return self._snapshot


class GenerationEmbedders(Protocol):
    """Which embedder a generation's vectors need (rag.model_loader.ModelEmbedders)."""

    def for_manifest(self, manifest: Manifest) -> Embedder: ...


# what a cached allowed set is keyed by (see Searcher.allowed_chunk_ids): built once, run on the
# session's connection (no ORM result handling on every restricted search)
_STAMP = select(select(func.max(Chunk.id)).scalar_subquery(), select(func.max(Document.updated_at)).scalar_subquery())


class Searcher:
    def __init__(
        self,
        embedder: Embedder,
        factory: sessionmaker[Session],
        index_dir: Path,
        fusion: FusionParams | None = None,
        nprobe: int = 64,
        models: GenerationEmbedders | None = None,
    ) -> None:
        """With `models`, each query is embedded by the model its generation was built with."""
        self.embedder = embedder
        self.models = models
        self.factory = factory
        self.live = LiveSnapshot(index_dir, nprobe=nprobe)
        self.fusion = fusion or FusionParams()
        self._allowed: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._allowed_lock = threading.Lock()

    def allowed_chunk_ids(
        self,
        session: Session,
        filters: SearchFilters,
        allowed_document_ids: set[int] | None,
        access: AccessScope | None = None,
        generation: int | None = None,
    ) -> np.ndarray | None:
        """None when nothing restricts the search; otherwise the chunk ids both searches may return.

        Cached per (scope, filters) and keyed by the newest chunk id, the newest document change
        (bumped by every ingest and every access change) and the index generation searched, so a
        change applies on the next request while unchanged corpora skip a query that returns every
        readable chunk id. The first two are one index lookup each. The generation covers chunks a
        slower concurrent ingest committed below the newest id (PostgreSQL hands out sequence
        numbers before commit): they become searchable only with a generation published after
        their commit. A deletion needs no new key: chunk ids are never reused (AUTOINCREMENT, a
        sequence on PostgreSQL), so a deleted document leaves only dead ids in a cached set, and
        every passage is checked against access again when it is read."""
        if filters.is_empty() and allowed_document_ids is None and access is None:
            return None
        key = None
        if allowed_document_ids is None:
            # count(*) here read the whole documents table on every restricted search (1.7 ms at 52k
            # documents); max() of an indexed column reads one index entry
            stamp = tuple(session.connection().execute(_STAMP).one())
            key = (access, filters, stamp, generation)
            with self._allowed_lock:
                if key in self._allowed:
                    self._allowed.move_to_end(key)
                    return self._allowed[key]
        ids = self._query_allowed(session, filters, allowed_document_ids, access)
        if key is not None:
            with self._allowed_lock:
                self._allowed[key] = ids
                while len(self._allowed) > 64:
                    self._allowed.popitem(last=False)
        return ids

    @staticmethod
    def _query_allowed(
        session: Session, filters: SearchFilters, allowed_document_ids: set[int] | None, access: AccessScope | None
    ) -> np.ndarray:
        query = select(Chunk.id).join(Document, Chunk.document_id == Document.id)
        if filters.collection:
            query = query.join(Collection, Document.collection_id == Collection.id).where(
                Collection.name == filters.collection
            )
        if filters.path_prefix:
            query = query.where(Document.path.startswith(filters.path_prefix, autoescape=True))
        if filters.labels:
            query = query.where(Document.label.in_(filters.labels))
        if allowed_document_ids is not None:
            query = query.where(Document.id.in_(sorted(allowed_document_ids)))
        if access is not None:
            query = query.where(access.condition)
        ids = np.sort(np.fromiter(session.scalars(query), dtype=np.int64))  # sorted once, not per search
        ids.setflags(write=False)  # shared by concurrent requests through the cache
        return ids

    def search(
        self,
        query: str,
        top_k: int = 5,
        filters: SearchFilters | None = None,
        *,
        allowed_document_ids: set[int] | None = None,
        access: AccessScope | None = None,
        mode: Mode = "hybrid",
    ) -> SearchResult:
        """`access` (see rag.access) and `allowed_document_ids` restrict both searches before ranking."""
        snapshot = self.live.get()
        embedder = self.models.for_manifest(snapshot.manifest) if self.models is not None else self.embedder
        retriever = HybridRetriever(embedder, snapshot.vector, snapshot.keyword, self.fusion)
        with self.factory() as session:
            allowed = self.allowed_chunk_ids(
                session, filters or SearchFilters(), allowed_document_ids, access, snapshot.manifest.generation
            )
            t0 = time.perf_counter()
            vector = embed_query(embedder, query) if mode != "bm25" else None
            t1 = time.perf_counter()
            # ask for a few more than top_k: chunks deleted since this generation was published are skipped
            hits = retriever.search(query, top_k + 8, allowed, mode=mode, query_vector=vector)
            t2 = time.perf_counter()
            passages = self._passages(session, hits, access)[:top_k]
        return SearchResult(
            passages, snapshot.manifest.generation, (t1 - t0) * 1000, (t2 - t1) * 1000, query_vector=vector
        )

    @staticmethod
    def _passages(session: Session, hits, access: AccessScope | None) -> list[Passage]:
        if not hits:
            return []
        query = (
            select(
                Chunk.id,
                Chunk.document_id,
                Chunk.section,
                Chunk.pages,
                Chunk.text,
                Chunk.document_sha256,
                Chunk.document_version,
                Document.path,
                Document.title,
                Document.label,
                Collection.name,
            )
            .join(Document, Chunk.document_id == Document.id)
            .join(Collection, Document.collection_id == Collection.id)
            .where(Chunk.id.in_([h.chunk_id for h in hits]))
        )
        if access is not None:
            # checked again at read time: access may have changed since the allowed set was computed
            query = query.where(access.condition)
        rows = session.execute(query).all()
        by_id = {row.id: row for row in rows}
        out = []
        for hit in hits:
            row = by_id.get(hit.chunk_id)
            if row is None:
                continue
            out.append(
                Passage(
                    chunk_id=row.id,
                    document_id=row.document_id,
                    path=row.path,
                    title=row.title,
                    section=row.section,
                    pages=list(row.pages or []),
                    text=row.text,
                    score=hit.score,
                    document_sha256=row.document_sha256,
                    document_version=row.document_version,
                    label=row.label,
                    collection=row.name,
                )
            )
        return out
