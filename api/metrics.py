"""Prometheus metrics, one registry per app so several apps (tests, replicas in one process) never clash."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from rag.types import Answer

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rag_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.retrieval = Histogram(
            "rag_retrieval_seconds",
            "Retrieval time (embed + both searches + lookups)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.generation = Histogram(
            "rag_generation_seconds",
            "Generation time by backend",
            ["backend"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "rag_tokens", "Tokens by kind (prompt, completion) and backend", ["kind", "backend"], registry=self.registry
        )
        self.answers = Counter(
            "rag_answers",
            "Answers by status and backend; fallback marks extractive fallbacks",
            ["status", "backend", "fallback"],
            registry=self.registry,
        )

    def observe_answer(self, answer: Answer) -> None:
        self.retrieval.observe(answer.timings_ms.get("retrieval", 0.0) / 1000)
        self.generation.labels(answer.backend).observe(answer.timings_ms.get("generation", 0.0) / 1000)
        self.tokens.labels("prompt", answer.backend).inc(answer.usage.prompt_tokens)
        self.tokens.labels("completion", answer.backend).inc(answer.usage.completion_tokens)
        self.answers.labels(answer.status, answer.backend, str(answer.fallback).lower()).inc()
