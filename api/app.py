"""App factory: the composition root of the API process.

Every route except /healthz requires authentication; each route names the capability it needs
(see rag.auth.principal). Every request to search, query and chat, answered or refused, writes
exactly one audit record before its response leaves; when that write fails the response is
replaced by a 503 and the answer is withheld.
"""

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api import admin_routes, audit_routes, ingest_routes, openai_routes, query_routes, routing_routes
from api.auth import MANAGE, Authenticator, require
from api.errors import classify
from api.metrics import Metrics
from api.schemas import ErrorResponse
from api.services import QueryServices
from rag.audit import AuditEntry, HashChainAuditLog, question_from_body, resolve_key
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.errors import AuditUnavailableError, RagError
from rag.protocols import Embedder, Generator
from rag.settings import Settings

log = logging.getLogger(__name__)
AUDITED = frozenset({"/v1/search", "/v1/query", "/v1/chat/completions", "/v1/route/explain"})
MAX_BODY_BYTES = 1_000_000  # questions are capped far below this; bigger bodies are refused unread


def create_app(settings: Settings, *, embedder: Embedder | None = None, generator: Generator | None = None) -> FastAPI:
    """`embedder` and `generator` default to the ones the settings describe, loaded on first use."""
    engine = make_engine(settings)
    migrate(engine)
    factory = make_sessionmaker(engine)
    audit_log = HashChainAuditLog(factory, resolve_key(settings))  # refuses to start without a proper key in production
    app = FastAPI(
        title="private-rag",
        version="0.1.0",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
        description="Private question answering over internal documents: search, grounded answers with "
        "citations, an OpenAI-compatible chat API, admin and auditor APIs. Every route but /healthz needs "
        "`Authorization: Bearer <API key or identity-provider token>`. Errors are JSON "
        "`{error: {code, message}, request_id}`.",
    )
    services = QueryServices(settings, factory, embedder=embedder, generator=generator)
    metrics = Metrics()
    app.state.services = services
    app.state.metrics = metrics
    app.state.audit_log = audit_log
    app.state.authenticator = Authenticator(settings, factory)

    def error(request: Request, status: int, code: str, message: str) -> JSONResponse:
        rid = getattr(request.state, "request_id", uuid.uuid4().hex)
        entry = getattr(request.state, "audit", None)
        if entry is not None:
            entry.detail["error"] = code
        return JSONResponse({"error": {"code": code, "message": message}, "request_id": rid}, status_code=status)

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("x-request-id", "")
        rid = given if given.isascii() and 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        request.state.request_id = rid
        started = time.perf_counter()
        entry = None
        if request.url.path in AUDITED:
            entry = AuditEntry(request_id=rid, route=request.url.path)
            request.state.audit = entry
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
            response = error(request, 413, "body_too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        else:
            if entry is not None:
                entry.question = question_from_body(await request.body())
            response = await call_next(request)
        if entry is not None:
            principal = getattr(request.state, "principal", None)
            if principal is not None:
                entry.principal, entry.role, entry.groups = principal.name, principal.role, list(principal.groups)
            entry.status = response.status_code
            entry.latency_ms = (time.perf_counter() - started) * 1000
            try:
                await run_in_threadpool(audit_log.append, entry)
            except AuditUnavailableError as exc:
                log.error("audit write failed for request %s: %s", rid, type(exc.__cause__).__name__)
                response = JSONResponse(
                    {"error": {"code": "audit_unavailable", "message": str(exc)}, "request_id": rid}, status_code=503
                )
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        response.headers["x-request-id"] = rid
        return response

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        status, code, message = classify(exc)
        return error(request, status, code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(request, 422, "invalid_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled %s on %s (request %s)",
            type(exc).__name__,
            request.url.path,
            getattr(request.state, "request_id", "-"),
        )
        return error(request, 500, "internal_error", "internal error")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        """The process is up (no dependency is checked; the only route without authentication)."""
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("docs"))])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(
        "/readyz", tags=["ops"], dependencies=[MANAGE], responses={503: {"description": "a dependency is missing"}}
    )
    def readyz() -> JSONResponse:
        """Database, index generation and generator. A down generator with the extractive fallback
        on is reported as `degraded` (200): answers still come, marked as extracted."""
        checks: dict[str, str] = {}
        ok = True
        try:
            with factory() as s:
                s.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001 - readiness reports any failure as a state, never raises
            checks["database"], ok = "unreachable", False
        try:
            snapshot = services.answerer.searcher.live.get()
            checks["index"] = f"ok: generation {snapshot.manifest.generation}, {len(snapshot.vector)} chunks"
        except RagError as exc:
            checks["index"], ok = f"unavailable: {exc}", False
        try:
            generator_ok = services.answerer.generator.ready()
        except Exception:  # noqa: BLE001 - readiness reports any failure as a state, never raises
            generator_ok = False
        if generator_ok:
            checks["generator"] = "ok"
        elif services.answerer.fallback is not None:
            checks["generator"] = "degraded: unreachable, answering extractively"
        else:
            checks["generator"], ok = "unreachable", False
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503
        )

    @app.get("/metrics", tags=["ops"], response_class=Response, dependencies=[MANAGE])
    def prometheus_metrics() -> Response:
        """Prometheus text format: requests and latency by route, retrieval and generation time, tokens."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(query_routes.build_router(settings, services, metrics))
    app.include_router(openai_routes.build_router(settings, services, metrics))
    app.include_router(ingest_routes.build_router(settings, factory))
    app.include_router(admin_routes.build_router(factory))
    app.include_router(routing_routes.build_router(settings, services, factory))
    app.include_router(audit_routes.build_router(factory, audit_log))
    return app


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory api.app:app_from_env`."""
    return create_app(Settings())
