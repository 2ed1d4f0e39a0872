"""API keys: 256-bit random, shown once, stored as SHA-256, compared in constant time, revocable."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from rag.db.models import ApiKey, Group, User, user_groups

PREFIX = "rag_"


def new_key() -> tuple[str, str, str]:
    """(plaintext, lookup prefix, hash). The prefix only narrows the lookup; the hash decides."""
    plaintext = PREFIX + secrets.token_urlsafe(32)
    return plaintext, plaintext[:12], hash_key(plaintext)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class KeyHolder:
    """A live key and its user, as authentication needs them (groups read afresh, sorted)."""

    key_id: int
    user_id: int
    name: str
    role: str
    disabled: bool
    last_used_at: dt.datetime | None
    groups: tuple[str, ...]


_CANDIDATES = select(
    ApiKey.id,
    ApiKey.key_hash,
    ApiKey.revoked_at,
    ApiKey.last_used_at,
    User.id.label("user_id"),
    User.name,
    User.role,
    User.disabled,
).join(User, User.id == ApiKey.user_id)


_GROUPS = (
    select(Group.name)
    .join(user_groups, user_groups.c.group_id == Group.id)
    .where(user_groups.c.user_id == bindparam("user_id"))
)


def find_key(conn: Connection, plaintext: str) -> KeyHolder | None:
    """The live key matching `plaintext`, or None. Every candidate is compared in constant time.
    Two Core statements, no ORM objects: this runs on every request."""
    if not plaintext.startswith(PREFIX) or len(plaintext) > 200:
        return None
    digest = hash_key(plaintext)
    match = None
    for candidate in conn.execute(_CANDIDATES.where(ApiKey.prefix == plaintext[:12])):
        if hmac.compare_digest(candidate.key_hash, digest) and candidate.revoked_at is None:
            match = candidate
    if match is None:
        return None
    groups = conn.execute(_GROUPS, {"user_id": match.user_id}).scalars()
    return KeyHolder(
        key_id=match.id,
        user_id=match.user_id,
        name=match.name,
        role=match.role,
        disabled=match.disabled,
        last_used_at=match.last_used_at,
        groups=tuple(sorted(groups)),
    )


def create_key(session: Session, user: User, label: str | None, issued_by: str) -> tuple[ApiKey, str]:
    """A new key row for `user` (flushed, not committed) and its plaintext, which is never stored."""
    plaintext, prefix, digest = new_key()
    key = ApiKey(user_id=user.id, prefix=prefix, key_hash=digest, name=label, issued_by=issued_by)
    session.add(key)
    session.flush()
    return key, plaintext
