"""Files whose latest ingestion failed, with the reason: what the admin's document list shows
beside the documents (a file that failed never became a document, so it is listed from the jobs)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rag.db.models import IngestionJob, JobFile
from rag.documents import like_escaped


@dataclass(frozen=True)
class FailedIngest:
    path: str
    error: str
    job_id: int
    collection: str
    at: str


def latest_failures(
    session: Session, *, collection: str | None = None, path_contains: str | None = None, limit: int = 50
) -> list[FailedIngest]:
    """Newest first: one row per file whose most recent outcome in any job is a failure (a file
    that was ingested after it failed is no longer listed)."""
    last = select(func.max(JobFile.id).label("id")).group_by(JobFile.path).subquery()
    query = (
        select(JobFile, IngestionJob.collection)
        .join(last, JobFile.id == last.c.id)
        .join(IngestionJob, IngestionJob.id == JobFile.job_id)
        .where(JobFile.status == "failed")
    )
    if collection:
        query = query.where(IngestionJob.collection == collection)
    if path_contains:
        query = query.where(JobFile.path.like(like_escaped(path_contains), escape="\\"))
    rows = session.execute(query.order_by(JobFile.id.desc()).limit(limit)).all()
    return [
        FailedIngest(f.path, f.error or "", f.job_id, collection_name, f.created_at.isoformat())
        for f, collection_name in rows
    ]
