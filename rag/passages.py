"""One passage (chunk) as a citation preview shows it, only when the caller may read its document."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.access import access_scope
from rag.auth.principal import Principal
from rag.db.models import Chunk, Document
from rag.errors import NotFoundError


@dataclass(frozen=True)
class PassageView:
    chunk_id: int
    document_id: int
    text: str
    section: str | None
    pages: list[int]
    path: str
    title: str | None
    label: str
    document_sha256: str
    document_version: int


def readable_passage(session: Session, chunk_id: int, principal: Principal) -> PassageView:
    """The passage, or NotFoundError for one that does not exist *or* that the caller may not read
    (the same answer, so nobody learns what exists outside their groups)."""
    query = select(Chunk, Document).join(Document, Document.id == Chunk.document_id).where(Chunk.id == chunk_id)
    scope = access_scope(principal)
    if scope is not None:
        query = query.where(scope.condition)
    row = session.execute(query).first()
    if row is None:
        raise NotFoundError(f"no passage {chunk_id} that you may read (it may have been replaced by a newer version)")
    chunk, doc = row
    return PassageView(
        chunk_id=chunk.id,
        document_id=doc.id,
        text=chunk.text,
        section=chunk.section,
        pages=list(chunk.pages or []),
        path=doc.path,
        title=doc.title,
        label=doc.label,
        document_sha256=chunk.document_sha256,
        document_version=chunk.document_version,
    )
