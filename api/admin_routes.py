"""Admin routes: users and their API keys, documents' access (groups, label) without re-embedding."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from api.auth import ASK, MANAGE
from api.params import Offset, QueryName, RowId, UserName
from api.request_audit import note_target
from api.responses import JSON_BODY, NOT_FOUND
from api.schemas import DocumentOut, DocumentPatch, KeyIn, KeyOut, UserIn, UserOut, UserPatch
from rag import documents, users
from rag.auth.principal import Principal
from rag.db.models import ApiKey, Document, User


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id, name=user.name, role=user.role, groups=sorted(g.name for g in user.groups), disabled=user.disabled
    )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_out(key: ApiKey, plaintext: str | None = None) -> KeyOut:
    return KeyOut(
        id=key.id,
        user=key.user.name,
        name=key.name,
        prefix=key.prefix,
        created_at=_iso(key.created_at),
        last_used_at=_iso(key.last_used_at),
        revoked_at=_iso(key.revoked_at),
        issued_by=key.issued_by,
        key=plaintext,
    )


def document_out(doc: Document) -> DocumentOut:
    return DocumentOut(
        id=doc.id,
        path=doc.path,
        title=doc.title,
        collection=doc.collection.name,
        label=doc.label,
        groups=sorted(g.name for g in doc.groups),
        version=doc.version,
        sha256=doc.sha256,
        chunk_count=doc.chunk_count,
    )


def build_router(factory: sessionmaker[Session]) -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.post("/v1/users", status_code=201, response_model=UserOut, responses=JSON_BODY)
    def create_user(body: UserIn, request: Request, actor: Principal = MANAGE) -> UserOut:
        """Create an employee or admin with groups; then give them a key. Auditors are created only
        by the operator on the host (`rag users add NAME --role auditor`): 403 here."""
        note_target(request, user=body.name, role=body.role, groups=sorted(body.groups))
        with factory() as s:
            user, _ = users.create_user(s, body.name, body.role, body.groups, actor=actor)
            return user_out(user)

    @router.get("/v1/users", response_model=list[UserOut], dependencies=[MANAGE])
    def list_users() -> list[UserOut]:
        with factory() as s:
            return [user_out(u) for u in users.list_users(s)]

    @router.patch("/v1/users/{name}", response_model=UserOut, responses=JSON_BODY | NOT_FOUND)
    def update_user(name: UserName, body: UserPatch, request: Request, actor: Principal = MANAGE) -> UserOut:
        """Change groups or role, or disable a user: effective on their next request (not auditors,
        nor your own role: 403)."""
        note_target(request, user=name, groups=body.groups, disabled=body.disabled, role=body.role)
        with factory() as s:
            return user_out(
                users.update_user(s, name, actor=actor, groups=body.groups, disabled=body.disabled, role=body.role)
            )

    @router.post("/v1/users/{name}/keys", status_code=201, response_model=KeyOut, responses=JSON_BODY | NOT_FOUND)
    def create_key(name: UserName, request: Request, body: KeyIn | None = None, actor: Principal = MANAGE) -> KeyOut:
        """A new API key for the user, naming the calling admin as its issuer (not for auditors: 403).
        The key is in this response only; store it now."""
        with factory() as s:
            key, plaintext = users.issue_key(s, name, body.name if body else None, actor=actor)
            note_target(request, user=name, key_id=key.id)
            return key_out(key, plaintext)

    @router.get("/v1/keys", response_model=list[KeyOut], dependencies=[MANAGE])
    def list_keys() -> list[KeyOut]:
        with factory() as s:
            return [key_out(k) for k in users.list_keys(s)]

    @router.delete("/v1/keys/{key_id}", response_model=KeyOut, responses=NOT_FOUND)
    def revoke_key(key_id: RowId, request: Request, actor: Principal = MANAGE) -> KeyOut:
        """Revoke a key: refused from the next request on (not an auditor's: 403)."""
        note_target(request, key_id=key_id)
        with factory() as s:
            return key_out(users.revoke_key(s, key_id, actor=actor))

    @router.get("/v1/documents", response_model=list[DocumentOut], tags=["query"])
    def list_documents(
        principal: Principal = ASK,
        collection: QueryName | None = None,
        limit: int = Query(default=100, ge=1, le=1000),
        offset: Offset = 0,
    ) -> list[DocumentOut]:
        """Documents the caller may read (admins: all), with their groups and labels."""
        with factory() as s:
            return [
                document_out(d)
                for d in documents.readable(s, principal, collection=collection, limit=limit, offset=offset)
            ]

    @router.patch(
        "/v1/documents/{document_id}",
        response_model=DocumentOut,
        dependencies=[MANAGE],
        responses=JSON_BODY | NOT_FOUND,
    )
    def update_document(document_id: RowId, body: DocumentPatch, request: Request) -> DocumentOut:
        """Change who may read a document, or its label, without re-embedding; effective at once."""
        note_target(request, document_id=document_id, groups=body.groups, label=body.label)
        with factory() as s:
            return document_out(documents.relabel(s, document_id, groups=body.groups, label=body.label))

    return router
