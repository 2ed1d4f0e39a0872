"""Hybrid retrieval: dense and BM25 rankings fused by reciprocal rank, both filtered before ranking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rag.embedder import Embedder


class VectorSearch(Protocol):
    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class KeywordSearch(Protocol):
    def search(self, query: str, k: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    score: float


class HybridRetriever:
    """Reciprocal rank fusion (k=60) of a dense and a keyword ranking."""

    def __init__(self, embedder: Embedder, vector: VectorSearch, keyword: KeywordSearch, *,
                 rrf_k: int = 60, depth: int = 100) -> None:
        self.embedder = embedder
        self.vector = vector
        self.keyword = keyword
        self.rrf_k = rrf_k
        self.depth = depth

    def search(self, query: str, top_k: int = 10, allowed_ids: np.ndarray | None = None) -> list[Hit]:
        depth = max(self.depth, top_k)
        fused: dict[int, float] = {}
        _, dense_ids = self.vector.search(self.embedder.embed([query]), depth, allowed_ids)
        for rank, chunk_id in enumerate(i for i in dense_ids[0].tolist() if i >= 0):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        _, keyword_ids = self.keyword.search(query, depth, allowed_ids)
        for rank, chunk_id in enumerate(keyword_ids.tolist()):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        return [Hit(chunk_id, score) for chunk_id, score in best]
