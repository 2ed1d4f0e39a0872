"""Document-level access: which documents a principal may read, as a SQL condition.

A document is readable by a caller who shares at least one of its groups; a document with no
groups is readable by admins only, never by everyone. The condition is evaluated per request from
the database, so a revoked membership or a changed document takes effect on the next request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, select

from rag.auth.principal import Principal
from rag.db.models import Document, Group, document_groups


def readable_documents(principal: Principal) -> ColumnElement[bool] | None:
    """A WHERE condition on Document for what `principal` may read; None when nothing is hidden
    from them (admins), so searches skip computing an allowed set."""
    if principal.sees_everything:
        return None
    if not principal.may("ask") or not principal.groups:
        return false()
    allowed = (
        select(document_groups.c.document_id)
        .join(Group, Group.id == document_groups.c.group_id)
        .where(Group.name.in_(principal.groups))
    )
    return Document.id.in_(allowed)


@dataclass(frozen=True)
class AccessScope:
    """Hashable description of what a caller may read, so the allowed set can be cached per scope."""

    groups: tuple[str, ...]

    @property
    def condition(self) -> ColumnElement[bool]:
        return readable_documents(Principal(name="scope", role="employee", groups=self.groups))


def access_scope(principal: Principal) -> AccessScope | None:
    """None when nothing is hidden from the caller (admins)."""
    if principal.sees_everything:
        return None
    return AccessScope(tuple(sorted(principal.groups)) if principal.may("ask") else ())
