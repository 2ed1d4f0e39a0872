"""Security headers on every response, and errors shown as pages to a browser that asked for one.

This middleware wraps the request gate: the gate has already written the audit record (with the
real status) when a refusal reaches here; a browser asking for a page then gets the sign-in page
(for a 401) or an error page instead of the API's JSON body.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.web.guard import SESSION_COOKIE, SIGNIN, is_static
from rag.auth.principal import Principal
from rag.auth.sessions import csrf_token

# no inline script or style anywhere: every asset is a file under /static
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TITLES = {403: "Not allowed", 404: "Not found", 429: "Too many attempts"}


NAV = (  # (capability, path, label): each role sees the pages of its capabilities only
    ("ask", "/ask", "Ask"),
    ("ask", "/search", "Search"),
    ("ask", "/documents", "Documents"),
    ("audit", "/audit", "Audit log"),
    ("manage", "/admin/documents", "Manage documents"),
    ("manage", "/admin/ingest", "Ingestion"),
    ("manage", "/admin/routing", "Routing"),
    ("manage", "/admin/status", "Status"),
    ("manage", "/admin/users", "Users and keys"),
    ("manage", "/admin/feedback", "Feedback"),
)


def base_context(request: Request) -> dict:
    """What every page's layout needs: who is signed in, their navigation, the CSRF token."""
    principal: Principal | None = getattr(request.state, "principal", None)
    session_id = request.cookies.get(SESSION_COOKIE)
    return {
        "principal": principal,
        "nav": [(path, label) for cap, path, label in NAV if principal is not None and principal.may(cap)],
        "csrf": csrf_token(session_id) if principal is not None and principal.via == "session" and session_id else "",
        "here": request.url.path,
    }


def wants_page(request: Request) -> bool:
    """A browser navigating (not the page's JS, not an API client)."""
    return "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/v1/")


def install(app: FastAPI, templates: Jinja2Templates) -> None:
    app.add_middleware(PageGuard, templates=templates)


class PageGuard:
    """Pure ASGI: sets the headers on the response's start message, and holds back only a JSON
    error that a browser's page navigation is about to receive, to send a page in its place."""

    def __init__(self, app: ASGIApp, *, templates: Jinja2Templates) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        static = is_static(scope["path"])
        held: Message | None = None  # the start of a JSON error to be shown as a page
        body: list[bytes] = []

        async def guarded(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                is_json = headers.get("content-type", "").startswith("application/json")
                if message["status"] >= 400 and is_json and wants_page(request):
                    held = message
                    return
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if not static:  # no page or passage survives sign-out in a cache
                    headers["Cache-Control"] = "no-store"
            elif held is not None and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start, held = held, None
                page = _as_page(request, start, b"".join(body), self.templates)
                await page(scope, receive, guarded)
                return
            await send(message)

        await self.app(scope, receive, guarded)


def _as_page(request: Request, start: Message, body: bytes, templates: Jinja2Templates) -> Response:
    headers = Headers(raw=start["headers"])
    try:
        error = json.loads(body)
        message, request_id = error["error"]["message"], error["request_id"]
    except (ValueError, KeyError, TypeError):
        message, request_id = "the request failed", headers.get("x-request-id", "")
    status = start["status"]
    if status == 401:
        page: Response = RedirectResponse(SIGNIN, status_code=303)
    else:
        page = templates.TemplateResponse(
            request,
            "error.html",
            {
                **base_context(request),
                "status": status,
                "title": _TITLES.get(status, "Something went wrong"),
                "message": message,
                "request_id": request_id,
            },
            status_code=status,
        )
    if "x-request-id" in headers:
        page.headers["x-request-id"] = headers["x-request-id"]
    return page
