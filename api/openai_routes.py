"""OpenAI-compatible chat completions over the same grounded answering path.

The official `openai` client works unchanged. The last user message is the question, earlier user
and assistant messages are conversation context (system messages from clients are ignored: the
server's own instructions govern). Citations travel in the extra field `rag` of the response, and
of the last chunk when streaming; see README "OpenAI-compatible API".
"""

from __future__ import annotations

import json
import time
from typing import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.metrics import Metrics
from api.query_routes import ERRORS, _chain, _last, answer_json, check_question, error_json
from api.schemas import ChatCompletionOut, ChatRequest
from api.services import QueryServices
from rag.answering import Answer, Delta
from rag.errors import InvalidRequestError, NotFoundError, RagError
from rag.settings import Settings

MODEL_ID = "private-rag"


def _text(content: str | list[dict] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def split_conversation(body: ChatRequest) -> tuple[str, list[dict[str, str]]]:
    turns = [(m.role, _text(m.content)) for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise InvalidRequestError("messages: the last message must be a non-empty user message")
    # the last three exchanges, each message capped: context for follow-ups, not a prompt-size lever
    history = [{"role": role, "content": text[:2000]} for role, text in turns[:-1] if text.strip()]
    return turns[-1][1], history[-6:]


def rag_extra(answer: Answer, request_id: str) -> dict:
    full = answer_json(answer, request_id)
    return {k: full[k] for k in ("citations", "status", "grounded", "fallback", "notice", "backend", "route",
                                 "timings_ms", "dropped_sentences", "request_id")} | {"backend_model": answer.model}


def build_router(settings: Settings, services: QueryServices, metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["openai-compatible"])

    @router.get("/v1/models")
    def models() -> dict:
        """The one model this service exposes: retrieval-augmented answers from the documents."""
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "private-rag"}]}

    @router.post("/v1/chat/completions", responses={**ERRORS, 200: {"model": ChatCompletionOut}})
    async def chat_completions(body: ChatRequest, request: Request):  # noqa: ANN201
        """OpenAI Chat Completions (streaming included); `rag` carries citations and grounding status."""
        if body.model != MODEL_ID:
            raise NotFoundError(f"model '{body.model[:100]}' does not exist; use '{MODEL_ID}' (GET /v1/models)")
        question, history = split_conversation(body)
        question = check_question(question, settings)
        rid = request.state.request_id
        events = services.answerer.stream(question, history=history, top_k=body.top_k or settings.default_top_k,
                                          max_tokens=body.max_completion_tokens or body.max_tokens)
        first = await run_in_threadpool(next, events)
        created = int(time.time())
        cid = f"chatcmpl-{rid}"
        if not body.stream:
            final = first if isinstance(first, Answer) else await run_in_threadpool(_last, events)
            metrics.observe_answer(final)
            usage = final.usage
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": MODEL_ID,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": final.answer},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                          "total_tokens": usage.prompt_tokens + usage.completion_tokens},
                "rag": rag_extra(final, rid),
            }

        def chunk(delta: dict, finish: str | None = None, **extra) -> str:  # noqa: ANN003
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        def stream() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            try:
                for event in _chain(first, events):
                    if isinstance(event, Delta):
                        yield chunk({"content": event.text})
                    else:
                        metrics.observe_answer(event)
                        u = event.usage
                        yield chunk({}, "stop", rag=rag_extra(event, rid), usage={
                            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                            "total_tokens": u.prompt_tokens + u.completion_tokens})
            except RagError as exc:
                yield f"data: {json.dumps(error_json(exc, rid))}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return router
