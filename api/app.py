"""App factory: the composition root of the API process."""


import hmac
import logging
import time
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api import openai_routes, query_routes
from api.errors import classify
from api.metrics import Metrics
from api.schemas import ErrorResponse, FileError, IngestRequest, JobStatus
from api.services import QueryServices
from ingest import jobs
from ingest.discovery import check_within_roots
from rag.db.models import IngestionJob, JobFile
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.embedder import Embedder
from rag.errors import NotFoundError, RagError
from rag.generators.base import Generator
from rag.settings import Settings

log = logging.getLogger(__name__)


class Unauthorized(RagError):
    pass


def create_app(settings: Settings, *, embedder: Embedder | None = None, generator: Generator | None = None) -> FastAPI:
    """`embedder` and `generator` default to the ones the settings describe, loaded on first use."""
    engine = make_engine(settings)
    migrate(engine)
    factory = make_sessionmaker(engine)
    app = FastAPI(
        title="private-rag", version="0.1.0", responses={401: {"model": ErrorResponse}},
        description="Private question answering over internal documents: search, grounded answers with "
        "citations, an OpenAI-compatible chat API, and the admin ingestion API. Errors are JSON "
        "`{error: {code, message}, request_id}`.",
    )
    services = QueryServices(settings, factory, embedder=embedder, generator=generator)
    metrics = Metrics()
    app.state.services = services
    app.state.metrics = metrics

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
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if given.isascii() and 0 < len(given) <= 64 and given.isprintable() \
            else uuid.uuid4().hex
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        response.headers["x-request-id"] = request.state.request_id
        return response

    def error(request: Request, status: int, code: str, message: str) -> JSONResponse:
        rid = getattr(request.state, "request_id", uuid.uuid4().hex)
        return JSONResponse({"error": {"code": code, "message": message}, "request_id": rid}, status_code=status)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        if isinstance(exc, Unauthorized):
            return error(request, 401, "unauthorized", str(exc))
        status, code, message = classify(exc)
        return error(request, status, code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(request, 422, "invalid_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s (request %s)", type(exc).__name__, request.url.path,
                  getattr(request.state, "request_id", "-"))
        return error(request, 500, "internal_error", "internal error")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        """The process is up (no dependency is checked)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "a dependency is missing"}})
    def readyz() -> JSONResponse:
        """Database, index generation and generator. A down generator with the extractive fallback
        on is reported as `degraded` (200): answers still come, marked as extracted."""
        checks: dict[str, str] = {}
        ok = True
        try:
            with factory() as s:
                s.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001
            checks["database"], ok = "unreachable", False
        try:
            snapshot = services.answerer.searcher.live.get()
            checks["index"] = f"ok: generation {snapshot.manifest.generation}, {len(snapshot.vector)} chunks"
        except RagError as exc:
            checks["index"], ok = f"unavailable: {exc}", False
        try:
            generator_ok = services.answerer.generator.ready()
        except Exception:  # noqa: BLE001
            generator_ok = False
        if generator_ok:
            checks["generator"] = "ok"
        elif services.answerer.fallback is not None:
            checks["generator"] = "degraded: unreachable, answering extractively"
        else:
            checks["generator"], ok = "unreachable", False
        return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus_metrics() -> Response:
        """Prometheus text format: requests and latency by route, retrieval and generation time, tokens."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(query_routes.build_router(settings, services, metrics))
    app.include_router(openai_routes.build_router(settings, services, metrics))

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
