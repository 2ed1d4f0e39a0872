"""Each registry model's vectors of the chunks: the one that embedded a chunk at ingest keeps its
vector in `chunks.embedding`, any other model's go to `chunk_vectors`. So switching models (promote,
rollback) never loses a vector, and a model's missing ones are embedded once, resumably.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from rag.db.models import Chunk, ChunkVector
from rag.protocols import Embedder

_FETCH = 2000
FILL_BATCH = 64  # chunks per embed call and commit: a kill loses at most this much work


@dataclass(frozen=True)
class ModelVectors:
    """Whose vectors an index generation is built from, and how to embed the ones still missing."""

    model_id: int
    base_id: int  # version 1: chunks embedded before the registry carry no model id
    dim: int
    pin: dict  # what the manifest records: {"id", "sha256", "dim"}
    embedder: Embedder | None = None


def _ingest_model(base_id: int):
    return func.coalesce(Chunk.embedder_id, base_id)


def _batches(ids: np.ndarray, size: int = _FETCH):
    for start in range(0, len(ids), size):
        yield [int(i) for i in ids[start : start + size]]


def read(session: Session, plan: ModelVectors, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of `ids` in their order, ids that have no vector of this model: their rows are zero)."""
    out = np.zeros((len(ids), plan.dim), dtype=np.float32)
    row_of = {int(i): n for n, i in enumerate(ids)}
    found = np.zeros(len(ids), dtype=bool)
    for batch in _batches(ids):
        own = select(Chunk.id, Chunk.embedding).where(Chunk.id.in_(batch), _ingest_model(plan.base_id) == plan.model_id)
        other = select(ChunkVector.chunk_id, ChunkVector.embedding).where(
            ChunkVector.chunk_id.in_(batch), ChunkVector.model_id == plan.model_id
        )
        for query in (own, other):
            for chunk_id, blob in session.execute(query):
                n = row_of[int(chunk_id)]
                out[n] = np.frombuffer(blob, dtype="<f4")
                found[n] = True
    return out, np.asarray(ids, dtype=np.int64)[~found]


def missing(session: Session, plan: ModelVectors, ids: np.ndarray) -> np.ndarray:
    have: set[int] = set()
    for batch in _batches(ids):
        have.update(
            session.scalars(select(Chunk.id).where(Chunk.id.in_(batch), _ingest_model(plan.base_id) == plan.model_id))
        )
        have.update(
            session.scalars(
                select(ChunkVector.chunk_id).where(
                    ChunkVector.chunk_id.in_(batch), ChunkVector.model_id == plan.model_id
                )
            )
        )
    return np.asarray([int(i) for i in ids if int(i) not in have], dtype=np.int64)


def fill(
    factory: sessionmaker[Session],
    plan: ModelVectors,
    ids: np.ndarray,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Embeds the given chunks (sorted, in fixed batches, committed one by one) with the plan's model
    and stores the vectors: a rerun after a kill embeds only what was not committed, in the same
    batches, so it ends with the same vectors. Chunks deleted meanwhile are skipped."""
    if plan.embedder is None:
        raise ValueError("no embedder to fill vectors with")
    done = 0
    for batch in _batches(np.sort(np.asarray(ids, dtype=np.int64)), FILL_BATCH):
        with factory() as session:
            rows = session.execute(select(Chunk.id, Chunk.text).where(Chunk.id.in_(batch)).order_by(Chunk.id)).all()
            if rows:
                vectors = plan.embedder.embed([text for _, text in rows])
                values = [
                    {"model_id": plan.model_id, "chunk_id": cid, "embedding": v.astype("<f4").tobytes()}
                    for (cid, _), v in zip(rows, vectors, strict=True)
                ]
                try:
                    session.execute(insert(ChunkVector), values)
                    session.commit()
                except IntegrityError:  # a chunk deleted meanwhile, or another process stored it first
                    session.rollback()
                    for value in values:
                        try:
                            with session.begin_nested():
                                session.execute(insert(ChunkVector), [value])
                        except IntegrityError:
                            pass
                    session.commit()
        done += len(batch)
        if progress is not None:
            progress(done)
    return done


def plan_for(settings, factory: sessionmaker[Session], models, manifest) -> ModelVectors:
    """The vectors a publish over `manifest` builds from: the model that generation names (the
    serving one), embedded by `models` (rag.model_loader.ModelEmbedders) where missing."""
    from rag import model_registry as registry
    from rag.errors import ModelMismatchError

    with factory() as session:
        base = registry.base_model(session, settings)
        model = registry.model_of_manifest(session, settings, manifest)
        if model is None:
            raise ModelMismatchError(
                f"the live index names embedder {manifest.model.get('id')}, unknown to the registry"
            )
        session.expunge(model)
        base_id = base.id
    return model_plan(model, base_id, models.get(model))


def model_plan(model, base_id: int, embedder: Embedder | None) -> ModelVectors:
    return ModelVectors(
        model.id, base_id, model.dim, {"id": model.id, "sha256": model.sha256, "dim": model.dim}, embedder
    )
