"""What the request gate asks of the web app: which paths are public, and the CSRF check.

A browser sends the session cookie by itself, so a request that carries only the cookie must also
prove it comes from one of our pages: the Origin (or Sec-Fetch-Site) header must be this host and
the request must carry the session's CSRF token (X-CSRF-Token header, or a `csrf_token` form field).
Bearer requests are not cookie-borne and are not affected. Sign-in is public (no credentials yet)
but refuses cross-site posts, so no page elsewhere can sign a browser in to someone's account.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from rag.auth.principal import Principal
from rag.auth.sessions import csrf_token
from rag.errors import PermissionDeniedError

SESSION_COOKIE = "rag_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SIGNIN = "/signin"
OIDC_START = "/signin/oidc"
OIDC_CALLBACK = "/signin/oidc/callback"
OIDC_COOKIE = "rag_oidc_login"
STATIC_PREFIX = "/static/"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def is_public(request: Request) -> bool:
    """Only the sign-in pages are reachable without credentials (static assets skip the gate): the
    API-key form, and the way out to the identity provider and back."""
    if request.url.path == SIGNIN:
        return request.method in ("GET", "HEAD", "POST")
    return request.url.path in (OIDC_START, OIDC_CALLBACK) and request.method in ("GET", "HEAD")


def is_static(path: str) -> bool:
    """The package's own CSS and JS: no data, so neither authenticated nor audited, like /healthz."""
    return path.startswith(STATIC_PREFIX)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is not None:
        # behind a reverse proxy the public host may arrive as X-Forwarded-Host; a cross-site page
        # cannot set either header on a form post (and a custom-header fetch needs CORS, which is off)
        hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "").split(",")[0].strip()}
        return origin != "null" and urlsplit(origin).netloc in hosts - {""}
    site = request.headers.get("sec-fetch-site")
    return site is None or site in ("same-origin", "none")


def _token(request: Request, body: bytes) -> str:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            given = (parse_qs(body.decode("utf-8", "replace"), max_num_fields=20).get(CSRF_FIELD) or [""])[0]
        except ValueError:  # more fields than any of our forms has
            given = ""
    return given or ""


def check_origin_and_token(request: Request, body: bytes, principal: Principal | None) -> None:
    """Raises PermissionDeniedError for a cross-site or token-less state-changing cookie request."""
    if request.method in _SAFE:
        return
    cookie_borne = principal is not None and principal.via == "session"
    if not cookie_borne and principal is not None:
        return  # a bearer header: no browser adds one by itself
    if not _same_origin(request):
        raise PermissionDeniedError("cross-site request refused")
    if cookie_borne:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if not hmac.compare_digest(_token(request, body).encode(), csrf_token(session_id).encode()):
            raise PermissionDeniedError("missing or invalid CSRF token: reload the page")
