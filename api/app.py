"""App factory: the composition root of the API process.

Every route except /healthz requires authentication; each route names the capability it needs
(see rag.auth.principal). Every request but /healthz, answered or refused, writes exactly one audit
record before its response leaves (api/request_audit.py); when that write fails the response is
replaced by a 503 and the answer is withheld.
"""

import logging
import re

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import (
    admin_routes,
    audit_routes,
    conversation_routes,
    feedback_routes,
    ingest_routes,
    model_routes,
    openai_routes,
    query_routes,
    request_audit,
    routing_routes,
)
from api.auth import MANAGE, Authenticator, require
from api.metrics import Metrics
from api.ratelimit import FailureLimiter
from api.responses import GATE
from api.services import QueryServices
from api.web import routes as web_routes
from rag.audit import HashChainAuditLog, resolve_key
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.errors import RagError
from rag.protocols import Embedder, Generator
from rag.settings import Settings

log = logging.getLogger(__name__)
_BRANCH = re.compile(r"[\[\-]")
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


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

    request_audit.install(app, settings, audit_log, metrics, FailureLimiter(settings.auth_failures_per_minute))

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        return request_audit.for_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        # drop "body" and pydantic's names of union branches and validators ("function-after[...]")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body" and not _BRANCH.search(str(p)))
        where = where or "body"  # the body as a whole: missing, or not an object
        return request_audit.error_response(request, 422, "invalid_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's own refusals (unknown route, wrong method, a body that is not JSON) in our format."""
        code = _HTTP_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
        message = "the request body is not valid JSON" if exc.status_code == 400 else str(exc.detail)
        return request_audit.error_response(request, exc.status_code, code, message, getattr(exc, "headers", None))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        """The process is up (no dependency is checked; the only route without authentication)."""
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("docs"))])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(
        "/readyz",
        tags=["ops"],
        dependencies=[MANAGE],
        responses={**GATE, 503: {"description": "a dependency is missing: `{status: not_ready, checks}`"}},
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

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        dependencies=[MANAGE],
        responses={**GATE, 200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    def prometheus_metrics() -> Response:
        """Prometheus text format: requests and latency by route, retrieval and generation time, tokens."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(query_routes.build_router(settings, services, metrics), responses=GATE)
    app.include_router(openai_routes.build_router(settings, services, metrics), responses=GATE)
    app.include_router(ingest_routes.build_router(settings, factory), responses=GATE)
    app.include_router(admin_routes.build_router(factory), responses=GATE)
    app.include_router(model_routes.build_router(settings, engine, factory), responses=GATE)
    app.include_router(routing_routes.build_router(settings, services, factory), responses=GATE)
    app.include_router(audit_routes.build_router(factory, audit_log, settings.audit_checkpoint_file), responses=GATE)
    app.include_router(feedback_routes.build_router(factory), responses=GATE)
    app.include_router(conversation_routes.build_router(settings, services, metrics, factory), responses=GATE)
    web_routes.install(app, settings, factory)  # the web app at /; its middleware wraps the request gate
    return app


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory api.app:app_from_env`."""
    return create_app(Settings())
