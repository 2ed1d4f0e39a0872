"""Conversations kept server-side per user: list, open, continue, rename, delete.

A conversation belongs to the principal who started it, by name (as audit records and feedback
name them). Every lookup is by id *and* owner, so anyone else's conversation is "not found", never
"forbidden": nobody learns which ids exist. A turn keeps the answer's request id and is shown only
once the audit record of that request exists (status 200): when the audit write failed and the API
withheld the answer, the stored turn is never replayed either. Counts are bounded per user and per
conversation, so no caller can grow the database without limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from rag.auth.principal import Principal
from rag.db.models import AuditRecord, Conversation, ConversationTurn, utcnow
from rag.errors import InvalidRequestError, NotFoundError

MAX_CONVERSATIONS = 500  # per user
MAX_TURNS = 100  # per conversation
MAX_TITLE_CHARS = 200
HISTORY_TURNS = 3  # exchanges sent as context, like the chat API's last three
HISTORY_CHARS = 2000  # per message, as the chat API caps them
_UNTITLED = "New conversation"


@dataclass(frozen=True)
class Turn:
    request_id: str
    question: str
    answer: str
    result: dict
    created_at: str


@dataclass(frozen=True)
class Summary:
    id: int
    title: str
    created_at: str
    updated_at: str
    turns: int


def _summary(row: Conversation, turns: int) -> Summary:
    return Summary(row.id, row.title, row.created_at.isoformat(), row.updated_at.isoformat(), turns)


def _title_of(question: str) -> str:
    """A first question as the conversation's title: one line, printable, bounded."""
    line = " ".join("".join(c if c.isprintable() else " " for c in question).split())
    return (line[: MAX_TITLE_CHARS - 1] + "…") if len(line) > MAX_TITLE_CHARS else (line or _UNTITLED)


def _owned(session: Session, principal: Principal, conversation_id: int) -> Conversation:
    row = session.scalars(
        select(Conversation).where(Conversation.id == conversation_id, Conversation.owner == principal.name)
    ).first()
    if row is None:
        raise NotFoundError(f"no conversation {conversation_id}")
    return row


def _shown():
    """Turns whose answer was audited (and so was sent)."""
    return exists().where(AuditRecord.request_id == ConversationTurn.request_id, AuditRecord.status == 200)


def _counts(session: Session, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.execute(
        select(ConversationTurn.conversation_id, func.count())
        .where(ConversationTurn.conversation_id.in_(ids), _shown())
        .group_by(ConversationTurn.conversation_id)
    )
    return {cid: n for cid, n in rows}


def start(session: Session, principal: Principal, title: str | None = None) -> Summary:
    """A new, empty conversation; untitled ones take their first question as title."""
    owned = session.scalar(select(func.count()).select_from(Conversation).where(Conversation.owner == principal.name))
    if (owned or 0) >= MAX_CONVERSATIONS:
        raise InvalidRequestError(f"you have {MAX_CONVERSATIONS} conversations, the limit: delete some first")
    now = utcnow()
    row = Conversation(owner=principal.name, title=title or _UNTITLED, created_at=now, updated_at=now)
    session.add(row)
    session.commit()
    return _summary(row, 0)


def listed(session: Session, principal: Principal, *, limit: int = 50, offset: int = 0) -> list[Summary]:
    """The caller's conversations, most recently continued first."""
    rows = list(
        session.scalars(
            select(Conversation)
            .where(Conversation.owner == principal.name)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    counts = _counts(session, [r.id for r in rows])
    return [_summary(r, counts.get(r.id, 0)) for r in rows]


def opened(session: Session, principal: Principal, conversation_id: int) -> tuple[Summary, list[Turn]]:
    """One of the caller's conversations with its turns, oldest first."""
    row = _owned(session, principal, conversation_id)
    turns = [
        Turn(t.request_id, t.question, t.answer, t.result or {}, t.created_at.isoformat())
        for t in session.scalars(
            select(ConversationTurn)
            .where(ConversationTurn.conversation_id == row.id, _shown())
            .order_by(ConversationTurn.id)
        )
    ]
    return _summary(row, len(turns)), turns


def history(session: Session, principal: Principal, conversation_id: int) -> list[dict[str, str]]:
    """The last exchanges as chat messages, for the next question's prompt (as the chat API sends them).
    Refuses a conversation that is full."""
    row = _owned(session, principal, conversation_id)
    total = session.scalar(
        select(func.count()).select_from(ConversationTurn).where(ConversationTurn.conversation_id == row.id)
    )
    if (total or 0) >= MAX_TURNS:
        raise InvalidRequestError(f"this conversation has {MAX_TURNS} questions, the limit: start a new one")
    recent = list(
        session.scalars(
            select(ConversationTurn)
            .where(ConversationTurn.conversation_id == row.id, _shown())
            .order_by(ConversationTurn.id.desc())
            .limit(HISTORY_TURNS)
        )
    )
    messages: list[dict[str, str]] = []
    for turn in reversed(recent):
        messages.append({"role": "user", "content": turn.question[:HISTORY_CHARS]})
        if turn.answer.strip():
            messages.append({"role": "assistant", "content": turn.answer[:HISTORY_CHARS]})
    return messages


def record_turn(
    session: Session, principal: Principal, conversation_id: int, request_id: str, question: str, result: dict
) -> None:
    """Keeps a question and its answer (the query's JSON) in the conversation."""
    row = _owned(session, principal, conversation_id)
    now = utcnow()
    session.add(
        ConversationTurn(
            conversation_id=row.id,
            request_id=request_id,
            question=question,
            answer=str(result.get("answer", "")),
            result=result,
            created_at=now,
        )
    )
    if row.title == _UNTITLED:
        row.title = _title_of(question)
    row.updated_at = now
    session.commit()


def rename(session: Session, principal: Principal, conversation_id: int, title: str) -> Summary:
    row = _owned(session, principal, conversation_id)
    row.title = title
    row.updated_at = utcnow()
    session.commit()
    return _summary(row, _counts(session, [row.id]).get(row.id, 0))


def remove(session: Session, principal: Principal, conversation_id: int) -> None:
    """Deletes the conversation and its turns (the audit log keeps its own record of the questions)."""
    row = _owned(session, principal, conversation_id)
    session.execute(delete(ConversationTurn).where(ConversationTurn.conversation_id == row.id))
    session.delete(row)
    session.commit()
