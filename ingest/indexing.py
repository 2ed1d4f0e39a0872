"""Keeps the index generations in step with the database, the source of truth.

Publishing diffs the chunk ids committed in the database against the live generation, applies the
difference (removals, and additions from stored embeddings: no re-embedding), and writes a new
generation whose manifest carries a watermark of the database state it reflects. Because the diff
is recomputed from both sides each time, a crash anywhere is repaired by the next publish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from indexes.generations import GenerationStore, Manifest
from indexes.keyword import BM25KeywordIndex
from indexes.vector import FaissVectorIndex, nlist_for
from ingest import vectors as model_vectors
from ingest.locks import index_writer_lock
from ingest.vectors import ModelVectors
from rag.db.models import Chunk
from rag.errors import IndexUnavailableError, ModelMismatchError

_FETCH = 2000
_TOKENIZE_BATCH = 250_000


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest | None
    added: int
    removed: int
    changed: bool


def watermark_of(ids: np.ndarray) -> dict:
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    return {
        "chunk_count": int(len(ids)),
        "max_chunk_id": int(ids[-1]) if len(ids) else 0,
        "ids_sha256": hashlib.sha256(ids.astype("<i8").tobytes()).hexdigest(),
    }


def _snapshot_session(factory: sessionmaker[Session]) -> Session:
    """One consistent read view for ids, texts and embeddings, even while workers commit."""
    session = factory()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return session


def _db_ids(session: Session) -> np.ndarray:
    return np.fromiter(session.scalars(select(Chunk.id).order_by(Chunk.id)), dtype=np.int64)


def _column_of(session: Session, column, ids: np.ndarray) -> Iterator[tuple[int, Any]]:
    """(chunk id, value) for the given chunks, in batches of ids (order not kept)."""
    for start in range(0, len(ids), _FETCH):
        batch = [int(i) for i in ids[start : start + _FETCH]]
        yield from session.execute(select(Chunk.id, column).where(Chunk.id.in_(batch)))


def _texts(session: Session, ids: np.ndarray) -> list[str]:
    """Texts of the given chunks, in their order: only what the keyword index must tokenise."""
    text_of = dict(_column_of(session, Chunk.text, ids))
    return [text_of[int(i)] for i in ids]


def _pinned_id(manifest: Manifest, plan: ModelVectors) -> int:
    """The model a live generation's vectors are of (unpinned, older manifests: version 1)."""
    model_id = manifest.model.get("id") if manifest.model else plan.base_id
    return model_id if isinstance(model_id, int) else -1


def _embeddings(
    session: Session, ids: np.ndarray, dim: int, plan: ModelVectors | None = None, factory=None
) -> np.ndarray:
    """The vectors of `ids` by the plan's model, embedding those it lacks first (without a plan:
    whatever embedded each chunk). Vectors are read outside the snapshot: a chunk's vector by one
    model never changes, and those stored after the snapshot began must be seen."""
    if plan is not None:
        with factory() as fresh:
            lacking = model_vectors.missing(fresh, plan, ids)
        if len(lacking) and plan.embedder is not None:
            model_vectors.fill(factory, plan, lacking)
        with factory() as fresh:
            out, lacking = model_vectors.read(fresh, plan, ids)
        if len(lacking):
            raise ModelMismatchError(
                f"{len(lacking)} chunks have no vector of embedder {plan.model_id} (first id {lacking[0]})"
            )
        return out
    out = np.empty((len(ids), dim), dtype=np.float32)
    row_of = {int(i): n for n, i in enumerate(ids)}
    for chunk_id, blob in _column_of(session, Chunk.embedding, ids):
        out[row_of[chunk_id]] = np.frombuffer(blob, dtype="<f4")
    return out


