"""The workers' side of the job queue: claim a job (SKIP LOCKED on PostgreSQL), recover stale ones."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rag.db.models import IngestionJob, JobFile, utcnow
from rag.jobs import FAILED, QUEUED, RUNNING
from rag.types import JOB_COUNTERS


def claim_next(session: Session, worker_id: str) -> IngestionJob | None:
    """Atomically take the oldest queued job. Safe with any number of workers on either database."""
    query = select(IngestionJob.id).where(IngestionJob.state == QUEUED).order_by(IngestionJob.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    job_id = session.scalar(query)
    if job_id is None:
        session.rollback()
        return None
    now = utcnow()
    claimed = session.execute(
        update(IngestionJob)
        .where(IngestionJob.id == job_id, IngestionJob.state == QUEUED)
        .values(
            state=RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now, attempts=IngestionJob.attempts + 1
        )
    ).rowcount
    session.commit()
    return session.get(IngestionJob, job_id) if claimed == 1 else None


def requeue_stale(session: Session, stale_after_s: float, max_attempts: int = 3) -> int:
    """Running jobs whose worker died (no heartbeat) go back to the queue, from a clean slate."""
    cutoff = utcnow() - dt.timedelta(seconds=stale_after_s)
    stale = session.scalars(
        select(IngestionJob).where(IngestionJob.state == RUNNING, IngestionJob.heartbeat_at < cutoff)
    ).all()
    for job in stale:
        session.execute(delete(JobFile).where(JobFile.job_id == job.id))
        if job.attempts >= max_attempts:
            job.state, job.error, job.finished_at = FAILED, "worker died repeatedly on this job", utcnow()
            continue
        job.state, job.worker_id = QUEUED, None
        for counter in JOB_COUNTERS:
            setattr(job, counter, 0)
    session.commit()
    return len(stale)
