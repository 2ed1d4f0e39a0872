"""Web app sessions: an API key (or an identity provider's sign-in) is exchanged once for a random
session id kept in a cookie.

Only a SHA-256 of the id is stored. A session ends at sign-out, after `idle_s` without a request,
at `max_age_s` after sign-in whatever happens, and as soon as its user is disabled or the key it
was made from is revoked. The principal is rebuilt from the database on every request, so a
changed group or role applies at once, as it does for API keys. The CSRF token of a session is
derived from its id, so it needs no storage and a copy of the database does not reveal it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from rag.auth.principal import Principal
from rag.db.models import ApiKey, User, WebSession, utcnow

_TOUCH_EVERY = dt.timedelta(seconds=30)  # last_seen_at is written at most this often (or idle/4)
MAX_ID_CHARS = 100


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    """The token pages put in forms and the X-CSRF-Token header; not derivable from the stored hash."""
    return hashlib.sha256(b"csrf:" + session_id.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)  # SQLite drops the zone


def start(session: Session, principal: Principal, max_age_s: float) -> str:
    """A new session for a principal that signed in with an API key (or the bootstrap key); returns
    the session id, which is never stored. Long-dead sessions are swept out on the way."""
    now = utcnow()
    session_id = secrets.token_urlsafe(32)
    session.execute(
        delete(WebSession).where(
            or_(WebSession.expires_at < now - dt.timedelta(days=1), WebSession.ended_at < now - dt.timedelta(days=1))
        )
    )
    identity = (
        {"name": principal.name, "role": principal.role, "groups": list(principal.groups)}
        if principal.via == "oidc"
        else None
    )
    session.add(
        WebSession(
            id_hash=_hash(session_id),
            user_id=principal.user_id,
            key_id=principal.key_id,
            via=principal.via,
            identity=identity,
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(seconds=max_age_s),
        )
    )
    session.commit()
    return session_id


def resolve(
    session: Session, session_id: str, idle_s: float, *, bootstrap_open: bool, oidc_open: bool = False
) -> Principal | None:
    """The principal of a live session, or None (unknown, ended, idle too long, expired, user
    disabled, key revoked, bootstrap key or identity provider no longer configured). A session made
    through the identity provider keeps the name, role and groups of its ID token until it ends."""
    if not session_id or len(session_id) > MAX_ID_CHARS:
        return None
    row = session.scalars(select(WebSession).where(WebSession.id_hash == _hash(session_id))).first()
    now = utcnow()
    if row is None or row.ended_at is not None or now >= _aware(row.expires_at):
        return None
    if now - _aware(row.last_seen_at) > dt.timedelta(seconds=idle_s):
        return None
    if row.via == "bootstrap":
        if not bootstrap_open:
            return None
        principal = Principal(name="bootstrap-admin", role="admin", via="session")
    elif row.via == "oidc":
        if not oidc_open or not row.identity:
            return None
        identity = row.identity
        principal = Principal(
            name=identity["name"], role=identity["role"], groups=tuple(identity["groups"]), via="session"
        )
    else:
        user = session.get(User, row.user_id) if row.user_id is not None else None
        key = session.get(ApiKey, row.key_id) if row.key_id is not None else None
        if user is None or user.disabled or key is None or key.revoked_at is not None:
            return None
        principal = Principal(
            name=user.name,
            role=user.role,
            groups=tuple(sorted(g.name for g in user.groups)),
            via="session",
            user_id=user.id,
            key_id=key.id,
        )
    if now - _aware(row.last_seen_at) > min(_TOUCH_EVERY, dt.timedelta(seconds=idle_s / 4)):
        row.last_seen_at = now
        session.commit()
    return principal


def end(session: Session, session_id: str) -> bool:
    """Sign-out: the session is refused from the next request on. False when there was none."""
    if not session_id or len(session_id) > MAX_ID_CHARS:
        return False
    row = session.scalars(select(WebSession).where(WebSession.id_hash == _hash(session_id))).first()
    if row is None or row.ended_at is not None:
        return False
    row.ended_at = utcnow()
    session.commit()
    return True
