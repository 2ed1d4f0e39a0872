"""Conversations kept server-side per user: list, open, continue (ask in one), rename, delete.

Only the owner ever sees a conversation: every other caller, admins included, gets 404 for its id.
Asking in a conversation is the query route's answer path with the conversation's last exchanges
as history (as the chat API sends them), audited like /v1/query; the turn is stored under the
answer's request id, which also lets the user rate it (POST /v1/feedback).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.auth import ASK
from api.metrics import Metrics
from api.params import Offset, RowId
from api.query_routes import ERRORS, answer_json, collect, sse, to_filters
from api.request_audit import note_target
from api.responses import JSON_BODY, NOT_FOUND, QUERY_EVENT
from api.schemas import Name, QueryRequest, QueryResponse, RequestBody
from api.services import QueryServices
from rag import conversations
from rag.audit import AuditEntry, record_answer
from rag.auth.principal import Principal
from rag.service import check_question
from rag.settings import Settings

ConversationId = RowId


class ConversationIn(RequestBody):
    title: Name | None = Field(default=None, description="Default: the first question, once asked")


class ConversationPatch(RequestBody):
    title: Name


class ConversationOut(BaseModel):
    id: int
    title: str
    created_at: str
    updated_at: str
    turns: int = Field(description="Questions answered in it")


class TurnOut(BaseModel):
    request_id: str = Field(description="The answer's request id (its audit record; rate it with POST /v1/feedback)")
    question: str
    answer: str
    created_at: str
    result: dict = Field(description="The answer as POST /v1/query returned it: citations, status, route")


class ConversationDetail(ConversationOut):
    messages: list[TurnOut]


def _out(summary: conversations.Summary) -> ConversationOut:
    return ConversationOut(**vars(summary))


def build_router(
    settings: Settings, services: QueryServices, metrics: Metrics, factory: sessionmaker[Session]
) -> APIRouter:
    router = APIRouter(tags=["query"])

    @router.get("/v1/conversations", response_model=list[ConversationOut])
    def list_conversations(
        principal: Principal = ASK,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Offset = 0,
    ) -> list[ConversationOut]:
        """Your conversations, most recently continued first (nobody else's, whatever the role)."""
        with factory() as s:
            return [_out(c) for c in conversations.listed(s, principal, limit=limit, offset=offset)]

    @router.post("/v1/conversations", status_code=201, response_model=ConversationOut, responses=JSON_BODY)
    def create_conversation(
        request: Request, body: ConversationIn | None = None, principal: Principal = ASK
    ) -> ConversationOut:
        """Start an empty conversation (at most 500 per user: 422 beyond)."""
        with factory() as s:
            summary = conversations.start(s, principal, body.title if body else None)
        note_target(request, conversation_id=summary.id)
        return _out(summary)

    @router.get("/v1/conversations/{conversation_id}", response_model=ConversationDetail, responses=NOT_FOUND)
    def get_conversation(
        conversation_id: ConversationId, request: Request, principal: Principal = ASK
    ) -> ConversationDetail:
        """One of your conversations with its questions and answers, oldest first; 404 for anyone else's."""
        note_target(request, conversation_id=conversation_id)
        with factory() as s:
            summary, turns = conversations.opened(s, principal, conversation_id)
        return ConversationDetail(**vars(summary), messages=[TurnOut(**vars(t)) for t in turns])

    @router.patch(
        "/v1/conversations/{conversation_id}", response_model=ConversationOut, responses=JSON_BODY | NOT_FOUND
    )
    def rename_conversation(
        conversation_id: ConversationId, body: ConversationPatch, request: Request, principal: Principal = ASK
    ) -> ConversationOut:
        note_target(request, conversation_id=conversation_id, title=body.title)
        with factory() as s:
            return _out(conversations.rename(s, principal, conversation_id, body.title))

    @router.delete("/v1/conversations/{conversation_id}", status_code=204, response_class=Response, responses=NOT_FOUND)
    def delete_conversation(conversation_id: ConversationId, request: Request, principal: Principal = ASK) -> Response:
        """Deletes it with its answers (the audit log keeps its own records of the questions)."""
        note_target(request, conversation_id=conversation_id)
        with factory() as s:
            conversations.remove(s, principal, conversation_id)
        return Response(status_code=204)

    @router.post(
        "/v1/conversations/{conversation_id}/messages",
        response_model=QueryResponse,
        responses={
            **ERRORS,
            **NOT_FOUND,
            200: {
                "description": "The answer, as POST /v1/query returns it (JSON, or with stream: `event: delta` "
                "per grounded sentence, then `event: final`)",
                "content": {"text/event-stream": {"schema": QUERY_EVENT}},
            },
        },
    )
    async def ask_in_conversation(
        conversation_id: ConversationId, body: QueryRequest, request: Request, principal: Principal = ASK
    ) -> dict | StreamingResponse:
        """Ask a question in one of your conversations: its last three exchanges go with it as context.
        At most 100 questions per conversation (422 beyond); 404 for anyone else's."""
        note_target(request, conversation_id=conversation_id)
        question = check_question(body.question, settings)
        with factory() as s:
            history = conversations.history(s, principal, conversation_id)
        deltas, final = await run_in_threadpool(
            collect,
            services,
            question,
            principal,
            history=history,
            top_k=body.top_k or settings.default_top_k,
            filters=to_filters(body.filters),
            max_tokens=body.max_tokens,
        )
        rid = request.state.request_id
        metrics.observe_answer(final)
        entry: AuditEntry | None = getattr(request.state, "audit", None)
        if entry is not None:
            record_answer(entry, final)
        payload = answer_json(final, rid)
        with factory() as s:
            conversations.record_turn(s, principal, conversation_id, rid, question, payload)
        if not (body.stream or "text/event-stream" in request.headers.get("accept", "")):
            return payload

        def stream() -> Iterator[str]:
            for text in deltas:
                yield sse("delta", {"text": text})
            yield sse("final", payload)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    return router
