"""Hybrid retrieval: dense and BM25 results fused, both searches filtered before ranking.

Fusions: convex combinations of scores normalised by min-max (`convex`), by z-score (`zscore`,
`adaptive`) or from each retriever's theoretical floor (`tmm`, the default), and weighted reciprocal
rank fusion (`rrf`). The default (tmm, dense weight 0.65) was chosen with `bench/tune_fusion.py` on
SciFact's train queries and one half of MED's, CACM's and ArguAna's; the other halves and SciFact's
test split only report it (README, "Retrieval").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from rag.protocols import Embedder, KeywordIndex, VectorIndex

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    score: float


@dataclass(frozen=True, slots=True)
class FusionParams:
    method: Literal["convex", "zscore", "adaptive", "tmm", "rrf"] = "convex"
    alpha: float = 0.5  # convex: weight of the dense score
    rrf_k: float = 60.0
    dense_weight: float = 1.0
    keyword_weight: float = 1.0
    depth: int = 300


def _minmax(scores: list[float]) -> list[float]:
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    span = hi - lo
    return [(s - lo) / span if span > 0 else 1.0 for s in scores]


def fuse_convex(
    dense: list[tuple[int, float]], keyword: list[tuple[int, float]], alpha: float, top_k: int
) -> list[Hit]:
    """alpha * dense + (1 - alpha) * BM25, each min-max normalised over its own candidates; a
    candidate missing from one list gets that list's minimum (0). Uses how *much* better a result
    scored, which rank fusion throws away (Bruch et al., 2023, "An Analysis of Fusion Functions")."""
    fused: dict[int, float] = {}
    for weight, ranking in ((alpha, dense), (1.0 - alpha, keyword)):
        for (chunk_id, _), norm in zip(ranking, _minmax([s for _, s in ranking]), strict=True):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * norm
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return [Hit(chunk_id, score) for chunk_id, score in best]


def _zscores(scores: list[float]) -> list[float]:
    if not scores:
        return []
    mean = sum(scores) / len(scores)
    std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    return [(s - mean) / std if std > 0 else 0.0 for s in scores]


def fuse_zscore(
    dense: list[tuple[int, float]], keyword: list[tuple[int, float]], alpha: float, top_k: int
) -> list[Hit]:
    """alpha * z(dense) + (1 - alpha) * z(BM25), each standardised over its own candidates; a candidate
    missing from one list gets that list's lowest z. Unlike min-max, one outlier score (a BM25 hit on a
    rare term, a near-duplicate vector) does not squash every other candidate of its list towards 0
    (Mazzeschi's distribution-based score fusion makes the same point)."""
    fused: dict[int, float] = {}
    floors = []
    for weight, ranking in ((alpha, dense), (1.0 - alpha, keyword)):
        z = _zscores([s for _, s in ranking])
        floors.append(weight * min(z, default=0.0))
        for (chunk_id, _), value in zip(ranking, z, strict=True):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * value
    in_dense = {i for i, _ in dense}
    in_keyword = {i for i, _ in keyword}
    for chunk_id in fused:
        if chunk_id not in in_dense:
            fused[chunk_id] += floors[0]
        if chunk_id not in in_keyword:
            fused[chunk_id] += floors[1]
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return [Hit(chunk_id, score) for chunk_id, score in best]


def _confidence(scores: list[float]) -> float:
    """How far a ranking's best score stands out from its candidates: z of the top score. A retriever
    that finds one clear match scores high; one that finds nothing in particular (flat scores) low."""
    if len(scores) < 2:
        return 0.0
    mean = sum(scores) / len(scores)
    std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    return max(0.0, (max(scores) - mean) / std) if std > 0 else 0.0


def adaptive_alpha(dense: list[tuple[int, float]], keyword: list[tuple[int, float]], prior: float = 0.5) -> float:
    """Per query, from unlabelled signals only: weight each retriever by how clearly its head stands out
    from its own candidates, shrunk halfway to `prior` (bounded to 0.2-0.8)."""
    cd, ck = _confidence([s for _, s in dense]), _confidence([s for _, s in keyword])
    share = cd / (cd + ck) if cd + ck > 0 else 0.5
    return min(0.8, max(0.2, 0.5 * prior + 0.5 * share))


# The score each retriever gives a text that shares nothing with the query: BM25 is 0 with no query
# term; a sentence embedder's cosine for unrelated texts is near 0 (MiniLM, random chunk pairs of one
# collection: 0.12-0.17 +- 0.13, so 0 is a floor, not a typical value).
DENSE_FLOOR = 0.0
KEYWORD_FLOOR = 0.0


def _theoretical(scores: list[float], floor: float) -> list[float]:
    if not scores:
        return []
    span = max(scores) - floor
    return [max(0.0, s - floor) / span if span > 0 else 0.0 for s in scores]


def fuse_tmm(dense: list[tuple[int, float]], keyword: list[tuple[int, float]], alpha: float, top_k: int) -> list[Hit]:
    """Convex fusion with each score scaled from its retriever's *theoretical* floor to the query's best
    (Bruch et al., 2023, TMM), not from the worst candidate. Min-max stretches any ranking to 0-1, so
    a dense ranking whose candidates all sit at nearly the same cosine (a collection or query where the
    embedder cannot tell them apart) weighs as much as a BM25 ranking with one clear match. Here such a
    flat ranking contributes a near-constant, and the weight moves to whichever retriever actually
    separates its candidates: the fusion adapts to the collection and the query from the score
    distributions alone, with no labels. A candidate missing from one list gets 0 from it."""
    fused: dict[int, float] = {}
    for weight, ranking, floor in ((alpha, dense, DENSE_FLOOR), (1.0 - alpha, keyword, KEYWORD_FLOOR)):
        for (chunk_id, _), norm in zip(ranking, _theoretical([s for _, s in ranking], floor), strict=True):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * norm
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return [Hit(chunk_id, score) for chunk_id, score in best]


def fuse(
    dense: list[tuple[int, float]], keyword: list[tuple[int, float]], params: FusionParams, top_k: int
) -> list[Hit]:
    if params.method == "tmm":
        return fuse_tmm(dense, keyword, params.alpha, top_k)
    if params.method == "adaptive":
        return fuse_zscore(dense, keyword, adaptive_alpha(dense, keyword, params.alpha), top_k)
    if params.method == "convex":
        return fuse_convex(dense, keyword, params.alpha, top_k)
    if params.method == "zscore":
        return fuse_zscore(dense, keyword, params.alpha, top_k)
    return fuse_rrf([i for i, _ in dense], [i for i, _ in keyword], params, top_k)


def fuse_rrf(dense_ids: list[int], keyword_ids: list[int], params: FusionParams, top_k: int) -> list[Hit]:
    """Weighted reciprocal rank fusion: rank-based, so the two score scales never need calibrating."""
    fused: dict[int, float] = {}
    for weight, ranking in ((params.dense_weight, dense_ids), (params.keyword_weight, keyword_ids)):
        if weight <= 0:
            continue
        for rank, chunk_id in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (params.rrf_k + rank + 1)
    best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return [Hit(chunk_id, score) for chunk_id, score in best]


def embed_query(embedder: Embedder, query: str) -> np.ndarray:
    """One query's vector on the embedder's single-query path when it has one (rag.embedder picks the
    fastest path for one text, which may differ from the bulk path), else through `embed`."""
    single = getattr(embedder, "embed_query", None)
    return single(query) if single is not None else embedder.embed([query])[0]


class HybridRetriever:
    def __init__(
        self, embedder: Embedder, vector: VectorIndex, keyword: KeywordIndex, params: FusionParams | None = None
    ) -> None:
        self.embedder = embedder
        self.vector = vector
        self.keyword = keyword
        self.params = params or FusionParams()

    def dense_ranking(
        self, query_vector: np.ndarray, depth: int, allowed_ids: np.ndarray | None
    ) -> list[tuple[int, float]]:
        scores, ids = self.vector.search(query_vector.reshape(1, -1), depth, allowed_ids)
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True) if i >= 0]

    def keyword_ranking(self, query: str, depth: int, allowed_ids: np.ndarray | None) -> list[tuple[int, float]]:
        scores, ids = self.keyword.search(query, depth, allowed_ids)
        return list(zip(ids.tolist(), scores.tolist(), strict=True))

    def search(
        self,
        query: str,
        top_k: int = 10,
        allowed_ids: np.ndarray | None = None,
        *,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """`allowed_ids` (chunk ids) restricts both searches before ranking; None means no restriction."""
        if allowed_ids is not None and len(allowed_ids) == 0:
            return []
        depth = max(self.params.depth, top_k)
        if mode == "bm25":
            scores, ids = self.keyword.search(query, top_k, allowed_ids)
            return [Hit(int(i), float(s)) for i, s in zip(ids.tolist(), scores.tolist(), strict=True)]
        if query_vector is None:
            query_vector = embed_query(self.embedder, query)
        if mode == "dense":
            scores, ids = self.vector.search(query_vector.reshape(1, -1), top_k, allowed_ids)
            return [Hit(int(i), float(s)) for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True) if i >= 0]
        dense = self.dense_ranking(query_vector, depth, allowed_ids)
        keyword = self.keyword_ranking(query, depth, allowed_ids)
        return fuse(dense, keyword, self.params, top_k)
