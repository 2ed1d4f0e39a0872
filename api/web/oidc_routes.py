"""Sign-in through the identity provider (OIDC authorization code with PKCE; rag/auth/pkce.py).

/signin/oidc sends the browser to the provider with a fresh state, nonce and PKCE challenge (kept
in a sealed, HttpOnly, 10-minute cookie); /signin/oidc/callback checks the state against that
cookie, exchanges the code with the verifier, verifies the ID token like a bearer token (issuer,
audience, expiry, signature) and its nonce, and starts the same kind of session as an API key.
The way back is a cross-site navigation, so the session cookie (SameSite=Strict) is sent from the
next, same-site page on: the callback answers with a page that moves on to /.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.web.guard import OIDC_CALLBACK, OIDC_COOKIE, OIDC_START, SESSION_COOKIE
from rag.auth import pkce, sessions
from rag.errors import AuthenticationError, NotFoundError
from rag.settings import Settings

_MAX_PARAM_CHARS = 2000


def configured(settings: Settings) -> bool:
    return bool(settings.oidc_jwks and settings.oidc_issuer and settings.oidc_audience)


def build_router(
    settings: Settings,
    factory: sessionmaker[Session],
    audit_key: bytes,
    render: Callable[..., HTMLResponse],
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    provider = pkce.Provider(settings.oidc_issuer or "", settings.oidc_audience or "") if configured(settings) else None
    seal_key = hmac.new(audit_key, b"web sign-in through the identity provider", hashlib.sha256).digest()

    def redirect_uri(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}{OIDC_CALLBACK}"

    def refuse(request: Request, message: str) -> HTMLResponse:
        client = request.client.host if request.client else "unknown"
        request.app.state.failure_limiter.failed(client)
        entry = getattr(request.state, "audit", None)
        if entry is not None:
            entry.detail["error"] = "unauthorized"
        page = render(request, "signin.html", 401, error=message, oidc=True)
        page.delete_cookie(OIDC_COOKIE, path=OIDC_START)
        return page

    @router.get(OIDC_START)
    async def start(request: Request) -> RedirectResponse:
        if provider is None:
            raise NotFoundError("sign-in through an identity provider is not configured")
        login = pkce.new_login()
        target = await run_in_threadpool(provider.authorize_url, login, redirect_uri(request))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            OIDC_COOKIE,
            pkce.seal(login, seal_key),
            max_age=pkce.LOGIN_TTL_S,
            path=OIDC_START,  # sent to /signin/oidc/callback only
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",  # the provider's redirect back is a cross-site top-level navigation
        )
        return response

    @router.get(OIDC_CALLBACK)
    async def callback(request: Request) -> Response:
        if provider is None:
            raise NotFoundError("sign-in through an identity provider is not configured")
        params = request.query_params
        code, state = params.get("code", ""), params.get("state", "")
        if params.get("error"):
            return refuse(request, "The identity provider did not sign you in.")
        if not code or not state or len(code) > _MAX_PARAM_CHARS or len(state) > _MAX_PARAM_CHARS:
            return refuse(request, "The sign-in came back incomplete: start again.")
        try:
            login = pkce.unseal(request.cookies.get(OIDC_COOKIE, ""), seal_key, state)
            token = await run_in_threadpool(provider.exchange, code, login, redirect_uri(request))
            principal = await run_in_threadpool(request.app.state.authenticator.oidc.verify, token)
            nonce = jwt.decode(token, options={"verify_signature": False}).get("nonce", "")  # signature checked above
            if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), login.nonce.encode()):
                raise AuthenticationError("the ID token was not issued for this sign-in")
        except AuthenticationError as exc:
            return refuse(request, f"That sign-in was not accepted: {exc}.")
        with factory() as s:
            session_id = await run_in_threadpool(sessions.start, s, principal, settings.session_max_age_s)
        request.state.principal = principal  # the audit record names who signed in
        page = render(request, "signed_in.html")
        page.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=max(1, int(settings.session_max_age_s)),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        page.delete_cookie(OIDC_COOKIE, path=OIDC_START)
        return page

    return router
