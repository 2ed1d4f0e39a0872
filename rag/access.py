"""Document-level access: which documents a principal may read.

A document is readable by a caller who shares at least one of its groups; a document with no
groups is readable by admins only, never by everyone. The condition is evaluated per request from
the database, so a revoked membership or a changed document takes effect on the next request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, false, select

from rag.auth.principal import Principal
from rag.db.models import Document, Group, document_groups


@dataclass(frozen=True)
class AccessScope:
    """What a restricted caller may read. Hashable, so allowed sets can be cached per scope."""

    groups: tuple[str, ...]

    @property
    def condition(self) -> ColumnElement[bool]:
        """A WHERE condition on Document: a correlated EXISTS, so a check of the few documents of a
        search's hits reads their memberships by primary key. (`Document.id IN (every readable id)`
        made SQLite list every readable document first: 15 ms per search at 51k documents, against
        0.02 ms.)"""
        if not self.groups:
            return false()
        return exists(
            select(document_groups.c.document_id)
            .join(Group, Group.id == document_groups.c.group_id)
            .where(document_groups.c.document_id == Document.id, Group.name.in_(self.groups))
        )


def access_scope(principal: Principal) -> AccessScope | None:
    """None when nothing is hidden from the caller (admins), so searches skip the allowed set."""
    if principal.sees_everything:
        return None
    return AccessScope(tuple(sorted(principal.groups)) if principal.may("ask") else ())
