"""OpenAI-compatible chat completions over the same grounded answering path.

The official `openai` client works unchanged. The last user message is the question, earlier user
and assistant messages are conversation context (system messages from clients are ignored: the
server's own instructions govern). Citations travel in the extra field `rag` of the response, and
of the last chunk when streaming; see README "OpenAI-compatible API".
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import ASK
from api.metrics import Metrics
from api.query_routes import ERRORS, answer_json, collect
from api.responses import CHAT_EVENT, NOT_FOUND
from api.schemas import ChatCompletionOut, ChatRequest, ContentPart
from api.services import QueryServices
from rag.audit import AuditEntry, record_answer
from rag.auth.principal import Principal
from rag.errors import InvalidRequestError, NotFoundError
from rag.service import check_question
from rag.settings import Settings
from rag.types import Answer

MODEL_ID = "private-rag"


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text or "" for part in content if part.type == "text")


def split_conversation(body: ChatRequest) -> tuple[str, list[dict[str, str]]]:
    turns = [(m.role, _text(m.content)) for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise InvalidRequestError("messages: the last message must be a non-empty user message")
    # the last three exchanges, each message capped: context for follow-ups, not a prompt-size lever
    history = [{"role": role, "content": text[:2000]} for role, text in turns[:-1] if text.strip()]
    return turns[-1][1], history[-6:]


def rag_extra(answer: Answer, request_id: str) -> dict:
    full = answer_json(answer, request_id)
    return {
        k: full[k]
        for k in (
            "citations",
            "status",
            "grounded",
            "answerability",
            "fallback",
            "notice",
            "backend",
            "route",
            "timings_ms",
            "dropped_sentences",
            "request_id",
        )
    } | {"backend_model": answer.model}


def build_router(settings: Settings, services: QueryServices, metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["openai-compatible"])

    @router.get("/v1/models")
    def models(principal: Principal = ASK) -> dict:
        """The one model this service exposes: retrieval-augmented answers from the documents."""
        return {
            "object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "private-rag"}],
        }

    @router.post(
        "/v1/chat/completions",
        response_model=None,
        responses={
            **ERRORS,
            **NOT_FOUND,
            200: {"model": ChatCompletionOut, "content": {"text/event-stream": {"schema": CHAT_EVENT}}},
        },
    )
    async def chat_completions(
        body: ChatRequest, request: Request, principal: Principal = ASK
    ) -> dict | StreamingResponse:
        """OpenAI Chat Completions (streaming included); `rag` carries citations and grounding status."""
        if body.model != MODEL_ID:
            raise NotFoundError(f"model '{body.model[:100]}' does not exist; use '{MODEL_ID}' (GET /v1/models)")
        question, history = split_conversation(body)
        question = check_question(question, settings)
        rid = request.state.request_id
        entry: AuditEntry | None = getattr(request.state, "audit", None)
        if entry is not None:
            entry.question = question
        deltas, final = await run_in_threadpool(
            collect,
            services,
            question,
            principal,
            history=history,
            top_k=body.top_k or settings.default_top_k,
            max_tokens=body.max_completion_tokens or body.max_tokens,
        )
        metrics.observe_answer(final)
        if entry is not None:
            record_answer(entry, final)
        created = int(time.time())
        cid = f"chatcmpl-{rid}"
        usage = {
            "prompt_tokens": final.usage.prompt_tokens,
            "completion_tokens": final.usage.completion_tokens,
            "total_tokens": final.usage.prompt_tokens + final.usage.completion_tokens,
        }
        if not body.stream:
            return {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": MODEL_ID,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": final.answer},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": usage,
                "rag": rag_extra(final, rid),
            }

        def chunk(delta: dict, finish: str | None = None, **extra: object) -> str:
            data = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                **extra,
            }
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        def stream() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for text in deltas:
                yield chunk({"content": text})
            yield chunk({}, "stop", rag=rag_extra(final, rid), usage=usage)
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return router
