"""Authentication of every request (except /healthz) and the role check of each route."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable

from fastapi import Depends, Request
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from rag.auth import sessions
from rag.auth.keys import PREFIX, find_key
from rag.auth.oidc import OidcVerifier
from rag.auth.principal import Principal
from rag.db.models import ApiKey, utcnow
from rag.errors import AuthenticationError, PermissionDeniedError
from rag.settings import Settings

_LAST_USED_EVERY = dt.timedelta(seconds=60)


class Authenticator:
    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.engine = factory.kw["bind"]
        self.oidc = OidcVerifier.from_settings(settings)
        self.bootstrap = settings.admin_api_key.get_secret_value().encode() if settings.admin_api_key else None
        self.session_idle_s = settings.session_idle_timeout_s

    def authenticate_request(self, authorization: str | None, session_id: str | None) -> Principal:
        """The bearer header when there is one, else the web app's session cookie (api/web)."""
        if authorization is None and session_id:
            with self.factory() as session:
                principal = sessions.resolve(
                    session,
                    session_id,
                    self.session_idle_s,
                    bootstrap_open=self.bootstrap is not None,
                    oidc_open=self.oidc is not None,
                )
            if principal is None:
                raise AuthenticationError("the session has ended: sign in again")
            return principal
        return self.authenticate(authorization)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            raise AuthenticationError("authentication required: send 'Authorization: Bearer <API key or token>'")
        token = authorization[7:].strip()
        if self.bootstrap is not None and hmac.compare_digest(token.encode(), self.bootstrap):
            return Principal(name="bootstrap-admin", role="admin", via="bootstrap")
        if token.startswith(PREFIX):
            return self._api_key(token)
        if self.oidc is not None and token.count(".") == 2:
            return self.oidc.verify(token)  # InvalidTokenError is an AuthenticationError
        raise AuthenticationError("invalid credentials")

    def _api_key(self, token: str) -> Principal:
        with self.engine.connect() as conn:
            key = find_key(conn, token)
            if key is None or key.disabled:
                raise AuthenticationError("invalid or revoked API key")
            now = utcnow()
            last = key.last_used_at
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=dt.UTC)
            if last is None or now - last > _LAST_USED_EVERY:
                conn.execute(update(ApiKey).where(ApiKey.id == key.key_id).values(last_used_at=now))
                conn.commit()
        # groups come from the database on every request: a removed membership counts at once
        return Principal(
            name=key.name,
            role=key.role,
            groups=key.groups,
            via="api_key",
            user_id=key.user_id,
            key_id=key.key_id,
        )


def require(capability: str) -> Callable[[Request], Principal]:
    """A dependency: the caller must be authenticated and hold `capability` (see rag.auth.principal)."""

    def check(request: Request) -> Principal:
        principal = getattr(request.state, "principal", None)  # the request middleware authenticates first
        if principal is None:
            principal = request.app.state.authenticator.authenticate(request.headers.get("authorization"))
            request.state.principal = principal
        if not principal.may(capability):
            raise PermissionDeniedError(f"the {principal.role} role may not use this route")
        return principal

    return check


# the dependencies routes declare: `dependencies=[MANAGE]`, or `principal: Principal = ASK` to use the caller
ASK = Depends(require("ask"))
MANAGE = Depends(require("manage"))
