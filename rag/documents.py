"""Documents as users and admins see them: who may read which, and changing that without re-embedding."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.access import access_scope
from rag.auth.principal import Principal
from rag.db.models import Collection, Document, Group, utcnow
from rag.errors import NotFoundError
from rag.types import Label
from rag.users import groups_named


def like_escaped(text: str) -> str:
    """`text` as a LIKE pattern matching itself anywhere (escape character `\\`)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def readable(
    session: Session,
    principal: Principal,
    *,
    collection: str | None = None,
    label: str | None = None,
    group: str | None = None,
    path_contains: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Document]:
    """Documents the caller may read (admins: all), oldest first; the filters narrow, never widen."""
    query = select(Document).join(Collection)
    scope = access_scope(principal)
    if scope is not None:
        query = query.where(scope.condition)
    if collection:
        query = query.where(Collection.name == collection)
    if label:
        query = query.where(Document.label == label)
    if group:
        query = query.where(Document.groups.any(Group.name == group))
    if path_contains:
        query = query.where(Document.path.like(like_escaped(path_contains), escape="\\"))
    return list(session.scalars(query.order_by(Document.id).limit(limit).offset(offset)))


def relabel(
    session: Session, document_id: int, *, groups: list[str] | None = None, label: Label | None = None
) -> Document:
    """Change who may read a document, or its label; effective on the next request (an admin's
    PATCH and the app's form alike). `updated_at`, the key of the searcher's cached allowed sets,
    moves with every change."""
    doc = session.get(Document, document_id)
    if doc is None:
        raise NotFoundError(f"no document {document_id}")
    set_access(session, doc, groups=groups, label=label)
    session.commit()
    return doc


def set_access(
    session: Session, doc: Document, *, groups: list[str] | tuple[str, ...] | None = None, label: str | None = None
) -> None:
    """Groups and/or label of one document, uncommitted (the caller's transaction decides)."""
    if groups is None and label is None:
        return
    if groups is not None:
        doc.groups = groups_named(session, groups)
    if label is not None:
        doc.label = label
    doc.updated_at = utcnow()  # the access change invalidates cached allowed sets
