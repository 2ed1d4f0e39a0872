"""Builds the query side from settings: one place for the API process and `rag ask`."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from rag.access import access_scope
from rag.answering import QuestionAnswerer
from rag.auth.principal import Principal
from rag.errors import InvalidRequestError, QuestionTooLongError
from rag.generators.extractive import ExtractiveGenerator
from rag.protocols import Embedder, Generator
from rag.retrieval import FusionParams
from rag.routing import PolicyRouter, build_router
from rag.search import Searcher
from rag.settings import Settings
from rag.types import DISABLED, SearchFilters


def fusion_params(settings: Settings) -> FusionParams:
    return FusionParams(
        method=settings.fusion,
        alpha=settings.fusion_alpha,
        rrf_k=settings.rrf_k,
        dense_weight=settings.fusion_dense_weight,
        keyword_weight=settings.fusion_keyword_weight,
        depth=settings.fusion_depth,
    )


def build_searcher(settings: Settings, factory: sessionmaker[Session], embedder: Embedder) -> Searcher:
    """The one way a process gets a Searcher: the API, `rag ask`, `rag search` and the evaluators.

    `embedder` is version 1's (the configured model); a generation built by another registry model
    is searched with that model, loaded on first use and verified against its SHA-256."""
    from rag.model_loader import ModelEmbedders

    models = embedder if isinstance(embedder, ModelEmbedders) else ModelEmbedders(settings, factory, base=embedder)
    return Searcher(
        models, factory, settings.index_dir, fusion_params(settings), nprobe=settings.ann_nprobe, models=models
    )


def check_question(text: str, settings: Settings) -> str:
    """A question or query as every entry point accepts it: stripped, non-empty, within the limit."""
    text = text.strip()
    if len(text) > settings.max_question_chars:
        raise QuestionTooLongError(f"question is {len(text)} characters; the limit is {settings.max_question_chars}")
    if not text:
        raise InvalidRequestError("the question is empty")
    return text


def build_generator(settings: Settings) -> Generator:
    if settings.generator == "openai":
        from rag.generators.openai_compat import OpenAICompatibleGenerator

        key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else None
        return OpenAICompatibleGenerator(
            settings.generator_base_url,
            settings.generator_model,
            api_key=key,
            timeout_s=settings.generator_timeout_s,
            connect_timeout_s=settings.generator_connect_timeout_s,
            retries=settings.generator_retries,
        )
    if settings.generator == "embedded":
        from rag.generators.embedded import EmbeddedGenerator, ensure_local_model

        return EmbeddedGenerator(
            ensure_local_model(settings.llm_model_path, settings.models_dir), threads=settings.llm_threads
        )
    return ExtractiveGenerator()


def build_answerer(
    settings: Settings, factory: sessionmaker[Session], embedder: Embedder, generator: Generator | None = None
) -> QuestionAnswerer:
    searcher = build_searcher(settings, factory, embedder)
    generator = generator or build_generator(settings)
    fallback = None
    if settings.generator_fallback == "extractive" and generator.backend != "extractive":
        fallback = ExtractiveGenerator()
    prompt_passages = settings.prompt_passages or None
    if prompt_passages is None and generator.backend == "embedded" and not settings.llm_model_path:
        prompt_passages = 1  # the packaged 135M model answers far better from one passage than from five
    router, external = build_escalation(settings, factory)
    return QuestionAnswerer(
        searcher,
        generator,
        fallback=fallback,
        max_tokens=settings.max_tokens,
        min_support=settings.grounding_min_support,
        prompt_passages=prompt_passages,
        link_hosts=tuple(settings.answer_link_hosts),
        router=router,
        external=external,
        answerability_threshold=settings.answerability_threshold,
    )


def build_escalation(settings: Settings, factory: sessionmaker[Session]) -> tuple[PolicyRouter, Generator | None]:
    """The router always exists (it explains why a query stays local); the external client only
    when escalation is enabled."""
    from rag.egress import external_generator

    router = build_router(settings.escalation, factory)
    external = external_generator(settings.escalation, router.scanner) if settings.escalation.enabled else None
    return router, external


def explain_route(
    answerer: QuestionAnswerer, question: str, principal: Principal, *, top_k: int, filters: SearchFilters | None = None
) -> dict:
    """The router's decision for this question and user, without generating or sending anything."""
    found = answerer.searcher.search(question, top_k, filters, access=access_scope(principal))
    router = answerer.router
    decision = router.decide(question, found.passages, principal) if router else DISABLED
    sent = (
        {p.chunk_id for p in decision.send} if decision.target == "external" or decision.escalate_on_decline else set()
    )
    return {
        "route": decision.public(),
        "escalation_enabled": bool(router and router.enabled),
        "user": {"name": principal.name, "role": principal.role, "groups": list(principal.groups)},
        "passages": [
            {
                "rank": n,
                "chunk_id": p.chunk_id,
                "document_id": p.document_id,
                "path": p.path,
                "label": p.label,
                "would_send": p.chunk_id in sent,
            }
            for n, p in enumerate(found.passages, 1)
        ],
    }
