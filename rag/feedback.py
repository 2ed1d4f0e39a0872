"""Feedback on answers: a user rates an answer they were given, found by its request id.

The audit record of the request is the proof of who was answered what: only that principal may
rate it, and anyone else is told the answer does not exist (nobody learns other users' request
ids). Admins read the answers rated down together with their question, answer and citations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.auth.principal import Principal
from rag.db.models import AuditRecord, Feedback, utcnow
from rag.errors import NotFoundError

Rating = Literal["up", "down"]
RATED_ROUTES = ("/v1/query", "/v1/chat/completions", "/v1/conversations/{conversation_id}/messages")


@dataclass(frozen=True)
class RatedAnswer:
    request_id: str
    principal: str
    rating: str
    comment: str | None
    rated_at: str
    question: str | None
    answer: str | None
    citations: list[dict]
    audit_seq: int


def rate(session: Session, principal: Principal, request_id: str, rating: Rating, comment: str | None) -> Feedback:
    """Stores (or replaces) the caller's rating of one of their own answers."""
    answered = session.scalars(
        select(AuditRecord.seq).where(
            AuditRecord.request_id == request_id,
            AuditRecord.principal == principal.name,
            AuditRecord.route.in_(RATED_ROUTES),
            AuditRecord.status == 200,
        )
    ).first()
    if answered is None:
        raise NotFoundError("no answer of yours with this request id")
    row = session.scalars(
        select(Feedback).where(Feedback.request_id == request_id, Feedback.principal == principal.name)
    ).first()
    if row is None:
        row = Feedback(request_id=request_id, principal=principal.name)
        session.add(row)
    row.rating, row.comment, row.created_at = rating, comment or None, utcnow()
    session.commit()
    return row


def rated(session: Session, rating: Rating = "down", *, limit: int = 50, offset: int = 0) -> list[RatedAnswer]:
    """Newest first, with the question, answer and citations from the answer's audit record."""
    rows = session.execute(
        select(Feedback, AuditRecord)
        .join(AuditRecord, AuditRecord.request_id == Feedback.request_id)
        .where(
            Feedback.rating == rating,
            AuditRecord.principal == Feedback.principal,
            AuditRecord.route.in_(RATED_ROUTES),
        )
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [
        RatedAnswer(
            request_id=f.request_id,
            principal=f.principal,
            rating=f.rating,
            comment=f.comment,
            rated_at=f.created_at.isoformat(),
            question=a.question,
            answer=a.answer,
            citations=list((a.detail or {}).get("citations", [])),
            audit_seq=a.seq,
        )
        for f, a in rows
    ]
