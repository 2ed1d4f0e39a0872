"""Auditor routes: browse, export and verify the audit log. Only the auditor role may use them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, String, cast, or_, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth import require
from api.params import Cursor, QueryName, QueryText, Seq, Status
from api.responses import NOT_FOUND
from api.schemas import AuditPage, AuditRecordOut
from rag.audit import read_checkpoint
from rag.db.models import AuditRecord
from rag.errors import ConfigError, NotFoundError
from rag.protocols import AuditLog

EXPORT_FIELDS = list(AuditRecordOut.model_fields)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")  # what spreadsheets read as the start of a formula


def inert_cell(value: object) -> object:
    """A CSV cell no spreadsheet evaluates: text that could start a formula gets a leading `'`
    (OWASP's advice for CSV injection). Questions and request ids are the caller's text."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def record_out(r: AuditRecord) -> AuditRecordOut:
    return AuditRecordOut(
        seq=r.seq,
        kind=r.kind,
        ts=r.ts,
        request_id=r.request_id,
        principal=r.principal,
        role=r.role,
        groups=r.groups or [],
        route=r.route,
        status=r.status,
        question=r.question,
        answer=r.answer,
        detail=r.detail or {},
        latency_ms=r.latency_ms,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


class AuditFilters:
    def __init__(
        self,
        user: Annotated[QueryName | None, Query(description="principal name")] = None,
        group: QueryName | None = None,
        since: Annotated[QueryName | None, Query(description="ISO time")] = None,
        until: Annotated[QueryName | None, Query(description="ISO time (exclusive)")] = None,
        route: QueryName | None = None,
        status: Status | None = None,
        text: Annotated[QueryText | None, Query(description="substring of question or answer")] = None,
    ) -> None:
        self.user, self.group, self.since, self.until = user, group, since, until
        self.route, self.status, self.text = route, status, text

    def apply(self, query: Select) -> Select:
        if self.user:
            query = query.where(AuditRecord.principal == self.user)
        if self.group:
            query = query.where(cast(AuditRecord.groups, String).like(f"%{json.dumps(self.group)}%"))
        if self.since:
            query = query.where(AuditRecord.ts >= self.since)
        if self.until:
            query = query.where(AuditRecord.ts < self.until)
        if self.route:
            query = query.where(AuditRecord.route == self.route)
        if self.status is not None:
            query = query.where(AuditRecord.status == self.status)
        if self.text:
            like = f"%{self.text.lower()}%"
            query = query.where(or_(AuditRecord.question.ilike(like), AuditRecord.answer.ilike(like)))
        return query


def build_router(factory: sessionmaker[Session], audit_log: AuditLog, checkpoint_file: Path | None = None) -> APIRouter:
    router = APIRouter(tags=["audit"], dependencies=[Depends(require("audit"))])

    @router.get("/v1/audit/records", response_model=AuditPage)
    def list_records(
        filters: AuditFilters = Depends(),
        cursor: Cursor | None = None,
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> AuditPage:
        """Newest first; `cursor` continues after the last page."""
        with factory() as s:
            query = filters.apply(select(AuditRecord))
            if cursor is not None:
                query = query.where(AuditRecord.seq < cursor)
            rows = s.scalars(query.order_by(AuditRecord.seq.desc()).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return AuditPage(records=[record_out(r) for r in rows], next_cursor=rows[-1].seq if more and rows else None)

    @router.get("/v1/audit/records/{seq}", response_model=AuditRecordOut, responses=NOT_FOUND)
    def get_record(seq: Seq) -> AuditRecordOut:
        with factory() as s:
            record = s.scalars(select(AuditRecord).where(AuditRecord.seq == seq)).first()
        if record is None:
            raise NotFoundError(f"no audit record {seq}")
        return record_out(record)

    @router.get(
        "/v1/audit/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "One record per line (format=jsonl) or a CSV file with a header row (format=csv)",
                "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
    )
    def export(
        fmt: Literal["jsonl", "csv"] = Query(default="jsonl", alias="format"), filters: AuditFilters = Depends()
    ) -> StreamingResponse:
        """All matching records, oldest first, streamed (JSON lines or CSV)."""

        def rows() -> Iterator[str]:
            with factory() as s:
                records = s.scalars(filters.apply(select(AuditRecord)).order_by(AuditRecord.seq)).yield_per(500)
                if fmt == "csv":
                    buffer = io.StringIO()
                    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
                    writer.writeheader()
                    for r in records:
                        item = record_out(r).model_dump()
                        item["groups"] = json.dumps(item["groups"])
                        item["detail"] = json.dumps(item["detail"], sort_keys=True)
                        writer.writerow({k: inert_cell(v) for k, v in item.items()})
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
                    yield buffer.getvalue()
                else:
                    for r in records:
                        yield json.dumps(record_out(r).model_dump(), ensure_ascii=False) + "\n"

        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse(
            rows(), media_type=media, headers={"Content-Disposition": f'attachment; filename="audit.{fmt}"'}
        )

    @router.get("/v1/audit/verify")
    def verify() -> dict:
        """Re-checks the whole chain; names the first record that fails and why. With the operator's
        checkpoint file configured (RAG_AUDIT_CHECKPOINT_FILE) it also checks the log against it, which
        exposes a truncated log; a configured file that cannot be read fails the verification."""
        if checkpoint_file is None:
            return audit_log.verify().as_json()
        try:
            checkpoint = read_checkpoint(checkpoint_file)
        except ConfigError as exc:
            result = audit_log.verify()
            return {**result.as_json(), "ok": False, "first_bad": {"seq": None, "reason": str(exc)}}
        return audit_log.verify(checkpoint).as_json()

    return router
