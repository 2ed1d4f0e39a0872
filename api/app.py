"""App factory: the composition root of the API process."""


import hmac
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import ErrorResponse, FileError, IngestRequest, JobStatus
from ingest import jobs
from ingest.discovery import check_within_roots
from rag.db.models import IngestionJob, JobFile
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.errors import NotFoundError, PathNotAllowedError, RagError
from rag.settings import Settings

_STATUS = {NotFoundError: 404, PathNotAllowedError: 403}


class Unauthorized(RagError):
    pass


def create_app(settings: Settings) -> FastAPI:
    engine = make_engine(settings)
    migrate(engine)
    factory = make_sessionmaker(engine)
    app = FastAPI(title="private-rag", version="0.1.0", responses={401: {"model": ErrorResponse}})

    def session() -> Session:
        with factory() as s:
            yield s

    def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
        """Until users and roles exist, admin routes need RAG_ADMIN_API_KEY; unset means closed."""
        expected = settings.admin_api_key.get_secret_value() if settings.admin_api_key else None
        given = authorization.removeprefix("Bearer ").strip() if authorization else ""
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("a valid admin API key is required")

    SessionDep = Annotated[Session, Depends(session)]
    Admin = Depends(require_admin)

    @app.middleware("http")
    async def request_id(request: Request, call_next):  # noqa: ANN001, ANN202
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["x-request-id"] = request.state.request_id
        return response

    def error(request: Request, status: int, code: str, message: str) -> JSONResponse:
        rid = getattr(request.state, "request_id", uuid.uuid4().hex)
        return JSONResponse({"error": {"code": code, "message": message}, "request_id": rid}, status_code=status)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        if isinstance(exc, Unauthorized):
            return error(request, 401, "unauthorized", str(exc))
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        return error(request, status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(request, 422, "invalid_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error(request, 500, "internal_error", "internal error")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        """The process is up (no dependency is checked)."""
        return {"status": "ok"}

    @app.post("/v1/ingest/jobs", status_code=202, response_model=JobStatus, dependencies=[Admin], tags=["admin"])
    def create_ingest_job(body: IngestRequest, s: SessionDep) -> JobStatus:
        """Queue an ingestion job for the workers. Paths outside RAG_INGEST_ROOTS are refused (403)."""
        target = check_within_roots(Path(body.path), settings.ingest_roots)
        if not target.exists():
            raise NotFoundError("path not found inside the ingest roots")
        job = jobs.create_job(s, str(target), body.collection, body.groups, body.label)
        return _status(s, job)

    @app.get("/v1/ingest/jobs/{job_id}", response_model=JobStatus, dependencies=[Admin], tags=["admin"])
    def get_ingest_job(job_id: int, s: SessionDep) -> JobStatus:
        """A job's state, its counts so far, and the files that failed with their reasons."""
        job = s.get(IngestionJob, job_id)
        if job is None:
            raise NotFoundError(f"no ingestion job {job_id}")
        return _status(s, job)

    return app


def _status(s: Session, job: IngestionJob) -> JobStatus:
    failed = s.scalars(select(JobFile).where(JobFile.job_id == job.id, JobFile.status == "failed").limit(1000))
    return JobStatus(
        job_id=job.id, state=job.state, path=job.path, collection=job.collection, files_total=job.files_total,
        files_seen=job.files_seen, files_indexed=job.files_indexed, files_unchanged=job.files_unchanged,
        files_deleted=job.files_deleted, files_failed=job.files_failed, chunks_added=job.chunks_added,
        chunks_removed=job.chunks_removed, error=job.error,
        errors=[FileError(path=f.path, error=f.error or "") for f in failed],
    )


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory api.app:app_from_env`."""
    return create_app(Settings())
