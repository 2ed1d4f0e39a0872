"""Ingestion jobs as the core sees them: queue one (CLI or admin API) and describe one.

Claiming and recovering jobs is the worker's business (ingest/queue.py); running them is the
pipeline's. Both entry points create jobs here, so a job looks the same whoever asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.db.models import IngestionJob, JobFile, utcnow
from rag.errors import NotFoundError
from rag.paths import check_within_roots
from rag.types import FailedFile, JobCounts, JobState

QUEUED: JobState = "queued"
RUNNING: JobState = "running"
SUCCEEDED: JobState = "succeeded"
FAILED: JobState = "failed"

# what a job does (ingestion_jobs.kind): the worker runs each kind with its own runner
INGEST, TUNE, REEMBED = "ingest", "tune", "reembed"
JOB_KINDS = (INGEST, TUNE, REEMBED)


def create_job(
    session: Session,
    path: str,
    collection: str,
    groups: list[str] | None,
    label: str | None,
    *,
    state: JobState = QUEUED,
    worker_id: str | None = None,
) -> IngestionJob:
    now = utcnow()
    job = IngestionJob(
        path=path,
        collection=collection,
        groups=groups,
        label=label,
        state=state,
        worker_id=worker_id,
        created_at=now,
        started_at=now if state == RUNNING else None,
        heartbeat_at=now if state == RUNNING else None,
        attempts=1 if state == RUNNING else 0,
    )
    session.add(job)
    session.commit()
    return job


def create_model_job(
    session: Session,
    kind: str,
    params: dict,
    *,
    collection: str = "",
    state: JobState = QUEUED,
    worker_id: str | None = None,
) -> IngestionJob:
    """A tuning or re-embedding job (the model registry's work), queued like an ingestion."""
    if kind not in (TUNE, REEMBED):
        raise ValueError(f"not a model job kind: {kind}")
    label = f"model {params['model_id']}" if kind == REEMBED else f"collection {collection or '*'}"
    job = create_job(session, f"{kind}: {label}", collection, None, None, state=state, worker_id=worker_id)
    job.kind, job.params = kind, params
    session.commit()
    return job


def active_model_job(session: Session, kind: str) -> IngestionJob | None:
    """A queued or running job of this kind (one promotion at a time)."""
    return session.scalars(
        select(IngestionJob)
        .where(IngestionJob.kind == kind, IngestionJob.state.in_((QUEUED, RUNNING)))
        .order_by(IngestionJob.id)
        .limit(1)
    ).first()


def abandon(session: Session, job: IngestionJob, why: str) -> None:
    """A running job whose process is known dead: failed, with the reason."""
    job.state, job.error, job.finished_at = FAILED, why, utcnow()
    session.commit()


def queue_within_roots(
    session: Session, path: str, roots: list[Path], collection: str, groups: list[str] | None, label: str | None
) -> IngestionJob:
    """What an admin may ask of the workers remotely: a path inside RAG_INGEST_ROOTS that exists."""
    target = check_within_roots(Path(path), roots)
    if not target.exists():
        raise NotFoundError("path not found inside the ingest roots")
    return create_job(session, str(target), collection, groups, label)


@dataclass
class JobView:
    """A job as the CLI prints it and the API returns it."""

    job_id: int
    state: JobState
    path: str
    collection: str
    counts: JobCounts
    error: str | None = None
    errors: list[FailedFile] = field(default_factory=list)
    kind: str = INGEST
    done: int = 0
    total: int = 0
    result: dict | None = None

    def as_dict(self) -> dict:
        return {
            "job_id": self.job_id,
            "state": self.state,
            "path": self.path,
            "collection": self.collection,
            **self.counts.as_dict(),
            "error": self.error,
            "errors": [{"path": e.path, "error": e.error} for e in self.errors],
            "kind": self.kind,
            "done": self.done,
            "total": self.total,
            "result": self.result,
        }


def get_job(session: Session, job_id: int) -> IngestionJob:
    job = session.get(IngestionJob, job_id)
    if job is None:
        raise NotFoundError(f"no ingestion job {job_id}")
    return job


def describe(session: Session, job: IngestionJob, *, failed_limit: int | None = 1000) -> JobView:
    """The job's counts and (up to `failed_limit`) the files that failed with their reasons."""
    failed: list[JobFile] = []
    if failed_limit != 0:  # a listing of jobs asks for counts only: no query per job
        query = select(JobFile).where(JobFile.job_id == job.id, JobFile.status == "failed").order_by(JobFile.id)
        failed = list(session.scalars(query.limit(failed_limit) if failed_limit is not None else query))
    return JobView(
        job_id=job.id,
        state=job.state,  # type: ignore[arg-type]
        path=job.path,
        collection=job.collection,
        counts=JobCounts.of(job),
        error=job.error,
        errors=[FailedFile(f.path, f.error or "") for f in failed],
        kind=job.kind or INGEST,
        done=job.done or 0,
        total=job.total or 0,
        result=job.result,
    )


def recent(session: Session, limit: int = 20) -> list[IngestionJob]:
    return list(session.scalars(select(IngestionJob).order_by(IngestionJob.id.desc()).limit(limit)))
