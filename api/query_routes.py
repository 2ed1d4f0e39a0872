"""Employee routes: search and grounded question answering (JSON or server-sent events)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import ASK
from api.metrics import Metrics
from api.responses import JSON_BODY, QUERY_EVENT, errors
from api.schemas import (
    Answerability,
    CitationOut,
    QueryRequest,
    QueryResponse,
    RouteOut,
    SearchFiltersIn,
    SearchRequest,
    SearchResponse,
    SearchResultItem,
)
from api.services import QueryServices
from rag.access import access_scope
from rag.audit import AuditEntry, record_answer, record_passages
from rag.auth.principal import Principal
from rag.service import check_question
from rag.settings import Settings
from rag.types import Answer, Delta, SearchFilters

ERRORS = JSON_BODY | errors(503, 504)  # besides the gate's (api/responses.py)


def to_filters(filters: SearchFiltersIn | None) -> SearchFilters:
    if filters is None:
        return SearchFilters()
    labels = filters.label if isinstance(filters.label, list) else ([filters.label] if filters.label else None)
    return SearchFilters(
        collection=filters.collection, path_prefix=filters.path_prefix, labels=tuple(labels) if labels else None
    )


def answer_json(answer: Answer, request_id: str) -> dict:
    return QueryResponse(
        answer=answer.answer,
        model=answer.model,
        request_id=request_id,
        backend=answer.backend,
        status=answer.status,
        grounded=answer.grounded,
        answerability=(
            Answerability(score=answer.answerability, threshold=answer.answerability_threshold)
            if answer.answerability is not None and answer.answerability_threshold is not None
            else None
        ),
        fallback=answer.fallback,
        notice=answer.notice,
        citations=[
            CitationOut(
                n=c.n,
                document_id=c.document_id,
                path=c.path,
                page=c.page,
                chunk_id=c.chunk_id,
                quote=c.quote,
                document_sha256=c.document_sha256,
                title=c.title,
            )
            for c in answer.citations
        ],
        usage={"prompt_tokens": answer.usage.prompt_tokens, "completion_tokens": answer.usage.completion_tokens},
        timings_ms=answer.timings_ms,
        dropped_sentences=answer.dropped_sentences,
        route=RouteOut(**answer.route.public()),
    ).model_dump()


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def collect(services: QueryServices, question: str, principal: Principal, **kwargs: object) -> tuple[list[str], Answer]:
    """The whole answer, checked, before anything is sent: a response leaves only after its audit
    record is written (the audit middleware withholds it otherwise), streaming included."""
    deltas, final = [], None
    for event in services.answerer.stream(question, access=access_scope(principal), principal=principal, **kwargs):
        if isinstance(event, Delta):
            deltas.append(event.text)
        else:
            final = event
    return deltas, final


def build_router(settings: Settings, services: QueryServices, metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["query"])

    @router.post("/v1/search", response_model=SearchResponse, responses=ERRORS)
    def search(body: SearchRequest, request: Request, principal: Principal = ASK) -> SearchResponse:
        """Hybrid (dense + BM25) search over the documents the caller may read; filters and access
        are applied inside both searches, before ranking."""
        query = check_question(body.query, settings)
        result = services.answerer.searcher.search(
            query, body.top_k, to_filters(body.filters), access=access_scope(principal)
        )
        metrics.retrieval.observe((result.embed_ms + result.search_ms) / 1000)
        entry: AuditEntry | None = getattr(request.state, "audit", None)
        if entry is not None:
            record_passages(entry, result.passages)
        return SearchResponse(
            request_id=request.state.request_id,
            generation=result.generation,
            results=[
                SearchResultItem(
                    chunk_id=p.chunk_id,
                    document_id=p.document_id,
                    path=p.path,
                    title=p.title,
                    page=p.page,
                    text=p.text,
                    score=round(p.score, 6),
                    section=p.section,
                    collection=p.collection,
                    label=p.label,
                    document_sha256=p.document_sha256,
                )
                for p in result.passages
            ],
        )

    @router.post(
        "/v1/query",
        response_model=QueryResponse,
        responses={
            **ERRORS,
            200: {
                "description": "The answer; with stream (or `Accept: text/event-stream`): `event: delta` "
                "(data {text}) per grounded sentence, then `event: final` (data: the QueryResponse)",
                "content": {"text/event-stream": {"schema": QUERY_EVENT}},
            },
        },
    )
    async def query(body: QueryRequest, request: Request, principal: Principal = ASK) -> dict | StreamingResponse:
        """Answer a question from the documents the caller may read, with [n] citations checked
        against the passages."""
        question = check_question(body.question, settings)
        deltas, final = await run_in_threadpool(
            collect,
            services,
            question,
            principal,
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
