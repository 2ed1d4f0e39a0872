"""API keys: 256-bit random, shown once, stored as SHA-256, compared in constant time, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.db.models import ApiKey, User

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


def create_key(session: Session, user: User, label: str | None, issued_by: str) -> tuple[ApiKey, str]:
    """A new key row for `user` (flushed, not committed) and its plaintext, which is never stored."""
    plaintext, prefix, digest = new_key()
    key = ApiKey(user_id=user.id, prefix=prefix, key_hash=digest, name=label, issued_by=issued_by)
    session.add(key)
    session.flush()
    return key, plaintext
