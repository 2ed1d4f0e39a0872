"""Asking for a promotion (the gate, then a queued re-embedding job) and rolling back at once."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from indexes.generations import GenerationStore
from rag import jobs
from rag import model_registry as registry
from rag.db.models import IngestionJob
from rag.errors import PromotionRefusedError
from rag.index_lock import index_writer_lock
from rag.settings import Settings


def request_promotion(
    session: Session,
    settings: Settings,
    model_id: int,
    actor: str,
    *,
    force: bool,
    state: str = jobs.QUEUED,
    worker_id: str | None = None,
) -> IngestionJob:
    """Checks the gate now (so a refusal says why at once) and queues the re-embedding job; the job
    checks again when it runs. One promotion at a time."""
    model = registry.get_model(session, model_id)
    registry.check_promotable(session, settings, model, force=force)
    running = jobs.active_model_job(session, jobs.REEMBED)
    if running is not None:
        raise PromotionRefusedError(f"promotion job {running.id} is already {running.state}; wait for it")
    return jobs.create_model_job(
        session,
        jobs.REEMBED,
        {"model_id": model.id, "actor": actor, "force": force},
        state=state,  # type: ignore[arg-type]
        worker_id=worker_id,
    )


def rollback(settings: Settings, engine: Engine, factory: sessionmaker[Session], actor: str) -> dict:
    """Back to the previous model's kept generation in one manifest write, under the writer lock (no
    publish can interleave); the rolled-back model is retired."""
    with index_writer_lock(engine, settings.index_dir), factory() as session:
        active, previous, manifest = registry.rollback_target(session, settings)
        GenerationStore(settings.index_dir).switch(manifest)
        registry.mark_rolled_back(session, active, previous, actor)
        return {
            "from_id": active.id,
            "to_id": previous.id,
            "generation": manifest.generation,
            "retired": [active.id],
        }
