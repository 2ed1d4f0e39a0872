"""Admin routes of the embedder registry: list and show versions, promote one (a queued re-embedding
job), roll back at once, retire. Admins only: auditors see promotions and rollbacks in the audit
log (every request here is a record naming the model), which is all their review needs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.auth import MANAGE
from api.ingest_routes import job_status
from api.params import RowId
from api.request_audit import note_target
from api.responses import JSON_BODY, NOT_FOUND
from api.schemas import JobStatus, RequestBody
from rag import jobs
from rag import model_registry as registry
from rag.auth.principal import Principal
from rag.model_promotion import request_promotion, rollback
from rag.settings import Settings


class EmbedderOut(BaseModel):
    id: int
    parent_id: int | None
    state: str = Field(description="candidate | active | retired")
    sha256: str = Field(description="SHA-256 over the weight files")
    dim: int
    folder: str = Field(description="its folder's name under the data folder's models/")
    method: str
    settings: dict
    trained_on: dict = Field(description="collection, index generation, watermark, chunks, steps, wall time")
    evaluation: dict = Field(description="name -> {candidate, active, active_id, gain}: the gate's evidence")
    generation: str | None = Field(description="index generation kept for a rollback to it")
    previous_id: int | None
    created_by: str
    promoted_by: str | None
    created_at: str | None
    promoted_at: str | None
    retired_at: str | None


class PromoteIn(RequestBody):
    force: bool = Field(default=False, description="Promote even when the evaluation gate refuses")


class RollbackOut(BaseModel):
    from_id: int
    to_id: int
    generation: int
    retired: list[int]


def build_router(settings: Settings, engine: Engine, factory: sessionmaker[Session]) -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.get("/v1/embedders", response_model=list[EmbedderOut], dependencies=[MANAGE])
    def list_embedders() -> list[EmbedderOut]:
        """Every embedder version (the packaged one is version 1) with its state and evaluations."""
        with factory() as s:
            return [EmbedderOut(**registry.describe(m)) for m in registry.list_models(s, settings)]

    @router.get("/v1/embedders/{model_id}", response_model=EmbedderOut, responses=NOT_FOUND, dependencies=[MANAGE])
    def show_embedder(model_id: RowId) -> EmbedderOut:
        with factory() as s:
            registry.list_models(s, settings)
            return EmbedderOut(**registry.describe(registry.get_model(s, model_id)))

    @router.post(
        "/v1/embedders/{model_id}/promote",
        status_code=202,
        response_model=JobStatus,
        responses=JSON_BODY | NOT_FOUND,
    )
    def promote_embedder(
        model_id: RowId, request: Request, body: PromoteIn | None = None, actor: Principal = MANAGE
    ) -> JobStatus:
        """Queue the re-embedding of every chunk with this model into a new generation; the switch is
        atomic and the API answers from the current generation until then (follow the job at
        /v1/ingest/jobs/{job_id}). 422 with the reason when it does not beat the active model by
        RAG_MODEL_PROMOTE_MIN_GAIN on its evaluations (unless `force`), or a promotion is under way."""
        force = bool(body and body.force)
        note_target(request, model_id=model_id, force=force)
        with factory() as s:
            job = request_promotion(s, settings, model_id, actor.name, force=force)
            note_target(request, job_id=job.id)
            return job_status(jobs.describe(s, job))

    @router.post("/v1/embedders/rollback", response_model=RollbackOut)
    def rollback_embedder(request: Request, actor: Principal = MANAGE) -> RollbackOut:
        """Back to the previous model's kept generation at once, without re-embedding; the current
        model is retired. 422 when there is nothing to roll back to."""
        out = rollback(settings, engine, factory, actor.name)
        note_target(request, **out)
        return RollbackOut(**out)

    @router.post("/v1/embedders/{model_id}/retire", response_model=EmbedderOut, responses=NOT_FOUND)
    def retire_embedder(model_id: RowId, request: Request, actor: Principal = MANAGE) -> EmbedderOut:
        """Retire a model that is not active: its kept generation and extra vectors are dropped."""
        note_target(request, model_id=model_id)
        with factory() as s:
            return EmbedderOut(**registry.describe(registry.retire(s, settings, registry.get_model(s, model_id))))

    return router