def _diff(have: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids to remove, ids to add) to turn `have` into `want`; both hold unique ids."""
    return np.setdiff1d(have, want, assume_unique=True), np.setdiff1d(want, have, assume_unique=True)


def stored_dim(factory: sessionmaker[Session]) -> int | None:
    """Dimension of the stored embeddings, so rebuilding needs no model; None when there are none."""
    with factory() as session:
        blob = session.scalar(select(Chunk.embedding).limit(1))
    return len(blob) // 4 if blob is not None else None


def load_vector(store: GenerationStore, manifest: Manifest | None, dim: int) -> FaissVectorIndex:
    if manifest is None:
        return FaissVectorIndex(dim)
    return FaissVectorIndex.load(store.folder(manifest))


def load_keyword(store: GenerationStore, manifest: Manifest | None) -> BM25KeywordIndex:
    """The live keyword index to build upon; empty (so rebuilt) when there is none or its format is old."""
    if manifest is None:
        return BM25KeywordIndex()
    try:
        return BM25KeywordIndex.load(store.folder(manifest), mmap=True)
    except IndexUnavailableError:
        return BM25KeywordIndex()


def _update_keyword(
    session: Session, keyword: BM25KeywordIndex, to_add: np.ndarray, to_remove: np.ndarray
) -> BM25KeywordIndex:
    """Tokenise only the chunks the keyword index lacks, in batches (bounded memory on a rebuild)."""
    if not len(to_add):
        return keyword.updated(to_add, [], to_remove) if len(to_remove) else keyword
    for start in range(0, len(to_add), _TOKENIZE_BATCH):
        batch = to_add[start : start + _TOKENIZE_BATCH]
        keyword = keyword.updated(batch, _texts(session, batch), to_remove if start == 0 else to_remove[:0])
    return keyword


@dataclass(frozen=True)
class AnnPolicy:
    """When the vector index turns approximate (see indexes/vector.py), and how it searches."""

    threshold: int = 200_000  # chunks; IVF at or above, exact below half of it (no flapping)
    nprobe: int = 64
    nlist: int = 0  # 0 = about 4 sqrt(n)


def ann_policy(settings) -> AnnPolicy:
    return AnnPolicy(threshold=settings.ann_threshold, nprobe=settings.ann_nprobe, nlist=settings.ann_nlist)


def _wanted_kind(vector: FaissVectorIndex, n: int, ann: AnnPolicy) -> tuple[str, bool]:
    """(kind the index should have for n chunks, whether it must be rebuilt to get there)."""
    if vector.kind == "ivf":
        if n < ann.threshold // 2:
            return "exact", True
        # retrain when the corpus outgrew the cells it was trained with (4x the chunks per cell)
        return "ivf", not ann.nlist and vector.nlist < nlist_for(n) // 2
    if n >= ann.threshold:
        return "ivf", True
    return "exact", False


def publish(
    engine: Engine,
    factory: sessionmaker[Session],
    index_dir: Path,
    dim: int,
    *,
    keep: int = 2,
    rebuild: bool = False,
    ann: AnnPolicy | None = None,
    vectors: Callable[[Manifest | None], ModelVectors] | None = None,
    protect: Callable[[], frozenset[str]] | None = None,
) -> PublishResult:
    """Bring the index up to the database, under the writer lock. No-op when nothing changed.

    `vectors(live manifest)` names the model whose vectors the new generation holds (pinned in its
    manifest); its vectors missing in the database are embedded first. A model other than the live
    generation's rebuilds the vector index whole: that is a model switch. `protect()` names the
    generations kept for a rollback. Without `vectors`, each chunk's ingest vector is used, unpinned."""
    ann = ann or AnnPolicy()
    store = GenerationStore(index_dir)
    with index_writer_lock(engine, index_dir):
        current = store.current()
        plan = vectors(current) if vectors is not None else None
        if current is not None and store.verify(current):
            rebuild = True  # a damaged generation is never built upon
        switching = plan is not None and current is not None and _pinned_id(current, plan) != plan.model_id
        dim = plan.dim if plan is not None else dim
        vector = FaissVectorIndex(dim) if rebuild or switching else load_vector(store, current, dim)
        keyword = BM25KeywordIndex() if rebuild else load_keyword(store, current)
        with _snapshot_session(factory) as session:
            db_ids = _db_ids(session)
            kind, restructure = _wanted_kind(vector, len(db_ids), ann)
            restructure = restructure or switching
            have = vector.ids()
            to_remove, to_add = _diff(have, db_ids)
            keyword_remove, keyword_add = _diff(keyword.ids(), db_ids)
            watermark = watermark_of(db_ids)
            if (
                current is not None
                and not rebuild
                and not restructure
                and current.watermark == watermark
                and not len(to_add)
                and not len(to_remove)
                and not len(keyword_add)
                and not len(keyword_remove)
            ):
                return PublishResult(current, 0, 0, changed=False)
            if restructure or rebuild:
                to_add, to_remove = db_ids, have
                if kind == "ivf":
                    vector = FaissVectorIndex.build_ivf(
                        dim,
                        db_ids,
                        _embeddings(session, db_ids, dim, plan, factory),
                        nlist=ann.nlist,
                        nprobe=ann.nprobe,
                    )
                else:
                    vector = FaissVectorIndex(dim)
                    vector.add(db_ids, _embeddings(session, db_ids, dim, plan, factory))
            else:
                vector.remove(to_remove)
                vector.add(to_add, _embeddings(session, to_add, dim, plan, factory))
            keyword = _update_keyword(session, keyword, keyword_add, keyword_remove)

        def write(folder: Path) -> None:
            vector.save(folder)
            keyword.save(folder)

        manifest = store.publish(write, watermark, plan.pin if plan is not None else None)
        store.collect_garbage(keep, protect() if protect is not None else frozenset())
        return PublishResult(manifest, int(len(to_add)), int(len(to_remove)), changed=True)


def check(factory: sessionmaker[Session], index_dir: Path) -> list[str]:
    """Every way the live generation disagrees with the database; empty when they agree."""
    store = GenerationStore(index_dir)
    with _snapshot_session(factory) as session:
        db_ids = np.asarray(session.scalars(select(Chunk.id).order_by(Chunk.id)).all(), dtype=np.int64)
    try:
        manifest = store.current()
    except IndexUnavailableError as exc:
        return [str(exc)]
    if manifest is None:
        return [f"no index generation, but the database has {len(db_ids)} chunks"] if len(db_ids) else []
    problems = store.verify(manifest)
    if problems:
        return problems
    folder = store.folder(manifest)
    try:
        vector_ids = FaissVectorIndex.load(folder).ids()
        keyword_ids = BM25KeywordIndex.load(folder).ids()
    except IndexUnavailableError as exc:
        return [str(exc)]
    for name, ids in (("vector", vector_ids), ("keyword", keyword_ids)):
        if len(np.unique(ids)) != len(ids):
            problems.append(f"{name} index holds duplicate chunk ids")
        missing = np.setdiff1d(db_ids, ids)
        extra = np.setdiff1d(ids, db_ids)
        if len(missing):
            problems.append(f"{name} index lacks {len(missing)} committed chunks (first id {missing[0]})")
        if len(extra):
            problems.append(f"{name} index holds {len(extra)} chunks not in the database (first id {extra[0]})")
    if not problems and manifest.watermark != watermark_of(db_ids):
        problems.append("manifest watermark does not match the database")
    return problems
