"""The web app's pages. Each page route declares the same capability as the API route it stands
beside (rag.auth.principal); the request gate has authenticated and audited the request before any
of this runs. Pages read through the same core functions as the API; what the page's JS does
(asking, searching, relabelling) goes through the JSON API itself with the session cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BeforeValidator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.admin_routes import document_out, key_out, user_out
from api.audit_routes import AuditFilters, record_out
from api.auth import require
from api.ingest_routes import job_status
from api.params import Cursor, Offset, QueryName, QueryText, RowId, Status
from api.request_audit import note_target
from api.web import oidc_routes, pages, status
from api.web.guard import SESSION_COOKIE, SIGNIN
from rag import conversations, documents, feedback, jobs, users
from rag.auth import sessions
from rag.auth.principal import Principal
from rag.db.models import AuditRecord
from rag.errors import AuthenticationError, NotFoundError
from rag.ingest_failures import latest_failures
from rag.passages import readable_passage
from rag.settings import Settings
from rag.types import LABELS, Label

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
JOBS_SHOWN = 20
FAILED_SHOWN = 50  # failed files listed per job on the page (the job API lists up to 1000)
_MAX_KEY_CHARS = 300


def signed_in(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise AuthenticationError("sign in first")
    return principal


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


def _optional(kind: object) -> object:
    """A filter a form may send empty (an HTML form submits every field): empty means unset."""
    return Annotated[kind | None, BeforeValidator(_blank_is_none)]


def audit_filters(
    user: _optional(QueryName) = None,
    group: _optional(QueryName) = None,
    since: _optional(QueryName) = None,
    until: _optional(QueryName) = None,
    route: _optional(QueryName) = None,
    status: _optional(Status) = None,
    text: _optional(QueryText) = None,
) -> AuditFilters:
    """The API's audit filters (same types and bounds), from the page's filter form."""
    return AuditFilters(user=user, group=group, since=since, until=until, route=route, status=status, text=text)


@dataclass(frozen=True)
class DocumentFilters:
    collection: str | None = None
    label: str | None = None
    group: str | None = None
    path: str | None = None

    def kept(self) -> dict[str, str]:
        """The filters in use, for the form and the pager's links."""
        return {k: v for k, v in vars(self).items() if v}


def document_filters(
    collection: _optional(QueryName) = None,
    label: _optional(Label) = None,
    group: _optional(QueryName) = None,
    path: _optional(QueryText) = None,
) -> DocumentFilters:
    """The document lists' filters (bounded like the API's parameters); empty fields are unset."""
    return DocumentFilters(collection=collection, label=label, group=group, path=path)


ASK_PAGE = Depends(require("ask"))
AUDIT_PAGE = Depends(require("audit"))
MANAGE_PAGE = Depends(require("manage"))
SIGNED_IN = Depends(signed_in)


def install(app: FastAPI, settings: Settings, factory: sessionmaker[Session]) -> None:
    """Static assets, the pages, and the middleware that adds security headers and error pages
    (installed after the request gate, so it wraps it)."""
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html: document text is inert
    pages.install(app, templates)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    render = renderer(templates)
    app.include_router(build_router(settings, factory, render))
    app.include_router(oidc_routes.build_router(settings, factory, app.state.audit_log.key, render))


def renderer(templates: Jinja2Templates) -> Callable[..., HTMLResponse]:
    def render(request: Request, name: str, status_code: int = 200, **context: object) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {**pages.base_context(request), **context}, status_code=status_code
        )

    return render


