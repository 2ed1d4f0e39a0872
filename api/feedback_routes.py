"""Feedback on answers: employees rate their own answers; admins read the ones rated down."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session, sessionmaker

from api.auth import ASK, MANAGE
from api.params import Offset
from api.request_audit import note_target
from api.responses import JSON_BODY, NOT_FOUND
from api.schemas import RequestBody, Text
from rag import feedback
from rag.auth.principal import Principal

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


class FeedbackIn(RequestBody):
    request_id: RequestId = Field(description="The request_id of the answer, as the query returned it")
    rating: Literal["up", "down"]
    comment: Annotated[Text, StringConstraints(max_length=2000)] | None = None


class FeedbackOut(BaseModel):
    request_id: str
    rating: str
    comment: str | None


class RatedAnswerOut(FeedbackOut):
    principal: str
    rated_at: str
    question: str | None
    answer: str | None
    citations: list[dict]
    audit_seq: int


def build_router(factory: sessionmaker[Session]) -> APIRouter:
    router = APIRouter(tags=["feedback"])

    @router.post("/v1/feedback", status_code=201, response_model=FeedbackOut, responses=JSON_BODY | NOT_FOUND)
    def rate(body: FeedbackIn, request: Request, principal: Principal = ASK) -> FeedbackOut:
        """Rate one of your own answers (again to change it); 404 for any other request id."""
        note_target(request, request_id=body.request_id, rating=body.rating)
        with factory() as s:
            row = feedback.rate(s, principal, body.request_id, body.rating, body.comment)
            return FeedbackOut(request_id=row.request_id, rating=row.rating, comment=row.comment)

    @router.get("/v1/feedback", response_model=list[RatedAnswerOut], dependencies=[MANAGE])
    def list_rated(
        rating: Literal["up", "down"] = "down",
        limit: int = Query(default=50, ge=1, le=500),
        offset: Offset = 0,
    ) -> list[RatedAnswerOut]:
        """Rated answers, newest first, with question, answer and citations (from the audit record)."""
        with factory() as s:
            return [RatedAnswerOut(**vars(r)) for r in feedback.rated(s, rating, limit=limit, offset=offset)]

    return router
