"""One ingestion job end to end: discover, skip the unchanged, parse, embed, commit, publish.

Each group of documents is committed in one transaction together with the job's counters, so the
database is consistent after a crash at any point; the index catches up at the next publish.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from indexes.durable import sha256_file
from ingest.chunking import CHUNKER_VERSION
from ingest.discovery import discover
from ingest.doc_meta import DocMeta
from ingest.indexing import ann_policy, publish
from ingest.parse_pool import ParseConfig, ParsedFile, ParsePool
from ingest.report import JobReport, Outcome, ProgressCallback
from ingest.vectors import plan_for
from rag import jobs
from rag import model_registry as registry
from rag.db.models import Chunk, Collection, Document, IngestionJob, JobFile, utcnow
from rag.errors import NotFoundError, PathNotAllowedError, RagError
from rag.paths import is_unlinked
from rag.protocols import Embedder
from rag.settings import Settings
from rag.types import DEFAULT_LABEL, JOB_COUNTERS, FailedFile
from rag.users import groups_named

log = logging.getLogger(__name__)


_EMBED_SLICE = 256  # texts per embed call: small enough for steady progress, large enough to batch well
_RECORD_EVERY = 500  # unchanged files recorded per transaction


class Ingestor:
    """Runs jobs; built once per process from the settings, the database and the embedder."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        factory: sessionmaker[Session],
        embedder: Embedder,
        *,
        parse_workers: int = 1,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.factory = factory
        self.embedder = embedder
        # the registry's models: `embedder` is version 1's; new chunks get the serving model's vectors
        from rag.model_loader import ModelEmbedders

        self.models = ModelEmbedders(settings, factory, base=embedder)
        self._serving: tuple[int, Embedder] | None = None
        self.parse_workers = parse_workers
        self.timings = {"hash": 0.0, "parse_wait": 0.0, "embed": 0.0, "write": 0.0, "publish": 0.0}

    # -- public -------------------------------------------------------------------------------

    def run(self, job_id: int, on_progress: ProgressCallback | None = None) -> JobReport:
        with self.factory() as session:
            job = session.get(IngestionJob, job_id)
            if job is None:
                raise NotFoundError(f"no ingestion job {job_id}")
            params = (Path(job.path), job.collection, job.groups, job.label)
        report = JobReport(job_id=job_id)
        try:
            self._run(report, *params, on_progress=on_progress or (lambda r: None))
        except BaseException as exc:
            self._finish(job_id, jobs.FAILED, error=str(exc) if isinstance(exc, RagError) else type(exc).__name__)
            raise
        self._finish(job_id, jobs.SUCCEEDED)
        return report

    # -- stages -------------------------------------------------------------------------------

    def _run(
        self,
        report: JobReport,
        target: Path,
        collection: str,
        groups: list[str] | None,
        label: str | None,
        on_progress: ProgressCallback,
    ) -> None:
        if not is_unlinked(target):
            raise PathNotAllowedError("the job's path was replaced by a link since it was queued; nothing was read")
        pin, serving = self.models.serving()
        self._serving = (pin.id, serving)
        found = discover(target)
        root = target
        report.files_total = len(found.files) + len(found.skipped)
        collection_id = self._collection_id(collection)
        existing = self._existing_documents(collection_id, root)
        meta = DocMeta(groups, label, root if root.is_dir() else root.parent)

        outcomes: list[Outcome] = [Outcome(str(p), "failed", error=why) for p, why in found.skipped]
        report.files_seen += len(found.skipped)
        to_parse: dict[str, tuple[str, int]] = {}
        for path in found.files:
            report.files_seen += 1
            started = time.perf_counter()
            if not is_unlinked(path):  # a folder on the way was swapped for a link after discovery
                outcomes.append(Outcome(str(path), "failed", error="a link appeared on its path; not followed"))
                continue
            try:
                digest, size = sha256_file(path), path.stat().st_size
            except OSError as exc:
                outcomes.append(Outcome(str(path), "failed", error=f"unreadable: {exc.strerror or exc}"))
                continue
            finally:
                self.timings["hash"] += time.perf_counter() - started
            problem = meta.for_path(str(path)).error
            if problem:
                outcomes.append(Outcome(str(path), "failed", error=problem))
                continue
            known = existing.get(str(path))
            if known is not None and known == (digest, CHUNKER_VERSION):
                outcomes.append(Outcome(str(path), "unchanged"))
            else:
                to_parse[str(path)] = (digest, size)
            if len(outcomes) >= _RECORD_EVERY:
                self._record(report, outcomes, collection_id, meta, on_progress)
        self._record(report, outcomes, collection_id, meta, on_progress)

        self._parse_embed_commit(report, to_parse, collection_id, meta, on_progress)

        seen = {str(p) for p in found.files}
        gone = sorted(p for p in set(existing) - seen if found.fully_seen(p))
        if gone:
            self._delete_documents(report, collection_id, gone)
            on_progress(report)
        self.publish()

    def publish(self) -> None:
        started = time.perf_counter()
        publish(
            self.engine,
            self.factory,
            self.settings.index_dir,
            self.embedder.dim,
            keep=self.settings.keep_generations,
            ann=ann_policy(self.settings),
            vectors=lambda manifest: plan_for(self.settings, self.factory, self.models, manifest),
            protect=self._protected,
        )
        self.timings["publish"] += time.perf_counter() - started
        self._last_publish = time.monotonic()

    def _protected(self) -> frozenset[str]:
        with self.factory() as session:
            return registry.protected_generations(session)

    def _embedding_model(self) -> tuple[int, Embedder]:
        if self._serving is None:
            pin, serving = self.models.serving()
            self._serving = (pin.id, serving)
        return self._serving

    def _parse_embed_commit(
        self,
        report: JobReport,
        to_parse: dict[str, tuple[str, int]],
        collection_id: int,
        meta: DocMeta,
        on_progress: ProgressCallback,
    ) -> None:
        config = ParseConfig(
            model_path=self.settings.resolved_model_path,
            chunk_tokens=min(self.settings.chunk_tokens, self.embedder.max_tokens),
            overlap_tokens=self.settings.chunk_overlap_tokens,
            max_bytes=self.settings.max_file_bytes,
            ocr=self.settings.ocr,
        )
        self._last_publish = time.monotonic()
        pending: list[ParsedFile] = []
        pending_chunks = 0
        with ParsePool(config, self.parse_workers, self.settings.parse_timeout_s) as pool:
            results = pool.imap(list(to_parse))
            while True:
                started = time.perf_counter()
                parsed = next(results, None)
                self.timings["parse_wait"] += time.perf_counter() - started
                if parsed is None:
                    break
                if parsed.error:
                    self._record(
                        report,
                        [Outcome(parsed.path, "failed", seconds=parsed.seconds, error=parsed.error)],
                        collection_id,
                        meta,
                        on_progress,
                    )
                    continue
                pending.append(parsed)
                pending_chunks += len(parsed.chunks)
                if pending_chunks >= _EMBED_SLICE:
                    self._embed_and_commit(report, pending, to_parse, collection_id, meta, on_progress)
                    pending, pending_chunks = [], 0
                    if time.monotonic() - self._last_publish > self.settings.publish_interval_s:
                        self.publish()
            self._embed_and_commit(report, pending, to_parse, collection_id, meta, on_progress)

    def _embed_and_commit(
        self,
        report: JobReport,
        parsed: list[ParsedFile],
        hashes: dict[str, tuple[str, int]],
        collection_id: int,
        meta: DocMeta,
        on_progress: ProgressCallback,
    ) -> None:
        if not parsed:
            return
        texts = [c.text for p in parsed for c in p.chunks]
        model_id, embedder = self._embedding_model()
        stored = self._stored_embeddings(collection_id, [p.path for p in parsed], model_id)
        todo = list(dict.fromkeys(t for t in texts if t not in stored))
        started = time.perf_counter()
        fresh: dict[str, np.ndarray] = {}
        for start in range(0, len(todo), _EMBED_SLICE):
            batch = todo[start : start + _EMBED_SLICE]
            fresh.update(zip(batch, embedder.embed(batch), strict=True))
            report.chunks_embedded += len(batch)
            on_progress(report)
            self._heartbeat(report.job_id)
        dim = self.embedder.dim
        vectors = np.stack([fresh[t] if t in fresh else stored[t] for t in texts]) if texts else np.zeros((0, dim))
        self.timings["embed"] += time.perf_counter() - started

        started = time.perf_counter()
        outcomes: list[Outcome] = []
        offset = 0
        with self.factory() as session:
            for p in parsed:
                doc_vectors = vectors[offset : offset + len(p.chunks)]
                offset += len(p.chunks)
                digest, size = hashes[p.path]
                outcomes.append(
                    self._commit_document(session, collection_id, p, digest, size, doc_vectors, meta, model_id)
                )
            self._record_in(session, report, outcomes)
            session.commit()
        self.timings["write"] += time.perf_counter() - started
        on_progress(report)

    def _stored_embeddings(self, collection_id: int, paths: list[str], model_id: int) -> dict[str, np.ndarray]:
        """Embeddings these documents' current chunks already have by this model, by text: a re-chunked
        or edited document embeds only the chunks whose text is new (the embedding depends on the text
        alone)."""
        dim = self.embedder.dim
        base_id = self.models.base_id()
        with self.factory() as session:
            rows = session.execute(
                select(Chunk.text, Chunk.embedding)
                .join(Document, Chunk.document_id == Document.id)
                .where(
                    Document.collection_id == collection_id,
                    Document.path.in_(paths),
                    func.coalesce(Chunk.embedder_id, base_id) == model_id,
                )
            )
            return {text: np.frombuffer(blob, dtype="<f4") for text, blob in rows if blob and len(blob) == dim * 4}

    def _commit_document(
        self,
        session: Session,
        collection_id: int,
        parsed: ParsedFile,
        digest: str,
        size: int,
        vectors: np.ndarray,
        meta: DocMeta,
        model_id: int | None = None,
    ) -> Outcome:
        for attempt in range(2):
            try:
                with session.begin_nested():
                    return self._replace_chunks(session, collection_id, parsed, digest, size, vectors, meta, model_id)
            except IntegrityError:
                # Another worker created this document at the same moment: its row exists now, retry once.
                if attempt:
                    break
            except DataError as exc:
                # Content this database refuses fails this document alone; the savepoint undid its rows.
                return Outcome(
                    parsed.path,
                    "failed",
                    seconds=parsed.seconds,
                    error=f"the database refused this document's content: {type(exc.orig).__name__}",
                )
        return Outcome(parsed.path, "failed", seconds=parsed.seconds, error="conflicting concurrent update; retry")

    def _replace_chunks(
        self,
        session: Session,
        collection_id: int,
        parsed: ParsedFile,
        digest: str,
        size: int,
        vectors: np.ndarray,
        meta: DocMeta,
        model_id: int | None = None,
    ) -> Outcome:
        doc = session.scalars(
            select(Document)
            .where(Document.collection_id == collection_id, Document.path == parsed.path)
            .with_for_update()
        ).first()
        if doc is not None and doc.sha256 == digest:
            if doc.chunker_version == CHUNKER_VERSION:
                return Outcome(parsed.path, "unchanged", seconds=parsed.seconds)  # a concurrent worker was first
            meta.apply(session, doc)
            return self._rechunk(session, doc, parsed, vectors, model_id)
        removed = 0
        if doc is None:
            policy = meta.for_path(parsed.path)
            doc = Document(
                collection_id=collection_id,
                path=parsed.path,
                sha256=digest,
                version=1,
                size_bytes=size,
                label=policy.label or DEFAULT_LABEL,
                title=parsed.title,
                chunk_count=0,
                chunker_version=CHUNKER_VERSION,
            )
            doc.groups = groups_named(session, policy.groups or ())
            session.add(doc)
            session.flush()
        else:
            removed = session.execute(delete(Chunk).where(Chunk.document_id == doc.id)).rowcount
            doc.sha256, doc.version, doc.size_bytes, doc.title = digest, doc.version + 1, size, parsed.title
            doc.chunker_version = CHUNKER_VERSION
            meta.apply(session, doc)
        added = self._insert_chunks(session, doc, parsed, vectors, model_id)
        return Outcome(parsed.path, "indexed", added=added, removed=removed, seconds=parsed.seconds)

    def _rechunk(
        self, session: Session, doc: Document, parsed: ParsedFile, vectors: np.ndarray, model_id: int | None = None
    ) -> Outcome:
        """The same file cut by a newer chunker: its rows are replaced only if the chunks differ, in
        this document's transaction with its new chunker version (a crash leaves the old version,
        and the next ingest redoes it)."""
        old = session.execute(
            select(Chunk.ordinal, Chunk.text, Chunk.section, Chunk.pages, Chunk.char_start, Chunk.char_end)
            .where(Chunk.document_id == doc.id)
            .order_by(Chunk.ordinal)
        ).all()
        new = [(c.ordinal, c.text, c.section, list(c.pages), c.char_start, c.char_end) for c in parsed.chunks]
        doc.chunker_version, doc.title = CHUNKER_VERSION, parsed.title
        if [(o, t, s, list(p or []), a, b) for o, t, s, p, a, b in old] == new:
            return Outcome(parsed.path, "unchanged", seconds=parsed.seconds)
        removed = session.execute(delete(Chunk).where(Chunk.document_id == doc.id)).rowcount
        added = self._insert_chunks(session, doc, parsed, vectors, model_id)
        return Outcome(parsed.path, "indexed", added=added, removed=removed, seconds=parsed.seconds)

    @staticmethod
    def _insert_chunks(
        session: Session, doc: Document, parsed: ParsedFile, vectors: np.ndarray, model_id: int | None = None
    ) -> int:
        rows = [
            {
                "document_id": doc.id,
                "ordinal": c.ordinal,
                "text": c.text,
                "section": c.section,
                "pages": c.pages,
                "char_start": c.char_start,
                "char_end": c.char_end,
                "token_count": c.token_count,
                "document_sha256": doc.sha256,
                "document_version": doc.version,
                "embedding": vectors[i].astype("<f4").tobytes(),
                "embedder_id": model_id,
            }
            for i, c in enumerate(parsed.chunks)
        ]
        if rows:
            session.execute(insert(Chunk), rows)
        doc.chunk_count = len(rows)
        doc.updated_at = utcnow()
        return len(rows)

    def _delete_documents(self, report: JobReport, collection_id: int, paths: list[str]) -> None:
        with self.factory() as session:
            outcomes = []
            for path in paths:
                doc = session.scalars(
                    select(Document)
                    .where(Document.collection_id == collection_id, Document.path == path)
                    .with_for_update()
                ).first()
                if doc is None:
                    continue  # another worker removed it already
                removed = session.execute(delete(Chunk).where(Chunk.document_id == doc.id)).rowcount
                session.delete(doc)
                outcomes.append(Outcome(path, "deleted", removed=removed))
            self._record_in(session, report, outcomes)
            session.commit()

    # -- bookkeeping ----------------------------------------------------------------------------

    def _record(
        self,
        report: JobReport,
        outcomes: list[Outcome],
        collection_id: int,
        meta: DocMeta,
        on_progress: ProgressCallback,
    ) -> None:
        if not outcomes:
            return
        with self.factory() as session:
            if meta.changes_anything:
                unchanged = [o.path for o in outcomes if o.status == "unchanged"]
                meta.apply_to_paths(session, collection_id, unchanged)
            self._record_in(session, report, outcomes)
            session.commit()
        outcomes.clear()
        on_progress(report)

    def _record_in(self, session: Session, report: JobReport, outcomes: list[Outcome]) -> None:
        """Per-file results and the job's counters, in the caller's transaction."""
        for o in outcomes:
            if o.status == "indexed":
                report.files_indexed += 1
            elif o.status == "unchanged":
                report.files_unchanged += 1
            elif o.status == "deleted":
                report.files_deleted += 1
            else:
                report.files_failed += 1
                report.errors.append(FailedFile(o.path, o.error or "unknown error"))
                log.info("one file failed: %s", o.error)
            report.chunks_added += o.added
            report.chunks_removed += o.removed
        if outcomes:
            session.execute(
                insert(JobFile),
                [
                    {
                        "job_id": report.job_id,
                        "path": o.path,
                        "status": o.status,
                        "chunks_added": o.added,
                        "chunks_removed": o.removed,
                        "seconds": o.seconds,
                        "error": o.error,
                        "created_at": utcnow(),
                    }
                    for o in outcomes
                ],
            )
        job = session.get(IngestionJob, report.job_id)
        for name in JOB_COUNTERS:
            setattr(job, name, getattr(report, name))
        job.heartbeat_at = utcnow()

    def _heartbeat(self, job_id: int) -> None:
        """Long embeddings (a 600-page PDF) must not look like a dead worker to the others."""
        now = time.monotonic()
        if now - getattr(self, "_last_beat", 0.0) < 30:
            return
        self._last_beat = now
        with self.factory() as session:
            session.execute(update(IngestionJob).where(IngestionJob.id == job_id).values(heartbeat_at=utcnow()))
            session.commit()

    def _finish(self, job_id: int, state: str, error: str | None = None) -> None:
        with self.factory() as session:
            job = session.get(IngestionJob, job_id)
            job.state, job.error, job.finished_at = state, error, utcnow()
            session.commit()

    def _collection_id(self, name: str) -> int:
        with self.factory() as session:
            found = session.scalar(select(Collection.id).where(Collection.name == name))
            if found is not None:
                return found
            try:
                collection = Collection(name=name)
                session.add(collection)
                session.commit()
                return collection.id
            except IntegrityError:
                session.rollback()
                return session.scalar(select(Collection.id).where(Collection.name == name))

    def _existing_documents(self, collection_id: int, root: Path) -> dict[str, tuple[str, int]]:
        """path -> (sha256, chunker version) of the documents this job is responsible for (under its folder)."""
        prefix = str(root)
        with self.factory() as session:
            query = select(Document.path, Document.sha256, Document.chunker_version).where(
                Document.collection_id == collection_id
            )
            if root.is_dir():
                query = query.where(Document.path.startswith(prefix.rstrip("/") + "/", autoescape=True))
            else:
                query = query.where(Document.path == prefix)
            return {path: (digest, version) for path, digest, version in session.execute(query)}
