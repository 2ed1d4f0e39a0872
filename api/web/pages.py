"""Security headers on every response, and errors shown as pages to a browser that asked for one.

This middleware wraps the request gate: the gate has already written the audit record (with the
real status) when a refusal reaches here; a browser asking for a page then gets the sign-in page
(for a 401) or an error page instead of the API's JSON body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

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
    @app.middleware("http")
    async def pages(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        is_json = response.headers.get("content-type", "").startswith("application/json")
        if response.status_code >= 400 and is_json and wants_page(request):
            response = await _as_page(request, response, templates)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not is_static(request.url.path):  # no page or passage survives sign-out in a cache
            response.headers["Cache-Control"] = "no-store"
        return response


async def _as_page(request: Request, response: Response, templates: Jinja2Templates) -> Response:
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    try:
        error = json.loads(body)
        message, request_id = error["error"]["message"], error["request_id"]
    except (ValueError, KeyError, TypeError):
        message, request_id = "the request failed", response.headers.get("x-request-id", "")
    status = response.status_code
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
    if "x-request-id" in response.headers:
        page.headers["x-request-id"] = response.headers["x-request-id"]
    return page
