"""Admin routes for ingestion jobs: queue one from an allowed root, follow its progress."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.auth import require
from api.params import RowId
from api.request_audit import note_target
from api.responses import JSON_BODY, NOT_FOUND
from api.schemas import IngestRequest, JobStatus
from rag import jobs
from rag.settings import Settings


def job_status(view: jobs.JobView) -> JobStatus:
    return JobStatus.model_validate(view.as_dict())  # the same keys `rag jobs ID --json` prints


def build_router(settings: Settings, factory: sessionmaker[Session]) -> APIRouter:
    router = APIRouter(tags=["admin"], dependencies=[Depends(require("manage"))])

    @router.post("/v1/ingest/jobs", status_code=202, response_model=JobStatus, responses=JSON_BODY)
    def create_ingest_job(body: IngestRequest, request: Request) -> JobStatus:
        """Queue an ingestion job for the workers. Paths outside RAG_INGEST_ROOTS are refused (403)."""
        note_target(request, path=body.path, collection=body.collection, groups=body.groups, label=body.label)
        with factory() as s:
            job = jobs.queue_within_roots(s, body.path, settings.ingest_roots, body.collection, body.groups, body.label)
            note_target(request, job_id=job.id)
            return job_status(jobs.describe(s, job))

    @router.get("/v1/ingest/jobs/{job_id}", response_model=JobStatus, responses=NOT_FOUND)
    def get_ingest_job(job_id: RowId) -> JobStatus:
        """A job's state, its counts so far, and the files that failed with their reasons."""
        with factory() as s:
            return job_status(jobs.describe(s, jobs.get_job(s, job_id)))

    return router
