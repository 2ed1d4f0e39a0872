"""The one gate every request passes: authenticate, read the body within bounds, audit exactly once.

Order matters. The caller is authenticated before any of the body is read, so nobody who is not
let in can make the server read or parse megabytes. The body is then read here, counting the
bytes that arrive (whatever Content-Length or chunked framing claims) against a size limit and a
deadline. Whatever happens after that, a handled error, an unhandled one or an answer, exactly one
audit record is written before the response leaves; when that write fails, the response becomes a
503 and any answer is withheld. The server's own request id keys the record; a client's
X-Request-ID is kept beside it, so no client can choose or reuse the key of a record.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import classify
from api.metrics import Metrics
from api.ratelimit import FailureLimiter
from api.web import guard
from rag.audit import AuditEntry, HashChainAuditLog, question_from_body, question_from_prefix
from rag.errors import (
    AuditUnavailableError,
    AuthenticationError,
    BodyTooLargeError,
    RagError,
    RateLimitedError,
    RequestTimeoutError,
)
from rag.settings import Settings

if TYPE_CHECKING:
    from api.auth import Authenticator

log = logging.getLogger(__name__)

UNAUDITED = frozenset({"/healthz"})  # the liveness probe: no authentication, no record (nor static assets)
MAX_BODY_BYTES = 1_000_000  # questions are capped far below this
ANONYMOUS_BODY_BYTES = 2_048  # what is read of a refused caller's body, for the record
ANONYMOUS_QUESTION_CHARS = 200  # and what of it is kept: a 401 cannot fill the append-only log
_CLIENT_ID_CHARS = 64


def error_response(request: Request, status: int, code: str, message: str, headers=None) -> JSONResponse:
    """The API's one error format; also notes the code in the request's audit record."""
    rid = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    entry = getattr(request.state, "audit", None)
    if entry is not None:
        entry.detail["error"] = code
    body = {"error": {"code": code, "message": message}, "request_id": rid}
    return JSONResponse(body, status_code=status, headers=headers)


def for_error(request: Request, exc: Exception) -> JSONResponse:
    status, code, message = classify(exc)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimitedError) else None
    return error_response(request, status, code, message, headers)


def note_target(request: Request, **fields: object) -> None:
    """What an admin action acted on (user, key, document, job), for its audit record."""
    entry = getattr(request.state, "audit", None)
    if entry is not None:
        entry.detail.setdefault("target", {}).update(fields)


async def read_body(request: Request, limit: int, deadline_s: float, *, truncate: bool = False) -> bytes:
    """The body as it arrives, at most `limit` bytes within `deadline_s` seconds. Over the limit
    raises BodyTooLargeError (or, with `truncate`, stops reading and returns what came)."""
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(deadline_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    if truncate:
                        chunks.append(chunk[: limit - (size - len(chunk))])
                        break
                    raise BodyTooLargeError(f"request bodies are limited to {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        if truncate:
            return b"".join(chunks)
        raise RequestTimeoutError(f"the request body did not arrive within {deadline_s:g} s") from None
    except ClientDisconnect:
        pass
    return b"".join(chunks)


def _client_id(given: str) -> str | None:
    """A client's X-Request-ID as stored beside ours: bounded; escaping is the audit log's (storable)."""
    return given[:_CLIENT_ID_CHARS] or None


def install(
    app: FastAPI, settings: Settings, audit_log: HashChainAuditLog, metrics: Metrics, limiter: FailureLimiter
) -> None:
    app.state.failure_limiter = limiter  # the web app's sign-in counts its failures here too
    app.add_middleware(
        RequestGate,
        settings=settings,
        audit_log=audit_log,
        metrics=metrics,
        limiter=limiter,
        authenticator=app.state.authenticator,
    )


class RequestGate:
    """Pure ASGI (no task and no memory stream per request, as Starlette's BaseHTTPMiddleware has):
    the record is written when the response starts, before its first byte goes out."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        audit_log: HashChainAuditLog,
        metrics: Metrics,
        limiter: FailureLimiter,
        authenticator: Authenticator,
    ) -> None:
        self.app = app
        self.settings = settings
        self.audit_log = audit_log
        self.metrics = metrics
        self.limiter = limiter
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        request = Request(scope, receive)
        request.state.request_id = rid
        started = time.perf_counter()
        path = scope["path"]
        entry = None
        if path not in UNAUDITED and not guard.is_static(path):
            entry = AuditEntry(request_id=rid, route=path[:200])
            entry.detail["method"] = request.method
            client_id = _client_id(request.headers.get("x-request-id", ""))
            if client_id:
                entry.detail["client_request_id"] = client_id
            if request.client:
                entry.detail["client"] = request.client.host
            request.state.audit = entry
            body = await self._admit(request, entry)
            if isinstance(body, Response):
                await self._respond(request, body, entry, started, send)
                return
            receive = _replay(body, receive)
        sent = False
        withheld = False

        async def send_audited(message: Message) -> None:
            nonlocal sent, withheld
            if message["type"] == "http.response.start":
                sent = True
                failure = await self._finish(request, entry, message["status"], started)
                if failure is not None:  # the record could not be written: the answer is withheld
                    withheld = True
                    await self._send(request, failure, send)
                    return
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            elif withheld:
                return
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception as exc:  # noqa: BLE001 - an unhandled error still gets its record and one format
            log.error("unhandled %s on %s (request %s)", type(exc).__name__, path, rid)
            if sent:
                return  # the record is written and the response begun: the connection is cut short
            await self._respond(
                request, error_response(request, 500, "internal_error", "internal error"), entry, started, send
            )

    async def _admit(self, request: Request, entry: AuditEntry) -> bytes | Response:
        """Authenticates and reads the body; returns the body, or the refusal."""
        client = request.client.host if request.client else "unknown"
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return error_response(
                request, 413, "body_too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes"
            )
        try:
            wait = self.limiter.retry_after(client)
            if wait:
                raise RateLimitedError("too many failed authentications from this address; retry later", wait)
            principal = None
            if not guard.is_public(request):  # the sign-in page: audited, but no credentials yet
                authorization = request.headers.get("authorization")
                session_id = request.cookies.get(guard.SESSION_COOKIE)
                try:
                    principal = await run_in_threadpool(
                        self.authenticator.authenticate_request, authorization, session_id
                    )
                except AuthenticationError:
                    if authorization is not None or session_id:  # a guess; a bare browser visit is none
                        self.limiter.failed(client)
                    raise
        except RagError as exc:
            prefix = await read_body(request, ANONYMOUS_BODY_BYTES, 1.0, truncate=True)
            entry.question = question_from_prefix(prefix, ANONYMOUS_QUESTION_CHARS)
            return for_error(request, exc)
        request.state.principal = principal
        try:
            body = await read_body(request, MAX_BODY_BYTES, self.settings.request_read_timeout_s)
            guard.check_origin_and_token(request, body, principal)  # CSRF: cookie-borne requests only
        except RagError as exc:
            return for_error(request, exc)
        entry.question = question_from_body(body)
        return body

    async def _finish(
        self, request: Request, entry: AuditEntry | None, status: int, started: float
    ) -> JSONResponse | None:
        """Completes and writes the record; returns the 503 to send instead when it could not be written."""
        failure = None
        template = getattr(request.scope.get("route"), "path", None)
        if entry is not None:
            principal = getattr(request.state, "principal", None)
            if principal is not None:
                entry.principal, entry.role, entry.groups = principal.name, principal.role, list(principal.groups)
                entry.detail["via"] = principal.via
                if principal.key_id is not None:
                    entry.detail["key_id"] = principal.key_id
            if template is not None and template != request.url.path:
                entry.route = template  # /v1/users/{name}: filterable; the concrete path is kept beside it
                entry.detail["path"] = request.url.path[:1000]
            entry.status = status
            entry.latency_ms = (time.perf_counter() - started) * 1000
            try:
                await run_in_threadpool(self.audit_log.append, entry)
            except AuditUnavailableError as exc:
                log.error(
                    "audit write failed for request %s: %s", request.state.request_id, type(exc.__cause__).__name__
                )
                failure = error_response(request, 503, "audit_unavailable", str(exc))
        sent_status = status if failure is None else failure.status_code
        self.metrics.requests.labels(template or "unmatched", request.method, str(sent_status)).inc()
        self.metrics.latency.labels(template or "unmatched").observe(time.perf_counter() - started)
        return failure

    async def _respond(
        self, request: Request, response: Response, entry: AuditEntry | None, started: float, send: Send
    ) -> None:
        """The gate's own response (a refusal or a 500): recorded, then sent."""
        failure = await self._finish(request, entry, response.status_code, started)
        await self._send(request, failure or response, send)

    @staticmethod
    async def _send(request: Request, response: Response, send: Send) -> None:
        response.headers["x-request-id"] = request.state.request_id
        await response(request.scope, request.receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body the gate read, handed to the route as one message; then the connection's own
    messages (a disconnect), which streaming responses listen for."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