def build_router(settings: Settings, factory: sessionmaker[Session], render: Callable[..., HTMLResponse]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    oidc = oidc_routes.configured(settings)

    @router.get("/")
    def home(principal: Principal = SIGNED_IN) -> RedirectResponse:
        first = "/ask" if principal.may("ask") else "/audit" if principal.may("audit") else SIGNIN
        return RedirectResponse(first, status_code=303)

    @router.get(SIGNIN, response_class=HTMLResponse)
    def signin_page(request: Request) -> HTMLResponse:
        return render(request, "signin.html", oidc=oidc)

    @router.post(SIGNIN)
    async def signin(request: Request) -> Response:
        """Exchanges an API key for a session; the key is read from the form body only (never a URL)
        and is neither stored nor echoed."""
        try:
            form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
        except ValueError:  # more fields than the form has
            form = {}
        key = (form.get("api_key") or [""])[0].strip()
        authenticator = request.app.state.authenticator
        try:
            if not key or len(key) > _MAX_KEY_CHARS:
                raise AuthenticationError("enter an API key")
            principal = await run_in_threadpool(authenticator.authenticate, f"Bearer {key}")
            if principal.via not in ("api_key", "bootstrap"):
                raise AuthenticationError("sign in with an API key")
        except AuthenticationError:
            client = request.client.host if request.client else "unknown"
            request.app.state.failure_limiter.failed(client)
            entry = getattr(request.state, "audit", None)
            if entry is not None:
                entry.detail["error"] = "unauthorized"
            return render(request, "signin.html", 401, error="That key was not accepted.", oidc=oidc)
        with factory() as s:
            session_id = await run_in_threadpool(sessions.start, s, principal, settings.session_max_age_s)
        request.state.principal = principal  # the audit record names who signed in
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=max(1, int(settings.session_max_age_s)),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post("/signout")
    def signout(request: Request, principal: Principal = SIGNED_IN) -> RedirectResponse:
        session_id = request.cookies.get(SESSION_COOKIE, "")
        if principal.via == "session":
            with factory() as s:
                sessions.end(s, session_id)
        response = RedirectResponse(SIGNIN, status_code=303)
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
        )
        return response

    def documents_listing(
        request: Request, template: str, principal: Principal, filters: DocumentFilters, offset: int, **extra: object
    ) -> HTMLResponse:
        """One page of the documents the caller may read (the employee's list and the admin's alike)."""
        with factory() as s:
            docs = [
                document_out(d)
                for d in documents.readable(
                    s,
                    principal,
                    collection=filters.collection,
                    label=filters.label,
                    group=filters.group,
                    path_contains=filters.path,
                    limit=PAGE_SIZE + 1,
                    offset=offset,
                )
            ]
        kept = filters.kept()
        return render(
            request,
            template,
            docs=docs[:PAGE_SIZE],
            filters=kept,
            labels=LABELS,
            previous_query=urlencode({**kept, "offset": max(offset - PAGE_SIZE, 0)}) if offset else None,
            next_query=urlencode({**kept, "offset": offset + PAGE_SIZE}) if len(docs) > PAGE_SIZE else None,
            **extra,
        )

    def ask_view(request: Request, principal: Principal, conversation_id: int | None) -> HTMLResponse:
        """The Ask page: the caller's conversations beside the open one (its turns load from the API)."""
        with factory() as s:
            current = conversations.opened(s, principal, conversation_id)[0] if conversation_id else None
            mine = conversations.listed(s, principal, limit=PAGE_SIZE)
        return render(request, "ask.html", conversation=current, conversations=mine)

    @router.get("/ask", response_class=HTMLResponse)
    def ask_page(request: Request, principal: Principal = ASK_PAGE) -> HTMLResponse:
        return ask_view(request, principal, None)

    @router.get("/ask/{conversation_id}", response_class=HTMLResponse)
    def conversation_page(conversation_id: RowId, request: Request, principal: Principal = ASK_PAGE) -> HTMLResponse:
        """One of the caller's conversations; anyone else's is a 404, as on the API."""
        note_target(request, conversation_id=conversation_id)
        return ask_view(request, principal, conversation_id)

    @router.get("/search", response_class=HTMLResponse, dependencies=[ASK_PAGE])
    def search_page(request: Request) -> HTMLResponse:
        return render(request, "search.html", labels=LABELS)

    @router.get("/documents", response_class=HTMLResponse)
    def documents_page(
        request: Request,
        filters: DocumentFilters = Depends(document_filters),
        offset: Offset = 0,
        principal: Principal = ASK_PAGE,
    ) -> HTMLResponse:
        return documents_listing(request, "documents.html", principal, filters, offset)

    @router.get("/passages/{chunk_id}")
    def passage(chunk_id: RowId, request: Request, principal: Principal = ASK_PAGE) -> dict:
        """A cited passage for the citation preview (JSON for the page's JS): 404 alike for one
        that does not exist and one outside the caller's groups."""
        note_target(request, chunk_id=chunk_id)
        with factory() as s:
            view = readable_passage(s, chunk_id, principal)
        note_target(request, document_id=view.document_id)
        return {
            "chunk_id": view.chunk_id,
            "document_id": view.document_id,
            "text": view.text,
            "section": view.section,
            "pages": view.pages,
            "path": view.path,
            "title": view.title,
            "label": view.label,
            "document_sha256": view.document_sha256,
            "document_version": view.document_version,
        }

    @router.get("/audit", response_class=HTMLResponse, dependencies=[AUDIT_PAGE])
    def audit_page(
        request: Request,
        filters: AuditFilters = Depends(audit_filters),
        cursor: Annotated[Cursor | None, BeforeValidator(_blank_is_none)] = None,
    ) -> HTMLResponse:
        with factory() as s:
            query = filters.apply(select(AuditRecord))
            if cursor is not None:
                query = query.where(AuditRecord.seq < cursor)
            rows = s.scalars(query.order_by(AuditRecord.seq.desc()).limit(PAGE_SIZE + 1)).all()
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        kept = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
        return render(
            request,
            "audit.html",
            records=[record_out(r) for r in rows],
            filters=kept,
            next_query=urlencode({**kept, "cursor": rows[-1].seq}) if more and rows else None,
            export_csv="/v1/audit/export?" + urlencode({"format": "csv", **kept}),
            export_jsonl="/v1/audit/export?" + urlencode({"format": "jsonl", **kept}),
        )

    @router.get("/audit/{seq}", response_class=HTMLResponse, dependencies=[AUDIT_PAGE])
    def audit_record_page(seq: RowId, request: Request) -> HTMLResponse:
        with factory() as s:
            row = s.scalars(select(AuditRecord).where(AuditRecord.seq == seq)).first()
        if row is None:
            raise NotFoundError(f"no audit record {seq}")
        record = record_out(row)
        detail = dict(record.detail)
        return render(
            request,
            "audit_record.html",
            record=record,
            retrieved=detail.pop("retrieved", []),
            citations=detail.pop("citations", []),
            detail_json=json.dumps(detail, indent=2, sort_keys=True, ensure_ascii=False),
        )

    @router.get("/admin/documents", response_class=HTMLResponse)
    def admin_documents_page(
        request: Request,
        filters: DocumentFilters = Depends(document_filters),
        offset: Offset = 0,
        principal: Principal = MANAGE_PAGE,
    ) -> HTMLResponse:
        """Every document (with the filters), and the files whose latest ingestion failed, with why."""
        with factory() as s:
            failures = latest_failures(s, collection=filters.collection, path_contains=filters.path, limit=PAGE_SIZE)
        return documents_listing(request, "admin_documents.html", principal, filters, offset, failures=failures)

    @router.get("/admin/ingest", response_class=HTMLResponse, dependencies=[MANAGE_PAGE])
    def admin_ingest_page(request: Request) -> HTMLResponse:
        """Start a job from a configured root; the recent jobs with their counts and failed files
        (the page's JS follows the running ones through GET /v1/ingest/jobs/{id})."""
        with factory() as s:
            recent = [
                (job_status(jobs.describe(s, job, failed_limit=FAILED_SHOWN)), job.groups, job.label)
                for job in jobs.recent(s, limit=JOBS_SHOWN)
            ]
        return render(
            request,
            "admin_ingest.html",
            roots=[str(root.resolve()) for root in settings.ingest_roots],
            recent=recent,
            labels=LABELS,
            failed_shown=FAILED_SHOWN,
        )

    @router.get("/admin/routing", response_class=HTMLResponse, dependencies=[MANAGE_PAGE])
    def admin_routing_page(request: Request) -> HTMLResponse:
        """The escalation dry run for any user (the page's JS calls POST /v1/route/explain)."""
        with factory() as s:
            names = [u.name for u in users.list_users(s) if u.role != "auditor"]
        return render(request, "admin_routing.html", users=names)

    @router.get("/admin/status", response_class=HTMLResponse, dependencies=[MANAGE_PAGE])
    def admin_status_page(request: Request) -> HTMLResponse:
        """Index generation and size, models in use; readiness comes from /readyz in the page's JS."""
        index = status.index_status(request.app.state.services)
        return render(request, "admin_status.html", index=index, models=status.models_in_use(settings))

    @router.get("/admin/users", response_class=HTMLResponse, dependencies=[MANAGE_PAGE])
    def admin_users_page(request: Request) -> HTMLResponse:
        with factory() as s:
            people = [user_out(u) for u in users.list_users(s)]
            keys = [key_out(k) for k in users.list_keys(s)]
        by_user: dict[str, list] = {}
        for key in keys:
            by_user.setdefault(key.user, []).append(key)
        return render(request, "admin_users.html", people=people, keys=by_user, roles=("employee", "admin"))

    @router.get("/admin/feedback", response_class=HTMLResponse, dependencies=[MANAGE_PAGE])
    def admin_feedback_page(request: Request, offset: Offset = 0) -> HTMLResponse:
        with factory() as s:
            answers = feedback.rated(s, "down", limit=PAGE_SIZE + 1, offset=offset)
        return render(
            request,
            "admin_feedback.html",
            answers=answers[:PAGE_SIZE],
            offset=offset,
            next_offset=offset + PAGE_SIZE if len(answers) > PAGE_SIZE else None,
        )

    return router
