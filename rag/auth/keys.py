"""API keys: 256-bit random, shown once, stored as SHA-256, compared in constant time, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.auth.principal import Principal
from rag.db.models import ApiKey, Group, User, utcnow
from rag.errors import InvalidRequestError, NotFoundError

PREFIX = "rag_"


def new_key() -> tuple[str, str, str]:
    """(plaintext, lookup prefix, hash). The prefix only narrows the lookup; the hash decides."""
    plaintext = PREFIX + secrets.token_urlsafe(32)
    return plaintext, plaintext[:12], hash_key(plaintext)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def find_key(session: Session, plaintext: str) -> ApiKey | None:
    """The live key matching `plaintext`, or None. Every candidate is compared in constant time."""
    if not plaintext.startswith(PREFIX) or len(plaintext) > 200:
        return None
    digest = hash_key(plaintext)
    match = None
    for candidate in session.scalars(select(ApiKey).where(ApiKey.prefix == plaintext[:12])):
        if hmac.compare_digest(candidate.key_hash, digest) and candidate.revoked_at is None:
            match = candidate
    return match


def groups_named(session: Session, names: list[str]) -> list[Group]:
    out = []
    for name in sorted(set(names)):
        group = session.scalars(select(Group).where(Group.name == name)).first()
        if group is None:
            group = Group(name=name)
            session.add(group)
            session.flush()
        out.append(group)
    return out


def add_user(session: Session, name: str, role: str, groups: list[str]) -> User:
    from rag.auth.principal import ROLES

    if role not in ROLES:
        raise InvalidRequestError(f"role must be one of {', '.join(ROLES)}")
    if session.scalars(select(User).where(User.name == name)).first() is not None:
        raise InvalidRequestError(f"user '{name}' exists already")
    user = User(name=name, role=role, disabled=False)
    user.groups = groups_named(session, groups)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFoundError(f"no user '{name}'")
    return user


def create_key(session: Session, user: User, label: str | None = None) -> tuple[ApiKey, str]:
    plaintext, prefix, digest = new_key()
    key = ApiKey(user_id=user.id, prefix=prefix, key_hash=digest, name=label)
    session.add(key)
    session.flush()
    return key, plaintext


def revoke_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def principal_of(session: Session, name: str, via: str = "cli") -> Principal:
    """What user NAME may do and read, for acting on their behalf (`--as USER`, route explain)."""
    user = get_user(session, name)
    if user.disabled:
        raise InvalidRequestError(f"user '{name}' is disabled")
    return Principal(name=user.name, role=user.role, groups=tuple(sorted(g.name for g in user.groups)),
                     via=via, user_id=user.id)
