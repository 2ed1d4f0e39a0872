"""Admin dry-run of the escalation policy: which model would answer, and why, for any user."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from api.auth import require
from api.query_routes import ERRORS, to_filters
from api.responses import NOT_FOUND
from api.schemas import RouteExplainRequest
from api.services import QueryServices
from rag.auth.principal import Principal
from rag.service import check_question, explain_route
from rag.settings import Settings
from rag.users import principal_of


def build_router(settings: Settings, services: QueryServices, factory: sessionmaker[Session]) -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.post("/v1/route/explain", responses=ERRORS | NOT_FOUND)
    def explain(body: RouteExplainRequest, request: Request, principal: Principal = Depends(require("manage"))) -> dict:
        """Retrieve as `user` (default: the calling admin) and return the router's decision: target,
        rule, reason, detectors, labels and which passages would be sent. Nothing is generated or sent."""
        question = check_question(body.question, settings)
        subject = principal
        if body.user:
            with factory() as session:
                subject = principal_of(session, body.user, via="api_key")
        result = explain_route(
            services.answerer,
            question,
            subject,
            top_k=body.top_k or settings.default_top_k,
            filters=to_filters(body.filters),
        )
        entry = getattr(request.state, "audit", None)
        if entry is not None:
            entry.detail["route"] = result["route"]
            entry.detail["explained_for"] = subject.name
        return result | {"request_id": request.state.request_id}

    return router
