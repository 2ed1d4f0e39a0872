"""Groups and sensitivity label given for a job, applied to the documents it touches."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rag.db.models import Document, Group


class DocMeta:
    """Groups and label an admin asked for; None means keep what each document already has."""

    def __init__(self, groups: list[str] | None, label: str | None) -> None:
        self.groups = sorted(set(groups)) if groups is not None else None
        self.label = label

    @property
    def changes_anything(self) -> bool:
        return self.groups is not None or self.label is not None

    def group_objects(self, session: Session) -> list[Group] | None:
        if self.groups is None:
            return None
        found = {g.name: g for g in session.scalars(select(Group).where(Group.name.in_(self.groups)))}
        for name in self.groups:
            if name not in found:
                try:
                    with session.begin_nested():
                        group = Group(name=name)
                        session.add(group)
                        session.flush()
                        found[name] = group
                except IntegrityError:
                    found[name] = session.scalars(select(Group).where(Group.name == name)).one()
        return [found[n] for n in self.groups]

    def apply(self, doc: Document, group_objs: list[Group] | None) -> None:
        if self.label is not None:
            doc.label = self.label
        if group_objs is not None:
            doc.groups = group_objs

    def apply_to_paths(self, session: Session, collection_id: int, paths: list[str]) -> None:
        if not paths:
            return
        group_objs = self.group_objects(session)
        for doc in session.scalars(select(Document).where(Document.collection_id == collection_id, Document.path.in_(paths))):
            self.apply(doc, group_objs)
